//! The Flink watcher against a real Flink standalone session.
//!
//! Run by `scripts/flink-it.sh test`, which starts the cluster and runs
//!
//! ```text
//! FLINK_REST_URL=http://127.0.0.1:PORT FLINK_IT_DIR=DIR \
//!     cargo test --features flink,testkit --test flink_real -- --ignored --test-threads=1
//! ```
//!
//! The test submits real PyFlink jobs through `scripts/flink-it.sh submit`
//! (fail without restart, fail with a fixed-delay strategy, fail once and
//! recover, a 200 ms restart, cancel, finish, failing checkpoints), restarts
//! the JobManager, and asserts exactly the alerts the watcher sent, with
//! their causes and links. Without `FLINK_REST_URL` it fails: it is only run
//! on purpose (`--ignored`), and then a missing cluster is an error.
#![cfg(all(feature = "flink", feature = "testkit"))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alertkit::flink::{FlinkWatcher, WatchConfig, WatchReport};
use alertkit::testkit::recording_registry;
use alertkit::{Alert, AlertState, Config, GroupConfig, Http, InstanceConfig, Notifier};

struct It {
    url: String,
    dir: String,
    script: String,
    sent: Arc<Mutex<Vec<Alert>>>,
    t0: Instant,
}

impl It {
    fn log(&self, what: &str) {
        eprintln!("[{:6.1}s] {what}", self.t0.elapsed().as_secs_f32());
    }

    fn alerts_of(&self, jid: &str) -> Vec<Alert> {
        of(&self.sent, jid)
    }

    async fn submit(&self, scenario: &str) -> String {
        self.submit_inner(scenario).await
    }
}

fn of(sent: &Mutex<Vec<Alert>>, jid: &str) -> Vec<Alert> {
    {
        sent.lock()
            .unwrap()
            .iter()
            .filter(|a| a.labels.get("flink_job").map(String::as_str) == Some(jid))
            .cloned()
            .collect()
    }
}

/// A notifier recording what it delivered.
fn recording() -> (Arc<Notifier>, Arc<Mutex<Vec<Alert>>>) {
    let config = Config::default()
        .with_instance(InstanceConfig::new("mem", "recording"))
        .with_group(GroupConfig::new("flink-it", ["mem"]));
    let notifier =
        Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let s = sent.clone();
    notifier.on_dispatch(move |alert, report| {
        if report.status == alertkit::GroupStatus::Delivered {
            s.lock().unwrap().push(alert.clone());
        }
    });
    (notifier, sent)
}

