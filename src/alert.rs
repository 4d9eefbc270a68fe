//! The alert model: what a scheduler or control plane hands to alertkit.
//!
//! The JSON shape is a contract (see [`Alert`]); only `title` is required.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// One alert, rendered by every channel for its platform.
///
/// Fill it in one expression with the builder methods, or deserialize it:
///
/// ```
/// use alertkit::{Alert, JobInfo, JobStatus, Mention, Severity};
///
/// let alert = Alert::new("Flink job orders-etl FAILED")
///     .body("Checkpoint 42 failed 3 times in a row.")
///     .severity(Severity::Critical)
///     .job(JobInfo::new("orders-etl").id("a1b2c3").status(JobStatus::Failed).cluster("prod-yarn"))
///     .field("Owner", "data-team")
///     .label("env", "prod")
///     .link("Flink UI", "https://flink.example/")
///     .mention(Mention::All);
///
/// let json = serde_json::to_string(&alert).unwrap();
/// let back: Alert = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, alert);
///
/// let minimal: Alert = serde_json::from_str(r#"{"title": "disk full"}"#).unwrap();
/// assert_eq!(minimal.severity, Severity::Error);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Alert {
    /// One-line summary; the message title on every platform.
    pub title: String,
    /// Free text below the title (may be several lines).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// How bad it is. Default: `error`.
    #[serde(default)]
    pub severity: Severity,
    /// Firing or resolved. Default: `firing`.
    #[serde(default)]
    pub state: AlertState,
    /// The job the alert is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobInfo>,
    /// Extra facts as ordered `[name, value]` pairs (they become table rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
    /// Labels identifying the alert's source (part of the fingerprint).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Links shown as buttons or anchors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// People to @-mention, where the platform supports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Mention>,
    /// When the condition happened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// The host's own identity for dedup; when set, it alone makes the
    /// [`fingerprint`](Alert::fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
}

impl Alert {
    /// A firing alert of severity `error` with only a title.
    ///
    /// ```
    /// use alertkit::{Alert, AlertState, Severity};
    /// let alert = Alert::new("disk full on db-1");
    /// assert_eq!(alert.title, "disk full on db-1");
    /// assert_eq!((alert.severity, alert.state), (Severity::Error, AlertState::Firing));
    /// assert!(alert.body.is_empty() && alert.job.is_none());
    /// ```
    pub fn new(title: impl Into<String>) -> Self {
        Alert {
            title: title.into(),
            body: String::new(),
            severity: Severity::default(),
            state: AlertState::default(),
            job: None,
            fields: Vec::new(),
            labels: BTreeMap::new(),
            links: Vec::new(),
            mentions: Vec::new(),
            occurred_at: None,
            dedup_key: None,
        }
    }

    /// Sets the dedup key: alerts with the same key are one alert for the
    /// group's repeat interval, whatever their title, and a resolved alert
    /// with the key resolves the firing one.
    ///
    /// ```
    /// use alertkit::Alert;
    /// let a = Alert::new("orders-etl FAILED").dedup_key("flink/orders-etl");
    /// let b = Alert::new("orders-etl FAILED (attempt 3)").dedup_key("flink/orders-etl").resolved();
    /// assert_eq!(a.fingerprint(), b.fingerprint());
    /// ```
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// Sets the body text.
    ///
    /// ```
    /// use alertkit::Alert;
    /// let alert = Alert::new("disk full").body("/var at 97%\n/tmp at 80%");
    /// assert_eq!(alert.body.lines().count(), 2);
    /// ```
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the severity.
    ///
    /// ```
    /// use alertkit::{Alert, Severity};
    /// let alert = Alert::new("disk full").severity(Severity::Critical);
    /// assert_eq!(alert.severity, Severity::Critical);
    /// assert!(alert.severity > Severity::Warning);
    /// ```
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the state (firing or resolved).
    ///
    /// ```
    /// use alertkit::{Alert, AlertState};
    /// let alert = Alert::new("disk full").state(AlertState::Resolved);
    /// assert_eq!(alert.state, AlertState::Resolved);
    /// ```
    pub fn state(mut self, state: AlertState) -> Self {
        self.state = state;
        self
    }

