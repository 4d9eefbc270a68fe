//! Hostile servers and hostile input (issue 15): nothing a server answers or
//! an alert holds can panic the host, leak a secret or page people the
//! alert did not name.
#![cfg(all(
    feature = "dingtalk",
    feature = "feishu",
    feature = "wecom",
    feature = "testkit"
))]

use std::sync::Arc;
use std::time::Duration;

use alertkit::policy::{PolicyConfig, RetryPolicy, Toggle};
use alertkit::testkit::Fault;
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, AlertChannel, Config, ErrorKind, InstanceConfig, Notifier};
use serde_json::{Value, json};

fn channel_with(kind: &str, params: Value, policy: PolicyConfig) -> Arc<dyn AlertChannel> {
    let cfg = params.as_object().unwrap().iter().fold(
        InstanceConfig::new("x", kind).policy(policy),
        |c, (k, v)| c.param(k.clone(), v.clone()),
    );
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("x")
        .unwrap()
}

fn retrying() -> PolicyConfig {
    let mut p = PolicyConfig::off();
    p.retry = Toggle::On(
        serde_json::from_value::<RetryPolicy>(
            json!({"max_attempts": 3, "min_delay_ms": 10, "max_delay_ms": 20, "max_elapsed_ms": 2000}),
        )
        .unwrap(),
    );
    p
}

/// `Retry-After: 18446744073709551615` once panicked ("overflow when adding
/// durations"): now the wait saturates and the retry gives up in time.
#[tokio::test]
async fn an_endless_retry_after_neither_panics_nor_waits() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let ch = channel_with("dingtalk", json!({"webhook": fake.webhook("tok")}), retrying());
    fake.push_fault(Fault::Raw {
        status: 429,
        headers: vec![("retry-after".into(), "18446744073709551615".into())],
        body: String::new(),
    });
    let started = std::time::Instant::now();
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.retry_after().unwrap() <= Duration::from_secs(86_400));
}

/// A token "valid for ever" once overflowed the cache's clock.
#[tokio::test]
async fn an_endless_token_lifetime_does_not_panic() {
    let fake = FakeWeCom::start().await;
    fake.add_app("ww-corp", "corp-secret-value", 1000002);
    fake.add_recipients(&["u1"], &[], &[]);
    fake.push_fault_on(
        "gettoken",
        Fault::Reply(
            200,
            json!({"errcode": 0, "errmsg": "ok", "access_token": "forever", "expires_in": u64::MAX}),
        ),
    );
    let ch = channel_with(
        "wecom",
        json!({"mode": "app", "corp_id": "ww-corp", "secret": "corp-secret-value",
               "agent_id": 1000002, "to_users": ["u1"], "base_url": fake.uri()}),
        PolicyConfig::off(),
    );
    // The fake does not know the token "forever": the send refreshes once.
    let _ = ch.send(&Alert::new("t")).await;
}
