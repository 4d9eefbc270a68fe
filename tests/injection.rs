//! Fuzz-style property test (issue 15): random alert text full of markup
//! and mention syntax goes through every channel's renderer (`preview`,
//! nothing is sent); no mention, tag or link appears that the alert did not
//! ask for, and links point only at the alert's own `http(s)` URLs.
#![cfg(all(
    feature = "dingtalk",
    feature = "feishu",
    feature = "wecom",
    feature = "email",
    feature = "testkit"
))]

use std::collections::BTreeSet;

use alertkit::{Alert, Config, JobInfo, Link, Notifier};
use proptest::prelude::*;
use serde_json::{Value, json};

const INSTANCES: &str = r#"{"instances": [
 {"name": "ding-md", "type": "dingtalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=t"}},
 {"name": "ding-text", "type": "dingtalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=t", "msg_type": "text"}},
 {"name": "ding-card", "type": "dingtalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=t", "msg_type": "action_card"}},
 {"name": "ding-app", "type": "dingtalk", "params": {"mode": "app", "app_key": "k", "app_secret": "s", "robot_code": "r", "user_ids": ["u1"]}},
 {"name": "ding-chat", "type": "dingtalk", "params": {"mode": "conversation", "app_key": "k", "app_secret": "s", "chat_ids": ["c1"]}},
 {"name": "wecom-md", "type": "wecom", "params": {"mode": "bot", "webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}},
 {"name": "wecom-text", "type": "wecom", "params": {"mode": "bot", "webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "msg_type": "text"}},
 {"name": "wecom-v2", "type": "wecom", "params": {"mode": "bot", "webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "msg_type": "markdown_v2"}},
 {"name": "wecom-app", "type": "wecom", "params": {"mode": "app", "corp_id": "c", "secret": "s", "agent_id": 1, "to_users": ["u"]}},
 {"name": "wecom-card", "type": "wecom", "params": {"mode": "app", "corp_id": "c", "secret": "s", "agent_id": 1, "to_users": ["u"], "msg_type": "textcard"}},
 {"name": "feishu-card", "type": "feishu", "params": {"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/h"}},
 {"name": "feishu-post", "type": "feishu", "params": {"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/h", "msg_type": "post"}},
 {"name": "feishu-text", "type": "feishu", "params": {"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/h", "msg_type": "text"}},
 {"name": "feishu-app", "type": "feishu", "params": {"mode": "app", "app_id": "a", "app_secret": "s", "receive_ids": ["oc_1"]}}
]}"#;

/// Pieces of hostile text.
fn piece() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "<at id=all></at>",
        "<at user_id=\"all\">所有人</at>",
        "<at id=ou_x>",
        "<@all>",
        "<@zhangsan>",
        "<font color=\"warning\">",
        "</font>",
        "[click](https://evil.example/x)",
        "![img](https://evil.example/i.png)",
        "<a href=\"https://evil.example\">x</a>",
        "<https://evil.example>",
        "<img src=x>",
        "](",
        ")",
        "(",
        "[",
        "]",
        "\\",
        "*",
        "_",
        "`",
        "<",
        ">",
        "\n",
        "告警",
        "job",
        " ",
    ])
    .prop_map(str::to_owned)
}

fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..8).prop_map(|v| v.concat())
}

fn url() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "https://flink.example/#/job/a1",
        "https://ok.example/a(b)c d",
        "https://ok.example/x](https://evil.example)",
        "javascript:alert(1)",
        "data:text/html,<script>x</script>",
        "http://ok.example/<at id=all>",
    ])
    .prop_map(str::to_owned)
}

fn alert() -> impl Strategy<Value = Alert> {
    (
        hostile(),
        hostile(),
        hostile(),
        hostile(),
        prop::collection::vec((hostile(), hostile()), 0..3),
        prop::collection::vec((hostile(), url()), 0..3),
        prop::option::of(url()),
    )
        .prop_map(|(title, body, job, error, fields, links, job_url)| {
            let mut j = JobInfo::new(if job.is_empty() { "j".into() } else { job }).error(error);
            if let Some(u) = job_url {
                j = j.url(u);
            }
            let mut a = Alert::new(if title.is_empty() { "t".into() } else { title })
                .body(body)
                .job(j);
            for (k, v) in fields {
                a = a.field(k, v);
            }
            for (t, u) in links {
                a = a.link(t, u);
            }
            a
        })
}

fn is_web(u: &str) -> bool {
    let l = u.to_ascii_lowercase();
    l.starts_with("https://") || l.starts_with("http://")
}

fn encoded(u: &str) -> String {
    u.replace('(', "%28")
        .replace(')', "%29")
        .replace(' ', "%20")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

/// The alert's own web links: raw, and as a Markdown link destination.
fn allowed(a: &Alert) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut raw: BTreeSet<String> = a
        .links
        .iter()
        .map(|l: &Link| l.url.clone())
        .chain(a.job.as_ref().and_then(|j| j.url.clone()))
        .filter(|u| is_web(u))
        .collect();
    raw.retain(|u| is_web(u));
    let enc = raw.iter().map(|u| encoded(u)).collect();
    (raw, enc)
}

