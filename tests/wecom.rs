//! WeCom channel against the strict fake of `alertkit::testkit::wecom`
//! (platforms.md §3.6, §4): tokens with expiry, recipient validation,
//! byte limits answering 40058, robot rate limits answering 45009.
#![cfg(all(feature = "wecom", feature = "testkit"))]

use std::sync::Arc;
use std::time::Duration;

use alertkit::policy::PolicyConfig;
use alertkit::testkit::wecom::{FakeWeCom, Fault};
use alertkit::{
    Alert, AlertChannel, AlertGroup, Config, ErrorKind, GroupStatus, InstanceConfig, JobInfo,
    JobStatus, Mention, Notifier, Outcome, Severity,
};
use serde_json::{Value, json};

fn channel(params: Value) -> Arc<dyn AlertChannel> {
    let mut cfg = InstanceConfig::new("wc", "wecom").policy(PolicyConfig::off());
    cfg.params = params.as_object().unwrap().clone();
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("wc")
        .unwrap()
}

fn alert() -> Alert {
    Alert::new("Flink job orders-etl FAILED")
        .body("Checkpoint 42 failed.")
        .severity(Severity::Critical)
        .job(
            JobInfo::new("orders-etl")
                .status(JobStatus::Failed)
                .url("https://flink.example/#/job/a1"),
        )
}

async fn app_fake() -> FakeWeCom {
    let fake = FakeWeCom::start().await;
    fake.add_app("ww-corp", "corp-secret-value", 1000002);
    fake.add_recipients(&["zhangsan", "lisi"], &["2"], &["1"]);
    fake
}

fn app_params(fake: &FakeWeCom, users: Value) -> Value {
    json!({"mode": "app", "corp_id": "ww-corp", "secret": "corp-secret-value", "agent_id": 1000002,
           "to_users": users, "base_url": fake.uri()})
}

fn sends(fake: &FakeWeCom) -> Vec<alertkit::testkit::Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == "/cgi-bin/message/send")
        .collect()
}

#[tokio::test]
async fn app_markdown_body_is_exact_and_token_is_cached() {
    let fake = app_fake().await;
    let ch = channel(app_params(&fake, json!(["zhangsan", "lisi"])));
    let receipt = ch.send(&alert()).await.unwrap();
    assert_eq!(receipt.message_id.as_deref(), Some("msg-1"));
    ch.send(&alert()).await.unwrap();
    assert_eq!(fake.token_fetches(), 1, "two sends, one gettoken");
    let body = &fake.accepted()[0].body;
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(
        content.starts_with(
            "### <font color=\"warning\">Critical</font> Flink job orders-etl FAILED\n"
        ),
        "{content}"
    );
    let mut expected = body.clone();
    expected["markdown"]["content"] = json!("");
    assert_eq!(
        expected,
        json!({"touser": "zhangsan|lisi", "toparty": "", "totag": "", "msgtype": "markdown", "agentid": 1000002,
               "markdown": {"content": ""}})
    );
}

#[tokio::test]
async fn app_text_and_textcard() {
    let fake = app_fake().await;
    let mut p = app_params(&fake, json!("zhangsan"));
    p["msg_type"] = json!("text");
    channel(p.clone()).send(&alert()).await.unwrap();
    p["msg_type"] = json!("textcard");
    channel(p.clone()).send(&alert()).await.unwrap();
    let sent = fake.accepted();
    assert!(
        sent[0].body["text"]["content"]
            .as_str()
            .unwrap()
            .starts_with("[Critical] Flink job")
    );
    let card = &sent[1].body["textcard"];
    assert_eq!(card["title"], "[Critical] Flink job orders-etl FAILED");
    assert_eq!(card["url"], "https://flink.example/#/job/a1");
    assert_eq!(card["btntxt"], "详情");
    assert!(
        card["description"]
            .as_str()
            .unwrap()
            .contains("Checkpoint 42 failed.")
    );
    // No link: a text card cannot be built, so text goes out, and the receipt says so.
    let receipt = channel(p).send(&Alert::new("no link")).await.unwrap();
    assert_eq!(fake.accepted()[2].body["msgtype"], "text");
    assert!(
        receipt
            .notes
            .iter()
            .any(|n| n.contains("textcard needs a link"))
    );
}

