//! Dinky 1.x and 0.7 alert rows (tests/fixtures/import/MAPPING.md §2.1, §2.2, §3.1–3.7).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{
    Imported, Mapped, Notes, Row, assemble, instance, param_flag, param_list, param_text,
    params_of, port_of, proxy_param, rows, text, unique_name,
};
use crate::error::Result;

const LABEL: &str = "Dinky instance";
const WECOM_DEFAULT: &str = "https://qyapi.weixin.qq.com/cgi-bin";

/// How a row's params are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    /// Dinky 1.0/1.1 (Hutool binding of the 1.x params classes).
    V1,
    /// Dinky 0.7 params, in a 0.7 dump.
    V07,
    /// Dinky 0.7 params left in a 1.x database by the upgrade.
    V07In1x,
}

pub(super) fn import(instances: &Value, groups: &Value) -> Result<Imported> {
    let rows_in = rows(instances, "instances")?;
    let mut notes = Notes::new();
    // Only 1.x rows carry `creator`/`updater`; without them, a dump with
    // 0.7-shaped params is a 0.7 dump.
    let is_1x_dump = rows_in
        .iter()
        .any(|r| r.map.contains_key("creator") || r.map.contains_key("updater"));
    let mut parsed = Vec::new();
    for row in &rows_in {
        let id = row.id();
        let name = row.required_text(&["name"], LABEL)?;
        let kind = row.required_text(&["type"], LABEL)?;
        let enabled = row.enabled(LABEL)?;
        let params = params_of(row, "params", LABEL)?;
        let tenant = row.get("tenantId").and_then(text);
        parsed.push((*row, id, name, kind, enabled, params, tenant));
    }
    let all_07 = !is_1x_dump && parsed.iter().any(|p| looks_07(&p.5));
    let tenants: HashSet<Option<String>> = parsed.iter().map(|p| p.6.clone()).collect();
    let mut taken = HashSet::new();
    let mut mapped = Vec::new();
    for (_, id, name, kind, enabled, params, tenant) in parsed {
        let unique = unique_name(&name, &id, &mut taken);
        notes.at(format!("instance {id} {name:?}"));
        if unique != name {
            notes.add(
                Some("name"),
                "TENANT",
                format!(
                    "the name is taken by an earlier row (Dinky names are unique per tenant only; tenant {}): imported as {unique:?}",
                    tenant.as_deref().unwrap_or("?")
                ),
            );
        } else if tenants.len() > 1 {
            notes.add(
                Some("tenantId"),
                "TENANT",
                format!(
                    "rows of {} tenants were imported into one config",
                    tenants.len()
                ),
            );
        }
        let version = if all_07 {
            Version::V07
        } else if looks_07(&params) {
            Version::V07In1x
        } else {
            Version::V1
        };
        let m = map_row(&unique, &kind, enabled, params, version, &mut notes);
        mapped.push((id, unique, m));
    }
    let mut group_rows = Vec::new();
    for row in rows(groups, "groups")? {
        let id = row.id();
        let name = row.required_text(&["name"], "Dinky group")?;
        let enabled = row.enabled("Dinky group")?;
        notes.at(format!("group {id} {name:?}"));
        if !enabled {
            notes.add(
                Some("enabled"),
                "GROUP-DISABLED",
                "the group is disabled; Dinky 1.x still sent job alerts to it (it never checks a group's enabled flag), alertkit sends nothing to a disabled group",
            );
        }
        let ids = member_ids(&row, &mut notes);
        group_rows.push((format!("group {id} {name:?}"), name, enabled, ids));
    }
    Ok(assemble(mapped, group_rows, "Dinky", notes))
}