/// Checks one string leaf: tags and links in it.
fn check_text(instance: &str, s: &str, enc: &BTreeSet<String>) -> Result<(), String> {
    let b = s.as_bytes();
    let mut fonts = 0;
    for (i, _) in s.match_indices('<') {
        let next = b.get(i + 1).copied().unwrap_or(b' ');
        if next.is_ascii_alphabetic() || b"@/!".contains(&next) {
            let rest = &s[i..];
            let own_font = instance.starts_with("wecom")
                && (rest.starts_with("<font color=\"") || rest.starts_with("</font>"));
            if own_font && fonts < 2 {
                fonts += 1;
                continue;
            }
            return Err(format!(
                "{instance}: a tag from alert text: {:?}",
                &rest[..rest.len().min(40)]
            ));
        }
    }
    for (i, _) in s.match_indices("](") {
        let dest = &s[i + 2..];
        if !enc.iter().any(|u| dest.starts_with(&format!("{u})"))) {
            return Err(format!(
                "{instance}: a link to {:?}",
                &dest[..dest.len().min(60)]
            ));
        }
    }
    Ok(())
}

const URL_KEYS: [&str; 5] = ["url", "singleURL", "actionURL", "href", "messageUrl"];

fn walk(
    instance: &str,
    key: &str,
    v: &Value,
    raw: &BTreeSet<String>,
    enc: &BTreeSet<String>,
) -> Result<(), String> {
    match v {
        Value::String(s) if URL_KEYS.contains(&key) => {
            if !raw.contains(s) {
                return Err(format!(
                    "{instance}: {key} = {s:?} is not one of the alert's web links"
                ));
            }
            Ok(())
        }
        // Feishu app content and DingTalk app msgParam are JSON inside a string.
        Value::String(s) if (key == "content" || key == "msgParam") && s.starts_with('{') => {
            match serde_json::from_str::<Value>(s) {
                Ok(inner) => walk(instance, "", &inner, raw, enc),
                Err(_) => check_text(instance, s, enc),
            }
        }
        Value::String(s) => check_text(instance, s, enc),
        Value::Array(items) => items
            .iter()
            .try_for_each(|x| walk(instance, key, x, raw, enc)),
        Value::Object(map) => {
            if map.get("tag").and_then(Value::as_str) == Some("at") {
                return Err(format!("{instance}: a mention element {map:?}"));
            }
            if key == "at" {
                let nobody = map.values().all(|x| match x {
                    Value::Array(a) => a.is_empty(),
                    Value::Bool(b) => !b,
                    _ => true,
                });
                if !nobody {
                    return Err(format!("{instance}: mentions {map:?}"));
                }
                return Ok(());
            }
            map.iter()
                .try_for_each(|(k, x)| walk(instance, k, x, raw, enc))
        }
        _ => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_channel_renders_markup_the_alert_did_not_ask_for(a in alert()) {
        let config = Config::from_json(INSTANCES).unwrap();
        let n = Notifier::from_config(&config).unwrap();
        let (raw, enc) = allowed(&a);
        for info in n.instances() {
            let previews = n.preview(&info.name, &a).map_err(|e| TestCaseError::fail(format!("{}: {e}", info.name)))?;
            for p in previews {
                if let Err(e) = walk(&info.name, "", &p.body, &raw, &enc) {
                    return Err(TestCaseError::fail(format!("{e}\nbody: {}", p.body)));
                }
            }
        }
    }

    #[test]
    fn email_html_links_only_web_urls(a in alert()) {
        let config = Config::from_value(json!({"instances": [{"name": "mail", "type": "email", "params": {
            "host": "127.0.0.1", "port": 2525, "tls": "none", "from": "a@example.test", "to": ["b@example.test"]}}]})).unwrap();
        let n = Notifier::from_config(&config).unwrap();
        let previews = n.preview("mail", &a).unwrap();
        // The HTML part (the text part is plain text: nothing in it is a link).
        let text = previews[0].body["html"].to_string();
        let (raw, _) = allowed(&a);
        // Real anchors only: an alert's own `<a href=...>` text is escaped to `&lt;a`.
        for (i, _) in text.match_indices("<a href=\\\"") {
            let rest = &text[i + 10..];
            prop_assert!(raw.iter().any(|u| {
                let esc = u.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#x27;").replace('/', "&#x2f;");
                rest.starts_with(&esc) || rest.starts_with(u.as_str())
            }), "href to {:?}", &rest[..rest.len().min(60)]);
        }
        prop_assert!(!text.contains("javascript:alert(1)\\\"") && !text.contains("href=\\\"data:"), "{text}");
    }
}
