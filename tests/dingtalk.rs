//! DingTalk channel against the strict fake of `alertkit::testkit::dingtalk`
//! (platforms.md §1.8, §2.5): it recomputes signatures, checks the timestamp
//! window, keywords, sizes, tokens and rate limits, and answers with
//! DingTalk's real error bodies.
#![cfg(all(feature = "dingtalk", feature = "testkit"))]

use std::sync::Arc;
use std::time::Duration;

use alertkit::policy::PolicyConfig;
use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
use alertkit::{
    Alert, AlertChannel, Config, ErrorKind, Http, InstanceConfig, JobInfo, JobStatus, Mention,
    Notifier, Registry, Severity,
};
use serde_json::{Value, json};

const SECRET: &str = "SEC0123456789abcdef";

fn channel(params: Value) -> Arc<dyn AlertChannel> {
    let cfg = InstanceConfig::new("ding", "dingtalk").policy(PolicyConfig::off());
    let cfg = params
        .as_object()
        .unwrap()
        .iter()
        .fold(cfg, |c, (k, v)| c.param(k.clone(), v.clone()));
    let config = Config::default().with_instance(cfg);
    let n = Notifier::from_config_with(&config, Registry::default(), Http::new()).unwrap();
    n.channel("ding").unwrap()
}

fn job_alert() -> Alert {
    Alert::new("Flink job orders-etl FAILED")
        .body("Checkpoint 42 failed 3 times in a row.")
        .severity(Severity::Critical)
        .job(
            JobInfo::new("orders-etl")
                .id("a1b2c3")
                .status(JobStatus::Failed)
                .cluster("prod-yarn"),
        )
        .link("Flink UI", "https://flink.example/")
}

async fn signed_robot() -> FakeDingTalk {
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok",
        RobotSpec {
            secret: Some(SECRET.into()),
            keywords: vec!["告警".into()],
        },
    );
    fake
}

#[tokio::test]
async fn robot_markdown_is_signed_keyworded_and_mentions_inline() {
    let fake = signed_robot().await;
    let ch = channel(
        json!({"webhook": fake.webhook("tok"), "secret": SECRET, "keywords": ["告警"],
                            "at_mobiles": ["13800000000"]}),
    );
    let alert = job_alert().mention(Mention::UserId("zhangsan".into()));
    let receipt = ch.send(&alert).await.expect("accepted");
    assert_eq!(receipt.requests, 1);
    let reqs = fake.accepted();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    // Signed per §1.2: 13-digit ms timestamp; the fake recomputed the HMAC.
    assert_eq!(r.query["timestamp"].len(), 13);
    assert!(r.query.contains_key("sign"));
    assert_eq!(r.body["msgtype"], "markdown");
    assert_eq!(
        r.body["markdown"]["title"],
        "[Critical] Flink job orders-etl FAILED"
    );
    let text = r.body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("### 🔥 Flink job orders-etl FAILED\n"),
        "{text}"
    );
    assert!(text.contains("- **Cluster**: prod-yarn"), "{text}");
    // Mentions appear in the text as DingTalk requires, then the keyword.
    assert!(
        text.ends_with("\n\n@13800000000 @zhangsan\n\n告警"),
        "{text}"
    );
    assert_eq!(
        r.body["at"],
        json!({"atMobiles": ["13800000000"], "atUserIds": ["zhangsan"], "isAtAll": false})
    );
}

#[tokio::test]
async fn keyword_already_present_is_not_repeated() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok",
        RobotSpec {
            secret: None,
            keywords: vec!["orders-etl".into(), "x".into()],
        },
    );
    let ch = channel(json!({"webhook": fake.webhook("tok"), "keyword": "x,orders-etl"}));
    ch.send(&job_alert()).await.unwrap();
    let text = fake.accepted()[0].body["markdown"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.ends_with("\n\nx"), "{text}");
}

