//! A Flink job watcher (feature `flink`): polls a cluster's REST API and
//! turns job transitions and failures into alerts, each with its cause and
//! a link to the job's page.
//!
//! Each poll reads `/jobs/overview` and, only for jobs that are not finished
//! and already reported, `/jobs/:jid/checkpoints` and (when the job changed)
//! `/jobs/:jid/exceptions`, a few at a time. By the default [`Rules`] it
//! alerts:
//!
//! - a job entering FAILED, CANCELED, SUSPENDED, RESTARTING or a state it
//!   does not know, with the exception of *this* failure: Flink serves the
//!   exception history up to `web.refresh-interval` (3 s) behind the job's
//!   state, so a failure alert waits up to [`WatchConfig::cause_wait`] for
//!   its entry; when none came it says so, and the cause follows in an
//!   alert of its own if it comes within a minute;
//! - a restart that happened between two polls (seen in the exception
//!   history), once, with its cause;
//! - a RESTARTING job that runs again (resolved);
//! - a new failed checkpoint of a running job (not the triggers Flink refuses
//!   while tasks deploy); for a job that ended, folded into its alert;
//! - a job the cluster no longer knows (a JobManager restarted without HA);
//! - the REST endpoint unreachable (once), and reachable again (resolved).
//!
//! The cause shown first is the root one: the Python exception lines of a
//! PyFlink UDF, or the innermost `Caused by:`; for a job that will not
//! restart, the failing task's exception rather than `Recovery is
//! suppressed by ...`. The trace follows.
//!
//! The first poll only records what is there, and no transition is
//! reported twice. A control plane can route each job to its own group,
//! add to each alert, build the same alert itself ([`job_alert`]) so its
//! alerts and the watcher's dedup, and keep the watcher's
//! [`WatchState`] across its own restarts.
//!
//! ```no_run
//! # async fn run(notifier: std::sync::Arc<alertkit::Notifier>) -> Result<(), alertkit::Error> {
//! use alertkit::flink::{FlinkWatcher, WatchConfig};
//! let config = WatchConfig::new("http://jobmanager:8081", "prod-yarn")?;
//! let watcher = FlinkWatcher::new(config, notifier, "flink-prod")?
//!     // Jobs named `team-a.*` alert team A; `scratch-*` never alert.
//!     .route(|job| match job.name.as_str() {
//!         n if n.starts_with("team-a.") => Some("team-a".to_owned()),
//!         n if n.starts_with("scratch-") => None,
//!         _ => Some("flink-prod".to_owned()),
//!     })
//!     .enrich(|alert, job| alert.fields.push(("Owner".into(), owner_of(&job.name))));
//! let handle = watcher.start();
//! // ... later, on shutdown: the poll in progress finishes first.
//! let stopped = handle.stop().await;
//! let saved = serde_json::to_string(&stopped.state).expect("state serializes");
//! # let _ = saved; Ok(()) }
//! # fn owner_of(_: &str) -> String { String::new() }
//! ```

mod cause;
mod config;
mod rest;
mod watcher;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::alert::{Alert, JobInfo, JobStatus, Severity};

pub use config::{DEFAULT_MAX_REPLY, Rules, WatchConfig};
pub use watcher::{FlinkWatcher, Stopped, WatchHandle, WatchReport, WatchState};

/// A job as the watcher saw it: what [`FlinkWatcher::route`] and
/// [`FlinkWatcher::enrich`] are given, and what [`job_alert`] is built from.
///
/// ```
/// use alertkit::JobStatus;
/// use alertkit::flink::{JobEvent, JobView, job_alert};
/// let job = JobView::new("prod", "a1b2", "orders-etl", JobStatus::Restarting)
///     .url("https://flink.example/#/job/a1b2/overview");
/// let alert = job_alert(&job, &JobEvent::Entered(JobStatus::Restarting), None);
/// assert_eq!(alert.labels["flink_job"], "a1b2");
/// assert_eq!(alert.links[0].url, "https://flink.example/#/job/a1b2/overview");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JobView {
    /// The cluster name of the [`WatchConfig`].
    pub cluster: String,
    /// Flink's job id.
    pub jid: String,
    /// The job's name.
    pub name: String,
    /// Its state (UNKNOWN when Flink named one alertkit does not know).
    pub status: JobStatus,
    /// The state as Flink named it.
    pub state: String,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its page in the Flink web UI (never with credentials).
    pub url: Option<String>,
}

