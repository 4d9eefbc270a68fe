//! Instances and groups as data. (The [`Registry`] of channel factories
//! lives in [`crate::registry`]; it is re-exported here as it always was.)
//!
//! The shape is format-agnostic (anything serde reads: JSON, TOML, YAML):
//!
//! ```json
//! {"instances": [{"name": "ops-ding", "type": "dingtalk", "enabled": true, "params": {}}],
//!  "groups": [{"name": "flink-prod", "enabled": true, "instances": ["ops-ding", "ops-mail"]}]}
//! ```
//!
//! Type names are matched case-insensitively, so Dinky's `DingTalk`,
//! `FeiShu` and `Email` work as they are; `WeChat` and `lark` are aliases.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::policy::PolicyConfig;
use crate::template::TemplateOverrides;

#[doc(no_inline)]
pub use crate::registry::{BuildContext, ChannelFactory, FromParams, Registry};

/// The whole alerting configuration: instances and the groups over them.
///
/// Build it in code, or read it from what the host stores:
///
/// ```
/// use alertkit::{Config, GroupConfig, InstanceConfig};
/// let built = Config::default()
///     .with_instance(InstanceConfig::new("ops", "recording"))
///     .with_group(GroupConfig::new("flink-prod", ["ops"]));
/// let read = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
///                                  "groups": [{"name": "flink-prod", "instances": ["ops"]}]}"#)?;
/// assert_eq!(read, built);
/// // and written back the same
/// assert_eq!(Config::from_value(serde_json::to_value(&built).unwrap())?, built);
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Channel instances.
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
    /// Groups of instances.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
}

impl Config {
    /// Adds an instance.
    ///
    /// ```
    /// use alertkit::{Config, InstanceConfig};
    /// let config = Config::default()
    ///     .with_instance(InstanceConfig::new("ops-ding", "dingtalk"))
    ///     .with_instance(InstanceConfig::new("ops-mail", "email"));
    /// assert_eq!(config.instances[1].name, "ops-mail");
    /// ```
    pub fn with_instance(mut self, instance: InstanceConfig) -> Self {
        self.instances.push(instance);
        self
    }

    /// Adds a group.
    ///
    /// ```
    /// use alertkit::{Config, GroupConfig, InstanceConfig};
    /// let config = Config::default()
    ///     .with_instance(InstanceConfig::new("ops", "recording"))
    ///     .with_group(GroupConfig::new("flink-prod", ["ops"]));
    /// assert_eq!(config.groups[0].instances, ["ops"]);
    /// ```
    pub fn with_group(mut self, group: GroupConfig) -> Self {
        self.groups.push(group);
        self
    }

    /// Parses JSON. Errors name the field's path and the expected type,
    /// never the value found there (it may be a secret).
    ///
    /// ```
    /// use alertkit::{Config, ErrorKind};
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "dingtalk", "enabled": false}]}"#)?;
    /// assert!(!config.instances[0].enabled);
    ///
    /// let e = Config::from_json(r#"{"instances": [{"name": "ops", "type": "dingtalk", "enabled": "s3cret"}]}"#)
    ///     .unwrap_err();
    /// assert_eq!((e.kind(), e.field()), (ErrorKind::InvalidConfig, Some("instances[0].enabled")));
    /// assert!(!e.to_string().contains("s3cret"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| path_error("", e))
    }

    /// Reads a config already parsed by any serde format (TOML, YAML, a
    /// database row) into a JSON value, with the same field-path errors as
    /// [`from_json`](Config::from_json).
    ///
    /// ```
    /// use alertkit::Config;
    /// let v = serde_json::json!({"instances": [{"name": "a", "type": "recording", "timeout_ms": "nope"}]});
    /// let e = Config::from_value(v).unwrap_err();
    /// assert_eq!(e.field(), Some("instances[0].timeout_ms"));
    /// ```
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        serde_path_to_error::deserialize(value).map_err(|e| path_error("", e))
    }

    /// Parses TOML, with the same field-path errors as
    /// [`from_json`](Config::from_json) (never the value found there). A
    /// syntax error names the line and column instead.
    ///
    /// ```
    /// use alertkit::Config;
    /// let config = Config::from_toml(r#"
    ///     [[instances]]
    ///     name = "ops-mail"
    ///     type = "email"
    ///     params = { host = "smtp.example.com", port = 465 }
    ///
    ///     [[groups]]
    ///     name = "flink-prod"
    ///     instances = ["ops-mail"]
    /// "#)?;
    /// assert_eq!(config.instances[0].params["port"], 465);
    ///
    /// let e = Config::from_toml("[[instances]]\nname = \"a\"\ntype = \"email\"\nenabled = \"s3cret\"").unwrap_err();
    /// assert_eq!(e.field(), Some("instances[0].enabled"));
    /// assert!(!e.to_string().contains("s3cret"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    #[cfg(feature = "toml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
    pub fn from_toml(text: &str) -> Result<Self> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_syntax_error(text, &e))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            // The toml error's `Display` quotes the offending line (it may
            // hold a secret): only its message is kept.
            let path = e.path().to_string();
            path_error_parts("", path, e.into_inner().message())
        })
    }
}