    /// Marks the alert resolved.
    ///
    /// ```
    /// use alertkit::{Alert, AlertState};
    /// let firing = Alert::new("disk full").label("host", "db-1");
    /// let resolved = firing.clone().resolved();
    /// assert_eq!(resolved.state, AlertState::Resolved);
    /// // the same source, so dedup pairs the two
    /// assert_eq!(resolved.fingerprint(), firing.fingerprint());
    /// ```
    pub fn resolved(self) -> Self {
        self.state(AlertState::Resolved)
    }

    /// Sets the job.
    ///
    /// ```
    /// use alertkit::{Alert, JobInfo, JobStatus};
    /// let alert = Alert::new("orders-etl FAILED")
    ///     .job(JobInfo::new("orders-etl").id("a1b2").status(JobStatus::Failed));
    /// let job = alert.job.as_ref().unwrap();
    /// assert_eq!((job.name.as_str(), job.status), ("orders-etl", Some(JobStatus::Failed)));
    /// ```
    pub fn job(mut self, job: JobInfo) -> Self {
        self.job = Some(job);
        self
    }

    /// Appends a `[name, value]` field.
    ///
    /// ```
    /// use alertkit::Alert;
    /// let alert = Alert::new("disk full").field("Host", "db-1").field("Usage", "97%");
    /// // in the order given: they become table rows
    /// assert_eq!(alert.fields[1], ("Usage".to_owned(), "97%".to_owned()));
    /// ```
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Sets a label.
    ///
    /// ```
    /// use alertkit::Alert;
    /// let a = Alert::new("disk full").label("host", "db-1");
    /// let b = Alert::new("disk full").label("host", "db-2");
    /// assert_eq!(a.labels["host"], "db-1");
    /// // labels identify the source: another host is another alert
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// ```
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Appends a link.
    ///
    /// ```
    /// use alertkit::{Alert, Link};
    /// let alert = Alert::new("disk full").link("Runbook", "https://wiki.example/disk");
    /// assert_eq!(alert.links, [Link::new("Runbook", "https://wiki.example/disk")]);
    /// ```
    pub fn link(mut self, title: impl Into<String>, url: impl Into<String>) -> Self {
        self.links.push(Link {
            title: title.into(),
            url: url.into(),
        });
        self
    }

    /// Appends a mention.
    ///
    /// ```
    /// use alertkit::{Alert, Mention};
    /// let alert = Alert::new("disk full")
    ///     .mention(Mention::Mobile("13800000000".into()))
    ///     .mention(Mention::UserId("zhangsan".into()));
    /// assert_eq!(alert.mentions.len(), 2);
    /// ```
    pub fn mention(mut self, mention: Mention) -> Self {
        self.mentions.push(mention);
        self
    }

