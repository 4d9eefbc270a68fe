//! Feishu/Lark channel against the strict fake of `alertkit::testkit::feishu`
//! (platforms.md §5.8, §11): it recomputes body signatures (timestamp as a
//! string or a number), checks keywords and sizes, and answers 19021,
//! 19024, 9499 and 11232 like the platform.
#![cfg(all(feature = "feishu", feature = "testkit"))]

use std::sync::Arc;

use alertkit::policy::PolicyConfig;
use alertkit::testkit::feishu::{BotSpec, FakeFeishu, Fault, RateLimitAnswer};
use alertkit::{
    Alert, AlertChannel, Config, ErrorKind, InstanceConfig, JobInfo, JobStatus, Mention, Notifier,
    Severity,
};
use serde_json::{Value, json};

const SECRET: &str = "SEC0123456789abcdef";

fn channel(params: Value) -> Arc<dyn AlertChannel> {
    let mut cfg = InstanceConfig::new("fs", "feishu").policy(PolicyConfig::off());
    cfg.params = params.as_object().unwrap().clone();
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("fs")
        .unwrap()
}

fn alert() -> Alert {
    Alert::new("Flink job orders-etl FAILED")
        .body("Checkpoint 42 failed.")
        .severity(Severity::Critical)
        .job(
            JobInfo::new("orders-etl")
                .status(JobStatus::Failed)
                .cluster("prod-yarn")
                .url("https://flink.example/#/job/a1")
                .error("java.lang.RuntimeException: boom\n\tat x"),
        )
        .link("Runbook", "https://wiki.example/rb")
}

async fn signed_bot() -> FakeFeishu {
    let fake = FakeFeishu::start().await;
    fake.add_bot(
        "hook-token",
        BotSpec {
            secret: Some(SECRET.into()),
            keywords: vec!["告警".into()],
        },
    );
    fake
}

#[tokio::test]
async fn interactive_card_is_signed_coloured_with_fields_buttons_and_mentions() {
    let fake = signed_bot().await;
    let ch = channel(
        json!({"webhook": fake.webhook("hook-token"), "secret": SECRET, "keywords": ["告警"],
                            "at_user_ids": ["ou_tom"]}),
    );
    let receipt = ch
        .send(
            &alert()
                .mention(Mention::All)
                .mention(Mention::Mobile("138".into())),
        )
        .await
        .unwrap();
    let body = &fake.accepted()[0].body;
    // Signed in the body with a seconds timestamp (§5.2); the fake recomputed it.
    assert_eq!(body["timestamp"].as_str().unwrap().len(), 10);
    assert_eq!(body["msg_type"], "interactive");
    let card = &body["card"];
    assert_eq!(card["header"]["template"], "red");
    assert_eq!(
        card["header"]["title"]["content"],
        "[Critical] Flink job orders-etl FAILED"
    );
    let elements = card["elements"].as_array().unwrap();
    assert_eq!(
        elements[0]["text"]["content"],
        "Checkpoint 42 failed.\n\n**Error**: java.lang.RuntimeException: boom"
    );
    let fields: Vec<&str> = elements[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "**Job**\norders-etl",
            "**Status**\nFAILED",
            "**Cluster**\nprod-yarn"
        ]
    );
    assert_eq!(
        elements[2]["text"]["content"],
        "<at id=ou_tom></at> <at id=all></at>"
    );
    assert_eq!(
        elements[3]["actions"],
        json!([{"tag": "button", "text": {"tag": "plain_text", "content": "Job"}, "url": "https://flink.example/#/job/a1", "type": "primary"},
               {"tag": "button", "text": {"tag": "plain_text", "content": "Runbook"}, "url": "https://wiki.example/rb", "type": "default"}])
    );
    // The keyword was missing from the text: added visibly as a note.
    assert_eq!(
        elements[4],
        json!({"tag": "note", "elements": [{"tag": "plain_text", "content": "告警"}]})
    );
    assert!(
        receipt
            .notes
            .iter()
            .any(|n| n.contains("cannot mention mobile 138"))
    );
}

#[tokio::test]
async fn resolved_and_info_cards_change_colour() {
    let fake = FakeFeishu::start().await;
    fake.add_bot("t", BotSpec::default());
    let ch = channel(json!({"webhook": fake.webhook("t")}));
    ch.send(&alert().resolved()).await.unwrap();
    ch.send(&Alert::new("fyi").severity(Severity::Info))
        .await
        .unwrap();
    ch.send(&Alert::new("hmm").severity(Severity::Warning))
        .await
        .unwrap();
    let colours: Vec<Value> = fake
        .accepted()
        .iter()
        .map(|r| r.body["card"]["header"]["template"].clone())
        .collect();
    assert_eq!(colours, [json!("green"), json!("blue"), json!("orange")]);
}

