//! The Flink job watcher against a fake Flink REST server (wiremock) that
//! walks a job through RUNNING → RESTARTING → RUNNING → checkpoint failures →
//! a new exception → FAILED, then an outage and a recovery.
#![cfg(all(feature = "flink", feature = "testkit"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertkit::flink::{FlinkWatcher, WatchConfig};
use alertkit::testkit::recording_registry;
use alertkit::{
    AlertState, Config, GroupConfig, Http, InstanceConfig, JobStatus, Notifier, Severity,
};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

#[derive(Clone, Copy)]
struct Step {
    state: &'static str,
    failed_checkpoints: u64,
    exception_ts: i64,
    down: bool,
}

struct Flink {
    step: Arc<Mutex<Step>>,
}

const JID: &str = "a1b2c3d4";

impl Respond for Flink {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let s = *self.step.lock().unwrap();
        if s.down {
            return ResponseTemplate::new(503).set_body_string("upstream down");
        }
        let body: Value = match req.url.path() {
            "/jobs/overview" => {
                json!({"jobs": [{"jid": JID, "name": "orders-etl", "state": s.state,
                "start-time": 1_763_632_800_000i64, "end-time": if s.state == "FAILED" { json!(1_763_633_100_000i64) } else { json!(-1) },
                "duration": 300_000, "last-modification": s.exception_ts, "tasks": {}}]})
            }
            p if p.ends_with("/checkpoints") => {
                json!({"counts": {"restored": 0, "total": 50, "in_progress": 0,
                "completed": 50 - s.failed_checkpoints, "failed": s.failed_checkpoints},
                "latest": {"failed": if s.failed_checkpoints == 0 { json!(null) } else {
                    json!({"id": 40 + s.failed_checkpoints, "failure_timestamp": 1, "failure_message": "Checkpoint expired before completing."})
                }}})
            }
            p if p.ends_with("/exceptions") => {
                if s.exception_ts == 0 {
                    json!({"exceptionHistory": {"entries": [], "truncated": false}})
                } else {
                    json!({"exceptionHistory": {"entries": [{"exceptionName": "java.lang.RuntimeException",
                        "stacktrace": format!("java.lang.RuntimeException: boom #{}\n\tat Op.map(Op.java:1)", s.exception_ts),
                        "timestamp": s.exception_ts, "taskName": "map", "endpoint": "tm-1", "taskManagerId": "tm-1",
                        "failureLabels": {}, "concurrentExceptions": []}], "truncated": false}})
                }
            }
            _ => return ResponseTemplate::new(404),
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

#[tokio::test]
async fn walks_a_job_through_its_life_and_alerts_exactly_once_per_transition() {
    let server = MockServer::start().await;
    let step = Arc::new(Mutex::new(Step {
        state: "RUNNING",
        failed_checkpoints: 0,
        exception_ts: 0,
        down: false,
    }));
    Mock::given(any())
        .respond_with(Flink { step: step.clone() })
        .mount(&server)
        .await;

    let config = Config::default()
        .with_instance(InstanceConfig::new("mem", "recording"))
        .with_group(GroupConfig::new("flink-prod", ["mem"]));
    let notifier =
        Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let s = sent.clone();
    notifier.on_dispatch(move |alert, _| s.lock().unwrap().push(alert.clone()));
    let mut w = FlinkWatcher::new(
        WatchConfig::new(&server.uri(), "prod-yarn").unwrap(),
        notifier,
        "flink-prod",
    )
    .unwrap();

    let set = |f: &dyn Fn(&mut Step)| f(&mut step.lock().unwrap());
    let mut titles = Vec::new();
    let poll = async |w: &mut FlinkWatcher| {
        for r in w.poll_once().await {
            assert_eq!(r.report.status, alertkit::GroupStatus::Delivered);
        }
    };
    poll(&mut w).await; // baseline: nothing
    assert!(
        sent.lock().unwrap().is_empty(),
        "the first poll only records"
    );

    set(&|s| {
        s.state = "RESTARTING";
        s.exception_ts = 100;
    });
    poll(&mut w).await;
    poll(&mut w).await; // unchanged: no repeat
    set(&|s| s.state = "RUNNING");
    poll(&mut w).await;
    set(&|s| s.failed_checkpoints = 3);
    poll(&mut w).await;
    set(&|s| s.exception_ts = 200);
    poll(&mut w).await;
    set(&|s| {
        s.state = "FAILED";
        s.exception_ts = 300;
    });
    poll(&mut w).await;
    set(&|s| s.down = true);
    poll(&mut w).await;
    poll(&mut w).await; // still down: alerted once
    set(&|s| s.down = false);
    poll(&mut w).await; // back; job still FAILED: not re-alerted

    let alerts = sent.lock().unwrap().clone();
    for a in &alerts {
        titles.push((a.title.clone(), a.state));
    }
    assert_eq!(
        titles,
        [
            (
                "Flink job orders-etl RESTARTING".to_string(),
                AlertState::Firing
            ),
            (
                "Flink job orders-etl RESTARTING".to_string(),
                AlertState::Resolved
            ),
            (
                "Flink job orders-etl: checkpoints failing".to_string(),
                AlertState::Firing
            ),
            (
                "Flink job orders-etl restarted".to_string(),
                AlertState::Firing
            ),
            (
                "Flink job orders-etl FAILED".to_string(),
                AlertState::Firing
            ),
            (
                "Flink cluster prod-yarn unreachable".to_string(),
                AlertState::Firing
            ),
            (
                "Flink cluster prod-yarn unreachable".to_string(),
                AlertState::Resolved
            ),
        ]
    );
    // The firing RESTARTING alert and its resolution share a fingerprint.
    assert_eq!(alerts[0].fingerprint(), alerts[1].fingerprint());
    let restarting = alerts[0].job.as_ref().unwrap();
    assert_eq!(restarting.status, Some(JobStatus::Restarting));
    assert_eq!(restarting.id.as_deref(), Some(JID));
    assert_eq!(restarting.cluster.as_deref(), Some("prod-yarn"));
    assert!(
        restarting
            .error
            .as_ref()
            .unwrap()
            .starts_with("java.lang.RuntimeException: boom #100")
    );
    assert_eq!(
        alerts[0].links[0].url,
        format!("{}/#/job/running/{JID}/overview", server.uri())
    );
    let has =
        |i: usize, k: &str, v: &str| alerts[i].fields.contains(&(k.to_string(), v.to_string()));
    assert!(has(2, "Checkpoints failed", "3"), "{:?}", alerts[2].fields);
    assert!(has(2, "Failed checkpoint", "#43"));
    assert!(
        has(0, "Checkpoints completed", "50"),
        "{:?}",
        alerts[0].fields
    );
    assert!(has(4, "Checkpoints failed", "3"));
    assert_eq!(
        alerts[2].job.as_ref().unwrap().error.as_deref(),
        Some("Checkpoint expired before completing.")
    );
    assert!(
        alerts[3]
            .job
            .as_ref()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .contains("boom #200")
    );
    let failed = &alerts[4];
    assert_eq!(failed.severity, Severity::Critical);
    assert!(failed.job.as_ref().unwrap().ended_at.is_some());
    assert!(
        failed
            .job
            .as_ref()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .contains("boom #300")
    );
}

#[tokio::test]
async fn start_and_stop_cleanly() {
    let server = MockServer::start().await;
    let step = Arc::new(Mutex::new(Step {
        state: "RUNNING",
        failed_checkpoints: 0,
        exception_ts: 0,
        down: true,
    }));
    Mock::given(any())
        .respond_with(Flink { step: step.clone() })
        .mount(&server)
        .await;
    let config = Config::default()
        .with_instance(InstanceConfig::new("mem", "recording"))
        .with_group(GroupConfig::new("g", ["mem"]));
    let notifier =
        Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    let cfg = WatchConfig::new(&server.uri(), "c")
        .unwrap()
        .interval(Duration::from_millis(20));
    let mut handle = FlinkWatcher::new(cfg, notifier, "g").unwrap().start();
    let first = tokio::time::timeout(Duration::from_secs(5), handle.next_report())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.report.status, alertkit::GroupStatus::Delivered);
    assert_eq!(first.title, "Flink cluster c unreachable");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rest = tokio::time::timeout(Duration::from_secs(5), handle.stop())
        .await
        .expect("stops promptly");
    assert!(rest.reports.is_empty(), "the outage alerted once: {rest:?}");
}