/// One configured channel instance.
///
/// `Debug` redacts params whose names look secret (`secret`, `password`,
/// `token`, `key`, ...) and every URL's query and hook path; `Serialize`
/// writes them back as they are, for a host that stores its config.
///
/// ```
/// use alertkit::InstanceConfig;
/// let ops = InstanceConfig::new("ops-ding", "dingtalk")
///     .param("webhook", "https://oapi.dingtalk.com/robot/send?access_token=abc123")
///     .param("secret", "SEC0123");
/// let debug = format!("{ops:?}");
/// assert!(!debug.contains("abc123") && !debug.contains("SEC0123"));
/// // `Serialize` keeps them, for the host's own store
/// assert_eq!(serde_json::to_value(&ops).unwrap()["params"]["secret"], "SEC0123");
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InstanceConfig {
    /// Unique name, used in groups and reports.
    pub name: String,
    /// Channel type (`dingtalk`, `wecom`, `feishu`, `email`, `webhook`, or a
    /// registered third-party type).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it receives alerts. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The channel's params; each channel documents its own.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Template overrides for this instance.
    #[serde(default, skip_serializing_if = "TemplateOverrides::is_empty")]
    pub templates: TemplateOverrides,
    /// Time limit for one send, in milliseconds (the group's otherwise).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::params::opt_num"
    )]
    pub timeout_ms: Option<u64>,
    /// Retry and rate-limit policies (both on by default, with the platform's limits).
    #[serde(default, skip_serializing_if = "PolicyConfig::is_default")]
    pub policy: PolicyConfig,
}

impl std::fmt::Debug for InstanceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params: BTreeMap<&str, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), redact_param(k, v)))
            .collect();
        f.debug_struct("InstanceConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
            .field("params", &params)
            .field("templates", &self.templates)
            .field("timeout_ms", &self.timeout_ms)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Whether a param's name says its value is a secret (`secret`,
/// `password`, `token`, `key`, `sign`, `auth`, `credential`, headers).
pub(crate) fn is_secret_name(key: &str) -> bool {
    const SECRET_WORDS: [&str; 9] = [
        "header",
        "secret",
        "password",
        "passwd",
        "token",
        "key",
        "sign",
        "auth",
        "credential",
    ];
    let lower = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// A param value as `Debug` may show it.
pub(crate) fn redact_param(key: &str, value: &serde_json::Value) -> serde_json::Value {
    if is_secret_name(key) {
        return serde_json::Value::String("[REDACTED]".into());
    }
    match value {
        serde_json::Value::String(s) => match url::Url::parse(s) {
            Ok(u) if u.has_host() => serde_json::Value::String(crate::http::redact_url(&u)),
            _ => value.clone(),
        },
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_param(k, v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|v| redact_param(key, v)).collect())
        }
        _ => value.clone(),
    }
}

fn yes() -> bool {
    true
}

impl InstanceConfig {
    /// An enabled instance with no params.
    ///
    /// ```
    /// use alertkit::InstanceConfig;
    /// let ops = InstanceConfig::new("ops-mail", "email");
    /// assert_eq!((ops.name.as_str(), ops.kind.as_str(), ops.enabled), ("ops-mail", "email", true));
    /// assert!(ops.params.is_empty());
    /// ```
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        InstanceConfig {
            name: name.into(),
            kind: kind.into(),
            enabled: true,
            params: serde_json::Map::new(),
            templates: TemplateOverrides::default(),
            timeout_ms: None,
            policy: PolicyConfig::default(),
        }
    }

    /// Sets the policies.
    ///
    /// ```
    /// use alertkit::InstanceConfig;
    /// use alertkit::policy::{PolicyConfig, Toggle};
    /// let ops = InstanceConfig::new("ops", "webhook").policy(PolicyConfig::off());
    /// assert_eq!(ops.policy.retry, Toggle::Off);
    /// assert_eq!(serde_json::to_value(&ops).unwrap()["policy"]["rate_limit"], false);
    /// ```
    pub fn policy(mut self, policy: PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// Sets a param.
    ///
    /// ```
    /// use alertkit::InstanceConfig;
    /// let ops = InstanceConfig::new("ops-mail", "email")
    ///     .param("host", "smtp.example.com")
    ///     .param("port", 465)
    ///     .param("to", serde_json::json!(["ops@example.com"]));
    /// assert_eq!(ops.params["port"], 465);
    /// assert_eq!(ops.params["to"][0], "ops@example.com");
    /// ```
    pub fn param(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// Enables or disables the instance.
    ///
    /// ```
    /// use alertkit::InstanceConfig;
    /// assert!(!InstanceConfig::new("ops", "dingtalk").enabled(false).enabled);
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
}

/// A named group of instances.
///
/// ```
/// use std::time::Duration;
/// use alertkit::GroupConfig;
/// let group = GroupConfig::new("flink-prod", ["ops-ding", "ops-mail"])
///     .repeat_interval(Duration::from_secs(600))
///     .fallback("ops-ding", ["ops-sms"]);
/// let json = serde_json::to_string(&group).unwrap();
/// assert_eq!(serde_json::from_str::<GroupConfig>(&json).unwrap(), group);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GroupConfig {
    /// Unique name.
    pub name: String,
    /// Whether it sends at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Member instance names, in report order.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Template overrides for every member (an instance's own win).
    #[serde(default, skip_serializing_if = "TemplateOverrides::is_empty")]
    pub templates: TemplateOverrides,
    /// Per-member time limit in milliseconds (default 300,000: it covers
    /// retries and rate-limit waits).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::params::opt_num"
    )]
    pub timeout_ms: Option<u64>,
    /// With this set (seconds), an alert with the same fingerprint and state
    /// as one delivered less than this long ago is suppressed; a state change
    /// (firing → resolved) always goes out. Off by default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::params::opt_num"
    )]
    pub repeat_interval_secs: Option<u64>,
    /// Fallback instances per member, tried in order when the member fails
    /// for good: `{"ops-ding": ["ops-mail"]}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fallbacks: BTreeMap<String, Vec<String>>,
}