#[tokio::test]
async fn app_token_refreshed_once_on_42001_and_40014() {
    let fake = app_fake().await;
    let ch = channel(app_params(&fake, json!(["zhangsan"])));
    ch.send(&alert()).await.unwrap();
    fake.expire_tokens();
    ch.send(&alert()).await.expect("refreshed on 42001");
    assert_eq!(fake.token_fetches(), 2);
    let s = sends(&fake);
    assert_eq!(s.len(), 3, "exactly one retry");
    assert_eq!(s[1].answer["errcode"], 42001);

    fake.push_fault(Fault::errcode(40014, "invalid access_token"));
    ch.send(&alert()).await.expect("refreshed on 40014");
    assert_eq!(fake.token_fetches(), 3);

    // A token error on the resend too is not retried again.
    fake.push_fault_on(
        "message/send",
        Fault::errcode(40014, "invalid access_token"),
    );
    fake.push_fault_on(
        "message/send",
        Fault::errcode(40014, "invalid access_token"),
    );
    let e = ch.send(&alert()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TokenExpired);
    assert_eq!(sends(&fake).len(), 7);
}

#[tokio::test]
async fn app_concurrent_sends_fetch_one_token() {
    let fake = app_fake().await;
    let ch = channel(app_params(&fake, json!(["zhangsan"])));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let ch = ch.clone();
            tokio::spawn(async move { ch.send(&alert()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.token_fetches(), 1);
}

#[tokio::test]
async fn app_2500_users_take_3_sends() {
    let fake = app_fake().await;
    let users: Vec<String> = (0..2500).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    fake.add_recipients(&refs, &[], &[]);
    let ch = channel(app_params(&fake, json!(users)));
    let receipt = ch.send(&alert()).await.unwrap();
    assert_eq!(receipt.requests, 3);
    let sizes: Vec<usize> = fake
        .accepted()
        .iter()
        .map(|r| r.body["touser"].as_str().unwrap().split('|').count())
        .collect();
    assert_eq!(sizes, [1000, 1000, 500]);
}

#[tokio::test]
async fn app_partial_recipients_show_in_receipt_and_report() {
    let fake = app_fake().await;
    let mut p = app_params(&fake, json!(["zhangsan", "Ghost"]));
    p["to_parties"] = json!(["2", "99"]);
    let ch = channel(p);
    let report = AlertGroup::new("g")
        .with_member("wc", ch.clone())
        .dispatch(&alert())
        .await;
    assert_eq!(report.status, GroupStatus::Partial);
    let d = &report.deliveries[0];
    assert_eq!(d.outcome, Outcome::Partial);
    assert_eq!(
        d.receipt.as_ref().unwrap().rejected_recipients,
        ["ghost", "party:99"]
    );

    let all_bad = channel(app_params(&fake, json!(["ghost1", "ghost2"])));
    let e = all_bad.send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.is_retryable()),
        (ErrorKind::InvalidRecipient, Some("81013"), false)
    );
}

#[tokio::test]
async fn app_bad_credentials_are_permanent_and_secret_free() {
    let fake = app_fake().await;
    let mut p = app_params(&fake, json!(["zhangsan"]));
    p["secret"] = json!("wrong-secret-value");
    let e = channel(p.clone()).send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.is_retryable()),
        (ErrorKind::Unauthorized, Some("40001"), false)
    );
    assert!(!format!("{e} {e:?}").contains("wrong-secret-value"));
    assert!(
        !e.message().contains("hint"),
        "hint suffix trimmed: {}",
        e.message()
    );
    p["corp_id"] = json!("nope");
    let e = channel(p).send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unauthorized, Some("40013"))
    );
}

#[tokio::test]
async fn every_code_maps_to_a_kind_and_retry_flag() {
    let fake = app_fake().await;
    fake.add_bot("k1");
    let bot = channel(json!({"webhook": fake.webhook("k1")}));
    let cases: &[(i64, ErrorKind, bool)] = &[
        (-1, ErrorKind::Platform, true),
        (45009, ErrorKind::RateLimited, true),
        (60020, ErrorKind::IpNotAllowed, false),
        (93000, ErrorKind::Unauthorized, false),
        (40058, ErrorKind::PayloadTooLarge, false),
        (40008, ErrorKind::InvalidContent, false),
        (44004, ErrorKind::InvalidContent, false),
        (81013, ErrorKind::InvalidRecipient, false),
        (40013, ErrorKind::Unauthorized, false),
    ];
    for (code, kind, retryable) in cases {
        fake.push_fault(Fault::errcode(*code, "x, hint: [1], from ip: 1.1.1.1"));
        let e = bot.send(&alert()).await.unwrap_err();
        assert_eq!((e.kind(), e.is_retryable()), (*kind, *retryable), "{code}");
    }
}

