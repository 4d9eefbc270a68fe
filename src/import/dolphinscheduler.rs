//! DolphinScheduler 3.x alert plugin instances and groups
//! (tests/fixtures/import/MAPPING.md §2.3, §3.8).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::dinky::tls_of;
use super::{
    Imported, Mapped, Notes, assemble, instance, literal_template, param_flag, param_list,
    param_text, params_of, port_of, proxy_param, rows, text, unique_name,
};
use crate::error::{Error, Result};

const LABEL: &str = "DolphinScheduler instance";
/// The content in a webhook body: alertkit's text (title first).
const CONTENT: &str = "{% include \"text\" %}";

pub(super) fn import(instances: &Value, groups: &Value, defines: &Value) -> Result<Imported> {
    let mut plugin_names: HashMap<String, String> = HashMap::new();
    for row in rows(defines, "plugin_defines")? {
        let name = row.required_text(&["pluginName"], "DolphinScheduler plugin define")?;
        plugin_names.insert(row.id(), name);
    }
    let mut notes = Notes::new();
    let mut taken = HashSet::new();
    let mut mapped = Vec::new();
    for row in rows(instances, "instances")? {
        let id = row.id();
        let name = row.required_text(&["instanceName", "name"], LABEL)?;
        let kind = match ["pluginName", "alertPluginName"]
            .iter()
            .find_map(|k| row.get(k).and_then(text))
        {
            Some(k) => k,
            None => row
                .get("pluginDefineId")
                .and_then(text)
                .and_then(|d| plugin_names.get(&d).cloned())
                .ok_or_else(|| {
                    Error::config(
                        row.field("pluginDefineId"),
                        format!(
                            "{LABEL} row {id}: no pluginName, and its pluginDefineId is not among the plugin defines given (use Config::from_dolphinscheduler_with_plugins with the t_ds_plugin_define rows)"
                        ),
                    )
                })?,
        };
        let mut params = params_of(&row, "pluginInstanceParams", LABEL)?;
        let unique = unique_name(&name, &id, &mut taken);
        notes.at(format!("instance {id} {name:?}"));
        if unique != name {
            notes.add(
                Some("instanceName"),
                "DUPLICATE-NAME",
                format!("the name is taken by an earlier row: imported as {unique:?}"),
            );
        }
        warning_type(&row, &mut params, &mut notes);
        let m = map_row(&unique, &kind, &params, &mut notes);
        if let Mapped::Instance(_) = &m
            && let Some(v) = row.get("instanceType")
            && matches!(text(v).as_deref(), Some("1" | "GLOBAL"))
        {
            notes.add(
                Some("instanceType"),
                "DS-GLOBAL",
                "a GLOBAL instance: DolphinScheduler also sent it server and listener events through the \"global alert group\"; alertkit sends it what its groups get",
            );
        }
        mapped.push((id, unique, m));
    }
    let mut group_rows = Vec::new();
    for row in rows(groups, "groups")? {
        let id = row.id();
        let name = row.required_text(&["groupName", "name"], "DolphinScheduler group")?;
        let label = format!("group {id} {name:?}");
        notes.at(label.clone());
        let mut ids = Vec::new();
        if let Some(list) = row.get("alertInstanceIds").and_then(text) {
            for item in list.split(',') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                if item.parse::<i64>().is_ok() {
                    ids.push(item.to_owned());
                } else {
                    notes.add(
                        Some("alertInstanceIds"),
                        "BAD-ID",
                        format!("{item:?} is not an id (DolphinScheduler failed on it); skipped"),
                    );
                }
            }
        }
        group_rows.push((label, name, true, ids));
    }
    Ok(assemble(mapped, group_rows, "DolphinScheduler", notes))
}

/// The `warning_type` column (3.2.1+) and the 3.1 `WarningType` param:
/// alertkit has no per-instance success/failure filter.
fn warning_type(row: &super::Row<'_>, params: &mut Map<String, Value>, notes: &mut Notes) {
    if let Some(v) = row.get("warningType").and_then(text) {
        let which = match v.to_ascii_uppercase().as_str() {
            "0" | "NONE" => Some("no"),
            "1" | "SUCCESS" => Some("only success"),
            "2" | "FAILURE" => Some("only failure"),
            _ => None,
        };
        if let Some(which) = which {
            notes.add(
                Some("warningType"),
                "DS-WARNTYPE",
                format!("DolphinScheduler 3.2.0/3.2.1 sent {which} alerts to this instance; alertkit sends it every alert of its groups"),
            );
        }
    }
    if let Some(v) = params.remove("WarningType")
        && let Some(w) = text(&v).filter(|w| !w.eq_ignore_ascii_case("all"))
    {
        notes.add(
            Some("pluginInstanceParams.WarningType"),
            "DS-WARNTYPE",
            format!("a 3.1 param: DolphinScheduler up to 3.2.1 sent only {w} alerts here (3.2.2 ignored it); alertkit sends every alert of its groups"),
        );
    }
}

