//! "The report is the truth" (issue 14): digests never cross recipients,
//! dedup is atomic, a notifier survives the runtimes it is used from, and
//! shutdown flushes or names what it could not deliver.
#![cfg(all(feature = "wecom", feature = "dingtalk", feature = "testkit"))]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alertkit::policy::{PolicyConfig, RateLimitPolicy, RateSpec, Toggle};
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::recording_registry;
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{
    Alert, AlertChannel, Config, GroupConfig, GroupStatus, Http, InstanceConfig, Notifier, Outcome,
    Receipt, async_trait,
};
use serde_json::json;

fn limited(per_ms: u64, count: u32) -> PolicyConfig {
    let mut p = PolicyConfig::off();
    let mut rl = RateLimitPolicy::default();
    rl.rates = Some(vec![RateSpec { count, per_ms }]);
    p.rate_limit = Toggle::On(rl);
    p
}

fn wecom_app(fake: &FakeWeCom, name: &str, users: &[&str], policy: PolicyConfig) -> InstanceConfig {
    let mut cfg = InstanceConfig::new(name, "wecom").policy(policy);
    cfg.params = json!({"mode": "app", "corp_id": "ww-corp", "secret": "corp-secret-value",
                        "agent_id": 1000002, "to_users": users, "base_url": fake.uri()})
    .as_object()
    .unwrap()
    .clone();
    cfg
}