    /// Sets when it happened.
    ///
    /// ```
    /// use alertkit::Alert;
    /// use alertkit::chrono::{TimeZone, Utc};
    /// let at = Utc.with_ymd_and_hms(2025, 3, 1, 8, 30, 0).unwrap();
    /// let alert = Alert::new("disk full").occurred_at(at);
    /// let json = serde_json::to_value(&alert).unwrap();
    /// assert_eq!(json["occurred_at"], "2025-03-01T08:30:00Z");
    /// ```
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = Some(at);
        self
    }

    /// A sample Flink job failure: what `test_send` and the quickstart send.
    ///
    /// ```
    /// use alertkit::{Alert, JobStatus, Severity};
    /// let alert = Alert::sample();
    /// assert_eq!(alert.severity, Severity::Critical);
    /// assert_eq!(alert.job.unwrap().status, Some(JobStatus::Failed));
    /// ```
    pub fn sample() -> Self {
        let now = Utc::now();
        let started = now - chrono::Duration::minutes(47);
        Alert::new("Flink job orders-etl FAILED")
            .body("Checkpoint 42 failed 3 times in a row; the job exhausted its restart strategy.")
            .severity(Severity::Critical)
            .job(
                JobInfo::new("orders-etl")
                    .id("a1b2c3d4e5f60718293a4b5c6d7e8f90")
                    .status(JobStatus::Failed)
                    .cluster("prod-yarn")
                    .url("https://flink.example/#/job/a1b2c3d4e5f60718293a4b5c6d7e8f90/overview")
                    .times(started, Some(now))
                    .error("org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint expired before completing."),
            )
            .field("Owner", "data-team")
            .field("Restarts", "3")
            .label("team", "data")
            .label("env", "prod")
            .link("Runbook", "https://wiki.example/runbooks/orders-etl")
            .occurred_at(now)
    }

    /// The links a message shows: the job's page first (titled `job_title`,
    /// unless the alert lists that URL itself), then the alert's own links.
    /// The links that may be shown as links or buttons: `http(s)` only.
    pub(crate) fn web_links_with_job<'a>(&'a self, job_title: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut v = self.links_with_job(job_title);
        v.retain(|(_, url)| crate::template::is_web_url(url));
        v
    }

    pub(crate) fn links_with_job<'a>(&'a self, job_title: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut v = Vec::with_capacity(self.links.len() + 1);
        if let Some(url) = self.job.as_ref().and_then(|j| j.url.as_deref())
            && !self.links.iter().any(|l| l.url == url)
        {
            v.push((job_title, url));
        }
        v.extend(
            self.links
                .iter()
                .map(|l| (l.title.as_str(), l.url.as_str())),
        );
        v
    }

    /// A stable identity of the alert's source, for dedup: SHA-256 over the
    /// title, the labels (sorted) and the job id, as 16 hex digits (over the
    /// [`dedup_key`](Alert::dedup_key) alone when one is set). It does not
    /// depend on state, body, time or process, so a firing alert and its
    /// resolution share one fingerprint.
    ///
    /// ```
    /// use alertkit::Alert;
    /// let a = Alert::new("disk full").label("host", "a");
    /// let b = Alert::new("disk full").label("host", "a").body("95%").resolved();
    /// assert_eq!(a.fingerprint(), b.fingerprint());
    /// assert_ne!(a.fingerprint(), Alert::new("disk full").label("host", "b").fingerprint());
    /// ```
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        if self.dedup_key.is_some() {
            // A tag no title-based fingerprint starts with (a length prefix
            // of u64::MAX), so a key never collides with a title.
            h.update(u64::MAX.to_le_bytes());
        }
        // Length-prefix every part so ("ab","c") and ("a","bc") differ.
        let mut part = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        if let Some(key) = &self.dedup_key {
            part(key);
            let digest = h.finalize();
            return digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        }
        part(&self.title);
        for (k, v) in &self.labels {
            part(k);
            part(v);
        }
        part(
            self.job
                .as_ref()
                .and_then(|j| j.id.as_deref())
                .unwrap_or(""),
        );
        let digest = h.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// How bad an alert is. Parsed case-insensitively (`P1`-style names are not guessed).
///
/// ```
/// use alertkit::Severity;
/// let s: Severity = "WARNING".parse().unwrap();
/// assert_eq!(s, Severity::Warning);
/// assert!(Severity::Critical > s && s > Severity::Info);
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#""warning""#);
/// assert!("P1".parse::<Severity>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum Severity {
    /// For information.
    Info,
    /// Needs a look.
    Warning,
    /// Something failed.
    #[default]
    Error,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// `info`, `warning`, `error` or `critical`.
    ///
    /// ```
    /// use alertkit::Severity;
    /// assert_eq!(Severity::Critical.as_str(), "critical");
    /// assert_eq!(Severity::Critical.to_string(), "critical");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// Whether the condition is ongoing or over.
