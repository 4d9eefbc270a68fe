//! One conformance suite, run against every channel in the sandbox: happy
//! path, bad credentials, rate limit, oversize, timeout, token expiry,
//! dropped connections.
#![cfg(all(
    feature = "dingtalk",
    feature = "wecom",
    feature = "feishu",
    feature = "email",
    feature = "testkit"
))]

use std::time::Duration;

use alertkit::policy::PolicyConfig;
use alertkit::testkit::{Fault, Sandbox};
use alertkit::{Alert, AlertGroup, Config, ErrorKind, InstanceConfig, Notifier, Outcome};
use serde_json::json;

const CHANNELS: [&str; 4] = ["dingtalk", "wecom", "feishu", "email"];

fn build(sandbox: &Sandbox, edit: impl Fn(&mut InstanceConfig)) -> Notifier {
    let mut config = Config::default();
    for mut i in sandbox.instances() {
        i.policy = PolicyConfig::off();
        edit(&mut i);
        config = config.with_instance(i);
    }
    Notifier::from_config(&config).unwrap()
}

/// Sends the sample alert through instance `name`.
async fn send_sample(n: &Notifier, name: &str) -> alertkit::Result<alertkit::Receipt> {
    n.channel(name).unwrap().send(&Alert::sample()).await
}

fn received(sandbox: &Sandbox, name: &str) -> usize {
    match name {
        "dingtalk" => sandbox.dingtalk.accepted().len(),
        "wecom" => sandbox.wecom.accepted().len(),
        "feishu" => sandbox.feishu.accepted().len(),
        _ => sandbox.smtp.messages().len(),
    }
}

#[tokio::test]
async fn happy_path_on_every_channel() {
    let sandbox = Sandbox::start().await.unwrap();
    let n = build(&sandbox, |_| {});
    for name in CHANNELS {
        let r = send_sample(&n, name).await;
        assert!(r.is_ok(), "{name}: {r:?}");
        assert_eq!(received(&sandbox, name), 1, "{name}");
    }
}

#[tokio::test]
async fn bad_credentials_are_permanent_on_every_channel() {
    let sandbox = Sandbox::start().await.unwrap();
    let n = build(&sandbox, |i| {
        let bad = match i.name.as_str() {
            "dingtalk" => ("secret", json!("SECwrong")),
            "wecom" => ("webhook", json!(sandbox.wecom.webhook("wrong-key"))),
            "feishu" => ("secret", json!("wrong")),
            _ => ("password", json!("wrong")),
        };
        i.params.insert(bad.0.into(), bad.1);
    });
    for (name, kind) in [
        ("dingtalk", ErrorKind::SignatureMismatch),
        ("wecom", ErrorKind::Unauthorized),
        ("feishu", ErrorKind::SignatureMismatch),
        ("email", ErrorKind::Unauthorized),
    ] {
        let e = send_sample(&n, name).await.unwrap_err();
        assert_eq!((e.kind(), e.is_retryable()), (kind, false), "{name}: {e}");
        assert_eq!(received(&sandbox, name), 0, "{name}");
    }
}

#[tokio::test]
async fn platform_rate_limits_are_retryable_on_every_im_channel() {
    let sandbox = Sandbox::start().await.unwrap();
    let n = build(&sandbox, |_| {});
    sandbox.dingtalk.push_fault(Fault::errcode(
        130101,
        "send too fast, exceed 20 times per minute",
    ));
    sandbox
        .wecom
        .push_fault(Fault::errcode(45009, "api freq out of limit"));
    sandbox
        .feishu
        .push_fault(Fault::code(400, 9499, "too many request"));
    for name in ["dingtalk", "wecom", "feishu"] {
        let e = send_sample(&n, name).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::RateLimited, true),
            "{name}: {e}"
        );
        assert!(e.retry_after().is_some(), "{name}");
    }
}

