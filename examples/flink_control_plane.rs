//! A Flink control plane embedding alertkit (issue 19's second host
//! program): it runs the Flink watcher in the background, routes each job
//! to its team's group (and drops scratch jobs), adds its own fields to
//! every alert, and keeps the watcher's state across its own restarts.
//!
//! `cargo run --example flink_control_plane --features flink`: no network,
//! no cluster. A stand-in Flink REST API (wiremock) serves two jobs that
//! fail, then goes down and comes back; a fake DingTalk robot (team A) and
//! a fake WeCom robot (the platform team) receive the alerts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertkit::flink::{FlinkWatcher, WatchConfig, WatchReport, WatchState};
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{AlertState, Config, GroupStatus, Notifier};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

#[derive(Clone)]
struct Job {
    name: &'static str,
    state: &'static str,
    /// When the latest exception happened (0: none yet).
    exception_ts: i64,
}

/// The stand-in JobManager: `/jobs/overview`, `/jobs/:jid/checkpoints`,
/// `/jobs/:jid/exceptions`, or 503 while "down".
#[derive(Clone, Default)]
struct FakeFlink {
    jobs: Arc<Mutex<BTreeMap<&'static str, Job>>>,
    down: Arc<Mutex<bool>>,
}

impl FakeFlink {
    fn set(&self, jid: &str, state: &'static str, exception_ts: i64) {
        let mut jobs = self.jobs.lock().unwrap();
        let job = jobs.get_mut(jid).expect("a known job");
        job.state = state;
        job.exception_ts = exception_ts;
    }
}