///
/// ```
/// use alertkit::{Alert, AlertState};
/// let alert: Alert = serde_json::from_str(r#"{"title": "disk full", "state": "resolved"}"#).unwrap();
/// assert_eq!(alert.state, AlertState::Resolved);
/// assert_eq!(AlertState::default(), AlertState::Firing);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AlertState {
    /// The condition holds.
    #[default]
    Firing,
    /// The condition is over.
    Resolved,
}

impl AlertState {
    /// `firing` or `resolved`.
    ///
    /// ```
    /// use alertkit::{Alert, AlertState};
    /// assert_eq!(Alert::new("disk full").resolved().state.as_str(), "resolved");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// The job an alert is about (a Flink job, a scheduler task).
///
/// ```
/// use alertkit::{JobInfo, JobStatus};
/// let job: JobInfo = serde_json::from_str(
///     r#"{"name": "orders-etl", "id": "a1b2", "status": "failed", "cluster": "prod-yarn"}"#,
/// ).unwrap();
/// assert_eq!(job, JobInfo::new("orders-etl").id("a1b2").status(JobStatus::Failed).cluster("prod-yarn"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JobInfo {
    /// Job name.
    pub name: String,
    /// Job id (Flink's jid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Job state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// Cluster the job runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Link to the job's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// End time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Root error or exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JobInfo {
    /// A job with only a name.
    ///
    /// ```
    /// use alertkit::JobInfo;
    /// let job = JobInfo::new("orders-etl");
    /// assert_eq!(job.name, "orders-etl");
    /// assert!(job.id.is_none() && job.status.is_none());
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        JobInfo {
            name: name.into(),
            id: None,
            status: None,
            cluster: None,
            url: None,
            started_at: None,
            ended_at: None,
            error: None,
        }
    }

    /// Sets the id.
    ///
    /// ```
    /// use alertkit::{Alert, JobInfo};
    /// let a = Alert::new("job FAILED").job(JobInfo::new("orders-etl").id("a1b2"));
    /// let b = Alert::new("job FAILED").job(JobInfo::new("orders-etl").id("c3d4"));
    /// assert_eq!(a.job.as_ref().unwrap().id.as_deref(), Some("a1b2"));
    /// // the job id is part of the fingerprint
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the status.
    ///
    /// ```
    /// use alertkit::{JobInfo, JobStatus};
    /// let job = JobInfo::new("orders-etl").status(JobStatus::Restarting);
    /// assert_eq!(job.status, Some(JobStatus::Restarting));
    /// ```
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the cluster.
    ///
    /// ```
    /// use alertkit::JobInfo;
    /// let job = JobInfo::new("orders-etl").cluster("prod-yarn");
    /// assert_eq!(job.cluster.as_deref(), Some("prod-yarn"));
    /// ```
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// Sets the job's URL.
    ///
    /// ```
    /// use alertkit::JobInfo;
    /// let job = JobInfo::new("orders-etl").url("https://flink.example/#/job/a1b2/overview");
    /// assert!(job.url.unwrap().ends_with("/overview"));
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets start and end times.
    ///
    /// ```
    /// use alertkit::JobInfo;
    /// use alertkit::chrono::{TimeZone, Utc};
    /// let start = Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).unwrap();
    /// let job = JobInfo::new("orders-etl").times(start, None); // still running
    /// assert_eq!((job.started_at, job.ended_at), (Some(start), None));
    /// ```
    pub fn times(mut self, started_at: DateTime<Utc>, ended_at: Option<DateTime<Utc>>) -> Self {
        self.started_at = Some(started_at);
        self.ended_at = ended_at;
        self
    }

    /// Sets the root error.
    ///
    /// ```
    /// use alertkit::JobInfo;
    /// let job = JobInfo::new("orders-etl").error("CheckpointException: Checkpoint expired");
    /// assert!(job.error.unwrap().starts_with("CheckpointException"));
    /// ```
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Run time: end (or `now` while running) minus start, if started.
    ///
    /// ```
    /// use alertkit::JobInfo;
    /// use alertkit::chrono::{Duration, TimeZone, Utc};
    /// let start = Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).unwrap();
    /// let now = start + Duration::minutes(47);
    /// let running = JobInfo::new("orders-etl").times(start, None);
    /// assert_eq!(running.duration(now), Some(Duration::minutes(47)));
    /// let done = JobInfo::new("orders-etl").times(start, Some(start + Duration::minutes(5)));
    /// assert_eq!(done.duration(now), Some(Duration::minutes(5)));
    /// assert_eq!(JobInfo::new("never started").duration(now), None);
    /// ```
    pub fn duration(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let start = self.started_at?;
        let end = self.ended_at.unwrap_or(now);
        (end >= start).then(|| end - start)
    }
}