/// Two app instances on one corp/agent with different recipients, in
/// different groups, under a 40-alert burst: every message reaches only its
/// own instance's users, and every alert reaches its own users once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_never_cross_recipients() {
    let fake = FakeWeCom::start().await;
    fake.add_app("ww-corp", "corp-secret-value", 1000002);
    fake.add_recipients(&["ops1", "ops2", "fin1"], &[], &[]);
    let n = Arc::new(
        Notifier::from_config(
            &Config::default()
                .with_instance(wecom_app(&fake, "ops", &["ops1", "ops2"], limited(1000, 2)))
                .with_instance(wecom_app(&fake, "finance", &["fin1"], limited(1000, 2)))
                .with_group(GroupConfig::new("ops-g", ["ops"]))
                .with_group(GroupConfig::new("fin-g", ["finance"])),
        )
        .unwrap(),
    );
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let n = n.clone();
            let (group, tag) = if i % 2 == 0 {
                ("ops-g", "OPS")
            } else {
                ("fin-g", "FIN")
            };
            tokio::spawn(async move {
                n.dispatch(group, &Alert::new(format!("{tag}-{i:02} FAILED")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        let report = t.await.unwrap();
        assert_eq!(report.status, GroupStatus::Delivered, "{report:?}");
    }
    let sends: Vec<_> = fake
        .accepted()
        .into_iter()
        .filter(|r| r.path == "/cgi-bin/message/send")
        .collect();
    let mut seen = vec![0usize; 40];
    for r in &sends {
        let users = r.body["touser"].as_str().unwrap().to_owned();
        let text = r.body.to_string();
        let (ops, fin) = (text.contains("OPS-"), text.contains("FIN-"));
        assert!(
            !(ops && fin),
            "one message mixes both groups' alerts: {text}"
        );
        if ops {
            assert_eq!(users, "ops1|ops2", "an ops alert went to {users}");
        }
        if fin {
            assert_eq!(users, "fin1", "a finance alert went to {users}");
        }
        for (i, s) in seen.iter_mut().enumerate() {
            let tag = if i % 2 == 0 { "OPS" } else { "FIN" };
            *s += text.matches(&format!("{tag}-{i:02} ")).count();
        }
    }
    assert!(
        seen.iter().all(|&s| s == 1),
        "each alert exactly once: {seen:?}"
    );
    assert!(
        sends.len() < 40,
        "the backlog was coalesced: {} requests",
        sends.len()
    );
}

/// A channel that counts sends and takes a while, so concurrent dispatches overlap.
#[derive(Debug, Default)]
struct Slow {
    sent: AtomicUsize,
}

#[async_trait]
impl AlertChannel for Slow {
    async fn send(&self, _: &Alert) -> alertkit::Result<Receipt> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(Receipt::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_identical_alerts_deliver_once() {
    let slow = Arc::new(Slow::default());
    let group = Arc::new(
        alertkit::AlertGroup::new("g")
            .with_member("slow", slow.clone())
            .repeat_interval(Duration::from_secs(300)),
    );
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let g = group.clone();
            tokio::spawn(async move { g.dispatch(&Alert::new("orders-etl FAILED")).await })
        })
        .collect();
    let mut delivered = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.deliveries[0].outcome {
            Outcome::Delivered => delivered += 1,
            Outcome::Suppressed => {}
            o => panic!("unexpected outcome {o:?}"),
        }
    }
    assert_eq!(slow.sent.load(Ordering::SeqCst), 1);
    assert_eq!(delivered, 1);
}

#[tokio::test]
async fn a_host_dedup_key_joins_alerts_and_their_resolution() {
    let slow = Arc::new(Slow::default());
    let group = alertkit::AlertGroup::new("g")
        .with_member("slow", slow.clone())
        .repeat_interval(Duration::from_secs(300));
    let a = Alert::new("orders-etl FAILED").dedup_key("orders-etl");
    let b = Alert::new("orders-etl failed again (attempt 2)").dedup_key("orders-etl");
    assert_eq!(a.fingerprint(), b.fingerprint());
    let resolved = Alert::new("orders-etl RUNNING again")
        .dedup_key("orders-etl")
        .resolved();
    assert_eq!(
        group.dispatch(&a).await.deliveries[0].outcome,
        Outcome::Delivered
    );
    assert_eq!(
        group.dispatch(&b).await.deliveries[0].outcome,
        Outcome::Suppressed
    );
    assert_eq!(
        group.dispatch(&resolved).await.deliveries[0].outcome,
        Outcome::Delivered,
        "the resolution of the same key is a state change"
    );
    assert_eq!(slow.sent.load(Ordering::SeqCst), 2);
}

#[test]
fn memory_dedup_records_expire() {
    use alertkit::policy::{MemoryState, SharedState};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = MemoryState::new();
        let now = chrono::Utc::now();
        for i in 0..50_000 {
            s.record_delivery(&format!("k{i}"), "firing", now, Duration::from_millis(1))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        // One more record sweeps the expired ones.
        for i in 0..2_000 {
            s.record_delivery(
                &format!("n{i}"),
                "firing",
                chrono::Utc::now(),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        }
        assert!(
            s.dedup_records() <= 4_000,
            "expired records are dropped: {} kept",
            s.dedup_records()
        );
        assert!(s.last_delivery("k1").await.unwrap().is_none());
        assert!(s.last_delivery("n1").await.unwrap().is_some());
    });
}

fn robot_config(fake: &FakeDingTalk, policy: PolicyConfig) -> Config {
    Config::default()
        .with_instance(
            InstanceConfig::new("ding", "dingtalk")
                .param("webhook", fake.webhook("tok"))
                .policy(policy),
        )
        .with_group(GroupConfig::new("g", ["ding"]))
}

/// A sync host calling `block_on` on a fresh runtime each time (or a test
/// suite sharing one notifier): the notifier works from every one of them.
#[test]
fn a_notifier_outlives_the_runtimes_it_is_used_from() {
    let fake_rt = tokio::runtime::Runtime::new().unwrap();
    let fake = fake_rt.block_on(async {
        let fake = FakeDingTalk::start().await;
        fake.add_robot("tok", RobotSpec::default());
        fake
    });
    let n = Notifier::from_config(&robot_config(&fake, limited(1000, 20))).unwrap();
    for round in 0..3 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let report = rt.block_on(n.dispatch("g", &Alert::new(format!("round {round}"))));
        let report = report.unwrap();
        assert_eq!(
            report.status,
            GroupStatus::Delivered,
            "round {round}: {report:?}"
        );
        drop(rt);
    }
    assert_eq!(fake.accepted().len(), 3);
}