fn skipped(notes: &mut Notes, reason: String) -> Mapped {
    notes.add(
        None,
        "UNSUPPORTED",
        format!("{reason}; the instance was not imported"),
    );
    Mapped::Skipped(reason)
}

fn set(p: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    p.insert(key.into(), value.into());
}

fn map_row(name: &str, kind: &str, src: &Map<String, Value>, notes: &mut Notes) -> Mapped {
    match kind.to_ascii_lowercase().as_str() {
        "dingtalk" => instance(name, "dingtalk", true, dingtalk(src, notes)),
        "wechat" => instance(name, "wecom", true, wecom(src, notes)),
        "feishu" => instance(name, "feishu", true, feishu(src, notes)),
        "email" => instance(name, "email", true, email(src, notes)),
        "http" => match http(src, notes) {
            Ok((params, timeout)) => {
                let mut m = instance(name, "webhook", true, params);
                if let (Mapped::Instance(i), Some(t)) = (&mut m, timeout) {
                    i.timeout_ms = Some(t);
                }
                m
            }
            Err(reason) => skipped(notes, reason),
        },
        "slack" | "telegram" | "webexteams" | "pagerduty" | "prometheus alertmanager" => skipped(
            notes,
            format!(
                "DolphinScheduler {kind} is not supported by alertkit (no channel of that type; its secret would sit in a plain webhook URL or body)"
            ),
        ),
        _ => skipped(
            notes,
            format!("DolphinScheduler {kind} is not supported by alertkit"),
        ),
    }
}

/// `IsEnableProxy` + `Proxy`, `Port`, `User`, `Password`. `None` when the
/// switch is on without a usable host and port (DolphinScheduler threw).
fn proxy(src: &Map<String, Value>, out: &mut Map<String, Value>) -> Option<()> {
    if !param_flag(src, "IsEnableProxy", false) {
        return Some(());
    }
    let host = param_text(src, "Proxy")?;
    let port = port_of(src.get("Port"))?;
    let v = proxy_param(
        &host,
        port,
        param_text(src, "User"),
        param_text(src, "Password"),
    )?;
    set(out, "proxy", v);
    Some(())
}

fn dingtalk(src: &Map<String, Value>, notes: &mut Notes) -> Map<String, Value> {
    let mut p = Map::new();
    if let Some(w) = param_text(src, "WebHook") {
        set(&mut p, "webhook", w);
    }
    if let Some(s) = param_text(src, "Secret") {
        set(&mut p, "secret", s);
    }
    if let Some(k) = param_text(src, "Keyword") {
        set(&mut p, "keywords", json!([k]));
    }
    let mobiles = param_list(src, "AtMobiles", &[',']);
    if !mobiles.is_empty() {
        set(&mut p, "at_mobiles", json!(mobiles));
    }
    let mut users = param_list(src, "AtUserIds", &[',']);
    users.extend(param_list(src, "AtDingtalkIds", &[',']));
    if !users.is_empty() {
        set(&mut p, "at_user_ids", json!(users));
    }
    set(&mut p, "at_all", param_flag(src, "IsAtAll", false));
    let msg_type = match param_text(src, "MsgType").as_deref() {
        Some(t) if t.eq_ignore_ascii_case("markdown") => "markdown",
        _ => "text",
    };
    set(&mut p, "msg_type", msg_type);
    if proxy(src, &mut p).is_none() {
        notes.add(
            Some("pluginInstanceParams.Proxy"),
            "PROXY-INCOMPLETE",
            "the proxy is switched on without a usable host and port (DolphinScheduler failed every send); imported without a proxy",
        );
    }
    p
}

