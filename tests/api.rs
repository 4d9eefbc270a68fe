//! The 1.0 API pieces hosts rely on (issue 19, in part): reports a host can
//! store and load, config read back and saved as it was, not-found as its
//! own kind, several dispatch observers.
#![cfg(all(feature = "dingtalk", feature = "testkit"))]

use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
use alertkit::testkit::recording_registry;
use alertkit::{Alert, Config, DispatchReport, ErrorKind, GroupStatus, Http, Notifier, Outcome};

#[tokio::test]
async fn a_real_report_round_trips_through_json() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    fake.push_fault(Fault::errcode(310000, "keywords not in content"));
    let config = Config::from_value(serde_json::json!({
        "instances": [
            {"name": "bad", "type": "dingtalk", "params": {"webhook": fake.webhook("tok")},
             "policy": {"retry": false, "rate_limit": false}},
            {"name": "ok", "type": "recording"}],
        "groups": [{"name": "g", "instances": ["bad", "ok"], "repeat_interval_secs": 60}]}))
    .unwrap();
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    let alert = Alert::new("orders-etl FAILED");
    let report = n.dispatch("g", &alert).await.unwrap();
    assert_eq!(report.status, GroupStatus::Partial);
    assert_eq!(report.title, "orders-etl FAILED");
    assert_eq!(report.fingerprint, alert.fingerprint());
    assert!(report.dispatched_at.is_some());
    let json = serde_json::to_value(&report).unwrap();
    let back: DispatchReport = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
    let e = back.deliveries[0].error.as_ref().unwrap();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::KeywordMissing, Some("310000"))
    );
    // A suppressed repeat reads back too.
    let again = n.dispatch("g", &alert).await.unwrap();
    let back: DispatchReport =
        serde_json::from_value(serde_json::to_value(&again).unwrap()).unwrap();
    assert!(
        back.deliveries
            .iter()
            .any(|d| d.outcome == Outcome::Suppressed),
        "{back:?}"
    );
}

#[test]
fn every_error_kind_parses_back() {
    for name in [
        "rate_limited",
        "token_expired",
        "unauthorized",
        "ip_not_allowed",
        "keyword_missing",
        "signature_mismatch",
        "payload_too_large",
        "invalid_recipient",
        "invalid_content",
        "invalid_config",
        "template",
        "timeout",
        "transport",
        "platform",
        "unsupported",
        "internal",
        "shut_down",
        "not_found",
    ] {
        let k: ErrorKind = name.parse().unwrap();
        assert_eq!(k.as_str(), name);
    }
}

