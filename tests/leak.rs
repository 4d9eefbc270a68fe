//! Secrets never leak: every channel is driven through its failure paths
//! (bad credentials, unknown tokens, refused connections, retries, rate
//! limits) with tracing captured at TRACE level, and no secret may appear in
//! an error (Display, Debug, source chain), a report, a receipt, a Debug of
//! any config or channel, or the captured log.
#![cfg(all(
    feature = "dingtalk",
    feature = "wecom",
    feature = "feishu",
    feature = "email",
    feature = "webhook",
    feature = "testkit"
))]

use std::io::Write;
use std::sync::{Arc, Mutex};

use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, Config, Notifier};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRETS: [&str; 11] = [
    "dt-token-S1",
    "SECdtsecretS2",
    "dt-app-secret-S3",
    "wc-secret-S4",
    "wc-key-S5",
    "fs-token-S6",
    "fs-sign-S7",
    "fs-app-secret-S8",
    "mail-pass-S9",
    "wh-bearer-S10",
    "wh-key-S11",
];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn describe(e: &alertkit::Error) -> String {
    let mut s = format!("{e} | {e:?}");
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(&format!(" | {x} | {x:?}"));
        src = x.source();
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_errors_reports_debug_or_logs() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let ding = FakeDingTalk::start().await;
    ding.add_robot(
        "dt-token-S1",
        RobotSpec {
            secret: Some("SECother".into()),
            keywords: vec![],
        },
    );
    ding.add_app("dingapp", "the-right-one", "robot");
    let wecom = FakeWeCom::start().await;
    wecom.add_app("ww1", "right", 1);
    let feishu = FakeFeishu::start().await;
    feishu.add_bot(
        "fs-token-S6",
        BotSpec {
            secret: Some("other".into()),
            keywords: vec![],
        },
    );
    let hook = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(401).set_body_json(serde_json::json!({"message": "bad token"})),
        )
        .mount(&hook)
        .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let fast = r#""policy": {"retry": {"min_delay_ms": 1, "max_delay_ms": 5, "max_attempts": 3}}"#;
    let config = Config::from_json(&format!(
        r#"{{"instances": [
        {{"name": "ding-sign", "type": "dingtalk", {fast},
          "params": {{"webhook": "{ding_hook}", "secret": "SECdtsecretS2"}}}},
        {{"name": "ding-down", "type": "dingtalk", {fast},
          "params": {{"webhook": "http://127.0.0.1:{closed}/robot/send?access_token=dt-token-S1", "secret": "SECdtsecretS2"}}}},
        {{"name": "ding-app", "type": "dingtalk", {fast},
          "params": {{"mode": "app", "app_key": "dingapp", "app_secret": "dt-app-secret-S3", "robot_code": "robot",
                     "user_ids": ["u1"], "base_url": "{ding}"}}}},
        {{"name": "wecom-app", "type": "wecom", {fast},
          "params": {{"mode": "app", "corp_id": "ww1", "secret": "wc-secret-S4", "agent_id": 1, "to_users": ["u"],
                     "base_url": "{wecom}"}}}},
        {{"name": "wecom-bot", "type": "wecom", {fast}, "params": {{"webhook": "{wecom}/cgi-bin/webhook/send?key=wc-key-S5"}}}},
        {{"name": "feishu-bot", "type": "feishu", {fast},
          "params": {{"webhook": "{feishu}/open-apis/bot/v2/hook/fs-token-S6", "secret": "fs-sign-S7"}}}},
        {{"name": "feishu-app", "type": "feishu", {fast},
          "params": {{"mode": "app", "app_id": "cli", "app_secret": "fs-app-secret-S8", "receive_ids": ["oc"],
                     "base_url": "{feishu}"}}}},
        {{"name": "mail", "type": "email", {fast},
          "params": {{"host": "127.0.0.1", "port": {closed}, "tls": "none", "username": "u", "password": "mail-pass-S9",
                     "from": "a@b.example", "to": ["c@d.example"]}}}},
        {{"name": "hook", "type": "webhook", {fast},
          "params": {{"url": "{hook}/x", "bearer_token": "wh-bearer-S10", "headers": {{"X-Key": "wh-key-S11"}}}}}}
      ],
      "groups": [{{"name": "all", "instances": ["ding-sign", "ding-down", "ding-app", "wecom-app", "wecom-bot",
                                              "feishu-bot", "feishu-app", "mail", "hook"]}}]}}"#,
        ding_hook = ding.webhook("dt-token-S1"),
        ding = ding.uri(),
        wecom = wecom.uri(),
        feishu = feishu.uri(),
        hook = hook.uri(),
    ))
    .unwrap();
    let n = Notifier::from_config(&config).unwrap();
    let mut shown = format!("{config:?} {n:?}");
    for i in n.instances() {
        shown.push_str(&format!(
            " {:?} {:?}",
            n.channel(&i.name),
            n.preview(&i.name, &Alert::new("p"))
        ));
    }

    // A rate limit too, so the retry path logs.
    ding.push_fault(Fault::errcode(-1, "busy"));
    let report = n.dispatch("all", &Alert::sample()).await.unwrap();
    shown.push_str(&serde_json::to_string(&report).unwrap());
    shown.push_str(&format!("{report:?}"));
    for d in &report.deliveries {
        assert!(!d.is_delivered(), "{} should fail: {d:?}", d.instance);
        shown.push_str(&describe(d.error.as_ref().unwrap()));
    }
    for i in n.instances() {
        let d = n.test_send(&i.name).await.unwrap();
        shown.push_str(&format!("{d:?}"));
    }

    let logs = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("alertkit.send"),
        "tracing was captured: {}",
        &logs[..logs.len().min(500)]
    );
    assert!(logs.contains("retrying"), "the retry path ran");
    for secret in SECRETS {
        assert!(
            !shown.contains(secret),
            "{secret} leaked into errors, reports or Debug output"
        );
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