impl It {
    async fn submit_inner(&self, scenario: &str) -> String {
        let out = tokio::process::Command::new(&self.script)
            .args(["submit", &self.dir, scenario])
            .output()
            .await
            .expect("runs scripts/flink-it.sh submit");
        assert!(
            out.status.success(),
            "submit {scenario}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let jid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(jid.len(), 32, "a job id for {scenario}: {jid:?}");
        self.log(&format!("{scenario} submitted as {jid}"));
        jid
    }

    async fn cancel(&self, jid: &str) {
        let r = reqwest::Client::new()
            .patch(format!("{}/jobs/{jid}?mode=cancel", self.url))
            .send()
            .await
            .expect("cancel request");
        assert!(r.status().is_success(), "cancel {jid}: {}", r.status());
        self.log(&format!("cancelled {jid}"));
    }

    async fn state_of(&self, jid: &str) -> Option<String> {
        let v: serde_json::Value = reqwest::get(format!("{}/jobs/overview", self.url))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["jobs"]
            .as_array()?
            .iter()
            .find(|j| j["jid"] == jid)
            .and_then(|j| j["state"].as_str().map(str::to_owned))
    }

    /// Waits until `cond` holds, at most `secs`.
    async fn until(&self, what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !cond().await {
            assert!(
                Instant::now() < end,
                "timed out after {secs} s waiting for: {what}\nalerts so far: {:#?}",
                titles(&self.sent.lock().unwrap())
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.log(what);
    }
}

fn titles(alerts: &[Alert]) -> Vec<(String, AlertState)> {
    alerts.iter().map(|a| (a.title.clone(), a.state)).collect()
}

fn error_of(a: &Alert) -> &str {
    a.job
        .as_ref()
        .and_then(|j| j.error.as_deref())
        .unwrap_or_default()
}

fn field<'a>(a: &'a Alert, k: &str) -> Option<&'a str> {
    a.fields
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

fn is_restart(a: &Alert) -> bool {
    a.state == AlertState::Firing
        && (a.title.ends_with(" RESTARTING") || a.title.ends_with(" restarted"))
}

/// A restart or failure alert carries the UDF's Python error first.
fn assert_cause(a: &Alert) {
    let err = error_of(a);
    assert!(
        err.starts_with("IllegalStateException: orders-etl boom\nRuntimeError: job failed\n"),
        "{}: the cause first, got:\n{}",
        a.title,
        err.chars().take(600).collect::<String>()
    );
}

#[tokio::test]
#[ignore = "needs a real Flink: run by scripts/flink-it.sh test"]
async fn real_flink_jobs_alert_exactly_with_their_causes_and_links() {
    let url = std::env::var("FLINK_REST_URL")
        .expect("FLINK_REST_URL must name a running Flink (scripts/flink-it.sh test sets it)");
    let dir =
        std::env::var("FLINK_IT_DIR").expect("FLINK_IT_DIR (scripts/flink-it.sh test sets it)");
    let script = std::env::var("FLINK_IT_SCRIPT")
        .unwrap_or_else(|_| format!("{}/scripts/flink-it.sh", env!("CARGO_MANIFEST_DIR")));
    let url = url.trim_end_matches('/').to_owned();

    let (notifier, sent) = recording();
    let it = It {
        url: url.clone(),
        dir,
        script,
        sent: sent.clone(),
        t0: Instant::now(),
    };
    let watch = WatchConfig::new(&url, "it")
        .unwrap()
        .interval(Duration::from_secs(1));
    let mut handle = FlinkWatcher::new(watch, notifier.clone(), "flink-it")
        .unwrap()
        .start();
    let reports: Arc<Mutex<Vec<WatchReport>>> = Arc::default();
    // A second watcher polling every 5 s: the 200 ms restart, and most of
    // the fixed-delay ones, happen between two of its polls.
    let (slow_notifier, slow_sent) = recording();
    let slow = FlinkWatcher::new(
        WatchConfig::new(&url, "it")
            .unwrap()
            .interval(Duration::from_secs(5)),
        slow_notifier,
        "flink-it",
    )
    .unwrap()
    .start();

    // Every job at once: 4 slots; the later ones wait for the first to end.
    let (a, b, c, d, e, f, g) = tokio::join!(
        it.submit("fail_no_restart"),
        it.submit("fail_fixed_delay"),
        it.submit("fail_once_recover"),
        it.submit("fast_restart"),
        it.submit("run_forever"),
        it.submit("finish"),
        it.submit("checkpoint_fail"),
    );
    let mut cancelled: HashMap<String, bool> = HashMap::new();
    let mut e_running_since: Option<Instant> = None;
    it.until("every scenario reached its end", 420, async || {
        while let Ok(Some(r)) =
            tokio::time::timeout(Duration::from_millis(1), handle.next_report()).await
        {
            reports.lock().unwrap().push(r);
        }
        let has = |jid: &str, p: &dyn Fn(&Alert) -> bool| it.alerts_of(jid).iter().any(p);
        // Recovered jobs are cancelled once their restart was reported.
        // (A restart seen as RESTARTING is resolved once RUNNING again is seen.)
        let recovered = has(&c, &|a| {
            a.title.ends_with(" restarted") || a.state == AlertState::Resolved
        });
        if has(&c, &is_restart) && recovered && !cancelled.contains_key(&c) {
            it.cancel(&c).await;
            cancelled.insert(c.clone(), true);
        }
        if has(&g, &|a| a.title.ends_with("checkpoints failing")) && !cancelled.contains_key(&g) {
            it.cancel(&g).await;
            cancelled.insert(g.clone(), true);
        }
        if it.state_of(&e).await.as_deref() == Some("RUNNING") {
            let since = *e_running_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) && !cancelled.contains_key(&e) {
                it.cancel(&e).await;
                cancelled.insert(e.clone(), true);
            }
        }
        let ended = |jid: &str, title: &str| has(jid, &|a| a.title.ends_with(title));
        ended(&a, " FAILED")
            && ended(&b, " FAILED")
            && ended(&c, " CANCELED")
            && has(&d, &is_restart)
            // The 5 s watcher sees the 200 ms restart only in the exception
            // history; it must have read it before the JobManager restart
            // below takes the job away.
            && of(&slow_sent, &d).iter().any(is_restart)
            && ended(&e, " CANCELED")
            && ended(&g, " CANCELED")
            && it.state_of(&f).await.as_deref() == Some("FINISHED")
    })
    .await;
    // Nothing more comes for the ended jobs; the fast restarter still runs.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // A JobManager restart without HA: an outage, then every job is gone.
    let out = tokio::process::Command::new(&it.script)
        .args(["jm-restart", &it.dir])
        .env("FLINK_IT_WAIT_TM", "0")
        .output()
        .await
        .expect("runs scripts/flink-it.sh jm-restart");
    assert!(
        out.status.success(),
        "jm-restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    it.log("JobManager restarted");
    it.until("the fast restarter reported gone", 60, async || {
        it.alerts_of(&d)
            .iter()
            .any(|a| a.title.ends_with("is no longer known to the cluster"))
    })
    .await;
    it.until(
        "the 5 s watcher saw every failure and the restart",
        60,
        async || {
            let gone = |jid: &str| {
                of(&slow_sent, jid)
                    .iter()
                    .any(|a| a.title.ends_with("no longer known to the cluster"))
            };
            let failed = |jid: &str| {
                of(&slow_sent, jid)
                    .iter()
                    .any(|a| a.title.ends_with(" FAILED"))
            };
            gone(&d) && failed(&a) && failed(&b)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let slow_state = slow.stop().await.state;
    let stopped = handle.stop().await;
    reports.lock().unwrap().extend(stopped.reports);

    let all = sent.lock().unwrap().clone();
    eprintln!("{} alerts:", all.len());
    for a in &all {
        eprintln!(
            "  {:?} {} | {}",
            a.state,
            a.title,
            error_of(a).lines().next().unwrap_or("")
        );
    }
    let completed = |jid: &str| format!("{url}/#/job/completed/{jid}/overview");
    let running = |jid: &str| format!("{url}/#/job/running/{jid}/overview");

    // fail_no_restart: FAILED once, the Python cause first, the task named.
    let aa = it.alerts_of(&a);
    assert_eq!(
        titles(&aa),
        [(
            "Flink job alertkit-it-fail_no_restart FAILED".to_string(),
            AlertState::Firing
        )]
    );
    assert_cause(&aa[0]);
    assert_eq!(aa[0].links[0].url, completed(&a));
    assert!(
        field(&aa[0], "No restart").is_some_and(|v| v.contains("NoRestartBackoffTimeStrategy"))
    );
    assert!(field(&aa[0], "Failed task").is_some_and(|v| v.contains("execution #0")));

    // fail_fixed_delay: three restarts, each once with its cause; then FAILED.
    let bb = it.alerts_of(&b);
    let restarts: Vec<&Alert> = bb.iter().filter(|a| is_restart(a)).collect();
    assert_eq!(restarts.len(), 3, "{:#?}", titles(&bb));
    for r in &restarts {
        assert_cause(r);
    }
    let failed: Vec<&Alert> = bb.iter().filter(|a| a.title.ends_with(" FAILED")).collect();
    assert_eq!(failed.len(), 1, "{:#?}", titles(&bb));
    assert_cause(failed[0]);
    assert!(
        field(failed[0], "No restart")
            .is_some_and(|v| v.contains("FixedDelayRestartBackoffTimeStrategy"))
    );
    assert!(
        field(failed[0], "Failed task").is_some_and(|v| v.contains("execution #3")),
        "{:?}",
        failed[0].fields
    );
    assert_eq!(failed[0].links[0].url, completed(&b));
    let resolved = bb
        .iter()
        .filter(|a| a.state == AlertState::Resolved)
        .count();
    let firing_restarting = bb
        .iter()
        .filter(|a| a.title.ends_with(" RESTARTING") && a.state == AlertState::Firing)
        .count();
    assert!(resolved <= firing_restarting);
    assert_eq!(bb.len(), 3 + 1 + resolved, "{:#?}", titles(&bb));

    // fail_once_recover and fast_restart: one restart with its cause.
    for (jid, tail) in [
        (&c, " CANCELED"),
        (&d, " is no longer known to the cluster"),
    ] {
        let cc = it.alerts_of(jid);
        let restarts: Vec<&Alert> = cc.iter().filter(|a| is_restart(a)).collect();
        assert_eq!(restarts.len(), 1, "{:#?}", titles(&cc));
        assert_cause(restarts[0]);
        assert_eq!(restarts[0].links[0].url, running(jid));
        let resolved = cc
            .iter()
            .filter(|a| a.state == AlertState::Resolved)
            .count();
        assert_eq!(
            resolved,
            usize::from(restarts[0].title.ends_with(" RESTARTING")),
            "{:#?}",
            titles(&cc)
        );
        let last = cc.last().unwrap();
        assert!(last.title.ends_with(tail), "{:#?}", titles(&cc));
        assert_eq!(cc.len(), 1 + resolved + 1, "{:#?}", titles(&cc));
    }
    let cancel = it.alerts_of(&c).last().unwrap().clone();
    assert_eq!(cancel.links[0].url, completed(&c));

    // run_forever: cancelled.
    assert_eq!(
        titles(&it.alerts_of(&e)),
        [(
            "Flink job alertkit-it-run_forever CANCELED".to_string(),
            AlertState::Firing
        )]
    );
    // finish: nothing.
    assert!(
        it.alerts_of(&f).is_empty(),
        "{:#?}",
        titles(&it.alerts_of(&f))
    );
    // checkpoint_fail: no false page at start; one real failure; then its cancel.
    let gg = it.alerts_of(&g);
    assert_eq!(
        titles(&gg),
        [
            (
                "Flink job alertkit-it-checkpoint_fail: checkpoints failing".to_string(),
                AlertState::Firing
            ),
            (
                "Flink job alertkit-it-checkpoint_fail CANCELED".to_string(),
                AlertState::Firing
            ),
        ]
    );
    let msg = error_of(&gg[0]);
    assert!(
        msg.contains("IO-problem") || msg.contains("finalize checkpoint"),
        "{msg}"
    );
    assert!(field(&gg[1], "Checkpoints failed").is_some_and(|n| n.parse::<u64>().unwrap() > 0));

    // The JobManager restart: one outage, resolved; only the running job vanished.
    let cluster: Vec<(String, AlertState)> = all
        .iter()
        .filter(|a| a.job.is_none())
        .map(|a| (a.title.clone(), a.state))
        .collect();
    assert_eq!(
        cluster,
        [
            (
                "Flink cluster it unreachable".to_string(),
                AlertState::Firing
            ),
            (
                "Flink cluster it unreachable".to_string(),
                AlertState::Resolved
            ),
        ]
    );
    let vanished = all
        .iter()
        .filter(|a| a.title.ends_with("no longer known to the cluster"))
        .count();
    assert_eq!(vanished, 1);
    // Every alert went out as one report naming its job and fingerprint.
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), all.len());
    for (r, a) in reports.iter().zip(&all) {
        assert_eq!(r.fingerprint, a.fingerprint());
        assert_eq!(
            r.jid.as_deref(),
            a.labels.get("flink_job").map(String::as_str)
        );
    }
    // README: the FAILED alert as a platform shows it.
    // The 5 s watcher: every failure and restart once, each with its cause.
    for (jid, restarts, end) in [
        (&a, 0, " FAILED"),
        (&b, 3, " FAILED"),
        (&d, 1, "no longer known to the cluster"),
    ] {
        let xs = of(&slow_sent, jid);
        let r: Vec<&Alert> = xs.iter().filter(|a| is_restart(a)).collect();
        assert_eq!(r.len(), restarts, "5 s watcher: {:#?}", titles(&xs));
        for x in &r {
            assert_cause(x);
        }
        let last = xs.last().unwrap();
        assert!(last.title.ends_with(end), "5 s watcher: {:#?}", titles(&xs));
        if end == " FAILED" {
            assert_cause(last);
        }
    }
    let fast = of(&slow_sent, &d);
    eprintln!("5 s watcher, the 200 ms restart: {:?}", titles(&fast));
    assert!(
        slow_state.jobs() == 0,
        "after the JobManager restart nothing is left to track"
    );
    let preview = notifier.preview("mem", &aa[0]).unwrap();
    eprintln!(
        "---- FAILED alert as sent (text) ----\n{}\n---- (JSON) ----\n{}",
        preview[0].body["text"].as_str().unwrap_or_default(),
        serde_json::to_string_pretty(&aa[0]).unwrap()
    );
}