#[tokio::test]
async fn unknown_names_are_not_found_not_invalid_config() {
    let config = Config::from_json(
        r#"{"instances": [{"name": "ops", "type": "recording"}], "groups": [{"name": "g", "instances": ["ops"]}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    let e = n.dispatch("nope", &Alert::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = n.test_send("nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        n.remove_group("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// A configured retry or rate policy is written back with its settings
/// (it once came back as `true`, the defaults).
#[test]
fn the_live_config_saves_and_loads_as_it_was() {
    let config = Config::from_json(
        r#"{"instances": [{"name": "ops", "type": "recording", "timeout_ms": 5000,
              "policy": {"retry": {"max_attempts": 2, "min_delay_ms": 100},
                         "rate_limit": {"queue_bound": 50, "rates": [{"count": 3, "per_ms": 1000}]}}},
            {"name": "plain", "type": "recording", "policy": {"retry": false}}],
            "groups": [{"name": "g", "instances": ["ops", "plain"], "repeat_interval_secs": 600}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    let saved = serde_json::to_string(&n.config()).unwrap();
    let loaded = Config::from_json(&saved).unwrap();
    assert_eq!(loaded, config, "{saved}");
}

/// `Config::from_toml` reads what `from_json` reads, and its errors name
/// the field's path without the value found there.
#[cfg(feature = "toml")]
#[test]
fn toml_config_equals_json_config_and_errors_name_the_path() {
    let from_toml = Config::from_toml(
        r#"
        [[instances]]
        name = "ops-mail"
        type = "email"
        timeout_ms = 5000
        params = { host = "smtp.example.com", port = 465, to = ["ops@example.com"] }
        policy = { retry = { max_attempts = 2, min_delay_ms = 100 } }

        [[instances]]
        name = "mem"
        type = "recording"
        enabled = false

        [[groups]]
        name = "flink-prod"
        instances = ["ops-mail", "mem"]
        repeat_interval_secs = 600
        fallbacks = { ops-mail = ["mem"] }
        "#,
    )
    .unwrap();
    let from_json = Config::from_json(
        r#"{"instances": [
            {"name": "ops-mail", "type": "email", "timeout_ms": 5000,
             "params": {"host": "smtp.example.com", "port": 465, "to": ["ops@example.com"]},
             "policy": {"retry": {"max_attempts": 2, "min_delay_ms": 100}}},
            {"name": "mem", "type": "recording", "enabled": false}],
           "groups": [{"name": "flink-prod", "instances": ["ops-mail", "mem"],
                       "repeat_interval_secs": 600, "fallbacks": {"ops-mail": ["mem"]}}]}"#,
    )
    .unwrap();
    assert_eq!(from_toml, from_json);

    // The same mistake, the same error from both formats.
    let bad_toml = "[[instances]]\nname = \"a\"\ntype = \"email\"\ntimeout_ms = \"s3cret\"\n";
    let bad_json = r#"{"instances": [{"name": "a", "type": "email", "timeout_ms": "s3cret"}]}"#;
    let (t, j) = (
        Config::from_toml(bad_toml).unwrap_err(),
        Config::from_json(bad_json).unwrap_err(),
    );
    assert_eq!(t.kind(), ErrorKind::InvalidConfig);
    assert_eq!(t.field(), Some("instances[0].timeout_ms"), "{t}");
    assert_eq!((t.field(), t.kind()), (j.field(), j.kind()));
    assert!(!t.to_string().contains("s3cret"), "{t}");
    let e = Config::from_toml("[[groups]]\nname = \"g\"\nmembers = [\"a\"]\n").unwrap_err();
    assert_eq!(e.field(), Some("groups[0].members"), "{e}");
    assert!(e.message().contains("unknown field `members`"), "{e}");
    let e = Config::from_toml("[[instances]]\ntype = \"email\"\n").unwrap_err();
    assert_eq!(e.field(), Some("instances[0].name"), "{e}");

    // A param of the wrong type is found when the instance is built.
    let config = Config::from_toml(
        "[[instances]]\nname = \"ops-mail\"\ntype = \"email\"\n\
         params = { host = \"smtp.example.com\", port = [\"s3cret\"], to = [\"a@b.c\"] }\n",
    )
    .unwrap();
    let e = Notifier::from_config(&config).unwrap_err();
    assert_eq!(
        (e.instance(), e.field()),
        (Some("ops-mail"), Some("params.port")),
        "{e}"
    );
    assert!(!e.to_string().contains("s3cret"), "{e}");

    // A syntax error names the line, never the line's text.
    let e = Config::from_toml("[[instances]]\nname = \"a\"\ntype = \"s3cret\n").unwrap_err();
    assert_eq!(e.field(), Some("config"), "{e}");
    assert!(e.message().contains("line 3"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

/// `Error::http_status` is the answer's status, apart from the platform's
/// code, and survives a stored report.
#[tokio::test]
async fn errors_carry_the_http_status_apart_from_the_platform_code() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let config = Config::from_value(serde_json::json!({
        "instances": [{"name": "ops", "type": "dingtalk", "params": {"webhook": fake.webhook("tok")},
                       "policy": {"retry": false, "rate_limit": false}}],
        "groups": [{"name": "g", "instances": ["ops"]}]}))
    .unwrap();
    let n = Notifier::from_config(&config).unwrap();
    let ops = n.channel("ops").unwrap();

    // A gateway's 503 page: no platform code, the status says it.
    fake.push_fault(Fault::Raw {
        status: 503,
        headers: vec![("content-type".into(), "text/html".into())],
        body: "<html>Service Unavailable</html>".into(),
    });
    let e = ops.send(&Alert::new("a")).await.unwrap_err();
    assert_eq!(e.http_status(), Some(503), "{e}");
    assert!(e.is_retryable(), "{e}");

    // 429 with Retry-After.
    fake.push_fault(Fault::Raw {
        status: 429,
        headers: vec![("retry-after".into(), "7".into())],
        body: String::new(),
    });
    let e = ops.send(&Alert::new("b")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.http_status()),
        (ErrorKind::RateLimited, Some(429))
    );
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));

    // HTTP 200 with an errcode: both, each in its place.
    fake.push_fault(Fault::errcode(310000, "keywords not in content"));
    let e = ops.send(&Alert::new("c")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.http_status()),
        (ErrorKind::KeywordMissing, Some("310000"), Some(200))
    );

    // Through a report and back.
    fake.push_fault(Fault::errcode(310000, "keywords not in content"));
    let report = n.dispatch("g", &Alert::new("d")).await.unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["deliveries"][0]["error"]["http_status"], 200, "{json}");
    let back: DispatchReport = serde_json::from_value(json).unwrap();
    let e = back.deliveries[0].error.as_ref().unwrap();
    assert_eq!((e.code(), e.http_status()), (Some("310000"), Some(200)));

    // A webhook whose API answers 200 with an error field, then 429.
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": false, "msg": "channel_not_found"})),
        )
        .up_to_n_times(1)
        .mount(&api)
        .await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(429))
        .mount(&api)
        .await;
    let config = Config::from_value(serde_json::json!({
        "instances": [{"name": "hook", "type": "webhook",
                       "params": {"url": api.uri(), "success": {"json_pointer": "/ok", "equals": true}},
                       "policy": {"retry": false, "rate_limit": false}}]}))
    .unwrap();
    let hooks = Notifier::from_config(&config).unwrap();
    let hook = hooks.channel("hook").unwrap();
    let e = hook.send(&Alert::new("f")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.http_status()),
        (Some("false"), Some(200)),
        "{e}"
    );
    let e = hook.send(&Alert::new("g")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.http_status()),
        (ErrorKind::RateLimited, Some(429)),
        "{e}"
    );

    // No answer, no status.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = Config::from_value(serde_json::json!({
        "instances": [{"name": "dead", "type": "dingtalk",
                       "params": {"webhook": format!("http://127.0.0.1:{port}/robot/send?access_token=tok")},
                       "policy": {"retry": false, "rate_limit": false}}]}))
    .unwrap();
    let dead = Notifier::from_config(&config).unwrap();
    let e = dead
        .channel("dead")
        .unwrap()
        .send(&Alert::new("e"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.http_status()),
        (ErrorKind::Transport, None),
        "{e}"
    );
}

