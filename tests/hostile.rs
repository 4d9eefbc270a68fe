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
    let ch = channel_with(
        "dingtalk",
        json!({"webhook": fake.webhook("tok")}),
        retrying(),
    );
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

async fn robot_with_markdown(source: &str) -> (Notifier, FakeDingTalk) {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let config = Config::from_value(json!({"instances": [
        {"name": "r", "type": "dingtalk", "params": {"webhook": fake.webhook("tok")},
         "templates": {"markdown": source}, "policy": {"retry": false, "rate_limit": false}}],
        "groups": [{"name": "g", "instances": ["r"]}]}))
    .unwrap();
    (Notifier::from_config(&config).unwrap(), fake)
}

/// `{{ range(100000)|join('x' * 100000000) }}` (38 characters) once aborted
/// the host on allocation: now that member fails with a template error.
#[tokio::test]
async fn a_huge_join_fails_the_member_not_the_host() {
    let (n, fake) = robot_with_markdown("{{ range(100000)|join('x' * 100000000) }}").await;
    let r = n.dispatch("g", &Alert::new("t")).await.unwrap();
    let e = r.deliveries[0].error.as_ref().expect("failed");
    assert_eq!(e.kind(), ErrorKind::Template, "{e}");
    assert!(e.message().contains("render limit"), "{e}");
    assert!(fake.requests().is_empty());
}

/// A loop printing a large body is stopped at the render limit, while
/// rendering (it would write gigabytes).
#[tokio::test]
async fn output_is_capped_while_rendering() {
    let (n, _fake) =
        robot_with_markdown("{% for i in range(100000) %}{{ body }}{% endfor %}").await;
    let started = std::time::Instant::now();
    let r = n
        .dispatch("g", &Alert::new("t").body("b".repeat(30_000)))
        .await
        .unwrap();
    let e = r.deliveries[0].error.as_ref().expect("failed");
    assert_eq!(e.kind(), ErrorKind::Template, "{e}");
    assert!(e.message().contains("render limit"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for source in [
        "{{ ('x' * 1000000)|replace('x', 'yyyyyyyyyy') }}",
        "{{ ('x\n' * 1000000)|indent(100) }}",
    ] {
        let (n, _fake) = robot_with_markdown(source).await;
        let e = n.preview("r", &Alert::new("t")).unwrap_err();
        assert!(e.message().contains("render limit"), "{source}: {e}");
    }
    // Within the limit, the filters work as minijinja's.
    let (n, fake) =
        robot_with_markdown("{{ ['a', 'b']|join('-') }} {{ 'ab'|replace('b', 'c') }}").await;
    let r = n.dispatch("g", &Alert::new("t")).await.unwrap();
    assert_eq!(r.deliveries[0].outcome, alertkit::Outcome::Delivered);
    assert_eq!(fake.accepted()[0].body["markdown"]["text"], "a-b ac");
}

/// A Slack-style webhook with its token in the path: never shown whole in
/// `Debug`, errors or previews.
#[tokio::test]
async fn path_tokens_are_redacted_everywhere() {
    let secret = "XyZ0123456789abcdefGHIJKL";
    let url = format!("http://127.0.0.1:9/services/T0001/B0001/{secret}");
    let cfg = InstanceConfig::new("slack", "webhook")
        .param("url", url.as_str())
        .policy(PolicyConfig::off());
    assert!(!format!("{cfg:?}").contains(secret), "{cfg:?}");
    let n = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap();
    let previews = n.preview("slack", &Alert::new("t")).unwrap();
    assert!(
        !previews[0].target.contains(secret),
        "{}",
        previews[0].target
    );
    let e = n
        .channel("slack")
        .unwrap()
        .send(&Alert::new("t"))
        .await
        .unwrap_err();
    assert!(!e.to_string().contains(secret), "{e}");
    assert!(!format!("{e:?}").contains(secret), "{e:?}");
}

/// A platform that echoes the request's credentials in its error message.
#[tokio::test]
async fn platform_messages_lose_echoed_credentials() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok0123456789abcdef",
        RobotSpec {
            secret: Some("SECabcdef0123456789".into()),
            keywords: vec![],
        },
    );
    let ch = channel_with(
        "dingtalk",
        json!({"webhook": fake.webhook("tok0123456789abcdef"), "secret": "SECabcdef0123456789"}),
        PolicyConfig::off(),
    );
    fake.push_fault(Fault::errcode(
        310000,
        &format!(
            "sign not match, access_token=tok0123456789abcdef, secret SECabcdef0123456789, sign: dGhpcyBpcyBhIHNpZ25hdHVyZSBvZiB0aGUgcmVxdWVzdA== {}",
            "x".repeat(5000)
        ),
    ));
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    let text = e.to_string();
    for leaked in ["tok0123456789abcdef", "SECabcdef0123456789", "dGhpcyBpcyBh"] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
    assert!(e.message().len() <= 1100, "capped: {}", e.message().len());
    assert!(
        text.contains("sign not match"),
        "the message is kept: {text}"
    );
}

/// A channel that echoes its credentials, as an SMTP server echoing
/// `AUTH PLAIN` would: the core takes them out of whatever any channel says.
#[tokio::test]
async fn any_channel_error_loses_its_instance_secrets() {
    use alertkit::{BuildContext, Error, Receipt, Registry, async_trait};
    use base64::Engine as _;
    #[derive(Debug)]
    struct Echo(String, String);
    #[async_trait]
    impl AlertChannel for Echo {
        async fn send(&self, _: &Alert) -> alertkit::Result<Receipt> {
            let blob = base64::engine::general_purpose::STANDARD
                .encode(format!("\0{}\0{}", self.0, self.1));
            Err(Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "535 5.7.8 authentication failed for AUTH PLAIN {blob} (password {})",
                    self.1
                ),
            ))
        }
    }
    let mut registry = Registry::default();
    registry.register("echo", |ctx: &BuildContext<'_>| {
        let p = ctx.raw_params();
        let s = |k: &str| p[k].as_str().unwrap().to_owned();
        Ok(Arc::new(Echo(s("username"), s("password"))) as Arc<dyn AlertChannel>)
    });
    let config = Config::from_value(json!({"instances": [{"name": "e", "type": "echo",
        "params": {"username": "alerts", "password": "hunter2-pw"},
        "policy": {"retry": false, "rate_limit": false}}]}))
    .unwrap();
    let n = Notifier::from_config_with(&config, registry, alertkit::Http::new()).unwrap();
    let e = n
        .channel("e")
        .unwrap()
        .send(&Alert::new("t"))
        .await
        .unwrap_err();
    let blob = base64::engine::general_purpose::STANDARD.encode("\0alerts\0hunter2-pw");
    assert!(
        !e.message().contains("hunter2-pw") && !e.message().contains(&blob),
        "{e}"
    );
    assert!(e.message().starts_with("535 5.7.8"), "{e}");
}
