//! The Flink watcher's defects of issues 15 and 16, each against a fake
//! Flink that answers with what a real Flink 2.3 answered
//! (tests/fixtures/flink, see its TIMELINE.md), including its lags.
#![cfg(all(feature = "flink", feature = "testkit"))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alertkit::flink::{FlinkWatcher, WatchConfig};
use alertkit::testkit::recording_registry;
use alertkit::{Alert, AlertState, Config, GroupConfig, Http, InstanceConfig, Notifier};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/flink/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const JID: &str = "05dd2a6b8903340bd40b4e615939d978";

/// A fake JobManager: per-path answers, exception answers that lag (the
/// stale answer for the first N requests after a change), request counts.
#[derive(Default)]
struct State {
    jobs: Vec<Value>,
    exceptions: HashMap<String, Value>,
    /// (stale answer, requests still answered with it)
    lag: HashMap<String, (Value, usize)>,
    checkpoints: HashMap<String, (u16, Value)>,
    raw: HashMap<String, Vec<u8>>,
    down: bool,
    hits: Vec<String>,
    queries: Vec<Option<String>>,
    auth: Vec<Option<String>>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
    fn hits(&self) -> Vec<String> {
        self.with(|s| s.hits.clone())
    }
}

impl Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap();
        let path = req.url.path().to_owned();
        s.hits.push(path.clone());
        s.queries.push(req.url.query().map(str::to_owned));
        s.auth.push(
            req.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        if s.down {
            return ResponseTemplate::new(503).set_body_string("down");
        }
        if let Some(raw) = s.raw.get(&path) {
            return ResponseTemplate::new(200).set_body_raw(raw.clone(), "application/json");
        }
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let body = match parts.as_slice() {
            ["config"] => fixture("config.json"),
            ["jobs", "overview"] => json!({ "jobs": s.jobs }),
            ["jobs", jid, "exceptions"] => {
                let jid = jid.to_string();
                if let Some((stale, n)) = s.lag.get_mut(&jid)
                    && *n > 0
                {
                    *n -= 1;
                    return ResponseTemplate::new(200).set_body_json(stale.clone());
                }
                s.exceptions
                    .get(&jid)
                    .cloned()
                    .unwrap_or_else(|| fixture("exceptions_none.json"))
            }
            ["jobs", jid, "checkpoints"] => {
                let (status, body) = s
                    .checkpoints
                    .get(*jid)
                    .cloned()
                    .unwrap_or((200, fixture("checkpoints_disabled.json")));
                return ResponseTemplate::new(status).set_body_json(body);
            }
            _ => return ResponseTemplate::new(404).set_body_json(json!({"errors": ["Not found"]})),
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

fn job(jid: &str, name: &str, state: &str, modified: i64) -> Value {
    let ended = matches!(state, "FAILED" | "CANCELED" | "FINISHED");
    json!({"jid": jid, "name": name, "state": state, "start-time": 1_795_985_837_348i64,
           "end-time": if ended { json!(1_795_985_844_703i64) } else { json!(-1) },
           "duration": 1000, "last-modification": modified,
           "tasks": {"running": 2, "total": 2}})
}

fn set_state(fake: &Fake, jid: &str, state: &str, modified: i64) {
    fake.with(|s| {
        for j in &mut s.jobs {
            if j["jid"] == jid {
                *j = job(jid, j["name"].as_str().unwrap(), state, modified);
            }
        }
    });
}

struct Rig {
    fake: Fake,
    server: MockServer,
    sent: Arc<Mutex<Vec<Alert>>>,
}

async fn rig() -> Rig {
    let server = MockServer::start().await;
    let fake = Fake::default();
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    Rig {
        fake,
        server,
        sent: Arc::new(Mutex::new(Vec::new())),
    }
}

fn notifier(sent: &Arc<Mutex<Vec<Alert>>>) -> Arc<Notifier> {
    let config = Config::default()
        .with_instance(InstanceConfig::new("mem", "recording"))
        .with_group(GroupConfig::new("flink-prod", ["mem"]));
    let n =
        Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    let s = sent.clone();
    n.on_dispatch(move |alert, _| s.lock().unwrap().push(alert.clone()));
    n
}

fn watcher_at(url: &str, r: &Rig) -> FlinkWatcher {
    let config = WatchConfig::new(url, "prod").unwrap();
    FlinkWatcher::new(config, notifier(&r.sent), "flink-prod").unwrap()
}

fn watcher(r: &Rig) -> FlinkWatcher {
    watcher_at(&r.server.uri(), r)
}

impl Rig {
    fn alerts(&self) -> Vec<Alert> {
        self.sent.lock().unwrap().clone()
    }
    fn titles(&self) -> Vec<(String, AlertState)> {
        self.alerts()
            .iter()
            .map(|a| (a.title.clone(), a.state))
            .collect()
    }
}

fn error_of(a: &Alert) -> String {
    a.job
        .as_ref()
        .and_then(|j| j.error.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_failure_alert_carries_this_failures_cause_not_the_previous_attempts() {
    let r = rig().await;
    // Running, with an earlier (already known) failure in its history.
    let old = fixture("exceptions_first_restart.json");
    r.fake.with(|s| {
        s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)];
        s.exceptions.insert(JID.into(), old.clone());
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    // FAILED in the overview at once; the exception history still shows the
    // previous attempt's entry for the next two reads (Flink's ~3 s cache).
    set_state(&r.fake, JID, "FAILED", 2);
    // (The two fixtures come from two jobs: this failure is made the later one.)
    let mut failure = fixture("exceptions_first_failure.json");
    failure["exceptionHistory"]["entries"][0]["timestamp"] = json!(1_795_985_999_000i64);
    r.fake.with(|s| {
        s.exceptions.insert(JID.into(), failure);
        s.lag.insert(JID.into(), (old, 2));
    });
    w.poll_once().await;
    let alerts = r.alerts();
    assert_eq!(
        r.titles(),
        [(
            "Flink job orders-etl FAILED".to_string(),
            AlertState::Firing
        )]
    );
    let err = error_of(&alerts[0]);
    // The root cause first (the Python error lines the UDF raised), not the
    // wrapper (`JobException: Recovery is suppressed by ...`).
    assert!(
        err.starts_with("IllegalStateException: orders-etl boom\nRuntimeError: job failed"),
        "{err}"
    );
    assert!(
        err.contains("execution #0")
            || alerts[0]
                .fields
                .iter()
                .any(|(_, v)| v.contains("execution #0"))
    );
    // The terminal entry's own timestamp, not the earlier attempt's 1795985893392.
    assert!(
        !err.contains("instruction 1:"),
        "the previous attempt's cause: {err}"
    );
}

#[tokio::test]
async fn a_jobs_first_exception_and_a_restart_between_polls_are_reported_with_their_cause() {
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let mut w = watcher(&r);
    w.poll_once().await; // baseline: an empty history
    // A 200 ms restart between two polls: still RUNNING, the tasks were
    // redeployed (last-modification moved) and the history has its first entry.
    set_state(&r.fake, JID, "RUNNING", 2);
    r.fake.with(|s| {
        s.exceptions
            .insert(JID.into(), fixture("exceptions_first_restart.json"))
    });
    w.poll_once().await;
    w.poll_once().await; // reported once
    let alerts = r.alerts();
    assert_eq!(alerts.len(), 1, "{:?}", r.titles());
    assert_eq!(alerts[0].title, "Flink job orders-etl restarted");
    assert!(error_of(&alerts[0]).starts_with("IllegalStateException: orders-etl boom"));
}

#[tokio::test]
async fn links_follow_the_flink_2_routes() {
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "FAILED", 2);
    r.fake.with(|s| {
        s.exceptions
            .insert(JID.into(), fixture("exceptions_first_failure.json"))
    });
    w.poll_once().await;
    let a = &r.alerts()[0];
    let want = format!("{}/#/job/completed/{JID}/overview", r.server.uri());
    assert_eq!(a.links[0].url, want);
    assert_eq!(a.job.as_ref().unwrap().url.as_deref(), Some(want.as_str()));
}

#[tokio::test]
async fn checkpoints_refused_while_tasks_deploy_are_no_page_and_a_real_failure_is() {
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)];
        s.checkpoints.insert(
            JID.into(),
            (500, fixture("checkpoints_initializing_500.json")),
        );
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    r.fake.with(|s| {
        s.checkpoints
            .insert(JID.into(), (200, fixture("checkpoints_disabled.json")))
    });
    w.poll_once().await;
    // counts.failed 3, latest.failed null: triggers refused while deploying.
    r.fake.with(|s| {
        s.checkpoints
            .insert(JID.into(), (200, fixture("checkpoints_after_start.json")))
    });
    w.poll_once().await;
    assert!(r.alerts().is_empty(), "{:?}", r.titles());
    r.fake.with(|s| {
        s.checkpoints.insert(
            JID.into(),
            (200, fixture("checkpoints_first_real_failure.json")),
        )
    });
    w.poll_once().await;
    w.poll_once().await;
    let alerts = r.alerts();
    assert_eq!(
        r.titles(),
        [(
            "Flink job orders-etl: checkpoints failing".to_string(),
            AlertState::Firing
        )]
    );
    assert!(error_of(&alerts[0]).contains("IO-problem detected"));
}

#[tokio::test]
async fn jobs_that_vanish_are_reported_after_an_outage() {
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = vec![
            job(JID, "orders-etl", "RUNNING", 1),
            job("f1", "old", "FINISHED", 1),
        ]
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    r.fake.with(|s| s.down = true);
    w.poll_once().await;
    r.fake.with(|s| {
        s.down = false;
        s.jobs.clear(); // a JobManager restarted without HA
    });
    w.poll_once().await;
    w.poll_once().await;
    let titles = r.titles();
    assert_eq!(
        titles,
        [
            (
                "Flink cluster prod unreachable".to_string(),
                AlertState::Firing
            ),
            (
                "Flink cluster prod unreachable".to_string(),
                AlertState::Resolved
            ),
            (
                "Flink job orders-etl is no longer known to the cluster".to_string(),
                AlertState::Firing
            ),
        ]
    );
}

#[tokio::test]
async fn a_checkpoint_failure_of_a_job_that_failed_folds_into_its_failed_alert() {
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)];
        s.checkpoints
            .insert(JID.into(), (200, fixture("checkpoints_after_start.json")));
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "FAILED", 2);
    r.fake.with(|s| {
        s.exceptions
            .insert(JID.into(), fixture("exceptions_first_failure.json"));
        s.checkpoints
            .insert(JID.into(), (200, fixture("checkpoints_failed.json")));
    });
    w.poll_once().await;
    w.poll_once().await;
    let alerts = r.alerts();
    assert_eq!(
        r.titles(),
        [(
            "Flink job orders-etl FAILED".to_string(),
            AlertState::Firing
        )]
    );
    let fields = &alerts[0].fields;
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "Checkpoints failed" && v == "8"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "Last failed checkpoint" && v.contains("IO-problem")),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_cluster_with_2000_finished_and_50_running_jobs_costs_about_50_detail_requests() {
    let r = rig().await;
    r.fake.with(|s| {
        for i in 0..2000 {
            s.jobs.push(job(
                &format!("done{i:04}"),
                &format!("batch-{i}"),
                "FINISHED",
                1,
            ));
        }
        for i in 0..50 {
            s.jobs.push(job(
                &format!("run{i:04}"),
                &format!("stream-{i}"),
                "RUNNING",
                1,
            ));
        }
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    let first = r.fake.hits().len();
    assert!(first <= 2 + 100, "first poll: {first} requests");
    for _ in 0..3 {
        let before = r.fake.hits().len();
        w.poll_once().await;
        let hits = r.fake.hits();
        let detail = hits[before..]
            .iter()
            .filter(|p| p.starts_with("/jobs/") && p != &"/jobs/overview")
            .count();
        assert!(detail <= 50, "a steady poll made {detail} detail requests");
        assert!(
            hits[before..].iter().all(|p| !p.contains("done")),
            "finished jobs are not fetched"
        );
    }
    assert!(r.alerts().is_empty());
}

#[tokio::test]
async fn a_password_in_the_rest_url_reaches_no_alert_link_or_debug() {
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let url = r.server.uri().replace("http://", "http://ops:s3cret@");
    let mut w = watcher_at(&url, &r);
    w.poll_once().await;
    set_state(&r.fake, JID, "FAILED", 2);
    w.poll_once().await;
    r.fake.with(|s| s.down = true);
    w.poll_once().await;
    let alerts = r.alerts();
    assert_eq!(alerts.len(), 2, "{:?}", r.titles());
    for a in &alerts {
        let text = serde_json::to_string(a).unwrap();
        assert!(!text.contains("s3cret") && !text.contains("ops:"), "{text}");
    }
    assert!(!format!("{w:?}").contains("s3cret"));
    // The credentials still reach Flink, as a header.
    let auth = r.fake.with(|s| s.auth.clone());
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some("Basic b3BzOnMzY3JldA==")),
        "{auth:?}"
    );
}