#[tokio::test]
async fn oversized_alerts_are_delivered_within_each_limit() {
    let sandbox = Sandbox::start().await.unwrap();
    let n = build(&sandbox, |_| {});
    let huge = Alert::sample().body("告警详情 \"x\"\n".repeat(3000));
    for name in CHANNELS {
        let r = n.channel(name).unwrap().send(&huge).await;
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    assert!(sandbox.dingtalk.accepted()[0].body_len <= 20_000);
    assert!(
        sandbox.wecom.accepted()[0].body["markdown"]["content"]
            .as_str()
            .unwrap()
            .len()
            <= 4096
    );
    assert!(sandbox.feishu.accepted()[0].body_len <= 20_000);
    assert!(
        sandbox.smtp.messages()[0].data.len() > 30_000,
        "email carries it whole"
    );
}

#[tokio::test]
async fn slow_platforms_time_out_without_holding_the_others() {
    let sandbox = Sandbox::start().await.unwrap();
    let n = build(&sandbox, |_| {});
    sandbox
        .dingtalk
        .push_fault(Fault::Delay(Duration::from_secs(3)));
    sandbox
        .wecom
        .push_fault(Fault::Delay(Duration::from_secs(3)));
    sandbox
        .feishu
        .push_fault(Fault::Delay(Duration::from_secs(3)));
    let mut group = AlertGroup::new("g").timeout(Duration::from_millis(500));
    for name in CHANNELS {
        group = group.with_member(name, n.channel(name).unwrap());
    }
    let started = std::time::Instant::now();
    let report = group.dispatch(&Alert::sample()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    for d in &report.deliveries[..3] {
        assert_eq!(d.outcome, Outcome::TimedOut, "{}", d.instance);
    }
    assert_eq!(report.deliveries[3].outcome, Outcome::Delivered);
}

#[tokio::test]
async fn expired_tokens_are_refreshed_once_on_every_app_channel() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.dingtalk.add_app("dingapp", "ding-secret", "robot");
    sandbox.wecom.add_app("ww1", "wecom-secret", 1);
    sandbox.wecom.add_recipients(&["u1"], &[], &[]);
    sandbox.feishu.add_app("cli", "feishu-secret");
    sandbox.feishu.add_receiver("chat_id", "oc1");
    let config = Config::from_json(&format!(
        r#"{{"instances": [
        {{"name": "dingtalk", "type": "dingtalk", "policy": {{"retry": false, "rate_limit": false}},
          "params": {{"mode": "app", "app_key": "dingapp", "app_secret": "ding-secret", "robot_code": "robot",
                     "user_ids": ["u1"], "base_url": "{}"}}}},
        {{"name": "wecom", "type": "wecom", "policy": {{"retry": false, "rate_limit": false}},
          "params": {{"mode": "app", "corp_id": "ww1", "secret": "wecom-secret", "agent_id": 1, "to_users": ["u1"],
                     "base_url": "{}"}}}},
        {{"name": "feishu", "type": "feishu", "policy": {{"retry": false, "rate_limit": false}},
          "params": {{"mode": "app", "app_id": "cli", "app_secret": "feishu-secret", "receive_ids": ["oc1"],
                     "base_url": "{}"}}}}]}}"#,
        sandbox.dingtalk.uri(),
        sandbox.wecom.uri(),
        sandbox.feishu.uri()
    ))
    .unwrap();
    let n = Notifier::from_config(&config).unwrap();
    for name in ["dingtalk", "wecom", "feishu"] {
        send_sample(&n, name).await.unwrap();
    }
    sandbox.dingtalk.expire_tokens();
    sandbox.wecom.expire_tokens();
    sandbox.feishu.expire_tokens();
    for name in ["dingtalk", "wecom", "feishu"] {
        let r = send_sample(&n, name).await;
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    assert_eq!(sandbox.dingtalk.token_fetches(), 2);
    assert_eq!(sandbox.wecom.token_fetches(), 2);
    assert_eq!(sandbox.feishu.token_fetches(), 2);
}

#[tokio::test]
async fn dropped_connections_are_retryable_and_retried_on_every_im_channel() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.dingtalk.push_fault(Fault::Drop);
    sandbox.wecom.push_fault(Fault::Drop);
    sandbox.feishu.push_fault(Fault::Drop);
    // Without a retry policy: a transport error the caller may retry.
    let n = build(&sandbox, |_| {});
    for name in ["dingtalk", "wecom", "feishu"] {
        let e = send_sample(&n, name).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::Transport, true),
            "{name}: {e}"
        );
        assert_eq!(received(&sandbox, name), 0, "{name}");
    }
    let dropped = sandbox.dingtalk.requests();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].status, 0, "recorded as dropped");
    assert!(
        dropped[0].query.contains_key("sign"),
        "the request was read whole"
    );

    // With the default retry policy: delivered once, on the second attempt.
    sandbox.dingtalk.push_fault(Fault::Drop);
    sandbox.wecom.push_fault(Fault::Drop);
    sandbox.feishu.push_fault(Fault::Drop);
    let n = build(&sandbox, |i| i.policy = PolicyConfig::default());
    for name in ["dingtalk", "wecom", "feishu"] {
        let receipt = send_sample(&n, name).await.unwrap();
        assert_eq!(receipt.attempts, 2, "{name}");
        assert_eq!(received(&sandbox, name), 1, "{name}");
    }
    assert_eq!(sandbox.wecom.requests().len(), 3, "1 + (dropped, resent)");
}