impl JobView {
    /// A job with no times and no link.
    ///
    /// ```
    /// use alertkit::JobStatus;
    /// use alertkit::flink::JobView;
    /// let job = JobView::new("prod", "a1b2", "orders-etl", JobStatus::Failed);
    /// assert_eq!(job.state, "FAILED");
    /// assert!(job.url.is_none() && job.started_at.is_none());
    /// ```
    pub fn new(
        cluster: impl Into<String>,
        jid: impl Into<String>,
        name: impl Into<String>,
        status: JobStatus,
    ) -> Self {
        JobView {
            cluster: cluster.into(),
            jid: jid.into(),
            name: name.into(),
            status,
            state: status.as_str().to_owned(),
            started_at: None,
            ended_at: None,
            url: None,
        }
    }

    /// Sets the job's page.
    ///
    /// ```
    /// use alertkit::JobStatus;
    /// use alertkit::flink::JobView;
    /// let job = JobView::new("prod", "a1b2", "orders-etl", JobStatus::Failed)
    ///     .url("https://flink.example/#/job/a1b2/overview");
    /// assert!(job.url.unwrap().contains("a1b2"));
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets start and end times.
    ///
    /// ```
    /// use alertkit::JobStatus;
    /// use alertkit::chrono::{Duration, TimeZone, Utc};
    /// use alertkit::flink::{JobEvent, JobView, job_alert};
    /// let start = Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).unwrap();
    /// let job = JobView::new("prod", "a1b2", "orders-etl", JobStatus::Failed)
    ///     .times(start, Some(start + Duration::minutes(47)));
    /// let alert = job_alert(&job, &JobEvent::Entered(JobStatus::Failed), None);
    /// let info = alert.job.unwrap();
    /// assert_eq!(info.duration(Utc::now()), Some(Duration::minutes(47)));
    /// ```
    pub fn times(mut self, started_at: DateTime<Utc>, ended_at: Option<DateTime<Utc>>) -> Self {
        self.started_at = Some(started_at);
        self.ended_at = ended_at;
        self
    }
}

/// What happened to a job: what [`job_alert`] makes an alert of.
///
/// ```
/// use alertkit::{AlertState, JobStatus};
/// use alertkit::flink::{JobEvent, JobView, job_alert};
/// let job = JobView::new("prod", "a1b2", "orders-etl", JobStatus::Running);
/// let down = job_alert(&job, &JobEvent::Entered(JobStatus::Restarting), None);
/// let up = job_alert(&job, &JobEvent::RunningAgain(JobStatus::Restarting), None);
/// assert_eq!(up.state, AlertState::Resolved);
/// assert_eq!(up.fingerprint(), down.fingerprint()); // the resolution resolves it
/// let ckpt = job_alert(&job, &JobEvent::CheckpointFailed, None);
/// assert_ne!(ckpt.fingerprint(), down.fingerprint());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEvent {
    /// The job entered this state (firing).
    Entered(JobStatus),
    /// The job left this problem state and runs again (resolved).
    RunningAgain(JobStatus),
    /// The job failed at this time and restarted between two polls.
    Restarted {
        /// When it failed (the exception's timestamp).
        failed_at: DateTime<Utc>,
    },
    /// A checkpoint failed.
    CheckpointFailed,
    /// Checkpoints complete again (resolves [`JobEvent::CheckpointFailed`]).
    CheckpointsComplete,
    /// The cluster no longer lists the job.
    Vanished,
    /// The cause of an alert of this state that went out without it.
    Cause(JobStatus),
}

impl JobEvent {
    fn key_part(&self) -> String {
        match self {
            JobEvent::Entered(s) | JobEvent::RunningAgain(s) => s.as_str().to_owned(),
            JobEvent::Restarted { failed_at } => {
                format!("restarted/{}", failed_at.timestamp_millis())
            }
            JobEvent::CheckpointFailed | JobEvent::CheckpointsComplete => "checkpoints".into(),
            JobEvent::Vanished => "vanished".into(),
            JobEvent::Cause(s) => format!("{}/cause", s.as_str()),
        }
    }
}