#[tokio::test]
async fn an_overview_larger_than_a_megabyte_is_read() {
    let r = rig().await;
    r.fake.with(|s| {
        // 15,000 jobs: a real cluster's history, ~3 MB.
        for i in 0..15_000 {
            s.jobs.push(job(
                &format!("done{i:05}"),
                &format!("batch-job-{i}"),
                "FINISHED",
                1,
            ));
        }
        s.jobs.push(job(JID, "orders-etl", "RUNNING", 1));
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "CANCELED", 2);
    w.poll_once().await;
    assert_eq!(
        r.titles(),
        [(
            "Flink job orders-etl CANCELED".to_string(),
            AlertState::Firing
        )]
    );
}

#[tokio::test]
async fn an_exception_answer_over_the_cap_is_said_not_skipped() {
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "FAILED", 2);
    // 65 MB: over the watcher's 64 MB cap (and the old 1 MB one).
    let mut big = br#"{"exceptionHistory":{"entries":[{"exceptionName":"E","timestamp":1795985844703,"stacktrace":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 65 << 20));
    big.extend_from_slice(br#""}],"truncated":false}}"#);
    r.fake
        .with(|s| s.raw.insert(format!("/jobs/{JID}/exceptions"), big));
    w.poll_once().await;
    let alerts = r.alerts();
    assert_eq!(alerts.len(), 1, "{:?}", r.titles());
    assert!(
        alerts[0].body.contains("The cause could not be read"),
        "{}",
        alerts[0].body
    );
    assert!(alerts[0].body.contains("limit"), "{}", alerts[0].body);
}

// ---- the library API for control planes -----------------------------------

#[tokio::test]
async fn a_misspelt_group_is_an_error() {
    let r = rig().await;
    let e = FlinkWatcher::new(
        WatchConfig::new(&r.server.uri(), "prod").unwrap(),
        notifier(&r.sent),
        "flink-prdo",
    )
    .unwrap_err();
    assert!(e.to_string().contains("flink-prdo"), "{e}");
    assert!(
        e.to_string().contains("flink-prod"),
        "names the groups there are: {e}"
    );
}

#[tokio::test]
async fn routes_per_job_drops_on_none_and_enriches() {
    let r = rig().await;
    let config = Config::default()
        .with_instance(InstanceConfig::new("mem", "recording"))
        .with_group(GroupConfig::new("flink-prod", ["mem"]))
        .with_group(GroupConfig::new("team-a", ["mem"]));
    let n =
        Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    let s = r.sent.clone();
    n.on_dispatch(move |alert, _| s.lock().unwrap().push(alert.clone()));
    r.fake.with(|s| {
        s.jobs = vec![
            job("a1", "team-a.orders", "RUNNING", 1),
            job("s1", "scratch-1", "RUNNING", 1),
            job("o1", "other", "RUNNING", 1),
            job("t1", "typo", "RUNNING", 1),
        ]
    });
    let mut w = FlinkWatcher::new(
        WatchConfig::new(&r.server.uri(), "prod").unwrap(),
        n,
        "flink-prod",
    )
    .unwrap()
    .route(|job| match job.name.as_str() {
        n if n.starts_with("team-a.") => Some("team-a".into()),
        n if n.starts_with("scratch-") => None,
        "typo" => Some("no-such-group".into()),
        _ => Some("flink-prod".into()),
    })
    .enrich(|alert, job| {
        alert
            .fields
            .push(("Owner".into(), format!("owner of {}", job.name)))
    });
    w.poll_once().await;
    for jid in ["a1", "s1", "o1", "t1"] {
        set_state(&r.fake, jid, "CANCELED", 2);
    }
    let reports = w.poll_once().await;
    let routed: Vec<(Option<String>, String)> = reports
        .iter()
        .map(|r| (r.job.clone(), r.group.clone()))
        .collect();
    assert_eq!(
        routed,
        [
            (Some("team-a.orders".into()), "team-a".into()),
            (Some("other".into()), "flink-prod".into()),
            // An unknown group falls back to the watcher's own.
            (Some("typo".into()), "flink-prod".into()),
        ]
    );
    for (rep, a) in reports.iter().zip(r.alerts()) {
        assert_eq!(rep.fingerprint, a.fingerprint());
        assert_eq!(rep.job_state.as_deref(), Some("CANCELED"));
        assert!(a.fields.contains(&(
            "Owner".into(),
            format!("owner of {}", rep.job.as_deref().unwrap())
        )));
    }
}

#[tokio::test]
async fn job_alert_builds_what_the_watcher_sends() {
    use alertkit::JobStatus;
    use alertkit::flink::{JobEvent, JobView, job_alert};
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "CANCELED", 2);
    w.poll_once().await;
    let sent = &r.alerts()[0];
    let mine = job_alert(
        &JobView::new("prod", JID, "orders-etl", JobStatus::Canceled),
        &JobEvent::Entered(JobStatus::Canceled),
        None,
    );
    assert_eq!(mine.title, sent.title);
    assert_eq!(mine.fingerprint(), sent.fingerprint());
    assert_eq!(mine.severity, sent.severity);
}