/// docs.rs lists the features from the `##` comments in Cargo.toml
/// (`document-features`): every feature a user can turn on has one.
#[test]
fn every_feature_is_documented_for_docs_rs() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("Cargo.toml");
    let features = manifest
        .split("\n[features]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [features] table");
    let mut documented = false;
    let mut names = Vec::new();
    for line in features.lines().map(str::trim) {
        if line.starts_with("## ") {
            documented = true;
        } else if let Some((name, _)) = line.split_once(" = ")
            && !line.starts_with('#')
        {
            names.push(name);
            let exempt = ["default", "document-features"].contains(&name);
            assert!(
                documented || exempt,
                "feature `{name}` has no `## ` comment"
            );
            documented = false;
        }
    }
    assert!(
        names.contains(&"toml") && names.contains(&"testkit"),
        "{names:?}"
    );
}

/// The registry moved to `alertkit::registry`; the old paths name the same
/// types, so code written against them still builds.
#[test]
fn the_registry_keeps_its_old_paths() {
    fn same<T>(_: std::marker::PhantomData<T>, _: std::marker::PhantomData<T>) {}
    use std::marker::PhantomData as P;
    same(
        P::<alertkit::config::Registry>,
        P::<alertkit::registry::Registry>,
    );
    same(P::<alertkit::Registry>, P::<alertkit::registry::Registry>);
    same(
        P::<alertkit::config::BuildContext<'static>>,
        P::<alertkit::BuildContext<'static>>,
    );
    fn factory<F: alertkit::config::ChannelFactory>(_: F) {}
    factory(|_: &alertkit::BuildContext<'_>| -> alertkit::Result<std::sync::Arc<dyn alertkit::AlertChannel>> {
        Ok(std::sync::Arc::new(alertkit::testkit::RecordingChannel::new()))
    });
    assert!(alertkit::Registry::default().contains("WeChat"));
}

/// A channel that fails (retryably) `fails` times, then delivers.
#[derive(Debug)]
struct Flaky {
    fails: std::sync::atomic::AtomicUsize,
}