/// A job state: Flink's `JobStatus` plus the ones Dinky reports.
///
/// Parsed case-insensitively (`failed`, `FAILED`, `Failed`); `CANCELLED` is
/// taken for `CANCELED`. Serialized in upper case.
///
/// ```
/// use alertkit::JobStatus;
/// assert_eq!("failed".parse::<JobStatus>().unwrap(), JobStatus::Failed);
/// assert_eq!("CANCELLED".parse::<JobStatus>().unwrap(), JobStatus::Canceled);
/// assert_eq!(serde_json::to_string(&JobStatus::Running).unwrap(), r#""RUNNING""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // the variants are Flink's own names
pub enum JobStatus {
    Initializing,
    Created,
    Running,
    Failing,
    Failed,
    Cancelling,
    Canceled,
    Finished,
    Restarting,
    Suspended,
    Reconciling,
    /// Dinky: the state could not be read.
    Unknown,
    /// Dinky: stopped by a user (with or without savepoint).
    Stopped,
}

const JOB_STATUSES: [(JobStatus, &str); 13] = [
    (JobStatus::Initializing, "INITIALIZING"),
    (JobStatus::Created, "CREATED"),
    (JobStatus::Running, "RUNNING"),
    (JobStatus::Failing, "FAILING"),
    (JobStatus::Failed, "FAILED"),
    (JobStatus::Cancelling, "CANCELLING"),
    (JobStatus::Canceled, "CANCELED"),
    (JobStatus::Finished, "FINISHED"),
    (JobStatus::Restarting, "RESTARTING"),
    (JobStatus::Suspended, "SUSPENDED"),
    (JobStatus::Reconciling, "RECONCILING"),
    (JobStatus::Unknown, "UNKNOWN"),
    (JobStatus::Stopped, "STOPPED"),
];

impl JobStatus {
    /// The upper-case name (`FAILED`).
    ///
    /// ```
    /// use alertkit::JobStatus;
    /// assert_eq!(JobStatus::Failed.as_str(), "FAILED");
    /// assert_eq!(JobStatus::Failed.as_str().parse::<JobStatus>().unwrap(), JobStatus::Failed);
    /// ```
    pub fn as_str(self) -> &'static str {
        JOB_STATUSES
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("UNKNOWN", |(_, n)| n)
    }

    /// Whether the job will not run again by itself.
    ///
    /// ```
    /// use alertkit::JobStatus;
    /// assert!(JobStatus::Failed.is_terminal());
    /// assert!(!JobStatus::Restarting.is_terminal()); // Flink will try again
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Failed | JobStatus::Canceled | JobStatus::Finished | JobStatus::Stopped
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown job state.
///
/// ```
/// use alertkit::JobStatus;
/// let err = "EXPLODED".parse::<JobStatus>().unwrap_err();
/// let msg = err.to_string();
/// assert!(msg.starts_with(r#"unknown job status "EXPLODED""#));
/// assert!(msg.contains("FAILED"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStatusError(String);