#[tokio::test]
async fn bot_markdown_mentions_user_ids_inline_and_notes_the_rest() {
    let fake = FakeWeCom::start().await;
    fake.add_bot("k1");
    let ch = channel(
        json!({"webhook": fake.webhook("k1"), "keyword": "Dinky", "mentioned_users": ["wangqing"]}),
    );
    let a = alert()
        .mention(Mention::Mobile("13800001111".into()))
        .mention(Mention::All);
    let receipt = ch.send(&a).await.unwrap();
    let body = &fake.accepted()[0].body;
    assert_eq!(body["msgtype"], "markdown");
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("**Dinky**\n### <font color=\"warning\">Critical</font>"),
        "{content}"
    );
    assert!(content.ends_with("\n<@wangqing>"), "{content}");
    assert!(body["markdown"].get("mentioned_list").is_none());
    assert!(
        receipt
            .notes
            .iter()
            .any(|n| n.contains("cannot mention mobiles or @all")),
        "{receipt:?}"
    );
}

#[tokio::test]
async fn bot_text_carries_mention_lists_and_fallback_switches_to_text() {
    let fake = FakeWeCom::start().await;
    fake.add_bot("k1");
    let text = channel(
        json!({"key": "k1", "base_url": fake.uri(), "msg_type": "text", "isAtAll": true,
                              "mentioned_mobiles": ["13800001111"]}),
    );
    text.send(&alert().mention(Mention::UserId("wangqing".into())))
        .await
        .unwrap();
    let t = &fake.accepted()[0].body["text"];
    assert_eq!(t["mentioned_list"], json!(["wangqing", "@all"]));
    assert_eq!(t["mentioned_mobile_list"], json!(["13800001111", "@all"]));

    let fallback = channel(json!({"webhook": fake.webhook("k1"), "mention_fallback_text": true}));
    let receipt = fallback
        .send(&alert().mention(Mention::Mobile("13800001111".into())))
        .await
        .unwrap();
    let b = &fake.accepted()[1].body;
    assert_eq!(b["msgtype"], "text");
    assert_eq!(b["text"]["mentioned_mobile_list"], json!(["13800001111"]));
    assert!(receipt.notes.iter().any(|n| n.contains("sent as text")));

    let v2 =
        channel(json!({"webhook": fake.webhook("k1"), "msg_type": "markdown_v2", "at_all": true}));
    let receipt = v2.send(&alert()).await.unwrap();
    let b = &fake.accepted()[2].body;
    assert_eq!(b["msgtype"], "markdown_v2");
    assert!(
        !b["markdown_v2"]["content"]
            .as_str()
            .unwrap()
            .contains("<font"),
        "v2 has no colours"
    );
    assert!(
        receipt
            .notes
            .iter()
            .any(|n| n.contains("markdown_v2 cannot mention"))
    );
}

#[tokio::test]
async fn byte_limits_hold_for_multibyte_text() {
    let fake = app_fake().await;
    fake.add_bot("k1");
    let huge = alert().body("企业微信告警内容".repeat(800)); // ~19 KB of 3-byte characters
    for (params, max, path) in [
        (
            json!({"webhook": fake.webhook("k1"), "msg_type": "text", "at_all": true}),
            2048,
            "text",
        ),
        (
            json!({"webhook": fake.webhook("k1"), "mentioned_users": ["u1"]}),
            4096,
            "markdown",
        ),
        (
            json!({"webhook": fake.webhook("k1"), "msg_type": "markdown_v2"}),
            4096,
            "markdown_v2",
        ),
        (app_params(&fake, json!(["zhangsan"])), 2048, "markdown"),
    ] {
        let receipt = channel(params).send(&huge).await.expect("fits, not 40058");
        let last = fake.accepted().pop().unwrap();
        let content = last.body[path]["content"].as_str().unwrap();
        assert!(
            content.len() <= max && content.len() > max - 64,
            "{path}: {}",
            content.len()
        );
        assert!(content.contains("bytes omitted)"), "visible marker");
        assert!(receipt.notes.iter().any(|n| n.contains("truncated")));
    }
    // The suffix survives: the markdown mention is still there after truncation.
    let md = &fake.accepted()[1].body["markdown"]["content"];
    assert!(md.as_str().unwrap().ends_with("<@u1>"));
}

