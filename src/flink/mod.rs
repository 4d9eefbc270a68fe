//! A Flink job watcher (feature `flink`): polls a cluster's REST API and
//! turns job transitions and new failures into alerts.
//!
//! Each poll reads `/jobs/overview` and, per job, `/jobs/:jid/checkpoints`
//! and `/jobs/:jid/exceptions` (both the `exceptionHistory` shape of Flink
//! 1.15+ and the older `root-exception`). The watcher keeps the last state of
//! every job and alerts, by the default [`Rules`]:
//!
//! - a job entering FAILED, CANCELED, SUSPENDED, RESTARTING (or FAILING) or
//!   a state it does not know (firing, with the root exception);
//! - a RESTARTING or FAILING job that is RUNNING again (resolved);
//! - failed checkpoints increasing, and a new root exception, on a known job;
//! - the REST endpoint unreachable (once), and reachable again (resolved).
//!
//! The first poll only records what is there: jobs that failed before the
//! watcher started are not reported, and no transition is reported twice.
//!
//! ```no_run
//! # async fn run(notifier: std::sync::Arc<alertkit::Notifier>) -> Result<(), alertkit::Error> {
//! use alertkit::flink::{FlinkWatcher, WatchConfig};
//! let config = WatchConfig::new("http://jobmanager:8081", "prod-yarn")?;
//! let watcher = FlinkWatcher::new(config, notifier, "flink-prod");
//! let handle = watcher.start();
//! // ... later, on shutdown: in-flight dispatches finish first.
//! handle.stop().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use url::Url;

use crate::alert::{Alert, JobInfo, JobStatus, Severity};
use crate::error::{Error, ErrorKind, Result};
use crate::group::DispatchReport;
use crate::http::{Http, parse_url};
use crate::notifier::Notifier;

/// Which transitions alert. Change the public fields to change the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rules {
    /// States that fire an alert when a job enters them.
    pub alert_states: Vec<JobStatus>,
    /// Alert on states the watcher cannot parse (as UNKNOWN).
    pub unknown_states: bool,
    /// Resolve when a RESTARTING or FAILING job runs again.
    pub resolve_on_running: bool,
    /// Alert when a job's failed-checkpoint count grows.
    pub checkpoint_failures: bool,
    /// Alert when a job has a new root exception.
    pub new_exceptions: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            alert_states: vec![
                JobStatus::Failed,
                JobStatus::Canceled,
                JobStatus::Suspended,
                JobStatus::Restarting,
                JobStatus::Failing,
                JobStatus::Unknown,
            ],
            unknown_states: true,
            resolve_on_running: true,
            checkpoint_failures: true,
            new_exceptions: true,
        }
    }
}

/// Where and how often to poll.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WatchConfig {
    /// The JobManager's REST address (`http://jobmanager:8081`).
    pub base_url: Url,
    /// The cluster name shown in alerts.
    pub cluster: String,
    /// Time between polls (default 10 s).
    pub interval: Duration,
    /// The rules.
    pub rules: Rules,
}

impl WatchConfig {
    /// Polls `base_url` every 10 s with the default rules. Plain `http://`
    /// is accepted: JobManager endpoints are internal and carry no secret.
    pub fn new(base_url: &str, cluster: impl Into<String>) -> Result<Self> {
        Ok(WatchConfig {
            base_url: parse_url("flink", base_url, true)?,
            cluster: cluster.into(),
            interval: Duration::from_secs(10),
            rules: Rules::default(),
        })
    }