#[tokio::test]
async fn missing_keyword_without_the_param_fails_like_the_platform() {
    let fake = signed_robot().await;
    let ch = channel(json!({"webhook": fake.webhook("tok"), "secret": SECRET}));
    let e = ch.send(&Alert::new("disk full")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KeywordMissing);
    assert_eq!(e.code(), Some("310000"));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn wrong_secret_is_a_permanent_signature_error() {
    let fake = signed_robot().await;
    let ch = channel(
        json!({"webhook": fake.webhook("tok"), "secret": "SECwrong", "keywords": ["告警"]}),
    );
    let e = ch.send(&job_alert()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SignatureMismatch);
    assert!(!e.is_retryable());
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("SECwrong") && !shown.contains("tok"),
        "{shown}"
    );
    // Unsigned requests to a signing robot are refused too.
    let unsigned = channel(json!({"webhook": fake.webhook("tok"), "keywords": ["告警"]}));
    assert_eq!(
        unsigned.send(&job_alert()).await.unwrap_err().kind(),
        ErrorKind::SignatureMismatch
    );
}

#[tokio::test]
async fn many_signed_sends_all_pass_the_strict_check() {
    // About half of all timestamps give a signature with '+': encoding it
    // zero or two times fails intermittently (§1.7). 40 sends at distinct
    // milliseconds make a miss of that bug very unlikely.
    let fake = signed_robot().await;
    fake.set_rate_limit(1000, Duration::from_secs(60), Duration::from_secs(1));
    let ch =
        channel(json!({"webhook": fake.webhook("tok"), "secret": SECRET, "keywords": ["告警"]}));
    for _ in 0..40 {
        ch.send(&job_alert()).await.expect("signature accepted");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let signs: Vec<String> = fake
        .accepted()
        .iter()
        .map(|r| r.query["sign"].clone())
        .collect();
    assert!(
        signs.iter().any(|s| s.contains('+')),
        "no signature with '+' was exercised"
    );
}

#[tokio::test]
async fn text_and_action_card_bodies() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let text = channel(
        json!({"access_token": "tok", "base_url": fake.uri(), "msg_type": "text", "isAtAll": true}),
    );
    text.send(&job_alert()).await.unwrap();
    let body = &fake.accepted()[0].body;
    assert_eq!(body["msgtype"], "text");
    let content = body["text"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("[Critical] Flink job orders-etl FAILED\n\nCheckpoint 42"),
        "{content}"
    );
    assert!(content.ends_with("\n\n@all"), "{content}");
    assert_eq!(body["at"]["isAtAll"], true);

    let card =
        channel(json!({"access_token": "tok", "base_url": fake.uri(), "msg_type": "action_card"}));
    let alert = job_alert().link("Runbook", "https://wiki.example/rb");
    card.send(&alert).await.unwrap();
    let body = &fake.accepted()[1].body;
    assert_eq!(body["msgtype"], "actionCard");
    assert_eq!(
        body["actionCard"]["btns"],
        json!([{"title": "Flink UI", "actionURL": "https://flink.example/"},
               {"title": "Runbook", "actionURL": "https://wiki.example/rb"}])
    );
    assert_eq!(
        body["actionCard"]["title"],
        "[Critical] Flink job orders-etl FAILED"
    );
    assert!(body.get("at").is_none());
}