#[tokio::test]
async fn post_and_text_bodies_with_mentions() {
    let fake = FakeFeishu::start().await;
    fake.add_bot(
        "t",
        BotSpec {
            secret: None,
            keywords: vec!["orders-etl".into()],
        },
    );
    let post = channel(
        json!({"token": "t", "base_url": fake.uri(), "msg_type": "post", "at_all": true,
                              "atUsers": ["ou_tom"]}),
    );
    post.send(&alert()).await.unwrap();
    let p = &fake.accepted()[0].body["content"]["post"]["en_us"];
    assert_eq!(p["title"], "[Critical] Flink job orders-etl FAILED");
    let paragraphs = p["content"].as_array().unwrap();
    assert_eq!(
        paragraphs[0],
        json!([{"tag": "text", "text": "Checkpoint 42 failed."}])
    );
    let links = &paragraphs[paragraphs.len() - 2];
    assert_eq!(
        links[0],
        json!({"tag": "a", "text": "Job", "href": "https://flink.example/#/job/a1"})
    );
    assert_eq!(
        paragraphs[paragraphs.len() - 1],
        json!([{"tag": "at", "user_id": "ou_tom"}, {"tag": "at", "user_id": "all", "user_name": "所有人"}])
    );

    let text = channel(
        json!({"webhook": fake.webhook("t"), "msg_type": "text", "at_user_ids": ["ou_tom"]}),
    );
    text.send(&alert()).await.unwrap();
    let t = fake.accepted()[1].body["content"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        t.starts_with("[Critical] Flink job orders-etl FAILED\n"),
        "{t}"
    );
    assert!(t.ends_with(" <at user_id=\"ou_tom\"></at>"), "{t}");
}

#[tokio::test]
async fn keyword_added_to_text_only_when_missing() {
    let fake = FakeFeishu::start().await;
    fake.add_bot(
        "t",
        BotSpec {
            secret: None,
            keywords: vec!["ALERT".into()],
        },
    );
    let ch = channel(json!({"webhook": fake.webhook("t"), "msg_type": "text", "keyword": "ALERT"}));
    ch.send(&Alert::new("disk full")).await.unwrap();
    assert!(
        fake.accepted()[0].body["content"]["text"]
            .as_str()
            .unwrap()
            .ends_with("\nALERT")
    );
    ch.send(&Alert::new("ALERT disk full")).await.unwrap();
    assert!(
        !fake.accepted()[1].body["content"]["text"]
            .as_str()
            .unwrap()
            .ends_with("\nALERT")
    );
    // Without the param, the fake refuses like the platform.
    let bare = channel(json!({"webhook": fake.webhook("t"), "msg_type": "text"}));
    let e = bare.send(&Alert::new("disk full")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::KeywordMissing, Some("19024"))
    );
}

#[tokio::test]
async fn wrong_secret_and_unsigned_sends_are_19021() {
    let fake = signed_bot().await;
    for params in [
        json!({"webhook": fake.webhook("hook-token"), "secret": "wrong-secret", "keyword": "告警"}),
        json!({"webhook": fake.webhook("hook-token"), "keyword": "告警"}),
    ] {
        let e = channel(params).send(&alert()).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.code(), e.is_retryable()),
            (ErrorKind::SignatureMismatch, Some("19021"), false)
        );
        assert!(!format!("{e:?}").contains("wrong-secret"));
    }
}