#[tokio::test]
async fn saved_state_neither_realerts_nor_misses() {
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = vec![
            job(JID, "orders-etl", "RUNNING", 1),
            job("b2", "billing", "RUNNING", 1),
        ]
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "CANCELED", 2);
    w.poll_once().await;
    assert_eq!(r.alerts().len(), 1);
    let saved = serde_json::to_string(&w.state()).unwrap();
    drop(w);
    // While the control plane was down, billing was cancelled too.
    set_state(&r.fake, "b2", "CANCELED", 2);
    let state = serde_json::from_str(&saved).unwrap();
    let mut w = watcher(&r).with_state(state);
    w.poll_once().await;
    assert_eq!(
        r.titles(),
        [
            (
                "Flink job orders-etl CANCELED".to_string(),
                AlertState::Firing
            ),
            ("Flink job billing CANCELED".to_string(), AlertState::Firing),
        ]
    );
}

#[tokio::test]
async fn rules_ignore_names_and_alert_restarts_from_the_nth() {
    use alertkit::flink::Rules;
    use std::time::Duration;
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = vec![
            job(JID, "orders-etl", "RUNNING", 1),
            job("x1", "adhoc-42", "RUNNING", 1),
        ]
    });
    let config = WatchConfig::new(&r.server.uri(), "prod").unwrap().rules(
        Rules::default()
            .ignore("adhoc-*")
            .alert_after_restarts(2, Duration::from_secs(600)),
    );
    let mut w = FlinkWatcher::new(config, notifier(&r.sent), "flink-prod").unwrap();
    w.poll_once().await;
    let entry = |ts: i64| {
        let mut e = fixture("exceptions_first_restart.json");
        e["exceptionHistory"]["entries"][0]["timestamp"] = json!(ts);
        e
    };
    // First restart: below the threshold; the ignored job is never read.
    set_state(&r.fake, JID, "RUNNING", 2);
    set_state(&r.fake, "x1", "FAILED", 2);
    r.fake
        .with(|s| s.exceptions.insert(JID.into(), entry(1_795_985_900_000)));
    w.poll_once().await;
    assert!(r.alerts().is_empty(), "{:?}", r.titles());
    // Second: alerts, saying how many.
    set_state(&r.fake, JID, "RUNNING", 3);
    r.fake
        .with(|s| s.exceptions.insert(JID.into(), entry(1_795_985_960_000)));
    w.poll_once().await;
    let alerts = r.alerts();
    assert_eq!(
        r.titles(),
        [(
            "Flink job orders-etl restarted".to_string(),
            AlertState::Firing
        )]
    );
    assert!(
        alerts[0]
            .fields
            .contains(&("Restarts in window".into(), "2".into()))
    );
    assert!(r.fake.hits().iter().all(|p| !p.contains("x1")));
}