#[tokio::test]
async fn a_30_kb_alert_fits_under_20000_bytes_with_a_visible_marker() {
    let fake = signed_robot().await;
    let ch = channel(
        json!({"webhook": fake.webhook("tok"), "secret": SECRET, "keywords": ["告警"],
                            "at_mobiles": ["13800000000"]}),
    );
    let huge = "作业失败 \"quoted\"\n".repeat(1500); // ~30 KB, with characters JSON escapes
    assert!(huge.len() > 30_000);
    let receipt = ch
        .send(&job_alert().body(huge))
        .await
        .expect("accepted, not 460101");
    let r = &fake.accepted()[0];
    assert!(r.body_len <= 20_000, "{}", r.body_len);
    assert!(r.body_len > 19_000, "should use the space: {}", r.body_len);
    let text = r.body["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("… (truncated, "), "marker visible");
    assert!(
        text.ends_with("@13800000000\n\n告警"),
        "mentions and keyword survive truncation"
    );
    assert!(
        receipt.notes.iter().any(|n| n.contains("truncated")),
        "{:?}",
        receipt.notes
    );
}

#[tokio::test]
async fn every_platform_code_maps_to_a_kind_and_retry_flag() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let ch = channel(json!({"webhook": fake.webhook("tok")}));
    let cases: &[(i64, &str, ErrorKind, bool)] = &[
        (-1, "系统繁忙", ErrorKind::Platform, true),
        (
            310000,
            "keywords not in content",
            ErrorKind::KeywordMissing,
            false,
        ),
        (
            310000,
            "invalid timestamp",
            ErrorKind::SignatureMismatch,
            false,
        ),
        (
            310000,
            "sign not match",
            ErrorKind::SignatureMismatch,
            false,
        ),
        (
            310000,
            "ip 1.1.1.1 not in whitelist",
            ErrorKind::IpNotAllowed,
            false,
        ),
        (
            130101,
            "send too fast, exceed 20 times per minute",
            ErrorKind::RateLimited,
            true,
        ),
        (410100, "发送速度太快而限流", ErrorKind::RateLimited, true),
        (300001, "token is not exist", ErrorKind::Unauthorized, false),
        (300005, "token is not exist", ErrorKind::Unauthorized, false),
        (400013, "群已被解散", ErrorKind::InvalidRecipient, false),
        (400101, "access_token不存在", ErrorKind::Unauthorized, false),
        (400102, "机器人已停用", ErrorKind::Unauthorized, false),
        (400105, "不支持的消息类型", ErrorKind::InvalidContent, false),
        (400106, "机器人不存在", ErrorKind::InvalidRecipient, false),
        (430101, "含有不安全的外链", ErrorKind::InvalidContent, false),
        (430104, "不合适的内容", ErrorKind::InvalidContent, false),
        (
            460101,
            "message too long, exceed 20000 bytes",
            ErrorKind::PayloadTooLarge,
            false,
        ),
        (
            101002,
            "message is too long",
            ErrorKind::PayloadTooLarge,
            false,
        ),
        (40035, "缺少参数 json", ErrorKind::InvalidContent, false),
        (90030, "webhook over limit", ErrorKind::RateLimited, false),
    ];
    for (code, msg, kind, retryable) in cases {
        fake.push_fault(Fault::errcode(*code, msg));
        let e = ch.send(&Alert::new("t")).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.is_retryable(), e.code()),
            (*kind, *retryable, Some(code.to_string().as_str())),
            "{code} {msg}"
        );
    }
    // HTTP 200 with an unparsable body is not success either.
    fake.push_fault(Fault::Reply(200, json!("<html>proxy</html>")));
    assert!(ch.send(&Alert::new("t")).await.is_err());
    fake.push_fault(Fault::Reply(503, json!({})));
    assert!(ch.send(&Alert::new("t")).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn rate_limit_is_reported_retryable_with_a_wait() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    fake.set_rate_limit(3, Duration::from_secs(60), Duration::from_secs(600));
    let ch = channel(json!({"webhook": fake.webhook("tok")}));
    for _ in 0..3 {
        ch.send(&Alert::new("t")).await.unwrap();
    }
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
    assert_eq!(e.code(), Some("410100"));
    assert!(e.retry_after().unwrap() >= Duration::from_secs(60));
}

#[tokio::test]
async fn unknown_token_is_unauthorized() {
    let fake = FakeDingTalk::start().await;
    let ch = channel(json!({"webhook": fake.webhook("nope-secret-token")}));
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unauthorized, Some("300005"))
    );
    assert!(!format!("{e:?}").contains("nope-secret-token"));
}

#[tokio::test]
async fn transport_errors_are_retryable_and_redacted() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let ch = channel(
        json!({"webhook": format!("http://127.0.0.1:{port}/robot/send?access_token=tok-secret"),
                            "secret": SECRET}),
    );
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(e.is_retryable());
    let mut shown = format!("{e} | {e:?}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        shown.push_str(&format!(" | {s} | {s:?}"));
        src = s.source();
    }
    assert!(shown.contains("access_token=REDACTED"), "{shown}");
    assert!(shown.contains("&sign=REDACTED"), "{shown}");
    for secret in ["tok-secret", SECRET] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

fn app_params(fake: &FakeDingTalk, users: Vec<String>) -> Value {
    json!({"mode": "app", "client_id": "dingapp", "client_secret": "app-secret-value", "robot_code": "dingrobot",
           "user_ids": users, "base_url": fake.uri(), "flow_control_wait_ms": 10})
}