#[tokio::test]
async fn fake_accepts_numeric_timestamps_and_rejects_other_algorithms() {
    // The fake itself must be strict in the ways §5.8 asks: check it directly.
    let fake = signed_bot().await;
    let client = reqwest::Client::new();
    let ts = chrono::Utc::now().timestamp();
    let sign = |key: String, msg: &[u8]| {
        use base64::Engine;
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(msg);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    let good = sign(format!("{ts}\n{SECRET}"), b"");
    let dingtalk_style = sign(SECRET.to_owned(), format!("{ts}\n{SECRET}").as_bytes());
    let ms = sign(format!("{}\n{SECRET}", ts * 1000), b"");
    let cases = [
        (json!(ts), good.clone(), 0),
        (json!(ts.to_string()), good, 0),
        (json!(ts), dingtalk_style, 19021),
        (json!(ts * 1000), ms, 19021),
    ];
    for (timestamp, sign, want) in cases {
        let body = json!({"timestamp": timestamp, "sign": sign, "msg_type": "text", "content": {"text": "告警"}});
        let r: Value = client
            .post(fake.webhook("hook-token"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["code"], want, "{body}");
    }
}

#[tokio::test]
async fn a_30_kb_alert_stays_under_20000_bytes() {
    let fake = signed_bot().await;
    for msg_type in ["interactive", "post", "text"] {
        let ch = channel(
            json!({"webhook": fake.webhook("hook-token"), "secret": SECRET, "keyword": "告警",
                                "msg_type": msg_type, "at_all": true}),
        );
        let huge = alert().body("飞书告警 \"x\"\n".repeat(2000));
        let receipt = ch
            .send(&huge)
            .await
            .unwrap_or_else(|e| panic!("{msg_type}: {e}"));
        let r = fake.accepted().pop().unwrap();
        assert!(
            r.body_len <= 20_000 && r.body_len > 18_000,
            "{msg_type}: {}",
            r.body_len
        );
        assert!(
            r.body.to_string().contains("bytes omitted)"),
            "{msg_type}: marker"
        );
        assert!(receipt.notes.iter().any(|n| n.contains("truncated")));
    }
}

#[tokio::test]
async fn the_two_kinds_of_9499_and_other_codes() {
    let fake = FakeFeishu::start().await;
    fake.add_bot("t", BotSpec::default());
    let ch = channel(json!({"webhook": fake.webhook("t")}));
    let cases: &[(Fault, ErrorKind, bool)] = &[
        (
            Fault::code(400, 9499, "too many request"),
            ErrorKind::RateLimited,
            true,
        ),
        (
            Fault::code(400, 9499, "Bad Request"),
            ErrorKind::InvalidContent,
            false,
        ),
        (
            Fault::Reply(
                200,
                json!({"StatusCode": 9499, "StatusMessage": "fail to parse content"}),
            ),
            ErrorKind::InvalidContent,
            false,
        ),
        (
            Fault::code(200, 11232, "frequency limited psm[x]appID[1]"),
            ErrorKind::RateLimited,
            true,
        ),
        (
            Fault::code(
                200,
                19001,
                "param invalid: incoming webhook access token invalid",
            ),
            ErrorKind::Unauthorized,
            false,
        ),
        (
            Fault::code(200, 19002, "params error, msg_type need"),
            ErrorKind::InvalidContent,
            false,
        ),
        (
            Fault::code(200, 19007, "Bot Not Enabled"),
            ErrorKind::Unauthorized,
            false,
        ),
        (
            Fault::code(200, 19021, "sign match fail"),
            ErrorKind::SignatureMismatch,
            false,
        ),
        (
            Fault::code(200, 19022, "Ip Not Allowed"),
            ErrorKind::IpNotAllowed,
            false,
        ),
        (
            Fault::code(200, 19024, "Key Words Not Found"),
            ErrorKind::KeywordMissing,
            false,
        ),
        (
            Fault::Reply(503, json!("upstream")),
            ErrorKind::Platform,
            true,
        ),
    ];
    for (fault, kind, retryable) in cases {
        fake.push_fault(fault.clone());
        let e = ch.send(&alert()).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (*kind, *retryable),
            "{fault:?}"
        );
    }
}

#[tokio::test]
async fn rate_limits_answered_both_ways_are_retryable() {
    for answer in [
        RateLimitAnswer::Code11232,
        RateLimitAnswer::TooManyRequest9499,
    ] {
        let fake = FakeFeishu::start().await;
        fake.add_bot("t", BotSpec::default());
        fake.set_rate_limit(2, 100, answer);
        let ch = channel(json!({"webhook": fake.webhook("t")}));
        ch.send(&alert()).await.unwrap();
        ch.send(&alert()).await.unwrap();
        let e = ch.send(&alert()).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::RateLimited, true),
            "{answer:?}"
        );
    }
}

async fn app_fake() -> FakeFeishu {
    let fake = FakeFeishu::start().await;
    fake.add_app("cli_app", "app-secret-value");
    fake.add_receiver("chat_id", "oc_ops");
    fake.add_receiver("chat_id", "oc_data");
    fake.add_receiver("open_id", "ou_tom");
    fake
}