/// Dinky's `split(",")`, skipping `""` and `"0"`; `Integer.valueOf`
/// without trimming, so `" 2"` failed the whole group's alert in Dinky.
fn member_ids(row: &Row<'_>, notes: &mut Notes) -> Vec<String> {
    let Some(list) = row.get("alertInstanceIds").and_then(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list.split(',') {
        if item.is_empty() || item == "0" {
            continue;
        }
        if item.parse::<i64>().is_err() {
            let trimmed = item.trim();
            notes.add(
                Some("alertInstanceIds"),
                "BAD-ID",
                format!("{item:?} is not an id (Dinky failed to send this group's alerts on it); read as {trimmed:?}"),
            );
            if trimmed.parse::<i64>().is_ok() {
                out.push(trimmed.to_owned());
            }
            continue;
        }
        out.push(item.to_owned());
    }
    out
}

/// A row written by Dinky 0.7's forms (MAPPING.md §3.7).
fn looks_07(p: &Map<String, Value>) -> bool {
    let send_type = p.get("sendType").and_then(Value::as_str).unwrap_or("");
    matches!(send_type, "应用" | "群聊")
        || ["users", "User", "Password", "msgtype", "xls.file.path"]
            .iter()
            .any(|k| p.contains_key(*k))
        || ["port", "serverPort", "agentId"]
            .iter()
            .any(|k| p.get(*k).is_some_and(Value::is_string))
        || ["atMobiles", "atUsers", "receivers", "receiverCcs"]
            .iter()
            .any(|k| p.get(*k).is_some_and(Value::is_string))
}

fn map_row(
    name: &str,
    kind: &str,
    enabled: bool,
    mut p: Map<String, Value>,
    version: Version,
    notes: &mut Notes,
) -> Mapped {
    // 0.7 keeps `"enabled": false` in params when the instance is disabled.
    let params_enabled = p
        .remove("enabled")
        .and_then(|v| super::flag(&v))
        .unwrap_or(true);
    let enabled = enabled && params_enabled;
    let lower = kind.to_ascii_lowercase();
    let mapped = match lower.as_str() {
        "dingtalk" => instance(name, "dingtalk", enabled, dingtalk(&p, version, notes)),
        "wechat" => match wecom(&p, version, notes) {
            Some(params) => instance(name, "wecom", enabled, params),
            None => skipped(
                notes,
                "sendType is neither app nor wechat (Dinky failed every send)",
            ),
        },
        "feishu" => instance(name, "feishu", enabled, feishu(&p, version, notes)),
        "email" => instance(name, "email", enabled, email(&p, version, notes)),
        "http" => match http(&p, notes) {
            Ok(params) => instance(name, "webhook", enabled, params),
            Err(reason) => skipped(notes, &reason),
        },
        "sms" => {
            let supplier = param_text(&p, "suppliers").unwrap_or_else(|| "?".into());
            notes.add(
                None,
                "OWNER-MOBILES",
                "Dinky added the task owner's mobiles at send time; not imported",
            );
            skipped(
                notes,
                &format!("Dinky Sms ({supplier}) is not supported by alertkit"),
            )
        }
        _ => skipped(
            notes,
            &format!("Dinky type {kind:?} is not supported by alertkit"),
        ),
    };
    if version == Version::V07In1x
        && let Mapped::Instance(_) = &mapped
    {
        let what_1x = match lower.as_str() {
            "dingtalk" => "sent markdown (msgtype ignored) with the mobiles only in the title",
            "wechat"
                if matches!(
                    p.get("sendType").and_then(Value::as_str),
                    Some("群聊" | "应用")
                ) =>
            {
                "sent nothing (no template for this sendType)"
            }
            "email" => "did not read User/Password",
            _ => "read only the keys 1.x knows",
        };
        notes.add(
            None,
            "07-ROW-IN-1X",
            format!("0.7 params kept by the 1.x upgrade; imported with their 0.7 meaning (Dinky 1.x {what_1x})"),
        );
    }
    mapped
}

fn skipped(notes: &mut Notes, reason: &str) -> Mapped {
    notes.add(
        None,
        "UNSUPPORTED",
        format!("{reason}; the instance was not imported"),
    );
    Mapped::Skipped(reason.to_owned())
}

fn set(p: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    p.insert(key.into(), value.into());
}

/// Dinky's proxy switch and fields → `proxy`. Dinky 1.x read the host from
/// the Java field `hostname`, which the form never writes (it writes
/// `proxy`): every proxied send failed there.
fn proxy(
    src: &Map<String, Value>,
    out: &mut Map<String, Value>,
    version: Version,
    notes: &mut Notes,
) {
    if !param_flag(src, "isEnableProxy", false) {
        return;
    }
    let host = param_text(src, "proxy").or_else(|| param_text(src, "hostname"));
    let port = port_of(src.get("port"));
    let (Some(host), Some(port)) = (host, port) else {
        notes.add(
            Some("params.proxy"),
            "PROXY-INCOMPLETE",
            "the proxy is switched on without a host and port (Dinky failed every send); imported without a proxy",
        );
        return;
    };
    let user = param_text(src, "user");
    let password = param_text(src, "password");
    match proxy_param(&host, port, user, password) {
        Some(v) => {
            set(out, "proxy", v);
            if version == Version::V1 {
                notes.add(
                    Some("params.proxy"),
                    "PROXY-BROKEN-IN-DINKY",
                    "Dinky 1.x never sent through this proxy (it read the host from `hostname`, which its form never writes; every send failed); alertkit uses it",
                );
            }
        }
        None => notes.add(
            Some("params.proxy"),
            "PROXY-INCOMPLETE",
            "the proxy host is not a host name; imported without a proxy",
        ),
    }
}

fn dingtalk(src: &Map<String, Value>, version: Version, notes: &mut Notes) -> Map<String, Value> {
    let mut p = Map::new();
    if let Some(w) = param_text(src, "webhook") {
        set(&mut p, "webhook", w);
    }
    if let Some(s) = param_text(src, "secret") {
        set(&mut p, "secret", s);
    }
    let keyword = param_text(src, "keyword");
    if let Some(k) = &keyword {
        set(&mut p, "keywords", json!([k]));
    }
    let mobiles = param_list(src, "atMobiles", &[',']);
    if !mobiles.is_empty() {
        set(&mut p, "at_mobiles", json!(mobiles));
    }
    let at_all = param_flag(src, "isAtAll", false);
    set(&mut p, "at_all", at_all);
    if version == Version::V1 {
        set(&mut p, "msg_type", "markdown");
        if keyword.is_some() {
            notes.add(
                Some("params.keyword"),
                "DT-KEYWORD",
                "Dinky 1.x put the keyword only at the start of the markdown title; alertkit sends it in the text",
            );
        }
        if !mobiles.is_empty() {
            notes.add(
                Some("params.atMobiles"),
                "DT-MENTION",
                "Dinky 1.x put the mobiles only in the markdown title, so nobody was pinged; alertkit pings them",
            );
        }
        if !at_all {
            notes.add(
                None,
                "OWNER-MOBILES",
                "Dinky added the job owner's and maintainers' mobiles at send time; not imported",
            );
        }
    } else {
        let users = param_list(src, "atUserIds", &[',']);
        if !users.is_empty() {
            set(&mut p, "at_user_ids", json!(users));
        }
        // 0.7 defaults to text.
        let msg_type = match param_text(src, "msgtype").as_deref() {
            Some("markdown") => "markdown",
            _ => "text",
        };
        set(&mut p, "msg_type", msg_type);
    }
    proxy(src, &mut p, version, notes);
    p
}

fn wecom(
    src: &Map<String, Value>,
    version: Version,
    notes: &mut Notes,
) -> Option<Map<String, Value>> {
    let mut p = Map::new();
    let send_type = param_text(src, "sendType").unwrap_or_default();
    let (app, v07) = match send_type.as_str() {
        "app" if version == Version::V1 => (true, false),
        "wechat" if version == Version::V1 => (false, false),
        "应用" => (true, true),
        "群聊" => (false, true),
        "app" => (true, true),
        "wechat" => (false, true),
        _ => return None,
    };
    let at_all = param_flag(src, "isAtAll", false);
    if app {
        set(&mut p, "mode", "app");
        for (from, to) in [("corpId", "corp_id"), ("secret", "secret")] {
            if let Some(v) = param_text(src, from) {
                set(&mut p, to, v);
            }
        }
        if let Some(a) = src.get("agentId").filter(|v| !v.is_null()) {
            set(&mut p, "agent_id", a.clone());
        }
        let users = if v07 {
            param_list(src, "users", &[',', '|'])
        } else if at_all {
            vec!["@all".to_owned()]
        } else {
            param_list(src, "atUsers", &[',', '|'])
        };
        set(&mut p, "to_users", json!(users));
        if !v07 && let Some(url) = param_text(src, "sendUrl") {
            let url = url.trim_end_matches('/').to_owned();
            if url != WECOM_DEFAULT {
                if !url.ends_with("/cgi-bin") {
                    let shown = url::Url::parse(&url)
                        .map(|u| crate::http::redact_url(&u))
                        .unwrap_or_else(|_| "(not a URL)".into());
                    notes.add(
                        Some("params.sendUrl"),
                        "WECOM-SENDURL",
                        format!(
                            "Dinky called {shown}/gettoken; alertkit calls {shown}/cgi-bin/gettoken"
                        ),
                    );
                }
                set(&mut p, "base_url", url);
            }
        }
    } else {
        set(&mut p, "mode", "bot");
        if let Some(w) = param_text(src, "webhook") {
            set(&mut p, "webhook", w);
        }
        let users = if v07 {
            param_list(src, "users", &[','])
        } else {
            param_list(src, "atUsers", &[','])
        };
        if !users.is_empty() {
            set(&mut p, "mentioned_users", json!(users));
            if !v07 {
                notes.add(
                    Some("params.atUsers"),
                    "WECOM-MENTION-NEW",
                    "Dinky 1.x only wrote these names as plain text; alertkit mentions them",
                );
            }
        }
        if at_all {
            set(&mut p, "at_all", true);
            // Markdown cannot @all: send such alerts as text so it works.
            set(&mut p, "mention_fallback_text", true);
            notes.add(
                Some("params.isAtAll"),
                "WECOM-MENTION-NEW",
                "Dinky only wrote @all as text (nobody was notified); alertkit mentions everyone (markdown alerts go out as text to do so)",
            );
        }
        if param_text(src, "keyword").is_some() {
            notes.add(
                Some("params.keyword"),
                "WECOM-KEYWORD",
                "Dinky never sent the keyword (WeCom robots have no keyword check); dropped",
            );
        }
    }
    let msg_type = if v07 {
        match param_text(src, "msgtype").as_deref() {
            Some("text") => "text",
            _ => "markdown",
        }
    } else {
        "markdown"
    };
    set(&mut p, "msg_type", msg_type);
    Some(p)
}

fn feishu(src: &Map<String, Value>, version: Version, notes: &mut Notes) -> Map<String, Value> {
    let mut p = Map::new();
    if let Some(w) = param_text(src, "webhook") {
        set(&mut p, "webhook", w);
    }
    if let Some(k) = param_text(src, "keyword") {
        set(&mut p, "keywords", json!([k]));
    }
    if let Some(s) = param_text(src, "secret") {
        set(&mut p, "secret", s);
        notes.add(
            Some("params.secret"),
            "FS-SIGN-NEW",
            "Dinky never signed its messages (a bot with signature verification rejected them); alertkit signs",
        );
    }
    let is_at_all = param_flag(src, "isAtAll", false);
    let v07 = version != Version::V1;
    let users = if v07 {
        param_list(src, "users", &[','])
    } else {
        param_list(src, "atUsers", &[','])
    };
    // 1.x ignores isAtAll and mentions everyone when atUsers is empty;
    // 0.7 mentions everyone when isAtAll is set or users is blank.
    let at_all = users.is_empty() || (v07 && is_at_all);
    if !users.is_empty() {
        set(&mut p, "at_user_ids", json!(users));
    }
    set(&mut p, "at_all", at_all);
    if !v07 && is_at_all && !users.is_empty() {
        notes.add(
            Some("params.isAtAll"),
            "FS-ATALL-IGNORED",
            "Dinky ignored isAtAll and mentioned only atUsers; so does the import",
        );
    }
    let msg_type = if v07 {
        match param_text(src, "msgtype").as_deref() {
            Some("text") => "text",
            _ => "post",
        }
    } else {
        "interactive"
    };
    set(&mut p, "msg_type", msg_type);
    proxy(src, &mut p, version, notes);
    p
}

fn email(src: &Map<String, Value>, version: Version, notes: &mut Notes) -> Map<String, Value> {
    let mut p = Map::new();
    let v07 = version != Version::V1;
    let host = param_text(src, "serverHost");
    if let Some(h) = &host {
        set(&mut p, "host", h.clone());
    }
    if let Some(port) = port_of(src.get("serverPort")) {
        set(&mut p, "port", port);
    }
    let (user_key, pass_key) = if v07 {
        ("User", "Password")
    } else {
        ("user", "password")
    };
    let user = param_text(src, user_key).or_else(|| param_text(src, "user"));
    let password = param_text(src, pass_key).or_else(|| param_text(src, "password"));
    // `user` is both the From address and the login; `sender` the display name.
    if let Some(u) = &user {
        set(&mut p, "from", u.clone());
    }
    if let Some(name) = param_text(src, "sender") {
        set(&mut p, "from_name", name);
    }
    let auth = param_flag(src, "enableSmtpAuth", false);
    if auth {
        if let Some(u) = &user {
            set(&mut p, "username", u.clone());
        }
        if let Some(pw) = password {
            set(&mut p, "password", pw);
        }
    }
    set(&mut p, "enable_smtp_auth", auth);
    let to = param_list(src, "receivers", &[',']);
    set(&mut p, "to", json!(to));
    let cc = param_list(src, "receiverCcs", &[',']);
    if !cc.is_empty() {
        set(&mut p, "cc", json!(cc));
    }
    let tls = tls(src, notes);
    set(&mut p, "tls", tls);
    let trust = param_text(src, "smtpSslTrust");
    if tls != "none" {
        match (&trust, v07) {
            (Some(t), false) if t == "*" => notes.add(
                Some("params.smtpSslTrust"),
                "MAIL-TRUST",
                "\"*\" is not a wildcard in Dinky 1.x (TLS was refused unless the host was listed); alertkit accepts any certificate of this server",
            ),
            (None, false) => notes.add(
                Some("params.smtpSslTrust"),
                "MAIL-TRUST",
                "without smtpSslTrust Dinky 1.x refused TLS; alertkit verifies the server's certificate",
            ),
            (Some(t), true) if t == "*" => notes.add(
                Some("params.smtpSslTrust"),
                "MAIL-TRUST-ALL",
                "certificates are not verified, as in the source",
            ),
            _ => {}
        }
    }
    if let Some(t) = trust {
        set(&mut p, "smtp_ssl_trust", t);
    }
    let format = if v07 {
        match param_text(src, "msgtype").as_deref() {
            Some("table") => "table",
            Some("attachment") => "attachment",
            Some("table attachment") => "table_attachment",
            _ => {
                notes.add(
                    Some("params.msgtype"),
                    "MAIL-TEXT-IS-HTML",
                    "'text' was an HTML mail listing each item; imported as html",
                );
                "html"
            }
        }
    } else {
        "html"
    };
    set(&mut p, "format", format);
    if src.contains_key("xls.file.path") {
        notes.add(
            Some("params.xls.file.path"),
            "MAIL-XLS-PATH",
            "the attachment is built in memory; the directory is ignored",
        );
    }
    p
}

/// `sslEnable` / `starttlsEnable` → `tls`.
pub(super) fn tls_of(ssl: bool, starttls: bool, notes: &mut Notes) -> &'static str {
    if ssl {
        "implicit"
    } else if starttls {
        notes.add(
            Some("params.starttlsEnable"),
            "MAIL-STARTTLS-REQUIRED",
            "the source fell back to clear text when the server did not offer STARTTLS; alertkit requires it",
        );
        "starttls"
    } else {
        notes.add(
            Some("params.sslEnable"),
            "MAIL-PLAINTEXT",
            "plain SMTP (both TLS switches off): alertkit refuses it off loopback unless you set allow_plaintext",
        );
        "none"
    }
}