impl GroupConfig {
    /// An enabled group over `instances`.
    ///
    /// ```
    /// use alertkit::GroupConfig;
    /// let group = GroupConfig::new("flink-prod", ["ops-ding", "ops-mail"]);
    /// assert!(group.enabled);
    /// assert_eq!(group.instances, ["ops-ding", "ops-mail"]); // report order
    /// ```
    pub fn new(
        name: impl Into<String>,
        instances: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        GroupConfig {
            name: name.into(),
            enabled: true,
            instances: instances.into_iter().map(Into::into).collect(),
            templates: TemplateOverrides::default(),
            timeout_ms: None,
            repeat_interval_secs: None,
            fallbacks: BTreeMap::new(),
        }
    }

    /// Sets the repeat interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::GroupConfig;
    /// let group = GroupConfig::new("g", ["ops"]).repeat_interval(Duration::from_secs(600));
    /// assert_eq!(group.repeat_interval_secs, Some(600));
    /// // at least one second: zero would mean "off" to a reader of the config
    /// let group = GroupConfig::new("g", ["ops"]).repeat_interval(Duration::from_millis(10));
    /// assert_eq!(group.repeat_interval_secs, Some(1));
    /// ```
    pub fn repeat_interval(mut self, interval: Duration) -> Self {
        self.repeat_interval_secs = Some(interval.as_secs().max(1));
        self
    }

    /// Names fallbacks for `member`, tried in order when it fails for good.
    ///
    /// ```
    /// use alertkit::GroupConfig;
    /// let group = GroupConfig::new("g", ["ops-ding"])
    ///     .fallback("ops-ding", ["ops-wecom"])
    ///     .fallback("ops-ding", ["ops-mail"]);
    /// assert_eq!(group.fallbacks["ops-ding"], ["ops-wecom", "ops-mail"]);
    /// ```
    pub fn fallback(
        mut self,
        member: impl Into<String>,
        fallbacks: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.fallbacks
            .entry(member.into())
            .or_default()
            .extend(fallbacks.into_iter().map(Into::into));
        self
    }