#[tokio::test]
async fn bot_rate_limit_and_bad_key() {
    let fake = FakeWeCom::start().await;
    fake.add_bot("k1");
    fake.set_rate_limit(2, Duration::from_secs(60));
    let ch = channel(json!({"webhook": fake.webhook("k1")}));
    ch.send(&alert()).await.unwrap();
    ch.send(&alert()).await.unwrap();
    let e = ch.send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.is_retryable()),
        (ErrorKind::RateLimited, Some("45009"), true)
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));

    let bad = channel(json!({"webhook": fake.webhook("secret-key-value")}));
    let e = bad.send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unauthorized, Some("93000"))
    );
    assert!(!format!("{e} {e:?} {bad:?}").contains("secret-key-value"));
}

#[test]
fn dinky_wechat_rows_load_through_the_importer() {
    // As Dinky 1.x's form writes them: in app mode `atUsers` are the
    // recipients, and `sendUrl` ends in /cgi-bin.
    let config = Config::from_dinky(
        &json!([
          {"id": 1, "name": "app", "type": "WeChat", "enabled": 1, "params": {"sendType": "app", "corpId": "ww1",
            "secret": "corp-secret-x", "agentId": 1000002, "sendUrl": "https://qyapi.weixin.qq.com/cgi-bin",
            "atUsers": ["zhangsan"], "isAtAll": false}},
          {"id": 2, "name": "bot", "type": "WeChat", "enabled": 1, "params": {"sendType": "wechat",
            "webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=bot-key-x", "keyword": "Dinky",
            "atUsers": ["zhangsan"], "isAtAll": true}}]),
        &Value::Null,
    )
    .unwrap()
    .config;
    // The direct config keeps its own names: `atUsers` is not one of them.
    let e = Config::from_json(
        r#"{"instances": [{"name": "x", "type": "wecom", "params": {"webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "atUsers": ["a"]}}]}"#,
    )
    .map(|c| Notifier::from_config(&c).map(|_| ()))
    .unwrap()
    .unwrap_err();
    assert_eq!(e.field(), Some("params.atUsers"));
    let n = Notifier::from_config(&config).unwrap();
    let app = n.preview("app", &alert()).unwrap();
    assert_eq!(
        app[0].target,
        "https://qyapi.weixin.qq.com/cgi-bin/message/send"
    );
    assert_eq!(app[0].body["agentid"], 1000002);
    assert_eq!(app[0].body["touser"], "zhangsan");
    let bot = n.preview("bot", &alert()).unwrap();
    assert_eq!(
        bot[0].target,
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=REDACTED"
    );
    // isAtAll: markdown cannot mention everyone, so the alert goes as text.
    assert_eq!(bot[0].body["msgtype"], "text");
    assert_eq!(
        bot[0].body["text"]["mentioned_list"],
        json!(["zhangsan", "@all"])
    );
    let shown = format!(
        "{n:?} {config:?} {:?} {:?}",
        n.channel("app"),
        n.channel("bot")
    );
    assert!(
        !shown.contains("corp-secret-x") && !shown.contains("bot-key-x"),
        "{shown}"
    );
}

#[test]
fn misconfigurations_name_the_field() {
    for (params, field) in [
        (
            json!({"mode": "app", "secret": "s", "agent_id": 1, "to_users": ["u"]}),
            "params.corp_id",
        ),
        (
            json!({"mode": "app", "corp_id": "c", "agent_id": 1, "to_users": ["u"]}),
            "params.secret",
        ),
        (
            json!({"mode": "app", "corp_id": "c", "secret": "s", "to_users": ["u"]}),
            "params.agent_id",
        ),
        (
            json!({"mode": "app", "corp_id": "c", "secret": "s", "agent_id": 1}),
            "params.to_users",
        ),
        (
            json!({"mode": "app", "corp_id": "c", "secret": "s", "agent_id": "x1", "to_users": ["u"]}),
            "params.agent_id",
        ),
        (json!({"mode": "bot"}), "params.webhook"),
        (
            json!({"webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}),
            "params.webhook",
        ),
        (
            json!({"webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "msg_type": "textcard"}),
            "params.msg_type",
        ),
        (json!({"sendType": "sms"}), "params.sendType"),
    ] {
        let mut cfg = InstanceConfig::new("wc", "WeChat");
        cfg.params = params.as_object().unwrap().clone();
        let e = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap_err();
        assert_eq!(e.instance(), Some("wc"));
        assert_eq!(e.field(), Some(field), "{params}: {e}");
    }
}
