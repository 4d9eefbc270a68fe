//! Alert instances and groups exported from Dinky and DolphinScheduler,
//! loaded as those tools store them and mapped to what they meant.
//!
//! [`Config::from_dinky`] takes Dinky 1.x and 0.7 rows
//! (`dinky_alert_instance`, `dinky_alert_group`, or 0.7's `dlink_*`);
//! [`Config::from_dolphinscheduler`] takes DolphinScheduler 3.x rows
//! (`t_ds_alert_plugin_instance`, `t_ds_alertgroup`). Rows come as the
//! tools' REST APIs return them or as database exports: `params` an object
//! or JSON text, `enabled` a boolean, `0`/`1` or `"1"`, camelCase or
//! snake_case columns, groups naming their members by id (`"1,2"`).
//!
//! The result is a normal [`Config`] (alertkit's own param names) and a
//! list of [`Note`]s: every param mapped with a change of meaning (Dinky
//! 1.x put DingTalk mentions only in the title, so nobody was pinged;
//! alertkit pings them), every value dropped (`xls.file.path`), every row
//! not imported (Dinky `Sms`, DolphinScheduler `Script`) and why. Nothing
//! is dropped without a note.
//!
//! ```
//! use alertkit::Config;
//! use serde_json::json;
//!
//! let instances = json!([
//!   {"id": 1, "name": "ops-mail", "type": "Email", "enabled": 1, "params":
//!     "{\"serverHost\": \"smtp.corp.example\", \"serverPort\": 465, \"sslEnable\": true, \"starttlsEnable\": false, \"enableSmtpAuth\": true, \"user\": \"alerts@corp.example\", \"password\": \"pw\", \"sender\": \"Flink\", \"receivers\": [\"ops@corp.example\"]}"},
//!   {"id": 2, "name": "sms", "type": "Sms", "enabled": 1, "params": "{}"}
//! ]);
//! let groups = json!([{"id": 1, "name": "prod", "alertInstanceIds": "1,2", "enabled": 1}]);
//! let imported = Config::from_dinky(&instances, &groups)?;
//!
//! // Dinky's `user` is the From address, its `sender` the display name.
//! let mail = &imported.config.instances[0];
//! assert_eq!(mail.params["from"], "alerts@corp.example");
//! assert_eq!(mail.params["from_name"], "Flink");
//! assert_eq!(imported.config.groups[0].instances, ["ops-mail"]);
//! // The Sms row is not imported, and the notes say so (on the row and the group).
//! assert!(imported.notes.iter().any(|n| n.code == "UNSUPPORTED" && n.row == "instance 2 \"sms\""));
//! assert!(imported.notes.iter().any(|n| n.code == "UNSUPPORTED" && n.row == "group 1 \"prod\""));
//! # Ok::<(), alertkit::Error>(())
//! ```

mod dinky;
mod dolphinscheduler;

use serde_json::{Map, Value};

use crate::config::{Config, GroupConfig, InstanceConfig};
use crate::error::{Error, Result};

/// A config imported from another tool, and what changed on the way.
///
/// ```
/// use alertkit::Config;
/// use alertkit::import::Imported;
/// use serde_json::json;
/// let instances = json!([{"id": 1, "name": "ops-ding", "type": "DingTalk", "enabled": 1,
///     "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=t", "keyword": "alert"}}]);
/// let groups = json!([{"id": 1, "name": "prod", "alertInstanceIds": "1", "enabled": 1}]);
/// let Imported { config, notes, .. } = Config::from_dinky(&instances, &groups)?;
/// assert_eq!(config.instances[0].params["keywords"], json!(["alert"]));
/// for note in &notes {
///     println!("{note}"); // show them to the operator before saving `config`
/// }
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Imported {
    /// The instances and groups, with alertkit's param names.
    pub config: Config,
    /// What was mapped with a change of meaning, dropped or not imported.
    pub notes: Vec<Note>,
}