/// The alert the watcher sends for `event` of `job`, with `cause` (the
/// failure's text) as the job's error. Its [`dedup_key`](Alert::dedup_key)
/// is `flink/{cluster}/{jid}/{what}`, so an alert a host builds here for the
/// same event has the watcher's fingerprint: within a group's repeat
/// interval only one of them is delivered, and a resolution by either
/// resolves both.
///
/// ```
/// use alertkit::JobStatus;
/// use alertkit::flink::{JobEvent, JobView, job_alert};
/// let job = JobView::new("prod", "a1b2", "orders-etl", JobStatus::Failed);
/// let a = job_alert(&job, &JobEvent::Entered(JobStatus::Failed), Some("java.io.IOException: disk full"));
/// assert_eq!(a.title, "Flink job orders-etl FAILED");
/// assert_eq!(a.dedup_key.as_deref(), Some("flink/prod/a1b2/FAILED"));
/// let mine = job_alert(&job, &JobEvent::Entered(JobStatus::Failed), None).body("seen by the scheduler");
/// assert_eq!(a.fingerprint(), mine.fingerprint());
/// ```
pub fn job_alert(job: &JobView, event: &JobEvent, cause: Option<&str>) -> Alert {
    let name = &job.name;
    let (title, severity, resolved) = match event {
        JobEvent::Entered(s) => (
            format!("Flink job {name} {}", state_word(job, *s)),
            severity_of(*s),
            false,
        ),
        JobEvent::RunningAgain(s) => (format!("Flink job {name} {s}"), severity_of(*s), true),
        JobEvent::Restarted { .. } => (
            format!("Flink job {name} restarted"),
            Severity::Error,
            false,
        ),
        JobEvent::CheckpointFailed => (
            format!("Flink job {name}: checkpoints failing"),
            Severity::Warning,
            false,
        ),
        JobEvent::CheckpointsComplete => (
            format!("Flink job {name}: checkpoints failing"),
            Severity::Warning,
            true,
        ),
        JobEvent::Vanished => (
            format!("Flink job {name} is no longer known to the cluster"),
            Severity::Critical,
            false,
        ),
        JobEvent::Cause(s) => (
            format!("Flink job {name} {}: the cause", state_word(job, *s)),
            severity_of(*s),
            false,
        ),
    };
    let mut info = JobInfo::new(name.clone())
        .id(job.jid.clone())
        .status(job.status)
        .cluster(job.cluster.clone());
    if let Some(url) = &job.url {
        info = info.url(url.clone());
    }
    if let Some(start) = job.started_at {
        info = info.times(start, job.ended_at);
    }
    if let Some(c) = cause {
        info = info.error(c);
    }
    let mut alert = Alert::new(title)
        .severity(severity)
        .job(info)
        .label("cluster", job.cluster.clone())
        .label("flink_job", job.jid.clone())
        .dedup_key(format!(
            "flink/{}/{}/{}",
            job.cluster,
            job.jid,
            event.key_part()
        ))
        .occurred_at(Utc::now());
    if let Some(url) = &job.url {
        alert = alert.link("Flink UI", url.clone());
    }
    if resolved { alert.resolved() } else { alert }
}

/// The state word of a title: the raw name for states alertkit does not know.
fn state_word(job: &JobView, s: JobStatus) -> String {
    if s == JobStatus::Unknown && job.status == JobStatus::Unknown && !job.state.is_empty() {
        job.state.clone()
    } else {
        s.as_str().to_owned()
    }
}

fn severity_of(status: JobStatus) -> Severity {
    match status {
        JobStatus::Failed | JobStatus::Failing => Severity::Critical,
        JobStatus::Canceled | JobStatus::Finished | JobStatus::Stopped => Severity::Warning,
        _ => Severity::Error,
    }
}

/// Epoch milliseconds as a time (positive and representable only).
fn ms(n: Option<i64>) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(n.filter(|n| *n > 0)?).single()
}