fn wecom(src: &Map<String, Value>, notes: &mut Notes) -> Map<String, Value> {
    let mut p = Map::new();
    set(&mut p, "mode", "app");
    if let Some(c) = param_text(src, "corpId") {
        set(&mut p, "corp_id", c);
    }
    if let Some(s) = param_text(src, "secret") {
        set(&mut p, "secret", s);
    }
    let send_type = param_text(src, "sendType").unwrap_or_default();
    let target = param_text(src, "agentId/chatId")
        .or_else(|| param_text(src, "agentId"))
        .or_else(|| param_text(src, "chatId"));
    if send_type.contains("GROUP CHAT") || send_type.contains("群聊") {
        // appchat/send to a chat the app created.
        if let Some(chat) = target {
            set(&mut p, "chat_ids", json!([chat]));
        }
    } else {
        if let Some(agent) = target {
            set(&mut p, "agent_id", agent);
        }
        let raw = param_text(src, "users").unwrap_or_default();
        if raw.contains(',') {
            notes.add(
                Some("pluginInstanceParams.users"),
                "DS-WECOM-USERS",
                "DolphinScheduler sent this list unsplit as touser (WeCom separates ids with |, so the commas made one invalid id); alertkit splits it",
            );
        }
        set(
            &mut p,
            "to_users",
            json!(param_list(src, "users", &['|', ','])),
        );
    }
    let msg_type = match param_text(src, "showType").as_deref() {
        Some("text") => "text",
        _ => "markdown",
    };
    set(&mut p, "msg_type", msg_type);
    p
}

fn feishu(src: &Map<String, Value>, notes: &mut Notes) -> Map<String, Value> {
    let mut p = Map::new();
    if let Some(w) = param_text(src, "WebHook") {
        set(&mut p, "webhook", w);
    }
    // DolphinScheduler sends plain text, without keyword, signature or mentions.
    set(&mut p, "msg_type", "text");
    if proxy(src, &mut p).is_none() {
        notes.add(
            Some("pluginInstanceParams.IsEnableProxy"),
            "DS-FEISHU-DEFAULT-PROXY",
            "the proxy switch is on (the form's default) without a proxy host and port: DolphinScheduler failed every send; imported without a proxy",
        );
    }
    p
}

fn email(src: &Map<String, Value>, notes: &mut Notes) -> Map<String, Value> {
    let mut p = Map::new();
    if let Some(h) = param_text(src, "serverHost") {
        set(&mut p, "host", h);
    }
    if let Some(port) = port_of(src.get("serverPort")) {
        set(&mut p, "port", port);
    }
    // Here `sender` is the From address; the login may differ.
    if let Some(s) = param_text(src, "sender") {
        set(&mut p, "from", s);
    }
    let auth = param_flag(src, "enableSmtpAuth", true);
    set(&mut p, "enable_smtp_auth", auth);
    if auth {
        if let Some(u) = param_text(src, "User") {
            set(&mut p, "username", u);
        }
        if let Some(pw) = param_text(src, "Password") {
            set(&mut p, "password", pw);
        }
    }
    set(&mut p, "to", json!(param_list(src, "receivers", &[','])));
    let cc = param_list(src, "receiverCcs", &[',']);
    if !cc.is_empty() {
        set(&mut p, "cc", json!(cc));
    }
    let tls = tls_of(
        param_flag(src, "sslEnable", false),
        param_flag(src, "starttlsEnable", false),
        notes,
    );
    set(&mut p, "tls", tls);
    if let Some(t) = param_text(src, "smtpSslTrust") {
        if t == "*" && tls != "none" {
            notes.add(
                Some("pluginInstanceParams.smtpSslTrust"),
                "MAIL-TRUST-ALL",
                "certificates are not verified, as in the source",
            );
        }
        set(&mut p, "smtp_ssl_trust", t);
    }
    let format = match param_text(src, "showType").as_deref() {
        Some("text") => {
            notes.add(
                Some("pluginInstanceParams.showType"),
                "MAIL-TEXT-IS-HTML",
                "'text' was an HTML mail listing each item; imported as html",
            );
            "html"
        }
        Some("attachment") => "attachment",
        Some("table attachment") => "table_attachment",
        _ => "table",
    };
    set(&mut p, "format", format);
    p
}

/// A JSON object param stored as text (`headerParams`, `bodyParams`).
fn json_object(
    src: &Map<String, Value>,
    key: &str,
) -> std::result::Result<Map<String, Value>, String> {
    match src.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(format!(
                "{key} is not a JSON object (DolphinScheduler failed every send)"
            )),
        },
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("{key} is not a JSON object")),
    }
}

