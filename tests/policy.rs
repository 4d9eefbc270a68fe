//! Delivery guarantees against the strict fakes, with shrunk windows (no
//! test waits a real minute): retries, rate limits without loss, dedup,
//! failover, the dispatch hook.
#![cfg(all(feature = "dingtalk", feature = "testkit"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alertkit::policy::{
    PolicyConfig, RateLimitPolicy, RateLimited, RateSpec, RetryPolicy, Retrying, Toggle,
};
use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
use alertkit::testkit::{RecordingChannel, recording_registry};
use alertkit::{
    Alert, AlertChannel, Config, Error, ErrorKind, GroupConfig, GroupStatus, Http, InstanceConfig,
    Notifier, Outcome, Receipt, async_trait,
};
use serde_json::json;

fn fast_retry() -> RetryPolicy {
    serde_json::from_value(
        json!({"max_attempts": 4, "min_delay_ms": 10, "max_delay_ms": 50, "max_elapsed_ms": 5000}),
    )
    .unwrap()
}

fn robot(fake: &FakeDingTalk, name: &str, policy: PolicyConfig) -> InstanceConfig {
    InstanceConfig::new(name, "dingtalk")
        .param("webhook", fake.webhook("tok"))
        .param("secret", "SECpolicy")
        .policy(policy)
}

async fn signed_fake() -> FakeDingTalk {
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok",
        RobotSpec {
            secret: Some("SECpolicy".into()),
            keywords: vec![],
        },
    );
    fake
}

fn notifier(config: Config) -> Notifier {
    Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap()
}

#[tokio::test]
async fn retryable_errors_are_retried_and_every_attempt_is_signed_afresh() {
    let fake = signed_fake().await;
    fake.push_fault(Fault::errcode(-1, "系统繁忙"));
    fake.push_fault(Fault::errcode(-1, "系统繁忙"));
    let mut policy = PolicyConfig::off();
    policy.retry = Toggle::On(fast_retry());
    let n = notifier(
        Config::default()
            .with_instance(robot(&fake, "ding", policy))
            .with_group(GroupConfig::new("g", ["ding"])),
    );
    let report = n.dispatch("g", &Alert::new("retry me")).await.unwrap();
    assert_eq!(report.status, GroupStatus::Delivered, "{report:?}");
    assert_eq!(report.deliveries[0].attempts, 3);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    // Each attempt carried its own signature, and the fake checked the last one.
    assert!(reqs.iter().all(|r| r.query.contains_key("sign")));
    assert!(fake.accepted().len() == 1);
}

#[tokio::test]
async fn permanent_errors_are_never_retried() {
    let fake = signed_fake().await;
    let mut policy = PolicyConfig::off();
    policy.retry = Toggle::On(fast_retry());
    let ch = Arc::new(Retrying::new(
        Notifier::from_config(&Config::default().with_instance(robot(
            &fake,
            "ding",
            PolicyConfig::off(),
        )))
        .unwrap()
        .channel("ding")
        .unwrap(),
        fast_retry(),
    ));
    for (code, msg) in [
        (310000, "keywords not in content"),
        (300005, "token is not exist"),
        (460101, "too long"),
    ] {
        fake.push_fault(Fault::errcode(code, msg));
        let before = fake.requests().len();
        let e = ch.send(&Alert::new("x")).await.unwrap_err();
        assert_eq!(e.attempts(), 1, "{code}");
        assert_eq!(
            fake.requests().len(),
            before + 1,
            "{code}: one request only"
        );
    }
}

#[tokio::test]
async fn retries_are_bounded_and_counted() {
    let fake = signed_fake().await;
    for _ in 0..10 {
        fake.push_fault(Fault::errcode(-1, "系统繁忙"));
    }
    let mut policy = PolicyConfig::off();
    policy.retry = Toggle::On(fast_retry());
    let n = notifier(
        Config::default()
            .with_instance(robot(&fake, "ding", policy))
            .with_group(GroupConfig::new("g", ["ding"])),
    );
    let report = n.dispatch("g", &Alert::new("x")).await.unwrap();
    let d = &report.deliveries[0];
    assert_eq!((d.outcome, d.attempts), (Outcome::Failed, 4));
    assert_eq!(d.error.as_ref().unwrap().code(), Some("-1"));
    assert_eq!(fake.requests().len(), 4);
}