// ---- edge cases of the answers --------------------------------------------

#[tokio::test]
async fn the_old_root_exception_shape_is_read() {
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "FAILED", 2);
    r.fake.with(|s| {
        s.exceptions.insert(
            JID.into(),
            json!({"root-exception": "java.lang.RuntimeException: wrapper\n\tat a\nCaused by: java.io.IOException: disk full\n\tat b",
                   "timestamp": 1_795_985_999_000i64, "truncated": false, "all-exceptions": []}),
        )
    });
    w.poll_once().await;
    let err = error_of(&r.alerts()[0]);
    assert!(
        err.starts_with("Caused by: java.io.IOException: disk full\n"),
        "{err}"
    );
}

#[tokio::test]
async fn hostile_and_failing_answers_break_nothing() {
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = vec![
            job(JID, "orders-etl", "RUNNING", 1),
            json!({"jid": 7, "name": "no id"}),
            json!({"jid": "z1", "name": {"x": 1}, "state": ["RUNNING"], "start-time": "soon"}),
            json!("not a job"),
        ];
        s.checkpoints.insert(
            JID.into(),
            (500, fixture("checkpoints_initializing_500.json")),
        );
    });
    // `jobs` holding a string fails the whole answer: the cluster is said
    // unreachable, not a panic.
    let mut w = watcher(&r);
    w.poll_once().await;
    assert_eq!(
        r.titles(),
        [(
            "Flink cluster prod unreachable".to_string(),
            AlertState::Firing
        )]
    );
    r.fake.with(|s| {
        s.jobs.pop();
        s.exceptions.insert(
            JID.into(),
            json!({"exceptionHistory": {"entries": [{"timestamp": "x"}, {"timestamp": 1_795_985_999_000i64, "stacktrace": 5,
                   "exceptionName": "java.lang.Oops", "concurrentExceptions": "no"}]}}),
        );
    });
    w.poll_once().await;
    set_state(&r.fake, JID, "FAILED", 2);
    w.poll_once().await;
    let titles = r.titles();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert_eq!(titles[2].0, "Flink job orders-etl FAILED");
}