/// DolphinScheduler's Http plugin: the webhook params and the time limit
/// in milliseconds, or why it cannot be imported.
fn http(
    src: &Map<String, Value>,
    notes: &mut Notes,
) -> std::result::Result<(Map<String, Value>, Option<u64>), String> {
    const PLACEHOLDER: &str = "${msg}";
    // After 3.2.2 (DSIP-62): `contentType`, `${msg}` placeholders, PUT.
    let dev = src.contains_key("contentType")
        || src
            .values()
            .filter_map(Value::as_str)
            .any(|s| s.contains(PLACEHOLDER));
    let method = param_text(src, "requestType")
        .unwrap_or_else(|| if dev { "GET" } else { "POST" }.into())
        .to_ascii_uppercase();
    let url = param_text(src, "url").unwrap_or_default();
    if url.contains(PLACEHOLDER) {
        notes.add(
            Some("pluginInstanceParams.url"),
            "DS-HTTP-MSG-PLACEHOLDER",
            "${msg} in the URL cannot be expressed (alertkit sends the alert in the body)",
        );
    }
    match method.as_str() {
        "POST" => {}
        "PUT" if dev => {}
        other => {
            notes.add(
                Some("pluginInstanceParams.requestType"),
                "HTTP-GET",
                "alertkit webhooks send POST or PUT only",
            );
            return Err(format!("a DolphinScheduler Http {other} request"));
        }
    }
    if dev
        && param_text(src, "contentType")
            .is_some_and(|c| c.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    {
        return Err("a form-urlencoded DolphinScheduler Http request".into());
    }
    let mut p = Map::new();
    set(&mut p, "url", url);
    set(&mut p, "method", method);
    let mut headers = Map::new();
    for (k, v) in json_object(src, "headerParams")? {
        let value = text(&v).unwrap_or_else(|| v.to_string());
        if value.contains(PLACEHOLDER) {
            notes.add(
                Some("pluginInstanceParams.headerParams"),
                "DS-HTTP-MSG-PLACEHOLDER",
                format!(
                    "header {k}: ${{msg}} in a header cannot be expressed; the header was dropped"
                ),
            );
            continue;
        }
        headers.insert(k, value.into());
    }
    let has_content_type = headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"));
    if !headers.is_empty() {
        set(&mut p, "headers", Value::Object(headers));
    }
    let mut body = json_object(src, "bodyParams")?;
    if dev {
        // Every `${msg}` in a body value becomes the alert text.
        for v in body.values_mut() {
            if let Value::String(s) = v
                && s.contains(PLACEHOLDER)
            {
                let parts: Vec<String> = s.split(PLACEHOLDER).map(literal_template).collect();
                *v = Value::String(parts.join(CONTENT));
            } else if let Value::String(s) = v {
                *v = Value::String(literal_template(s));
            }
        }
        set(&mut p, "success", json!({"status": [200]}));
    } else {
        body = body
            .into_iter()
            .map(|(k, v)| (k, super::literal_body(v)))
            .collect();
        if let Some(field) = param_text(src, "contentField") {
            if field.contains('.') {
                // DS put it as one top-level key; alertkit reads a dotted path.
                body.insert(field.clone(), CONTENT.into());
                notes.add(
                    Some("pluginInstanceParams.contentField"),
                    "DS-HTTP-FIELD-KEY",
                    "DolphinScheduler used the field name as one key, dots included; so does the import",
                );
            } else {
                set(&mut p, "content_field", field);
            }
        }
        if !has_content_type {
            notes.add(
                Some("pluginInstanceParams.headerParams"),
                "HTTP-CONTENT-TYPE",
                "DolphinScheduler sent the body as text/plain; alertkit sends application/json",
            );
        }
        notes.add(
            None,
            "HTTP-SUCCESS",
            "DolphinScheduler counted any answer as delivered; alertkit needs a 2xx status",
        );
    }
    set(&mut p, "body", Value::Object(body));
    notes.add(
        None,
        "DS-HTTP-NO-TITLE",
        "DolphinScheduler sent the content without the title; alertkit's text starts with the title",
    );
    let timeout = param_text(src, "timeout").and_then(|t| t.parse::<u64>().ok());
    if dev && timeout.is_some() {
        notes.add(
            Some("pluginInstanceParams.timeout"),
            "DS-HTTP-TIMEOUT-UNIT",
            "DolphinScheduler after 3.2.2 used this number unscaled (milliseconds) though its default is in seconds; read as seconds",
        );
    }
    Ok((
        p,
        timeout.filter(|t| *t > 0).map(|t| t.saturating_mul(1000)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_placeholders_become_the_text_and_literals_stay_literal() {
        let src = json!({"url": "https://x.example/a", "requestType": "POST", "contentType": "application/json",
                         "headerParams": "{\"X-Alert\": \"${msg}\", \"X-Key\": \"k\"}",
                         "bodyParams": "{\"text\": \"DS {{ ${msg}\"}", "timeout": "120"});
        let mut notes = Notes::new();
        let (p, t) = http(src.as_object().unwrap(), &mut notes).unwrap();
        assert_eq!(p["headers"], json!({"X-Key": "k"}));
        assert_eq!(
            p["body"]["text"],
            "{% raw %}DS {{ {% endraw %}{% include \"text\" %}"
        );
        assert_eq!(t, Some(120_000));
        assert!(
            notes
                .all
                .iter()
                .any(|n| n.code == "DS-HTTP-MSG-PLACEHOLDER")
        );
    }
}