/// Fails with a rate limit asking for `wait` once, then succeeds.
#[derive(Debug)]
struct AsksToWait {
    wait: Duration,
    calls: AtomicU32,
}

#[async_trait]
impl AlertChannel for AsksToWait {
    async fn send(&self, _: &Alert) -> alertkit::Result<Receipt> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Error::new(ErrorKind::RateLimited, "slow down").with_retry_after(self.wait));
        }
        Ok(Receipt::new())
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let ch = Retrying::new(
        Arc::new(AsksToWait {
            wait: Duration::from_millis(400),
            calls: AtomicU32::new(0),
        }),
        fast_retry(),
    );
    let started = Instant::now();
    let r = ch.send(&Alert::new("x")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.attempts, 2);
    // A wait longer than the time budget is not slept through.
    let mut p = fast_retry();
    p.max_elapsed_ms = 100;
    let ch = Retrying::new(
        Arc::new(AsksToWait {
            wait: Duration::from_secs(60),
            calls: AtomicU32::new(0),
        }),
        p,
    );
    let started = Instant::now();
    let e = ch.send(&Alert::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn limited(per_ms: u64, count: u32, queue_bound: usize) -> PolicyConfig {
    let mut p = PolicyConfig::off();
    let mut rl = RateLimitPolicy::default();
    rl.rates = Some(vec![RateSpec { count, per_ms }]);
    rl.queue_bound = queue_bound;
    p.rate_limit = Toggle::On(rl);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_reaches_the_group_without_one_rate_limit_error() {
    let fake = signed_fake().await;
    // The fake enforces 5 per second (then throttles for a minute, like the
    // real robot's 10 minutes); the instance knows the same budget.
    fake.set_rate_limit(5, Duration::from_secs(1), Duration::from_secs(60));
    let n = Arc::new(notifier(
        Config::default()
            .with_instance(robot(&fake, "ding", limited(1000, 5, 10_000)))
            .with_group(GroupConfig::new("g", ["ding"])),
    ));
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let n = n.clone();
            tokio::spawn(async move {
                n.dispatch("g", &Alert::new(format!("burst-{i:03} FAILED")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        let report = t.await.unwrap();
        assert_eq!(report.status, GroupStatus::Delivered, "{report:?}");
    }
    let reqs = fake.requests();
    assert!(
        reqs.iter().all(|r| r.accepted),
        "no request was refused: {:?}",
        reqs.iter().map(|r| &r.answer).collect::<Vec<_>>()
    );
    // Every alert appears exactly once across the messages.
    let texts: Vec<String> = reqs
        .iter()
        .map(|r| r.body["markdown"]["text"].as_str().unwrap().to_owned())
        .collect();
    for i in 0..200 {
        let tag = format!("burst-{i:03}");
        let seen = texts.iter().map(|t| t.matches(&tag).count()).sum::<usize>();
        assert_eq!(seen, 1, "{tag} seen {seen} times");
    }
    // At most 5 requests in any one-second span (by arrival order and time taken).
    let secs = started.elapsed().as_secs_f64().ceil() as usize;
    assert!(
        reqs.len() <= 5 * (secs + 1),
        "{} requests in {secs} s",
        reqs.len()
    );
    assert!(reqs.len() < 200, "coalesced: {} requests", reqs.len());
}

#[tokio::test]
async fn instances_pointing_at_one_robot_share_its_budget() {
    let fake = signed_fake().await;
    fake.set_rate_limit(3, Duration::from_secs(1), Duration::from_secs(60));
    let n = Arc::new(notifier(
        Config::default()
            .with_instance(robot(&fake, "a", limited(1000, 3, 100)))
            .with_instance(robot(&fake, "b", limited(1000, 3, 100)))
            .with_group(GroupConfig::new("g", ["a", "b"])),
    ));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let n = n.clone();
            tokio::spawn(async move {
                n.dispatch("g", &Alert::new(format!("shared-{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, GroupStatus::Delivered);
    }
    assert!(
        fake.requests().iter().all(|r| r.accepted),
        "the shared budget held"
    );
}

#[tokio::test]
async fn past_the_queue_bound_the_caller_is_told() {
    let fake = signed_fake().await;
    let n = Arc::new(notifier(Config::default().with_instance(robot(
        &fake,
        "ding",
        limited(60_000, 1, 2),
    ))));
    let ch = n.channel("ding").unwrap();
    ch.send(&Alert::new("first")).await.unwrap();
    // Two wait for the next slot (a minute away); the third is refused at once.
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let ch = ch.clone();
            tokio::spawn(async move { ch.send(&Alert::new(format!("wait-{i}"))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(n.limiter().waiting(&ch.limits().destination.unwrap()), 2);
    let e = ch.send(&Alert::new("one too many")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.is_retryable()),
        (ErrorKind::RateLimited, false)
    );
    assert!(e.message().contains("queue_bound 2"), "{e}");
    for w in waiting {
        w.abort();
    }
}

#[tokio::test]
async fn repeat_interval_suppresses_repeats_but_not_state_changes_or_failures() {
    let mut g = GroupConfig::new("g", ["ok"]);
    g.repeat_interval_secs = Some(300);
    let mut bad = GroupConfig::new("bad", ["broken"]);
    bad.repeat_interval_secs = Some(300);
    let n = notifier(
        Config::default()
            .with_instance(InstanceConfig::new("ok", "recording"))
            .with_instance(InstanceConfig::new("broken", "recording").param("fail", true))
            .with_group(g)
            .with_group(bad),
    );
    let a = Alert::new("disk full").label("host", "a");
    assert_eq!(
        n.dispatch("g", &a).await.unwrap().status,
        GroupStatus::Delivered
    );
    let again = n.dispatch("g", &a.clone().body("still")).await.unwrap();
    assert_eq!(again.status, GroupStatus::Suppressed);
    assert_eq!(again.deliveries[0].outcome, Outcome::Suppressed);
    assert!(
        again.deliveries[0]
            .note
            .as_ref()
            .unwrap()
            .contains("repeat_interval is 300 s")
    );
    let v = serde_json::to_value(&again).unwrap();
    assert_eq!(v["status"], "suppressed");
    assert_eq!(v["deliveries"][0]["outcome"], "suppressed");
    // A state change always goes out; another host's alert is another fingerprint.
    assert_eq!(
        n.dispatch("g", &a.clone().resolved()).await.unwrap().status,
        GroupStatus::Delivered
    );
    assert_eq!(
        n.dispatch("g", &Alert::new("disk full").label("host", "b"))
            .await
            .unwrap()
            .status,
        GroupStatus::Delivered
    );
    // Only successful deliveries start the interval.
    assert_eq!(
        n.dispatch("bad", &a).await.unwrap().status,
        GroupStatus::Failed
    );
    assert_eq!(
        n.dispatch("bad", &a).await.unwrap().status,
        GroupStatus::Failed,
        "not suppressed after a failure"
    );
}

#[tokio::test]
async fn failover_tries_fallbacks_in_order() {
    let fake = signed_fake().await;
    let mut g = GroupConfig::new("g", ["ding"]);
    g.fallbacks
        .insert("ding".into(), vec!["broken".into(), "mail".into()]);
    let n = notifier(
        Config::default()
            .with_instance(robot(&fake, "ding", PolicyConfig::off()))
            .with_instance(InstanceConfig::new("broken", "recording").param("fail", true))
            .with_instance(InstanceConfig::new("mail", "recording"))
            .with_group(g),
    );
    fake.push_fault(Fault::errcode(310000, "keywords not in content"));
    let report = n.dispatch("g", &Alert::new("x")).await.unwrap();
    let d = &report.deliveries[0];
    assert_eq!(report.status, GroupStatus::Delivered);
    assert_eq!(
        (d.outcome, d.via.as_deref()),
        (Outcome::Delivered, Some("mail"))
    );
    assert_eq!(d.primary_error.as_ref().unwrap().code(), Some("310000"));
    assert_eq!(d.attempts, 3);
    // When the primary delivers, fallbacks are not touched.
    let report = n.dispatch("g", &Alert::new("y")).await.unwrap();
    assert_eq!(report.deliveries[0].via, None);
    // A fallback must be a known instance.
    let mut bad = GroupConfig::new("g2", ["ding"]);
    bad.fallbacks.insert("ding".into(), vec!["nope".into()]);
    let e = n.upsert_group(bad).unwrap_err();
    assert_eq!(e.field(), Some("groups[\"g2\"].fallbacks.ding"));
}

#[tokio::test]
async fn the_dispatch_hook_sees_every_report() {
    let n = notifier(
        Config::default()
            .with_instance(InstanceConfig::new("ok", "recording"))
            .with_group(GroupConfig::new("g", ["ok"])),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    n.on_dispatch(move |alert, report| {
        s.lock().unwrap().push((alert.title.clone(), report.status))
    });
    n.dispatch("g", &Alert::new("one")).await.unwrap();
    n.dispatch("g", &Alert::new("two")).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("one".to_string(), GroupStatus::Delivered),
            ("two".to_string(), GroupStatus::Delivered)
        ]
    );
}

#[tokio::test]
async fn policies_are_on_by_default_with_the_platforms_limits() {
    let fake = signed_fake().await;
    let n =
        notifier(Config::default().with_instance(robot(&fake, "ding", PolicyConfig::default())));
    let limits = n.channel("ding").unwrap().limits();
    assert_eq!(limits.rates, vec![alertkit::Rate::per_minute(20)]);
    assert!(limits.destination.unwrap().starts_with("dingtalk-robot:"));
    let _unused: Option<RateLimited> = None;
    let _also: RecordingChannel = RecordingChannel::new();
    // Config text turns them off.
    let cfg: InstanceConfig = serde_json::from_value(json!({"name": "x", "type": "recording",
        "policy": {"retry": false, "rate_limit": {"queue_bound": 5}}}))
    .unwrap();
    assert_eq!(cfg.policy.retry, Toggle::Off);
    assert!(matches!(cfg.policy.rate_limit, Toggle::On(ref p) if p.queue_bound == 5));
}

/// A destination with a tight budget that records what it is sent.
#[derive(Debug)]
struct Tight {
    got: Mutex<Vec<Alert>>,
}

#[async_trait]
impl AlertChannel for Tight {
    async fn send(&self, alert: &Alert) -> alertkit::Result<Receipt> {
        self.got.lock().unwrap().push(alert.clone());
        Ok(Receipt::new())
    }

    fn limits(&self) -> alertkit::Limits {
        alertkit::Limits::new(
            "tight",
            vec![alertkit::Rate::new(2, Duration::from_millis(100))],
            2_000,
        )
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    // Coalescing never loses or duplicates an alert, whatever the burst.
    #[test]
    fn coalescing_loses_and_duplicates_nothing(burst in 1usize..80) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let tight = Arc::new(Tight { got: Mutex::new(Vec::new()) });
            let limiter = Arc::new(alertkit::policy::Limiter::new(Arc::new(alertkit::policy::MemoryState::new())));
            let ch = Arc::new(RateLimited::new(tight.clone(), limiter, RateLimitPolicy::default()));
            let tasks: Vec<_> = (0..burst)
                .map(|i| {
                    let ch = ch.clone();
                    tokio::spawn(async move { ch.send(&Alert::new(format!("a{i:03}z"))).await.unwrap() })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let got = tight.got.lock().unwrap();
            let text: String = got.iter().map(|a| format!("{}\n{}\n", a.title, a.body)).collect();
            for i in 0..burst {
                assert_eq!(text.matches(&format!("a{i:03}z")).count(), 1, "a{i:03}z in {text}");
            }
            // Sent messages fit the digest capacity for 2,000 bytes of text.
            assert!(got.iter().all(|a| a.body.len() <= 2_000), "digest sized to the limit");
        });
    }
}