fn tls(src: &Map<String, Value>, notes: &mut Notes) -> &'static str {
    tls_of(
        param_flag(src, "sslEnable", false),
        param_flag(src, "starttlsEnable", false),
        notes,
    )
}

/// Dinky's `Http` type, or why Dinky never sent it.
fn http(
    src: &Map<String, Value>,
    notes: &mut Notes,
) -> std::result::Result<Map<String, Value>, String> {
    let method = param_text(src, "method").unwrap_or_else(|| "POST".into());
    if !method.eq_ignore_ascii_case("POST") {
        notes.add(
            Some("params.method"),
            "HTTP-GET",
            format!("Dinky never sent {method} requests"),
        );
        return Err(format!("Dinky never sent {method} requests"));
    }
    let body = match src.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => return Err("the body is not a JSON object (Dinky failed every send)".into()),
        },
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err("the body is not a JSON object (Dinky failed every send)".into()),
    };
    let mut p = Map::new();
    if let Some(u) = param_text(src, "url") {
        set(&mut p, "url", u);
    }
    set(&mut p, "method", "POST");
    let mut headers = Map::new();
    if let Some(Value::Array(pairs)) = src.get("headers") {
        for pair in pairs {
            let key = pair.get("key").and_then(text).unwrap_or_default();
            if key.trim().is_empty() {
                continue;
            }
            let value = pair.get("value").and_then(text).unwrap_or_default();
            headers.insert(key.trim().to_owned(), value.into());
        }
    }
    if !headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        notes.add(
            Some("params.headers"),
            "HTTP-CONTENT-TYPE",
            "Dinky sent the body as text/plain; alertkit sends application/json",
        );
    }
    if !headers.is_empty() {
        set(&mut p, "headers", Value::Object(headers));
    }
    if let Some(body) = body {
        set(&mut p, "body", super::literal_body(body));
    }
    // Dotted paths, as Hutool's putByPath reads them; with no title path,
    // the text (whose first line is the title) goes to the content path,
    // as Dinky's `title + "\n" + content`.
    if let Some(t) = param_text(src, "titleFiled") {
        set(&mut p, "title_field", t);
    }
    if let Some(c) = param_text(src, "contentFiled") {
        set(&mut p, "content_field", c);
    }
    notes.add(
        None,
        "HTTP-SUCCESS",
        "Dinky counted any answer as delivered; alertkit needs a 2xx status",
    );
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_as_dinky_splits_them() {
        let v = json!([{"id": 1, "name": "g", "alertInstanceIds": "1,0,,2, 3"}]);
        let r = rows(&v, "groups").unwrap();
        let mut notes = Notes::new();
        assert_eq!(member_ids(&r[0], &mut notes), ["1", "2", "3"]);
        assert_eq!(notes.all[0].code, "BAD-ID");
    }

    #[test]
    fn a_row_without_name_is_an_error_naming_the_row() {
        let e = import(
            &json!([{"id": 5, "type": "DingTalk", "params": {}}]),
            &Value::Null,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("instances[0].name"));
        assert!(e.to_string().contains("row 5"), "{e}");
    }
}