    /// Enables or disables the group.
    ///
    /// ```
    /// use alertkit::GroupConfig;
    /// let group = GroupConfig::new("g", ["ops"]).enabled(false);
    /// assert_eq!(serde_json::to_value(&group).unwrap()["enabled"], false);
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// A deserialization error as a config error whose field is the full path
/// (`params.at_mobiles[1]`); serde names a missing field only in its
/// message, so it is taken from there.
pub(crate) fn path_error<E: std::fmt::Display>(
    prefix: &str,
    e: serde_path_to_error::Error<E>,
) -> Error {
    let path = e.path().to_string();
    path_error_parts(prefix, path, &e.into_inner().to_string())
}

/// [`path_error`] from the path and the format's message.
fn path_error_parts(prefix: &str, path: String, message: &str) -> Error {
    let inner = scrub(message);
    let mut parts: Vec<&str> = Vec::new();
    if !prefix.is_empty() {
        parts.push(prefix);
    }
    if path != "." {
        parts.push(&path);
    }
    // The path already ends in an unknown field, but not in a missing one.
    if inner.starts_with("missing field") {
        parts.extend(quoted_name(&inner));
    }
    let field = if parts.is_empty() {
        "config".to_owned()
    } else {
        parts.join(".")
    };
    Error::config(field, inner)
}

/// A TOML syntax error: its line and column and what was expected, without
/// the line itself (toml's `Display` quotes it; it may hold a secret).
#[cfg(feature = "toml")]
fn toml_syntax_error(text: &str, e: &toml::de::Error) -> Error {
    let message = scrub(e.message().trim());
    let Some(span) = e.span() else {
        return Error::config("config", format!("TOML syntax error: {message}"));
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Error::config(
        "config",
        format!("TOML syntax error at line {line}, column {column}: {message}"),
    )
}

/// A serde message without the value it quotes: `invalid type: string
/// "http://user:PASS@proxy:3128", expected …` becomes `invalid type:
/// string, expected …` (the value may be a secret in the wrong place).
pub(crate) fn scrub(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" \"") {
        out.push_str(&rest[..i]);
        // The quoted value ends at the last `"` before ", expected" (or the end).
        let after = &rest[i + 2..];
        let end = after
            .find("\", expected")
            .or_else(|| after.rfind('"'))
            .map_or(after.len(), |e| e + 1);
        rest = &after[end.min(after.len())..];
    }
    out.push_str(rest);
    // Numbers are quoted in backticks: `invalid type: integer `123`, ...`.
    for what in ["integer `", "floating point `"] {
        while let Some(i) = out.find(what) {
            let start = i + what.len() - 1;
            let end = out[start + 1..]
                .find('`')
                .map_or(out.len(), |e| start + e + 2);
            out.replace_range(start.saturating_sub(1)..end, "");
        }
    }
    out
}

/// The first backquoted name in a serde message (`missing field `webhook``).
fn quoted_name(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// The instance names a group refers to that are missing from `known`.
pub(crate) fn check_group(group: &GroupConfig, known: &dyn Fn(&str) -> bool) -> Result<()> {
    if group.name.trim().is_empty() {
        return Err(Error::config("name", "group name is empty"));
    }
    if group.timeout_ms == Some(0) {
        return Err(Error::config(
            format!("groups[{:?}].timeout_ms", group.name),
            "must be at least 1",
        ));
    }
    if group.repeat_interval_secs == Some(0) {
        return Err(Error::config(
            format!("groups[{:?}].repeat_interval_secs", group.name),
            "must be at least 1 (leave it out to turn dedup off)",
        ));
    }
    let mut seen = BTreeMap::new();
    for (i, name) in group.instances.iter().enumerate() {
        if !known(name) {
            return Err(Error::config(
                format!("groups[{:?}].instances[{i}]", group.name),
                format!("group {:?} names unknown instance {name:?}", group.name),
            ));
        }
        if seen.insert(name.as_str(), i).is_some() {
            return Err(Error::config(
                format!("groups[{:?}].instances[{i}]", group.name),
                format!("group {:?} lists instance {name:?} twice", group.name),
            ));
        }
    }
    for (member, fallbacks) in &group.fallbacks {
        let field = format!("groups[{:?}].fallbacks.{member}", group.name);
        if !seen.contains_key(member.as_str()) {
            return Err(Error::config(
                field,
                format!("{member:?} is not a member of group {:?}", group.name),
            ));
        }
        for f in fallbacks {
            if !known(f) || f == member {
                return Err(Error::config(
                    field,
                    format!("fallback {f:?} is not another known instance"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_the_values_they_quote() {
        assert_eq!(
            scrub(r#"invalid type: string "http://user:PASS@proxy:3128", expected a map"#),
            "invalid type: string, expected a map"
        );
        assert_eq!(
            scrub("invalid type: integer `123456`, expected a string"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(
            scrub("unknown field `severty`, expected one of `title`"),
            "unknown field `severty`, expected one of `title`"
        );
        let e = Config::from_json(
            r#"{"instances": [{"name": "a", "type": "x", "params": {}, "timeout_ms": {"p": 1}}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("instances[0].timeout_ms"));
        let e = Config::from_json(
            r#"{"instances": [{"name": "a", "type": "x", "enabled": "s3cr3t-value"}]}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn config_json_errors_name_the_path() {
        let e =
            Config::from_json(r#"{"instances": [{"name": "a", "type": "x", "enabled": "yes"}]}"#)
                .unwrap_err();
        assert_eq!(e.field(), Some("instances[0].enabled"), "{e}");
        let e = Config::from_json(r#"{"instances": [], "group": []}"#).unwrap_err();
        assert_eq!(e.field(), Some("group"), "{e}");
        assert!(e.message().contains("unknown field `group`"), "{e}");
        let e = Config::from_json(r#"{"instances": [{"type": "x"}]}"#).unwrap_err();
        assert_eq!(e.field(), Some("instances[0].name"), "{e}");
    }
}