/// One thing an operator should know about an imported row.
///
/// Notes never hold a param's value when it may be a secret (tokens,
/// passwords, webhook URLs).
///
/// ```
/// use alertkit::Config;
/// use serde_json::json;
/// let instances = json!([{"id": 7, "name": "sms", "type": "Sms", "enabled": 1, "params": "{}"}]);
/// let imported = Config::from_dinky(&instances, &json!(null))?;
/// assert!(imported.config.instances.is_empty());
/// let note = imported.notes.iter().find(|n| n.field.is_none() && n.code == "UNSUPPORTED").unwrap();
/// assert_eq!((note.row.as_str(), note.code), (r#"instance 7 "sms""#, "UNSUPPORTED"));
/// assert!(note.to_string().starts_with(r#"instance 7 "sms": "#));
/// assert!(note.to_string().ends_with("[UNSUPPORTED]"));
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Note {
    /// The source row: `instance 2 "ding-proxy"` or `group 4 "edge-cases"`.
    pub row: String,
    /// The source field, when the note is about one (`params.proxy`).
    pub field: Option<String>,
    /// A stable code for tests and tooling (`PROXY-BROKEN-IN-DINKY`,
    /// `UNSUPPORTED`, `MISSING-ID`, ...).
    pub code: &'static str,
    /// What the source tool did and what alertkit will do.
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.row)?;
        if let Some(field) = &self.field {
            write!(f, ", {field}")?;
        }
        write!(f, ": {} [{}]", self.message, self.code)
    }
}

impl Config {
    /// Loads Dinky alert instances and groups (1.x or 0.7 rows, as the REST
    /// API or a database export gives them; a mix of both shapes, as an
    /// upgraded 1.x database holds, works too). See [`crate::import`].
    ///
    /// `instances` and `groups` are JSON arrays of rows (or the API's
    /// `{"data": [...]}` answer); `groups` may be `null`. Errors name the row
    /// and field; instances Dinky could never send, and group members that do
    /// not exist, become notes.
    ///
    /// ```
    /// use alertkit::{Config, ErrorKind};
    /// use serde_json::json;
    /// // the REST API's answer, as it comes
    /// let instances = json!({"code": 0, "data": [{"id": 3, "name": "ops-feishu", "type": "FeiShu", "enabled": true,
    ///     "params": {"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/x", "keyword": "alert"}}]});
    /// let imported = Config::from_dinky(&instances, &json!({"data": []}))?;
    /// assert_eq!(imported.config.instances[0].kind, "feishu");
    ///
    /// let e = Config::from_dinky(&json!([{"id": 4, "type": "FeiShu"}]), &json!(null)).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidConfig); // the row has no name
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn from_dinky(instances: &Value, groups: &Value) -> Result<Imported> {
        dinky::import(instances, groups)
    }

    /// Loads DolphinScheduler alert plugin instances and alert groups
    /// (3.1, 3.2 and later rows; `pluginInstanceParams` as the stored flat
    /// map or the REST API's form list). Each instance row names its plugin
    /// with `pluginName` or `alertPluginName` (the REST API's field); for
    /// database rows that only carry `pluginDefineId`, use
    /// [`from_dolphinscheduler_with_plugins`](Config::from_dolphinscheduler_with_plugins).
    ///
    /// ```
    /// use alertkit::Config;
    /// use serde_json::json;
    /// let instances = json!([{"id": 5, "instanceName": "ops-ding", "pluginName": "DingTalk",
    ///     "pluginInstanceParams": "{\"WebHook\": \"https://oapi.dingtalk.com/robot/send?access_token=t\", \"Keyword\": \"alert\", \"AtMobiles\": \"13800000000,13900000000\"}"}]);
    /// let groups = json!([{"id": 2, "groupName": "etl", "alertInstanceIds": "5"}]);
    /// let imported = Config::from_dolphinscheduler(&instances, &groups)?;
    /// let ding = &imported.config.instances[0];
    /// assert_eq!(ding.kind, "dingtalk");
    /// assert_eq!(ding.params["at_mobiles"], json!(["13800000000", "13900000000"]));
    /// assert_eq!(imported.config.groups[0].instances, ["ops-ding"]);
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn from_dolphinscheduler(instances: &Value, groups: &Value) -> Result<Imported> {
        dolphinscheduler::import(instances, groups, &Value::Null)
    }