#[tokio::test]
async fn a_flink_1_cluster_gets_its_one_job_route() {
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)];
        s.raw.insert(
            "/config".into(),
            br#"{"refresh-interval":3000,"flink-version":"1.18.1"}"#.to_vec(),
        );
    });
    let mut w = watcher(&r);
    w.poll_once().await;
    set_state(&r.fake, JID, "CANCELED", 2);
    w.poll_once().await;
    assert_eq!(
        r.alerts()[0].links[0].url,
        format!("{}/#/job/{JID}/overview", r.server.uri())
    );
}

#[tokio::test]
async fn the_report_buffer_is_bounded_and_alerts_still_go_out() {
    use std::time::Duration;
    let r = rig().await;
    r.fake.with(|s| {
        s.jobs = (0..3)
            .map(|i| job(&format!("j{i}"), &format!("job-{i}"), "RUNNING", 1))
            .collect()
    });
    let config = WatchConfig::new(&r.server.uri(), "prod")
        .unwrap()
        .interval(Duration::from_millis(50))
        .report_buffer(1);
    let handle = FlinkWatcher::new(config, notifier(&r.sent), "flink-prod")
        .unwrap()
        .start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        set_state(&r.fake, &format!("j{i}"), "CANCELED", 2);
    }
    for _ in 0..100 {
        if r.alerts().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = handle.stop().await;
    assert_eq!(r.alerts().len(), 3, "every alert was sent");
    assert_eq!(stopped.reports.len(), 1, "the buffer holds one");
    assert_eq!(stopped.dropped, 2);
    assert_eq!(stopped.state.jobs(), 3);
}