/// Waits (up to 10 s) until `n` alerts wait in the notifier's rate-limit
/// queues: the dispatches under test have really started.
async fn wait_queued(n: &Notifier, want: usize) {
    for _ in 0..1000 {
        if n.limiter().waiting_total() >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{want} alerts never queued");
}

/// Alerts queued behind a 1-per-5 s limit when the host shuts down: flushed
/// (as a digest at the next slot) within the deadline, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_queued_alerts() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let n = Arc::new(Notifier::from_config(&robot_config(&fake, limited(5000, 1))).unwrap());
    n.dispatch("g", &Alert::new("first")).await.unwrap();
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let n = n.clone();
            tokio::spawn(async move { n.dispatch("g", &Alert::new(format!("queued-{i}"))).await })
        })
        .collect();
    wait_queued(&n, 5).await;
    let left = n.shutdown(Duration::from_secs(10)).await;
    assert!(left.is_empty(), "nothing left undelivered: {left:?}");
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.status, GroupStatus::Delivered, "{r:?}");
    }
    let texts: String = fake.accepted().iter().map(|r| r.body.to_string()).collect();
    for i in 0..5 {
        assert!(
            texts.contains(&format!("queued-{i}")),
            "queued-{i} was sent"
        );
    }
    // After shutdown no alert is taken.
    let e = n.dispatch("g", &Alert::new("late")).await.unwrap_err();
    assert!(e.to_string().contains("shut down"), "{e}");
}

/// When the deadline passes first, shutdown names what was not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_names_what_it_could_not_deliver() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let n = Arc::new(Notifier::from_config(&robot_config(&fake, limited(60_000, 1))).unwrap());
    n.dispatch("g", &Alert::new("first")).await.unwrap();
    let t = {
        let n = n.clone();
        tokio::spawn(async move { n.dispatch("g", &Alert::new("stuck")).await })
    };
    wait_queued(&n, 1).await;
    let left = n.shutdown(Duration::from_millis(300)).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].group, "g");
    assert_eq!(left[0].title, "stuck");
    assert_eq!(left[0].instances, vec!["ding".to_owned()]);
    t.abort();
}

#[tokio::test]
async fn a_disabled_fallback_is_not_used_and_a_fallback_cannot_be_removed() {
    let mut g = GroupConfig::new("g", ["broken"]);
    g.fallbacks.insert("broken".into(), vec!["backup".into()]);
    let n = Notifier::from_config_with(
        &Config::default()
            .with_instance(
                InstanceConfig::new("broken", "recording")
                    .param("fail", true)
                    .policy(PolicyConfig::off()),
            )
            .with_instance(InstanceConfig::new("backup", "recording").policy(PolicyConfig::off()))
            .with_group(g),
        recording_registry(),
        Http::new(),
    )
    .unwrap();
    let r = n.dispatch("g", &Alert::new("x")).await.unwrap();
    assert_eq!(r.deliveries[0].outcome, Outcome::Delivered);
    assert_eq!(r.deliveries[0].via.as_deref(), Some("backup"));

    n.set_instance_enabled("backup", false).unwrap();
    let r = n.dispatch("g", &Alert::new("y")).await.unwrap();
    assert_eq!(r.deliveries[0].outcome, Outcome::Failed, "{r:?}");
    assert_eq!(
        r.deliveries[0].via, None,
        "a disabled fallback is not tried"
    );

    let e = n.remove_instance("backup").unwrap_err();
    assert!(e.to_string().contains("fallback"), "{e}");
    let names: BTreeSet<_> = n.instances().into_iter().map(|i| i.name).collect();
    assert!(names.contains("backup"));
}

fn build(instance: serde_json::Value) -> alertkit::Result<Notifier> {
    let config = Config::from_value(json!({"instances": [instance]}))?;
    Notifier::from_config_with(&config, recording_registry(), Http::new())
}