    /// [`from_dolphinscheduler`](Config::from_dolphinscheduler) for database
    /// rows: `plugin_defines` are `t_ds_plugin_define` rows (`id`,
    /// `pluginName`), which give each instance's `pluginDefineId` its type.
    ///
    /// ```
    /// use alertkit::Config;
    /// use serde_json::json;
    /// // `t_ds_alert_plugin_instance` rows name their plugin by id only
    /// let instances = json!([{"id": 5, "instance_name": "ops-ding", "plugin_define_id": 11,
    ///     "plugin_instance_params": "{\"WebHook\": \"https://oapi.dingtalk.com/robot/send?access_token=t\"}"}]);
    /// let defines = json!([{"id": 11, "plugin_name": "DingTalk", "plugin_type": "ALERT"}]);
    /// let imported = Config::from_dolphinscheduler_with_plugins(&instances, &json!([]), &defines)?;
    /// assert_eq!(imported.config.instances[0].kind, "dingtalk");
    /// assert!(Config::from_dolphinscheduler(&instances, &json!([])).is_err()); // no type without them
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn from_dolphinscheduler_with_plugins(
        instances: &Value,
        groups: &Value,
        plugin_defines: &Value,
    ) -> Result<Imported> {
        dolphinscheduler::import(instances, groups, plugin_defines)
    }
}

/// Notes of one import, each tied to the row being read.
struct Notes {
    all: Vec<Note>,
    row: String,
}

impl Notes {
    fn new() -> Self {
        Notes {
            all: Vec::new(),
            row: String::new(),
        }
    }

    fn at(&mut self, row: String) {
        self.row = row;
    }

    fn add(&mut self, field: Option<&str>, code: &'static str, message: impl Into<String>) {
        self.all.push(Note {
            row: self.row.clone(),
            field: field.map(str::to_owned),
            code,
            message: message.into(),
        });
    }
}

/// What became of one source instance row.
enum Mapped {
    /// Imported as this instance.
    Instance(Box<InstanceConfig>),
    /// Not imported; the reason is already a note on the row, repeated on
    /// every group that lists it.
    Skipped(String),
}

/// One source row: a JSON object whose columns may be camelCase or snake_case.
#[derive(Clone, Copy)]
struct Row<'a> {
    map: &'a Map<String, Value>,
    /// Its position in the input, for errors.
    index: usize,
    /// `instances` or `groups`, for errors.
    what: &'static str,
}

impl<'a> Row<'a> {
    /// The column `camel` (`alertInstanceIds`) or its snake_case form
    /// (`alert_instance_ids`); null counts as absent.
    fn get(&self, camel: &str) -> Option<&'a Value> {
        self.map
            .get(camel)
            .or_else(|| self.map.get(&snake(camel)))
            .filter(|v| !v.is_null())
    }

    fn field(&self, name: &str) -> String {
        format!("{}[{}].{name}", self.what, self.index)
    }

    /// The row's `id` as text (`"?"` if it has none).
    fn id(&self) -> String {
        self.get("id").and_then(text).unwrap_or_else(|| "?".into())
    }

    /// A text column that must be present and non-blank.
    fn required_text(&self, names: &[&str], label: &str) -> Result<String> {
        names
            .iter()
            .find_map(|n| self.get(n).and_then(text))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(
                    self.field(names[0]),
                    format!("{label} row {} has no {}", self.id(), names[0]),
                )
            })
    }

    /// `enabled` as a boolean (`true`, `1`, `"1"`, `"true"`); absent is true.
    fn enabled(&self, label: &str) -> Result<bool> {
        match self.get("enabled") {
            None => Ok(true),
            Some(v) => flag(v).ok_or_else(|| {
                Error::config(
                    self.field("enabled"),
                    format!(
                        "{label} row {}: enabled is not a boolean, 0/1 or \"0\"/\"1\"",
                        self.id()
                    ),
                )
            }),
        }
    }
}

/// `alertInstanceIds` → `alert_instance_ids`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The rows of an export: an array, or an API answer wrapping one
/// (`{"data": [...]}`, `{"data": {"totalList": [...]}}`, `records`, `list`).
fn rows<'a>(v: &'a Value, what: &'static str) -> Result<Vec<Row<'a>>> {
    let mut at = v;
    for _ in 0..3 {
        match at {
            Value::Array(_) | Value::Null => break,
            Value::Object(m) => {
                match ["data", "totalList", "records", "list", "rows"]
                    .iter()
                    .find_map(|k| m.get(*k))
                {
                    Some(inner) => at = inner,
                    None => break,
                }
            }
            _ => break,
        }
    }
    match at {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Object(map) => Ok(Row { map, index, what }),
                _ => Err(Error::config(
                    format!("{what}[{index}]"),
                    "a row must be a JSON object",
                )),
            })
            .collect(),
        _ => Err(Error::config(
            what,
            "expected a JSON array of rows (or an API answer holding one)",
        )),
    }
}