#[tokio::test]
async fn app_mode_sends_content_as_a_json_string_and_caches_the_token() {
    let fake = app_fake().await;
    let ch = channel(
        json!({"mode": "app", "app_id": "cli_app", "app_secret": "app-secret-value",
                            "receive_ids": ["oc_ops", "oc_data"], "base_url": fake.uri()}),
    );
    let receipt = ch.send(&alert()).await.unwrap();
    assert_eq!(receipt.message_id.as_deref(), Some("om_1"));
    ch.send(&alert()).await.unwrap();
    assert_eq!(fake.token_fetches(), 1);
    let sent = fake.accepted();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0].query["receive_id_type"], "chat_id");
    assert_eq!(sent[1].body["receive_id"], "oc_data");
    let content: Value = serde_json::from_str(sent[0].body["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["header"]["template"], "red");
    assert!(sent[0].headers["authorization"].starts_with("Bearer fake-token-"));

    let post = channel(
        json!({"mode": "app", "app_id": "cli_app", "app_secret": "app-secret-value",
                              "receive_id_type": "open_id", "receive_ids": ["ou_tom"], "msg_type": "post",
                              "base_url": fake.uri()}),
    );
    post.send(&alert()).await.unwrap();
    let content: Value =
        serde_json::from_str(fake.accepted()[4].body["content"].as_str().unwrap()).unwrap();
    assert!(
        content.get("en_us").is_some(),
        "im/v1 post content has no \"post\" wrapper: {content}"
    );
}

#[tokio::test]
async fn app_mode_refreshes_once_and_uses_the_lark_base() {
    let fake = app_fake().await;
    let ch = channel(
        json!({"mode": "app", "app_id": "cli_app", "app_secret": "app-secret-value",
                            "receive_ids": ["oc_ops"], "base_url": format!("{}/lark", fake.uri())}),
    );
    ch.send(&alert()).await.unwrap();
    fake.expire_tokens();
    ch.send(&alert()).await.expect("refreshed after 99991663");
    assert_eq!(fake.token_fetches(), 2);
    let msgs: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("im/v1/messages"))
        .collect();
    assert_eq!(msgs.len(), 3, "one refused, one retry");
    assert!(msgs.iter().all(|r| r.path.starts_with("/lark/open-apis/")));
    assert_eq!(msgs[1].answer["code"], 99991663);
}

#[tokio::test]
async fn app_mode_partial_receivers_and_bad_secret() {
    let fake = app_fake().await;
    let ch = channel(
        json!({"mode": "app", "app_id": "cli_app", "app_secret": "app-secret-value",
                            "receive_ids": ["oc_ops", "oc_gone"], "base_url": fake.uri()}),
    );
    let receipt = ch.send(&alert()).await.unwrap();
    assert_eq!(receipt.rejected_recipients, ["oc_gone"]);
    let bad = channel(
        json!({"mode": "app", "app_id": "cli_app", "app_secret": "wrong-app-secret",
                             "receive_ids": ["oc_ops"], "base_url": fake.uri()}),
    );
    let e = bad.send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.is_retryable()),
        (ErrorKind::Unauthorized, false)
    );
    assert!(!format!("{e} {e:?} {bad:?}").contains("wrong-app-secret"));
}

#[test]
fn dinky_feishu_rows_load_through_the_importer() {
    // As Dinky 1.x's form writes it (the proxy host goes in `proxy`).
    let config = Config::from_dinky(
        &json!([{"id": 7, "name": "fs", "type": "FeiShu", "enabled": true, "params": {
            "webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/hook-secret-token", "secret": "sign-secret-x",
            "keyword": "Dinky", "atUsers": ["ou_1"], "isAtAll": false, "isEnableProxy": false}}]),
        &Value::Null,
    )
    .unwrap()
    .config;
    let n = Notifier::from_config(&config).unwrap();
    let p = n.preview("fs", &alert()).unwrap();
    assert_eq!(
        p[0].target,
        "https://open.feishu.cn/open-apis/bot/v2/hook/REDACTED"
    );
    assert!(
        p[0].body.get("sign").is_none(),
        "previews carry no signature"
    );
    let shown = format!("{n:?} {config:?} {:?}", n.channel("fs"));
    assert!(
        !shown.contains("hook-secret-token") && !shown.contains("sign-secret-x"),
        "{shown}"
    );
    // Lark's host and type alias work the same way.
    let lark = Config::from_json(
        r#"{"instances": [{"name": "lk", "type": "lark", "params": {
            "webhook": "https://open.larksuite.com/open-apis/bot/v2/hook/abc"}}]}"#,
    )
    .unwrap();
    assert!(Notifier::from_config(&lark).is_ok());
}

#[test]
fn misconfigurations_name_the_field() {
    for (params, field) in [
        (json!({}), "params.webhook"),
        (
            json!({"webhook": "https://open.feishu.cn/open-apis/bot/v2/"}),
            "params.webhook",
        ),
        (
            json!({"webhook": "http://open.feishu.cn/open-apis/bot/v2/hook/x"}),
            "params.webhook",
        ),
        (
            json!({"mode": "app", "app_secret": "s", "receive_ids": ["x"]}),
            "params.app_id",
        ),
        (
            json!({"mode": "app", "app_id": "a", "app_secret": "s"}),
            "params.receive_ids",
        ),
        (
            json!({"mode": "app", "app_id": "a", "app_secret": "s", "receive_ids": ["x"], "receive_id_type": "phone"}),
            "params.receive_id_type",
        ),
        (
            json!({"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/x", "msg_type": "image"}),
            "params.msg_type",
        ),
    ] {
        let mut cfg = InstanceConfig::new("fs", "feishu");
        cfg.params = params.as_object().unwrap().clone();
        let e = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap_err();
        assert_eq!(e.field(), Some(field), "{params}: {e}");
        assert_eq!(e.instance(), Some("fs"));
    }
}