#[tokio::test]
async fn app_mode_batches_users_by_20_and_caches_the_token() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    let users: Vec<String> = (0..25).map(|i| format!("u{i}")).collect();
    let ch = channel(app_params(&fake, users));
    let receipt = ch.send(&job_alert()).await.unwrap();
    assert_eq!(receipt.requests, 2);
    ch.send(&job_alert()).await.unwrap();
    assert_eq!(fake.token_fetches(), 1, "two sends, one token");
    let batches: Vec<_> = fake
        .accepted()
        .into_iter()
        .filter(|r| r.path.ends_with("batchSend"))
        .collect();
    assert_eq!(batches.len(), 4);
    assert_eq!(batches[0].body["userIds"].as_array().unwrap().len(), 20);
    assert_eq!(batches[1].body["userIds"].as_array().unwrap().len(), 5);
    assert_eq!(batches[0].body["msgKey"], "sampleMarkdown");
    // msgParam is a JSON string, not an object (§2.2).
    let param: Value = serde_json::from_str(batches[0].body["msgParam"].as_str().unwrap()).unwrap();
    assert_eq!(param["title"], "[Critical] Flink job orders-etl FAILED");
    assert!(param["text"].as_str().unwrap().contains("orders-etl"));
    assert!(batches[0].headers["x-acs-dingtalk-access-token"].starts_with("fake-token-"));
}

#[tokio::test]
async fn app_mode_refreshes_an_expired_token_once() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    let ch = channel(app_params(&fake, vec!["u1".into()]));
    ch.send(&Alert::new("one")).await.unwrap();
    fake.expire_tokens();
    ch.send(&Alert::new("two"))
        .await
        .expect("refreshed and resent");
    assert_eq!(fake.token_fetches(), 2);
    let sends: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("batchSend"))
        .collect();
    assert_eq!(sends.len(), 3, "one rejected send, then exactly one retry");
    assert_eq!(sends[1].answer["code"], "InvalidAuthentication");
}

#[tokio::test]
async fn app_mode_concurrent_sends_fetch_one_token() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    let ch = channel(app_params(&fake, vec!["u1".into()]));
    let sends = (0..16).map(|_| {
        let ch = ch.clone();
        tokio::spawn(async move { ch.send(&Alert::new("t")).await })
    });
    for s in sends {
        s.await.unwrap().unwrap();
    }
    assert_eq!(fake.token_fetches(), 1);
}

#[tokio::test]
async fn app_mode_reports_invalid_users_and_retries_flow_controlled_ones() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    fake.set_invalid_users(&["ghost"]);
    fake.flow_control("busy", 1);
    let ch = channel(app_params(
        &fake,
        vec!["u1".into(), "ghost".into(), "busy".into()],
    ));
    let receipt = ch.send(&Alert::new("t")).await.unwrap();
    assert_eq!(receipt.rejected_recipients, vec!["ghost".to_string()]);
    assert!(receipt.is_partial());
    let batches: Vec<_> = fake
        .accepted()
        .into_iter()
        .filter(|r| r.path.ends_with("batchSend"))
        .collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        batches[1].body["userIds"],
        json!(["busy"]),
        "only the flow-controlled user is retried"
    );

    // A user still flow-controlled after the retries is reported, not lost.
    fake.flow_control("busy", 10);
    let receipt = ch.send(&Alert::new("t")).await.unwrap();
    assert!(
        receipt.rejected_recipients.contains(&"busy".to_string()),
        "{receipt:?}"
    );
}

#[tokio::test]
async fn app_mode_group_conversations_and_bad_credentials() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    let mut params = app_params(&fake, vec![]);
    params["open_conversation_ids"] = json!(["cidA", "cidB"]);
    let ch = channel(params.clone());
    let receipt = ch.send(&Alert::new("t")).await.unwrap();
    assert_eq!(receipt.requests, 2);
    let sent: Vec<_> = fake
        .accepted()
        .into_iter()
        .filter(|r| r.path.ends_with("groupMessages/send"))
        .collect();
    assert_eq!(sent[1].body["openConversationId"], "cidB");

    params["client_secret"] = json!("wrong-app-secret");
    let e = channel(params).send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(!e.is_retryable());
    assert!(!format!("{e:?}").contains("wrong-app-secret"));
}