#[tokio::test]
async fn a_query_of_the_base_url_is_kept_on_requests_and_kept_out_of_links() {
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let mut w = watcher_at(&format!("{}/?token=t0ps3cret", r.server.uri()), &r);
    w.poll_once().await;
    set_state(&r.fake, JID, "CANCELED", 2);
    w.poll_once().await;
    let a = &r.alerts()[0];
    assert!(!serde_json::to_string(a).unwrap().contains("t0ps3cret"));
    assert_eq!(
        a.links[0].url,
        format!("{}/#/job/completed/{JID}/overview", r.server.uri())
    );
    let (hits, queries) = r.fake.with(|s| (s.hits.clone(), s.queries.clone()));
    for (path, q) in hits.iter().zip(&queries) {
        let q = q.as_deref().unwrap_or_default();
        assert!(q.starts_with("token=t0ps3cret"), "{path}?{q}");
        if path.ends_with("/exceptions") {
            assert!(q.ends_with("&maxExceptions=20"), "{path}?{q}");
        }
    }
}

#[tokio::test]
async fn a_cause_that_comes_after_its_alert_follows_on_its_own() {
    use std::time::Duration;
    let r = rig().await;
    r.fake
        .with(|s| s.jobs = vec![job(JID, "orders-etl", "RUNNING", 1)]);
    let config = WatchConfig::new(&r.server.uri(), "prod")
        .unwrap()
        .cause_wait(Duration::from_millis(300));
    let mut w = FlinkWatcher::new(config, notifier(&r.sent), "flink-prod").unwrap();
    w.poll_once().await;
    // FAILED; the history stays empty longer than the alert waits.
    set_state(&r.fake, JID, "FAILED", 2);
    r.fake.with(|s| {
        s.exceptions
            .insert(JID.into(), fixture("exceptions_first_failure.json"));
        s.lag
            .insert(JID.into(), (fixture("exceptions_none.json"), 100));
    });
    w.poll_once().await;
    let alerts = r.alerts();
    assert_eq!(alerts.len(), 1);
    assert!(error_of(&alerts[0]).is_empty());
    assert!(
        alerts[0].body.contains("the cause follows"),
        "{}",
        alerts[0].body
    );
    w.poll_once().await; // still nothing
    r.fake.with(|s| s.lag.clear());
    w.poll_once().await;
    w.poll_once().await; // once
    let alerts = r.alerts();
    assert_eq!(
        r.titles(),
        [
            (
                "Flink job orders-etl FAILED".to_string(),
                AlertState::Firing
            ),
            (
                "Flink job orders-etl FAILED: the cause".to_string(),
                AlertState::Firing
            ),
        ]
    );
    assert!(error_of(&alerts[1]).starts_with("IllegalStateException: orders-etl boom"));
    assert_ne!(alerts[0].fingerprint(), alerts[1].fingerprint());
}