    /// Sets the poll interval.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

#[derive(Debug, Clone)]
struct Seen {
    state: String,
    failed_checkpoints: Option<u64>,
    last_exception: Option<i64>,
    problem: bool,
}

/// The watcher; see the module docs.
pub struct FlinkWatcher {
    config: WatchConfig,
    notifier: Arc<Notifier>,
    group: String,
    http: Http,
    jobs: HashMap<String, Seen>,
    first_poll: bool,
    down: bool,
}

impl std::fmt::Debug for FlinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlinkWatcher")
            .field("flink", &self.config.base_url.as_str())
            .field("group", &self.group)
            .field("jobs", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

fn ms(v: &Value) -> Option<DateTime<Utc>> {
    let n = v.as_i64().filter(|n| *n > 0)?;
    Utc.timestamp_millis_opt(n).single()
}

impl FlinkWatcher {
    /// A watcher dispatching to `group` of `notifier`.
    pub fn new(config: WatchConfig, notifier: Arc<Notifier>, group: impl Into<String>) -> Self {
        let http = notifier.http().clone();
        FlinkWatcher {
            config,
            notifier,
            group: group.into(),
            http,
            jobs: HashMap::new(),
            first_poll: true,
            down: false,
        }
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let url = crate::http::join_url(&self.config.base_url, path)?;
        let reply = crate::http::send_json::<Value>(
            self.http.client(),
            reqwest::Method::GET,
            &url,
            Default::default(),
            None,
        )
        .await?;
        if !reply.status.is_success() || !reply.body.is_object() {
            return Err(Error::new(
                ErrorKind::Platform,
                format!("GET {path}: HTTP {}", reply.status.as_u16()),
            )
            .with_retryable(true));
        }
        Ok(reply.body)
    }

    fn ui_link(&self, jid: &str) -> String {
        format!(
            "{}#/job/{jid}/overview",
            self.config.base_url.as_str().trim_end_matches('#')
        )
    }

    fn job_alert(
        &self,
        title: String,
        job: &Value,
        status: JobStatus,
        error: Option<String>,
    ) -> Alert {
        let jid = job["jid"].as_str().unwrap_or_default();
        let name = job["name"].as_str().unwrap_or(jid);
        let mut info = JobInfo::new(name)
            .id(jid)
            .status(status)
            .cluster(self.config.cluster.clone())
            .url(self.ui_link(jid));
        if let Some(start) = ms(&job["start-time"]) {
            info = info.times(start, ms(&job["end-time"]));
        }
        if let Some(e) = error {
            info = info.error(e);
        }
        let severity = match status {
            JobStatus::Failed | JobStatus::Failing => Severity::Critical,
            JobStatus::Canceled | JobStatus::Finished | JobStatus::Stopped => Severity::Warning,
            _ => Severity::Error,
        };
        Alert::new(title)
            .severity(severity)
            .job(info)
            .label("cluster", self.config.cluster.clone())
            .label("flink_job", jid)
            .link("Flink UI", self.ui_link(jid))
            .occurred_at(Utc::now())
    }

    /// The newest root exception: `(timestamp, text)`.
    async fn exception(&self, jid: &str) -> Option<(i64, String)> {
        let v = self.get(&format!("jobs/{jid}/exceptions")).await.ok()?;
        if let Some(e) = v.pointer("/exceptionHistory/entries/0") {
            let ts = e["timestamp"].as_i64().unwrap_or(0);
            let text = e["stacktrace"]
                .as_str()
                .or_else(|| e["exceptionName"].as_str())
                .unwrap_or_default()
                .to_owned();
            return Some((ts, text));
        }
        let root = v["root-exception"].as_str()?;
        Some((v["timestamp"].as_i64().unwrap_or(0), root.to_owned()))
    }

    /// `(failed, completed, latest failure message)`.
    async fn checkpoints(&self, jid: &str) -> Option<(u64, u64, Option<String>)> {
        let v = self.get(&format!("jobs/{jid}/checkpoints")).await.ok()?;
        let failed = v.pointer("/counts/failed")?.as_u64()?;
        let completed = v
            .pointer("/counts/completed")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let msg = v
            .pointer("/latest/failed/failure_message")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some((failed, completed, msg))
    }

    async fn dispatch(&self, alert: Alert, out: &mut Vec<DispatchReport>) {
        match self.notifier.dispatch(&self.group, &alert).await {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!(error = %e, "flink watcher cannot dispatch"),
        }
    }

    /// One poll: reads the cluster, dispatches what the rules say, and
    /// returns the reports in order.
    pub async fn poll_once(&mut self) -> Vec<DispatchReport> {
        let mut out = Vec::new();
        let overview = match self.get("jobs/overview").await {
            Ok(v) => v,
            Err(e) => {
                if !self.down {
                    self.down = true;
                    let alert =
                        Alert::new(format!("Flink cluster {} unreachable", self.config.cluster))
                            .severity(Severity::Critical)
                            .body(format!("{}: {}", self.config.base_url, e.message()))
                            .label("cluster", self.config.cluster.clone())
                            .link("Flink UI", self.config.base_url.as_str())
                            .occurred_at(Utc::now());
                    self.dispatch(alert, &mut out).await;
                }
                return out;
            }
        };
        if self.down {
            self.down = false;
            let alert = Alert::new(format!("Flink cluster {} unreachable", self.config.cluster))
                .severity(Severity::Critical)
                .body("The REST endpoint answers again.")
                .label("cluster", self.config.cluster.clone())
                .resolved()
                .occurred_at(Utc::now());
            self.dispatch(alert, &mut out).await;
        }
        let rules = self.config.rules.clone();
        let jobs = overview["jobs"].as_array().cloned().unwrap_or_default();
        for job in &jobs {
            let Some(jid) = job["jid"].as_str().map(str::to_owned) else {
                continue;
            };
            let name = job["name"].as_str().unwrap_or(&jid).to_owned();
            let raw = job["state"]
                .as_str()
                .unwrap_or("UNKNOWN")
                .to_ascii_uppercase();
            let (status, parsed) = match raw.parse::<JobStatus>() {
                Ok(s) => (s, true),
                Err(_) => (JobStatus::Unknown, false),
            };
            let prev = self.jobs.get(&jid).cloned();
            let mut seen = prev.clone().unwrap_or(Seen {
                state: raw.clone(),
                failed_checkpoints: None,
                last_exception: None,
                problem: false,
            });
            let exception = self.exception(&jid).await;
            let checkpoints = self.checkpoints(&jid).await;
            // Every job alert carries the checkpoint counts as fields.
            let counts = |a: Alert| match &checkpoints {
                Some((failed, completed, _)) => a
                    .field("Checkpoints completed", completed.to_string())
                    .field("Checkpoints failed", failed.to_string()),
                None => a,
            };
            let is_new = prev.is_none();
            let changed = prev.as_ref().is_some_and(|p| p.state != raw);
            let alerting =
                rules.alert_states.contains(&status) || (!parsed && rules.unknown_states);
            if (changed || (is_new && !self.first_poll)) && alerting {
                let title = format!("Flink job {name} {raw}");
                let err = exception.as_ref().map(|(_, t)| t.clone());
                let alert = counts(self.job_alert(title, job, status, err));
                self.dispatch(alert, &mut out).await;
                seen.problem = matches!(status, JobStatus::Restarting | JobStatus::Failing);
            } else if changed
                && status == JobStatus::Running
                && seen.problem
                && rules.resolve_on_running
            {
                let prev_state = prev
                    .as_ref()
                    .map_or("RESTARTING".to_owned(), |p| p.state.clone());
                let alert = counts(self.job_alert(
                    format!("Flink job {name} {prev_state}"),
                    job,
                    status,
                    None,
                ))
                .body("The job is RUNNING again.")
                .resolved();
                self.dispatch(alert, &mut out).await;
                seen.problem = false;
            }
            if let Some((failed, _, msg)) = &checkpoints {
                if rules.checkpoint_failures
                    && !is_new
                    && seen.failed_checkpoints.is_some_and(|f| *failed > f)
                {
                    let before = seen.failed_checkpoints.unwrap_or(0);
                    let alert = counts(self.job_alert(
                        format!("Flink job {name}: checkpoints failing"),
                        job,
                        status,
                        msg.clone(),
                    ))
                    .severity(Severity::Warning)
                    .field("Since last poll", (failed - before).to_string());
                    self.dispatch(alert, &mut out).await;
                }
                seen.failed_checkpoints = Some(*failed);
            }
            if let Some((ts, text)) = &exception {
                let newer = seen.last_exception.is_some_and(|t| *ts > t);
                if rules.new_exceptions && !is_new && newer && !changed {
                    let alert = self
                        .job_alert(
                            format!("Flink job {name}: new exception"),
                            job,
                            status,
                            Some(text.clone()),
                        )
                        .severity(Severity::Error);
                    self.dispatch(alert, &mut out).await;
                }
                seen.last_exception = Some(seen.last_exception.map_or(*ts, |t| t.max(*ts)));
            }
            seen.state = raw;
            self.jobs.insert(jid, seen);
        }
        self.first_poll = false;
        out
    }

    /// Polls every `interval` in a task of its own, sending each report to
    /// the handle, until [`WatchHandle::stop`].
    pub fn start(mut self) -> WatchHandle {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::unbounded_channel();
        let interval = self.config.interval;
        let task = tokio::spawn(async move {
            loop {
                // A poll, with its dispatches, always completes before stopping.
                for r in self.poll_once().await {
                    let _ = tx.send(r);
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop_rx.changed() => return,
                }
                if *stop_rx.borrow() {
                    return;
                }
            }
        });
        WatchHandle {
            stop: stop_tx,
            task,
            reports: rx,
        }
    }
}

/// A running watcher.
#[derive(Debug)]
pub struct WatchHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    reports: mpsc::UnboundedReceiver<DispatchReport>,
}

impl WatchHandle {
    /// The next dispatch report (`None` once stopped and drained).
    pub async fn next_report(&mut self) -> Option<DispatchReport> {
        self.reports.recv().await
    }

    /// Stops after the poll in progress (and its dispatches) finishes, and
    /// returns the reports not yet taken with [`next_report`](WatchHandle::next_report).
    pub async fn stop(mut self) -> Vec<DispatchReport> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut rest = Vec::new();
        while let Ok(r) = self.reports.try_recv() {
            rest.push(r);
        }
        rest
    }
}
