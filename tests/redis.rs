//! Shared state in a real `redis-server` (started by this test on
//! 127.0.0.1; `scripts/test.sh` installs it): two dispatchers, as two
//! scheduler replicas would be, share one robot's budget and one dedup window.
#![cfg(all(feature = "redis", feature = "dingtalk", feature = "testkit"))]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use alertkit::policy::{
    PolicyConfig, RateLimitPolicy, RateSpec, RedisState, SharedState, Slot, Toggle,
};
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::recording_registry;
use alertkit::{Alert, Config, GroupConfig, GroupStatus, Http, InstanceConfig, Notifier, Rate};

struct Redis {
    child: Child,
    url: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn redis() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is required for this test (scripts/test.sh installs it)");
    // The guard kills and waits for the server whatever happens below.
    let guard = Redis {
        child,
        url: format!("redis://127.0.0.1:{port}/0"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return guard;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start on port {port}");
}

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
    let config = Config::default()
        .with_instance(
            InstanceConfig::new("ding", "dingtalk")
                .param("webhook", fake.webhook("tok"))
                .policy(policy),
        )
        .with_group(g);
    let n = Notifier::with_state(recording_registry(), Http::new(), Arc::new(state));
    n.apply(&config).unwrap();
    n
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