/// A scalar as text: strings as they are, numbers and booleans printed.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-blank text param, trimmed.
fn param_text(p: &Map<String, Value>, key: &str) -> Option<String> {
    p.get(key)
        .and_then(text)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A boolean written as `true`, `1`, `"1"`, `"true"` (any case), or their opposites.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A switch param; absent, null or unreadable is `default`.
fn param_flag(p: &Map<String, Value>, key: &str, default: bool) -> bool {
    p.get(key).and_then(flag).unwrap_or(default)
}

/// A list param: a JSON array, or one string separated by `sep`; items
/// trimmed, blanks dropped (Hutool's and the tools' own splitting).
fn param_list(p: &Map<String, Value>, key: &str, sep: &[char]) -> Vec<String> {
    let items: Vec<String> = match p.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
        Some(Value::String(s)) => s.split(sep).map(str::to_owned).collect(),
        Some(other) => text(other).into_iter().collect(),
        None => Vec::new(),
    };
    items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A row's params: an object, JSON text of one (a database export), or
/// DolphinScheduler's form list `[{"field": .., "value": ..}]`; null or
/// blank is empty.
fn params_of(row: &Row<'_>, column: &str, label: &str) -> Result<Map<String, Value>> {
    let bad = |why: String| {
        Error::config(
            row.field(column),
            format!("{label} row {}: {column} {why}", row.id()),
        )
    };
    let parsed;
    let v = match row.get(column) {
        None => return Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Value::String(s)) => {
            // serde_json's message names a line and column, never the text.
            parsed =
                serde_json::from_str::<Value>(s).map_err(|e| bad(format!("is not JSON ({e})")))?;
            &parsed
        }
        Some(v) => v,
    };
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::Array(items) => {
            let mut m = Map::new();
            for item in items {
                let Some(field) = item.get("field").and_then(Value::as_str) else {
                    return Err(bad("is a list whose items lack a \"field\"".into()));
                };
                // The stored map holds every value as a string (or null).
                let value = match item.get("value") {
                    None | Some(Value::Null) => Value::Null,
                    Some(v) => text(v).map_or_else(|| Value::String(v.to_string()), Value::String),
                };
                m.insert(field.to_owned(), value);
            }
            Ok(m)
        }
        _ => Err(bad("is neither a JSON object nor JSON text of one".into())),
    }
}

/// `http://host:port` of a proxy with the given parts, as alertkit's
/// `proxy` param (`username`/`password` only when given).
fn proxy_param(
    host: &str,
    port: u16,
    user: Option<String>,
    password: Option<String>,
) -> Option<Value> {
    let host = host.trim();
    let host = host
        .strip_prefix("http://")
        .or_else(|| host.strip_prefix("https://"))
        .unwrap_or(host)
        .trim_end_matches('/');
    let url = if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    };
    url::Url::parse(&url).ok()?;
    let mut m = Map::new();
    m.insert("url".into(), url.into());
    if let Some(u) = user {
        m.insert("username".into(), u.into());
    }
    if let Some(p) = password {
        m.insert("password".into(), p.into());
    }
    Some(Value::Object(m))
}

/// A port from a number or a numeric string.
fn port_of(v: Option<&Value>) -> Option<u16> {
    v.and_then(text)
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|p| *p != 0)
}

/// The instance, and the rows' ids by name.
fn instance(name: &str, kind: &str, enabled: bool, params: Map<String, Value>) -> Mapped {
    let mut i = InstanceConfig::new(name, kind).enabled(enabled);
    i.params = params;
    Mapped::Instance(Box::new(i))
}

/// Names must be unique in a config: a name seen before gets `#<id>`.
fn unique_name(name: &str, id: &str, taken: &mut std::collections::HashSet<String>) -> String {
    let mut out = name.to_owned();
    if taken.contains(&out) {
        out = format!("{name}#{id}");
    }
    taken.insert(out.clone());
    out
}