#[alertkit::async_trait]
impl alertkit::AlertChannel for Flaky {
    async fn send(&self, _: &Alert) -> alertkit::Result<alertkit::Receipt> {
        let left = self.fails.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.fails
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(alertkit::Error::new(
                ErrorKind::Transport,
                "connection reset",
            ));
        }
        Ok(alertkit::Receipt::new())
    }
}

/// Counts the calls it sees; refuses alerts of another tenant.
#[derive(Debug)]
struct Host {
    inner: std::sync::Arc<dyn alertkit::AlertChannel>,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tenant: String,
}

#[alertkit::async_trait]
impl alertkit::AlertChannel for Host {
    async fn send(&self, alert: &Alert) -> alertkit::Result<alertkit::Receipt> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if alert.labels.get("tenant") != Some(&self.tenant) {
            return Err(alertkit::Error::new(
                ErrorKind::InvalidRecipient,
                "another tenant's alert",
            )
            .with_retryable(false));
        }
        self.inner.send(alert).await
    }
}

/// Issue 19: host middleware wraps every member in the order the host
/// chooses, the built-in retry and rate limit being layers too.
#[tokio::test]
async fn host_layers_compose_with_the_builtin_policies_in_the_order_given() {
    use alertkit::policy::Stack;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let run = |outside: bool| async move {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let layer = move |inner: Arc<dyn alertkit::AlertChannel>, i: &alertkit::InstanceConfig| {
            Arc::new(Host {
                inner,
                calls: c.clone(),
                tenant: i.params["tenant"].as_str().unwrap().to_owned(),
            }) as Arc<dyn alertkit::AlertChannel>
        };
        let stack = if outside {
            Stack::default().layer(layer)
        } else {
            Stack::new().rate_limit().layer(layer).retry()
        };
        let mut registry = alertkit::Registry::default();
        registry
            .register("flaky", |_: &alertkit::BuildContext<'_>| {
                Ok(Arc::new(Flaky {
                    fails: AtomicUsize::new(2),
                }) as Arc<dyn alertkit::AlertChannel>)
            })
            .unwrap();
        let n = Notifier::new(registry, Http::new()).layers(stack);
        n.apply(
            &Config::from_json(
                r#"{"instances": [{"name": "a", "type": "flaky", "params": {"tenant": "a"},
                    "policy": {"retry": {"max_attempts": 4, "min_delay_ms": 1, "max_delay_ms": 2}}}],
                    "groups": [{"name": "g", "instances": ["a"]}]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        let ok = n
            .dispatch("g", &Alert::new("x").label("tenant", "a"))
            .await
            .unwrap();
        let other = n
            .dispatch("g", &Alert::new("y").label("tenant", "b"))
            .await
            .unwrap();
        (ok, other, calls.load(Ordering::SeqCst))
    };
    // Outside the retry: one call per dispatch.
    let (ok, other, calls) = run(true).await;
    assert_eq!(ok.status, GroupStatus::Delivered);
    assert_eq!(ok.deliveries[0].attempts, 3);
    assert_eq!(
        other.deliveries[0].error.as_ref().unwrap().kind(),
        ErrorKind::InvalidRecipient
    );
    assert_eq!(calls, 2);
    // Inside: it sees every attempt.
    let (ok, _, calls) = run(false).await;
    assert_eq!(ok.status, GroupStatus::Delivered);
    assert_eq!(calls, 3 + 1);
}

/// Issue 19: an async sink gets every report without holding up dispatch;
/// a sink that falls behind loses reports for itself only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_sink_gets_reports_without_blocking_dispatch() {
    let config = Config::from_json(
        r#"{"instances": [{"name": "ops", "type": "recording"}],
            "groups": [{"name": "g", "instances": ["ops"]}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    let mut slow = n.report_sink(2); // never read until the end
    let mut fast = n.report_sink(100);
    let started = std::time::Instant::now();
    for i in 0..10 {
        n.dispatch("g", &Alert::new(format!("a{i}"))).await.unwrap();
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let mut got = Vec::new();
    while let Ok((alert, report)) = fast.try_recv() {
        assert_eq!(report.status, GroupStatus::Delivered);
        got.push(alert.title);
    }
    assert_eq!(got.len(), 10);
    let mut slow_got = 0;
    while slow.try_recv().is_ok() {
        slow_got += 1;
    }
    assert_eq!(slow_got, 2, "a full sink takes no more");
}