impl Respond for FakeFlink {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if *self.down.lock().unwrap() {
            return ResponseTemplate::new(503).set_body_string("upstream down");
        }
        let jobs = self.jobs.lock().unwrap();
        let path = req.url.path();
        let body = if path == "/jobs/overview" {
            let list: Vec<Value> = jobs
                .iter()
                .map(|(jid, j)| {
                    json!({"jid": jid, "name": j.name, "state": j.state,
                           "start-time": 1_763_632_800_000i64,
                           "end-time": if j.state == "FAILED" { json!(1_763_633_100_000i64) } else { json!(-1) },
                           "duration": 300_000, "last-modification": j.exception_ts, "tasks": {}})
                })
                .collect();
            json!({ "jobs": list })
        } else if let Some(jid) = path
            .strip_prefix("/jobs/")
            .and_then(|p| p.split('/').next())
            && let Some(job) = jobs.get(jid)
        {
            if path.ends_with("/checkpoints") {
                json!({"counts": {"restored": 0, "total": 10, "in_progress": 0, "completed": 10, "failed": 0},
                       "latest": {"failed": null}})
            } else if path.ends_with("/exceptions") {
                let entries: Vec<Value> = (job.exception_ts > 0)
                    .then(|| json!({"exceptionName": "java.lang.IllegalStateException",
                        "stacktrace": format!("java.lang.IllegalStateException: {} lost its Kafka partition\n\tat Op.map(Op.java:1)", job.name),
                        "timestamp": job.exception_ts, "taskName": "map", "endpoint": "tm-1",
                        "taskManagerId": "tm-1", "failureLabels": {}, "concurrentExceptions": []}))
                    .into_iter()
                    .collect();
                json!({"exceptionHistory": {"entries": entries, "truncated": false}})
            } else {
                return ResponseTemplate::new(404);
            }
        } else {
            return ResponseTemplate::new(404);
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

/// A watcher as the control plane configures it: team A's jobs to team A,
/// scratch jobs nowhere, everything else to the platform team.
fn watcher(flink: &MockServer, notifier: Arc<Notifier>) -> alertkit::Result<FlinkWatcher> {
    let config = WatchConfig::new(&flink.uri(), "prod")?
        .interval(Duration::from_millis(100))
        .cause_wait(Duration::from_millis(500));
    Ok(FlinkWatcher::new(config, notifier, "platform")?
        .route(|job| match job.name.as_str() {
            n if n.starts_with("team-a.") => Some("team-a".to_owned()),
            n if n.starts_with("scratch-") => None,
            _ => Some("platform".to_owned()),
        })
        .enrich(|alert, job| {
            let owner = job.name.split('.').next().unwrap_or("platform");
            alert
                .fields
                .push(("Owner".into(), format!("{owner}-oncall")));
        }))
}

async fn next(handle: &mut alertkit::flink::WatchHandle) -> WatchReport {
    tokio::time::timeout(Duration::from_secs(20), handle.next_report())
        .await
        .expect("a report in time")
        .expect("the watcher is running")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The alert destinations, and the stand-in cluster.
    let ding = FakeDingTalk::start().await;
    ding.add_robot(
        "team-a",
        RobotSpec {
            secret: None,
            keywords: vec!["Flink".into()],
        },
    );
    let wecom = FakeWeCom::start().await;
    wecom.add_bot("platform");
    let fake = FakeFlink::default();
    fake.jobs.lock().unwrap().extend([
        (
            "a1b2c3",
            Job {
                name: "team-a.orders-etl",
                state: "RUNNING",
                exception_ts: 0,
            },
        ),
        (
            "d4e5f6",
            Job {
                name: "scratch-adhoc",
                state: "RUNNING",
                exception_ts: 0,
            },
        ),
    ]);
    let flink = MockServer::start().await;
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&flink)
        .await;

    // The control plane's alerting config: one group per team.
    let config = Config::from_value(json!({
        "instances": [
            {"name": "team-a-ding", "type": "dingtalk",
             "params": {"webhook": ding.webhook("team-a"), "keywords": ["Flink"]}},
            {"name": "platform-wecom", "type": "wecom", "params": {"webhook": wecom.webhook("platform")}}],
        "groups": [{"name": "team-a", "instances": ["team-a-ding"]},
                   {"name": "platform", "instances": ["platform-wecom"]}]}))?;
    let notifier = Arc::new(Notifier::from_config(&config)?);

    // 1. The watcher runs in the background; its first poll only records.
    let mut handle = watcher(&flink, notifier.clone())?.start();
    while handle.state().jobs() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 2. Both jobs fail. Team A hears about its own, with the cause and the
    //    control plane's Owner field; the scratch job alerts nobody.
    let now = chrono::Utc::now().timestamp_millis();
    fake.set("d4e5f6", "FAILED", now);
    fake.set("a1b2c3", "FAILED", now);
    let failed = next(&mut handle).await;
    println!("{}", serde_json::to_string(&failed)?);
    assert_eq!(failed.group, "team-a");
    assert_eq!(failed.job.as_deref(), Some("team-a.orders-etl"));
    assert_eq!(failed.report.status, GroupStatus::Delivered);
    let text = ding.accepted()[0].body["markdown"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("lost its Kafka partition"), "{text}");
    assert!(text.contains("team-a-oncall"), "{text}");

    // 3. The JobManager goes down: the platform team hears it, once.
    *fake.down.lock().unwrap() = true;
    let down = next(&mut handle).await;
    println!("{}", serde_json::to_string(&down)?);
    assert_eq!(
        (down.title.as_str(), down.group.as_str()),
        ("Flink cluster prod unreachable", "platform")
    );

    // 4. The control plane restarts: it stops the watcher and saves its state.
    let stopped = handle.stop().await;
    assert!(
        stopped.reports.is_empty(),
        "nothing else: {:?}",
        stopped.reports
    );
    let saved = serde_json::to_string(&stopped.state)?;

    // 5. Back up, with the saved state: the cluster's recovery is reported,
    //    the failures already reported are not reported again.
    *fake.down.lock().unwrap() = false;
    let state: WatchState = serde_json::from_str(&saved)?;
    let mut resumed = watcher(&flink, notifier.clone())?.with_state(state);
    let mut again = resumed.poll_once().await;
    again.extend(resumed.poll_once().await);
    for r in &again {
        println!("{}", serde_json::to_string(r)?);
    }
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        (again[0].title.as_str(), again[0].alert_state),
        ("Flink cluster prod unreachable", AlertState::Resolved)
    );

    // What each team received.
    assert_eq!(ding.accepted().len(), 1);
    assert_eq!(wecom.accepted().len(), 2);
    let all = format!("{:?}{:?}", ding.requests(), wecom.requests());
    assert!(!all.contains("scratch-adhoc"), "a dropped job alerted");
    Ok(())
}