/// Builds the groups from `(row label, name, enabled, member ids)` and the
/// instances by source id, noting missing and skipped members.
fn build_groups(
    groups: Vec<(String, String, bool, Vec<String>)>,
    by_id: &std::collections::HashMap<String, (String, Option<String>)>,
    tool: &str,
    notes: &mut Notes,
) -> Vec<GroupConfig> {
    let mut out = Vec::new();
    for (label, name, enabled, ids) in groups {
        notes.at(label);
        let mut members: Vec<String> = Vec::new();
        for id in ids {
            match by_id.get(&id) {
                None => notes.add(
                    Some("alertInstanceIds"),
                    "MISSING-ID",
                    format!("instance id {id} does not exist ({tool} skipped it)"),
                ),
                Some((inst, Some(reason))) => notes.add(
                    Some("alertInstanceIds"),
                    "UNSUPPORTED",
                    format!("member {inst} (id {id}) was not imported: {reason}"),
                ),
                Some((inst, None)) => {
                    if !members.contains(inst) {
                        members.push(inst.clone());
                    }
                }
            }
        }
        out.push(GroupConfig::new(name, members).enabled(enabled));
    }
    out
}

/// Assembles the result from mapped rows `(source id, name, mapped)`.
fn assemble(
    mapped: Vec<(String, String, Mapped)>,
    groups: Vec<(String, String, bool, Vec<String>)>,
    tool: &str,
    mut notes: Notes,
) -> Imported {
    let mut by_id = std::collections::HashMap::new();
    let mut config = Config::default();
    for (id, name, m) in mapped {
        match m {
            Mapped::Instance(i) => {
                by_id.insert(id, (name, None));
                config.instances.push(*i);
            }
            Mapped::Skipped(reason) => {
                by_id.insert(id, (name, Some(reason)));
            }
        }
    }
    config.groups = build_groups(groups, &by_id, tool, &mut notes);
    Imported {
        config,
        notes: notes.all,
    }
}

/// A minijinja template that writes `literal` as it is.
fn literal_template(literal: &str) -> String {
    if literal.contains("{{") || literal.contains("{%") || literal.contains("{#") {
        format!("{{% raw %}}{literal}{{% endraw %}}")
    } else {
        literal.to_owned()
    }
}

/// A JSON document whose string leaves are written as they are (webhook
/// bodies are templates; the source tools' bodies are literal).
fn literal_body(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(literal_template(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(literal_body).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, literal_body(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_in_either_case_and_flags_in_any_form() {
        let v = json!([{"id": 3, "alert_instance_ids": "1,2", "enabled": "1"}]);
        let r = rows(&v, "groups").unwrap();
        assert_eq!(r[0].get("alertInstanceIds"), Some(&json!("1,2")));
        assert!(r[0].enabled("group").unwrap());
        assert_eq!(flag(&json!(0)), Some(false));
        assert_eq!(flag(&json!("TRUE")), Some(true));
        assert_eq!(flag(&json!(2)), None);
        let wrapped = json!({"code": 0, "data": {"totalList": [{"id": 1}]}});
        assert_eq!(rows(&wrapped, "instances").unwrap().len(), 1);
        assert!(rows(&json!("x"), "instances").is_err());
    }

    #[test]
    fn params_as_text_objects_or_form_lists_and_errors_without_values() {
        let v = json!([{"id": 7, "params": "{\"a\": 1}"}, {"id": 8, "params": "{\"password\": \"s3cr3t"},
                       {"id": 9, "p": [{"field": "Port", "value": 120}, {"field": "User", "value": null}]}]);
        let r = rows(&v, "instances").unwrap();
        assert_eq!(
            params_of(&r[0], "params", "Dinky instance").unwrap()["a"],
            1
        );
        let e = params_of(&r[1], "params", "Dinky instance").unwrap_err();
        assert_eq!(e.field(), Some("instances[1].params"));
        assert!(
            e.to_string().contains("row 8") && !e.to_string().contains("s3cr3t"),
            "{e}"
        );
        let p = params_of(&r[2], "p", "x").unwrap();
        assert_eq!(p["Port"], "120");
        assert!(p["User"].is_null());
    }

    #[test]
    fn proxies_and_templates() {
        assert_eq!(
            proxy_param("10.0.0.12", 3128, Some("u".into()), None).unwrap(),
            json!({"url": "http://10.0.0.12:3128", "username": "u"})
        );
        assert_eq!(literal_template("a {{ b"), "{% raw %}a {{ b{% endraw %}");
        assert_eq!(snake("alertInstanceIds"), "alert_instance_ids");
    }
}
