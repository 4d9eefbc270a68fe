//! Shared state in a real `redis-server` (started by this test on
//! 127.0.0.1; `scripts/test.sh` installs it): two dispatchers, as two
//! scheduler replicas would be, share one robot's budget and one dedup window.
#![cfg(all(feature = "redis", feature = "dingtalk", feature = "testkit"))]

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::{Redis, redis};
use std::process::Command;

use std::sync::Arc;
use std::time::Duration;

use alertkit::policy::{
    PolicyConfig, RateLimitPolicy, RateSpec, RedisState, SharedState, Slot, Toggle,
};
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::recording_registry;
use alertkit::{Alert, Config, GroupConfig, GroupStatus, Http, InstanceConfig, Notifier, Rate};

#[tokio::test]
async fn sliding_windows_in_redis() {
    let r = redis().await;
    let s = RedisState::connect(&r.url, "t1").await.unwrap();
    let rates = [Rate::per_second(2)];
    assert_eq!(
        s.acquire("k", &rates).await.unwrap(),
        Slot::Taken { remaining: 1 }
    );
    assert_eq!(
        s.acquire("k", &rates).await.unwrap(),
        Slot::Taken { remaining: 0 }
    );
    match s.acquire("k", &rates).await.unwrap() {
        Slot::Wait(w) => assert!(w > Duration::ZERO && w <= Duration::from_secs(1), "{w:?}"),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert!(matches!(
        s.acquire("k", &rates).await.unwrap(),
        Slot::Taken { .. }
    ));
}

fn dispatcher(state: RedisState, fake: &FakeDingTalk, repeat: bool) -> Notifier {
    let n = Notifier::with_state(recording_registry(), Http::new(), Arc::new(state));
    n.apply(&dispatcher_config(fake, repeat)).unwrap();
    n
}

fn dispatcher_config(fake: &FakeDingTalk, repeat: bool) -> Config {
    let mut policy = PolicyConfig::off();
    let mut rl = RateLimitPolicy::default();
    rl.rates = Some(vec![RateSpec {
        count: 3,
        per_ms: 1000,
    }]);
    policy.rate_limit = Toggle::On(rl);
    let mut g = GroupConfig::new("g", ["ding"]);
    if repeat {
        g.repeat_interval_secs = Some(300);
    }
    Config::default()
        .with_instance(
            InstanceConfig::new("ding", "dingtalk")
                .param("webhook", fake.webhook("tok"))
                .policy(policy),
        )
        .with_group(g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_share_one_robot_budget() {
    let r = redis().await;
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    fake.set_rate_limit(3, Duration::from_secs(1), Duration::from_secs(60));
    let a = Arc::new(dispatcher(
        RedisState::connect(&r.url, "t2").await.unwrap(),
        &fake,
        false,
    ));
    let b = Arc::new(dispatcher(
        RedisState::connect(&r.url, "t2").await.unwrap(),
        &fake,
        false,
    ));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let n = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            n.dispatch("g", &Alert::new(format!("replica-{i:02}")))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, GroupStatus::Delivered);
    }
    let reqs = fake.requests();
    assert!(
        reqs.iter().all(|r| r.accepted),
        "the robot never saw more than its budget"
    );
    let text: String = reqs
        .iter()
        .map(|r| r.body["markdown"]["text"].as_str().unwrap().to_owned())
        .collect();
    for i in 0..30 {
        assert_eq!(
            text.matches(&format!("replica-{i:02}")).count(),
            1,
            "replica-{i:02}"
        );
    }
}

#[tokio::test]
async fn two_dispatchers_share_one_dedup_window() {
    let r = redis().await;
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let a = dispatcher(
        RedisState::connect(&r.url, "t3").await.unwrap(),
        &fake,
        true,
    );
    let b = dispatcher(
        RedisState::connect(&r.url, "t3").await.unwrap(),
        &fake,
        true,
    );
    let alert = Alert::new("orders-etl FAILED").label("job", "orders-etl");
    assert_eq!(
        a.dispatch("g", &alert).await.unwrap().status,
        GroupStatus::Delivered
    );
    assert_eq!(
        b.dispatch("g", &alert).await.unwrap().status,
        GroupStatus::Suppressed
    );
    assert_eq!(
        b.dispatch("g", &alert.clone().resolved())
            .await
            .unwrap()
            .status,
        GroupStatus::Delivered
    );
    assert_eq!(fake.accepted().len(), 2);
}

fn signal(r: &Redis, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &r.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Redis killed mid-run: alerting goes on (this process's own budget), and
/// picks Redis up again when a server is back on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_never_stops_alerting() {
    let mut r = redis().await;
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let state = RedisState::connect(&r.url, "t4")
        .await
        .unwrap()
        .timeout(Duration::from_millis(300));
    let n = dispatcher(state, &fake, true);
    let alert = |i: u32| Alert::new(format!("outage-{i}"));
    assert_eq!(
        n.dispatch("g", &alert(0)).await.unwrap().status,
        GroupStatus::Delivered
    );
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    for i in 1..4 {
        let report = n.dispatch("g", &alert(i)).await.unwrap();
        assert_eq!(report.status, GroupStatus::Delivered, "{report:?}");
    }
    // Dedup falls back to this process's records: a repeat is still suppressed.
    assert_eq!(
        n.dispatch("g", &alert(1)).await.unwrap().status,
        GroupStatus::Suppressed
    );
    assert_eq!(fake.accepted().len(), 4);
}

/// Redis paused (SIGSTOP: connections open, no answers): each call gives
/// up after the time limit and the alert goes out; resumed, Redis is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_never_stops_alerting() {
    let r = redis().await;
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let state = Arc::new(
        RedisState::connect(&r.url, "t5")
            .await
            .unwrap()
            .timeout(Duration::from_millis(300)),
    );
    let n = Notifier::with_state(recording_registry(), Http::new(), state.clone());
    n.apply(&dispatcher_config(&fake, false)).unwrap();
    signal(&r, "-STOP");
    let started = std::time::Instant::now();
    let report = n.dispatch("g", &Alert::new("paused")).await.unwrap();
    assert_eq!(report.status, GroupStatus::Delivered, "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(state.in_outage());
    signal(&r, "-CONT");
    let mut back = false;
    for i in 0..20 {
        let report = n
            .dispatch("g", &Alert::new(format!("resumed-{i}")))
            .await
            .unwrap();
        assert_eq!(report.status, GroupStatus::Delivered);
        if !state.in_outage() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "redis was used again after it resumed");
}

/// A host that chose fail-closed gets failures, not sends past an unknown budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_is_a_choice() {
    let mut r = redis().await;
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let state = RedisState::connect(&r.url, "t6")
        .await
        .unwrap()
        .timeout(Duration::from_millis(300))
        .fail_closed();
    let n = Notifier::with_state(recording_registry(), Http::new(), Arc::new(state));
    n.apply(&dispatcher_config(&fake, false)).unwrap();
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    let report = n.dispatch("g", &Alert::new("closed")).await.unwrap();
    assert_eq!(report.status, GroupStatus::Failed, "{report:?}");
    assert!(fake.accepted().is_empty());
}

/// An entry scored in the future (Redis's clock stepped back, a bad entry)
/// never freezes a destination: it is dropped and the slot is taken.
#[tokio::test]
async fn a_future_entry_does_not_freeze_a_destination() {
    let r = redis().await;
    let s = RedisState::connect(&r.url, "t7").await.unwrap();
    let client = redis::Client::open(r.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (secs, _): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let future = (secs + 3600) * 1000;
    let _: () = redis::cmd("ZADD")
        .arg("t7:rl:k:0")
        .arg(future)
        .arg("bogus")
        .query_async(&mut conn)
        .await
        .unwrap();
    let got = s.acquire("k", &[Rate::per_minute(1)]).await.unwrap();
    assert_eq!(got, Slot::Taken { remaining: 0 });
    // A real wait is never longer than the window.
    match s.acquire("k", &[Rate::per_minute(1)]).await.unwrap() {
        Slot::Wait(w) => assert!(w <= Duration::from_secs(60), "{w:?}"),
        other => panic!("{other:?}"),
    }
}

/// 100 concurrent identical alerts from two replicas: one delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_in_redis_is_atomic() {
    let r = redis().await;
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let mk = || async {
        let n = Notifier::with_state(
            recording_registry(),
            Http::new(),
            Arc::new(RedisState::connect(&r.url, "t8").await.unwrap()),
        );
        n.apply(&dispatcher_config(&fake, true)).unwrap();
        Arc::new(n)
    };
    let (a, b) = (mk().await, mk().await);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let n = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { n.dispatch("g", &Alert::new("same")).await.unwrap() })
        })
        .collect();
    let mut delivered = 0;
    for t in tasks {
        if t.await.unwrap().status == GroupStatus::Delivered {
            delivered += 1;
        }
    }
    assert_eq!(delivered, 1);
    assert_eq!(fake.accepted().len(), 1);
}