impl fmt::Display for ParseStatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown job status {:?}, expected one of ", self.0)?;
        let names: Vec<&str> = JOB_STATUSES.iter().map(|(_, n)| *n).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for ParseStatusError {}

impl FromStr for JobStatus {
    type Err = ParseStatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("CANCELLED") {
            return Ok(JobStatus::Canceled);
        }
        JOB_STATUSES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(t))
            .map(|(s, _)| *s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

impl Serialize for JobStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! lowercase_enum_serde {
    ($ty:ty, $($variant:path => $name:literal),+) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(v: &str) -> Result<Self, String> {
                $(if v.trim().eq_ignore_ascii_case($name) { return Ok($variant); })+
                Err(format!(
                    concat!("unknown ", stringify!($ty), " {:?}, expected one of: ", $($name, " "),+),
                    v
                ))
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<str>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

lowercase_enum_serde!(Severity,
    Severity::Info => "info", Severity::Warning => "warning",
    Severity::Error => "error", Severity::Critical => "critical");
lowercase_enum_serde!(AlertState, AlertState::Firing => "firing", AlertState::Resolved => "resolved");

/// A titled link: a button on cards, an anchor in markdown and HTML.
///
/// ```
/// use alertkit::{Alert, Link};
/// let alert: Alert = serde_json::from_str(
///     r#"{"title": "disk full", "links": [{"title": "Runbook", "url": "https://wiki.example/disk"}]}"#,
/// ).unwrap();
/// assert_eq!(alert.links[0].title, "Runbook");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Link {
    /// Text shown.
    pub title: String,
    /// Target URL.
    pub url: String,
}

impl Link {
    /// A link.
    ///
    /// ```
    /// use alertkit::Link;
    /// let link = Link::new("Flink UI", "https://flink.example/");
    /// assert_eq!((link.title.as_str(), link.url.as_str()), ("Flink UI", "https://flink.example/"));
    /// ```
    pub fn new(title: impl Into<String>, url: impl Into<String>) -> Self {
        Link {
            title: title.into(),
            url: url.into(),
        }
    }
}

/// Someone to @-mention. JSON: `"all"`, `{"mobile": "138…"}`,
/// `{"user_id": "zhangsan"}`, `{"email": "a@b.c"}`.
///
/// Each channel maps the mentions it can express on its platform and reports
/// the ones it cannot in the receipt's notes.
///
/// ```
/// use alertkit::{Alert, Mention};
/// let alert: Alert = serde_json::from_str(
///     r#"{"title": "disk full", "mentions": ["all", {"mobile": "13800000000"}, {"email": "ops@example.com"}]}"#,
/// ).unwrap();
/// assert_eq!(alert.mentions[0], Mention::All);
/// assert_eq!(alert.mentions[2], Mention::Email("ops@example.com".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mention {
    /// Everyone in the group.
    All,
    /// A phone number (DingTalk, WeCom robot).
    Mobile(String),
    /// A platform user id (DingTalk userid, WeCom userid, Feishu open_id/user_id).
    UserId(String),
    /// An e-mail address.
    Email(String),
}

/// Whether a mention's id is a plain id (letters, digits, `_ . @ + -`, at
/// most 128 bytes): anything else could carry markup into the message
/// (`ou_x"></at><at id=all>`) and is refused.
pub(crate) fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@+-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract_json() -> serde_json::Value {
        json!({"title": "Flink job orders-etl FAILED",
         "body": "Checkpoint 42 failed 3 times in a row.",
         "severity": "critical",
         "state": "firing",
         "job": {"name": "orders-etl", "id": "a1b2c3", "status": "FAILED",
                 "cluster": "prod-yarn", "url": "https://flink.example/#/job/a1b2c3",
                 "started_at": "2026-11-20T10:00:00Z", "ended_at": "2026-11-20T10:05:00Z",
                 "error": "java.lang.RuntimeException: ..."},
         "fields": [["Owner", "data-team"], ["Restarts", "3"]],
         "labels": {"env": "prod", "team": "data"},
         "links": [{"title": "Flink UI", "url": "https://flink.example/"}],
         "mentions": ["all", {"mobile": "13800000000"}, {"user_id": "zhangsan"}, {"email": "a@b.c"}],
         "occurred_at": "2026-11-20T10:05:00Z"})
    }

    #[test]
    fn contract_shape_round_trips() {
        let v = contract_json();
        let alert: Alert = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.job.as_ref().unwrap().status, Some(JobStatus::Failed));
        assert_eq!(alert.fields[1], ("Restarts".into(), "3".into()));
        assert_eq!(
            alert.mentions,
            vec![
                Mention::All,
                Mention::Mobile("13800000000".into()),
                Mention::UserId("zhangsan".into()),
                Mention::Email("a@b.c".into())
            ]
        );
        assert_eq!(
            alert.job.as_ref().unwrap().duration(Utc::now()),
            Some(chrono::Duration::minutes(5))
        );
        let back = serde_json::to_value(&alert).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn only_title_is_required() {
        let a: Alert = serde_json::from_value(json!({"title": "t"})).unwrap();
        assert_eq!(a, Alert::new("t"));
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"title": "t", "severity": "error", "state": "firing"})
        );
        let err = serde_json::from_value::<Alert>(json!({"body": "b"})).unwrap_err();
        assert!(err.to_string().contains("title"), "{err}");
    }

    #[test]
    fn fields_keep_their_order() {
        let a: Alert = serde_json::from_value(
            json!({"title": "t", "fields": [["z", "1"], ["a", "2"], ["m", "3"]]}),
        )
        .unwrap();
        let names: Vec<_> = a.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
    }

    #[test]
    fn job_status_parses_case_insensitively() {
        for (s, want) in [
            ("failed", JobStatus::Failed),
            ("Restarting", JobStatus::Restarting),
            ("RECONCILING", JobStatus::Reconciling),
            ("unknown", JobStatus::Unknown),
            ("stopped", JobStatus::Stopped),
            ("CANCELLED", JobStatus::Canceled),
            (" canceled ", JobStatus::Canceled),
        ] {
            assert_eq!(s.parse::<JobStatus>().unwrap(), want, "{s}");
        }
        for (status, name) in JOB_STATUSES {
            assert_eq!(name.to_lowercase().parse::<JobStatus>().unwrap(), status);
            assert_eq!(status.to_string(), name);
        }
        let err = serde_json::from_value::<JobInfo>(json!({"name": "j", "status": "EXPLODED"}))
            .unwrap_err();
        assert!(err.to_string().contains("EXPLODED"), "{err}");
    }

    #[test]
    fn severity_and_state_parse_case_insensitively() {
        let a: Alert = serde_json::from_value(
            json!({"title": "t", "severity": "WARNING", "state": "Resolved"}),
        )
        .unwrap();
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.state, AlertState::Resolved);
        assert!(serde_json::from_value::<Alert>(json!({"title": "t", "severity": "p1"})).is_err());
    }

    #[test]
    fn fingerprint_is_stable_and_discriminating() {
        let a: Alert = serde_json::from_value(contract_json()).unwrap();
        // Pinned: changing the algorithm breaks dedup state shared between versions.
        assert_eq!(
            a.fingerprint(),
            a.clone().body("other").resolved().fingerprint()
        );
        assert_eq!(a.fingerprint().len(), 16);
        let mut other_job = a.clone();
        other_job.job.as_mut().unwrap().id = Some("zzz".into());
        assert_ne!(a.fingerprint(), other_job.fingerprint());
        assert_ne!(
            Alert::new("ab").label("c", "d").fingerprint(),
            Alert::new("a").label("bc", "d").fingerprint()
        );
    }
}