#[test]
fn values_that_cannot_work_are_refused_at_build_time() {
    let cases = [
        (
            json!({"name": "a", "type": "recording", "timeout_ms": 0}),
            "timeout_ms",
        ),
        (
            json!({"name": "a", "type": "recording", "policy": {"rate_limit": {"rates": [{"count": 0, "per_ms": 1000}]}}}),
            "policy.rate_limit.rates[0]",
        ),
        (
            json!({"name": "a", "type": "recording", "policy": {"rate_limit": {"queue_bound": 0}}}),
            "policy.rate_limit.queue_bound",
        ),
        (
            json!({"name": "a", "type": "recording", "policy": {"retry": {"max_attempts": 1000}}}),
            "policy.retry.max_attempts",
        ),
        (
            json!({"name": "a", "type": "recording", "policy": {"retry": {"min_delay_ms": 0}}}),
            "policy.retry.min_delay_ms",
        ),
        (
            json!({"name": "a", "type": "email", "params": {"host": "127.0.0.1", "port": 0,
                   "from": "a@example.test", "to": ["b@example.test"], "tls": "none", "allow_plaintext": true}}),
            "params.port",
        ),
    ];
    for (instance, field) in cases {
        let e = build(instance.clone()).unwrap_err();
        assert_eq!(e.field(), Some(field), "{instance}: {e}");
        assert_eq!(e.kind(), alertkit::ErrorKind::InvalidConfig);
    }
    let mut g = GroupConfig::new("g", ["a"]);
    g.timeout_ms = Some(0);
    let e = Notifier::from_config_with(
        &Config::default()
            .with_instance(InstanceConfig::new("a", "recording"))
            .with_group(g),
        recording_registry(),
        Http::new(),
    )
    .unwrap_err();
    assert!(e.field().unwrap().ends_with("timeout_ms"), "{e}");
}

#[test]
fn numbers_may_be_strings_everywhere() {
    build(json!({"name": "a", "type": "recording", "timeout_ms": "5000",
                 "policy": {"retry": {"max_attempts": "3", "min_delay_ms": "10"},
                            "rate_limit": {"queue_bound": "10", "rates": [{"count": "2", "per_ms": "1000"}]}}}))
    .unwrap();
    build(json!({"name": "a", "type": "dingtalk",
                 "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=t",
                            "flow_control_retries": "2"}}))
    .unwrap();
    build(json!({"name": "a", "type": "email", "params": {"host": "127.0.0.1", "port": "2525",
                 "from": "a@example.test", "to": ["b@example.test"], "tls": "none", "allow_plaintext": true,
                 "pool_size": "2"}}))
    .unwrap();
    let e = build(json!({"name": "a", "type": "recording", "timeout_ms": "soon"})).unwrap_err();
    assert_eq!(e.field(), Some("instances[0].timeout_ms"), "{e}");
}

#[test]
fn an_alert_with_an_unknown_field_is_refused() {
    let e = serde_json::from_str::<Alert>(r#"{"title": "x", "severty": "critical"}"#).unwrap_err();
    assert!(e.to_string().contains("severty"), "{e}");
    let e = serde_json::from_str::<Alert>(
        r#"{"title": "x", "job": {"name": "j", "stauts": "FAILED"}}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("stauts"), "{e}");
}

/// The admin "Test" button: one attempt, no queue, its own deadline, and
/// the report reaches the dispatch hook.
#[tokio::test]
async fn test_send_answers_fast_and_reports_to_the_hook() {
    use alertkit::testkit::dingtalk::Fault;
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let n = Notifier::from_config(&robot_config(&fake, PolicyConfig::default())).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    n.on_dispatch(move |_, r| s.lock().unwrap().push(r.group.clone()));
    for _ in 0..3 {
        fake.push_fault(Fault::errcode(-1, "系统繁忙"));
    }
    let started = std::time::Instant::now();
    let d = n.test_send("ding").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((d.outcome, d.attempts), (Outcome::Failed, 1));
    assert_eq!(*seen.lock().unwrap(), vec!["test:ding".to_owned()]);
    // With the instance's policies, as a dispatch would send.
    let d = n
        .test_send_with(
            "ding",
            alertkit::TestSendOptions::default()
                .with_policies()
                .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    assert_eq!(d.outcome, Outcome::Delivered, "{d:?}");
    assert!(d.attempts >= 2, "{d:?}");
}