#[tokio::test]
async fn conversation_mode_uses_the_legacy_token_and_refreshes_it() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("legacyapp", "legacy-secret", "unused");
    let ch = channel(
        json!({"mode": "conversation", "app_key": "legacyapp", "app_secret": "legacy-secret",
                            "chat_ids": ["chat1", "chat2"], "base_url": fake.uri()}),
    );
    ch.send(&job_alert()).await.unwrap();
    let chats: Vec<_> = fake
        .accepted()
        .into_iter()
        .filter(|r| r.path == "/chat/send")
        .collect();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[0].body["chatid"], "chat1");
    assert_eq!(chats[0].body["msg"]["msgtype"], "markdown");
    assert_eq!(fake.token_fetches(), 1);
    fake.expire_tokens();
    ch.send(&job_alert()).await.unwrap();
    assert_eq!(fake.token_fetches(), 2);
}

#[test]
fn dinky_dingtalk_rows_load_through_the_importer() {
    // As Dinky 1.x's form writes it: the proxy host in `proxy`, the port a number.
    let config = Config::from_dinky(
        &json!([{"id": 1, "name": "dinky-ding", "type": "DingTalk", "enabled": 1, "params": {
            "webhook": "https://oapi.dingtalk.com/robot/send?access_token=0123abcd",
            "keyword": "Dinky", "secret": "SECabcdef", "isEnableProxy": true, "proxy": "proxy.corp",
            "port": 3128, "user": "px", "password": "pxpass", "isAtAll": false,
            "atMobiles": ["13800000000"]}}]),
        &Value::Null,
    )
    .unwrap()
    .config;
    assert_eq!(
        config.instances[0].params["proxy"]["url"],
        "http://proxy.corp:3128"
    );
    let n = Notifier::from_config(&config).unwrap();
    let ch = n.channel("dinky-ding").unwrap();
    let preview = ch.preview(&Alert::new("x")).unwrap();
    assert_eq!(
        preview[0].target,
        "https://oapi.dingtalk.com/robot/send?access_token=REDACTED"
    );
    let text = preview[0].body["markdown"]["text"].as_str().unwrap();
    assert!(text.ends_with("@13800000000\n\nDinky"), "{text}");
    let debug = format!("{ch:?} {n:?} {config:?}");
    for secret in ["0123abcd", "SECabcdef", "pxpass"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn misconfigurations_are_rejected_naming_instance_and_field() {
    let cases = [
        (json!({}), "params.webhook"),
        (json!({"webhook": "not a url"}), "params.webhook"),
        (
            json!({"webhook": "http://oapi.dingtalk.com/robot/send?access_token=x"}),
            "params.webhook",
        ),
        (
            json!({"webhook": "https://oapi.dingtalk.com/robot/send"}),
            "params.webhook",
        ),
        (
            json!({"webhook": "https://x/robot/send?access_token=x", "msg_type": "feedcard"}),
            "params.msg_type",
        ),
        (
            json!({"webhook": "https://x/robot/send?access_token=x", "at_mobile": ["1"]}),
            "params.at_mobile",
        ),
        (
            json!({"mode": "app", "app_key": "k", "app_secret": "s", "user_ids": ["u"]}),
            "params.robot_code",
        ),
        (
            json!({"mode": "app", "app_key": "k", "app_secret": "s", "robot_code": "r"}),
            "params.user_ids",
        ),
        (
            json!({"mode": "conversation", "app_key": "k", "app_secret": "s"}),
            "params.chat_ids",
        ),
        (
            json!({"webhook": "https://x/robot/send?access_token=x", "isEnableProxy": true}),
            "params.hostname",
        ),
        (
            json!({"access_token": "t", "base_url": "ftp://x"}),
            "params.base_url",
        ),
    ];
    for (params, field) in cases {
        let mut cfg = InstanceConfig::new("ops-ding", "dingtalk");
        cfg.params = params.as_object().unwrap().clone();
        let config = Config::default().with_instance(cfg);
        let e = Notifier::from_config(&config).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{params}: {e}");
        assert_eq!(e.instance(), Some("ops-ding"), "{params}: {e}");
        assert_eq!(e.field(), Some(field), "{params}: {e}");
    }
}
