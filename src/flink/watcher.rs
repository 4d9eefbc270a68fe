//! The poll loop: what changed since the last poll, which alerts that makes,
//! and sending them in order, each with its cause.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use url::Url;

use super::cause::cause_of;
use super::config::WatchConfig;
use super::rest::{Checkpoints, ClusterConfig, Entry, Exceptions, FetchError, Overview, Rest};
use super::{JobEvent, JobView, job_alert, ms};
use crate::alert::{Alert, AlertState, JobStatus, Severity};
use crate::error::{Error, Result};
use crate::group::DispatchReport;
use crate::http::redact_url;
use crate::notifier::Notifier;

type RouteFn = Arc<dyn Fn(&JobView) -> Option<String> + Send + Sync>;
type EnrichFn = Arc<dyn Fn(&mut Alert, &JobView) + Send + Sync>;
/// A job's reads: exceptions and checkpoints, each when asked for.
type Reads = (
    Option<std::result::Result<Exceptions, FetchError>>,
    Option<std::result::Result<Checkpoints, FetchError>>,
);

/// How often a running job's exception history is read even when nothing
/// in the overview says it changed.
const EXCEPTIONS_AT_LEAST_EVERY_MS: i64 = 60_000;
/// Time between re-reads of the exception history while an alert waits.
const CAUSE_RETRY: Duration = Duration::from_millis(500);

/// What the watcher knows between polls; save it (serde) and give it to
/// [`FlinkWatcher::with_state`] after a restart, so that the watcher
/// neither alerts again what it alerted nor misses what changed meanwhile.
///
/// ```
/// use std::time::Duration;
/// use alertkit::flink::{FlinkWatcher, WatchConfig, WatchState};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # use std::sync::{Arc, Mutex};
/// # use alertkit::{Config, Http, Notifier};
/// # use alertkit::testkit::recording_registry;
/// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
/// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
/// # let flink = MockServer::start().await;
/// # let job_state = Arc::new(Mutex::new("RUNNING"));
/// # let s = job_state.clone();
/// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
/// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
/// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
/// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
/// # }).mount(&flink).await;
/// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
/// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
/// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
/// # let flink_url = flink.uri();
/// let config = WatchConfig::new(&flink_url, "prod")?.cause_wait(Duration::ZERO);
/// let mut watcher = FlinkWatcher::new(config.clone(), notifier.clone(), "flink-prod")?;
/// watcher.poll_once().await; // the first poll records what is there
/// let saved = serde_json::to_string(&watcher.state()).unwrap();
/// drop(watcher); // the control plane restarts; meanwhile the job fails
/// *job_state.lock().unwrap() = "FAILED";
/// let state: WatchState = serde_json::from_str(&saved).unwrap();
/// let mut watcher = FlinkWatcher::new(config, notifier, "flink-prod")?.with_state(state);
/// let reports = watcher.poll_once().await;
/// assert_eq!(reports[0].title, "Flink job orders-etl FAILED"); // not missed
/// # Ok::<(), alertkit::Error>(())
/// # })?;
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    #[serde(default)]
    initialized: bool,
    #[serde(default)]
    down: bool,
    #[serde(default)]
    jobs: BTreeMap<String, Track>,
}

impl WatchState {
    /// How many jobs it tracks.
    ///
    /// ```
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let mut watcher = FlinkWatcher::new(WatchConfig::new(&flink_url, "prod")?, notifier, "flink-prod")?;
    /// assert_eq!(watcher.state().jobs(), 0);
    /// watcher.poll_once().await;
    /// assert_eq!(watcher.state().jobs(), 1);
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn jobs(&self) -> usize {
        self.jobs.len()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Track {
    name: String,
    state: String,
    #[serde(default)]
    start: Option<i64>,
    #[serde(default)]
    end: Option<i64>,
    #[serde(default)]
    modified: Option<i64>,
    /// Listed when the watcher first polled: its first reads are baselines.
    #[serde(default)]
    from_start: bool,
    /// The newest exception entry's timestamp (`None`: never read).
    #[serde(default)]
    exc_ts: Option<i64>,
    #[serde(default)]
    exc_read_at: i64,
    #[serde(default)]
    recheck_until: i64,
    #[serde(default)]
    ckpt_read: bool,
    #[serde(default)]
    ckpt_failed_id: Option<i64>,
    #[serde(default)]
    ckpt_open: bool,
    /// A firing state alert not resolved yet (RESTARTING, FAILING).
    #[serde(default)]
    open: Option<String>,
    #[serde(default)]
    open_cause: Option<String>,
    #[serde(default)]
    restarts: Vec<i64>,
    /// Ended and reported: never read again (but for a late cause).
    #[serde(default)]
    done: bool,
    /// An alert of this state went out without its cause: the cause is
    /// still looked for, and sent on its own, until this time (epoch ms).
    #[serde(default)]
    late: Option<(String, i64)>,
}

/// How long a cause that missed its alert is still looked for.
const LATE_CAUSE_MS: i64 = 60_000;

/// One alert the watcher sent, and what became of it.
///
/// Serializes as one JSON object: `{"title", "alert_state", "fingerprint",
/// "job", "jid", "job_state", "group", "report"}`.
///
/// ```
/// use std::time::Duration;
/// use alertkit::{AlertState, GroupStatus};
/// use alertkit::flink::{FlinkWatcher, WatchConfig};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # use std::sync::{Arc, Mutex};
/// # use alertkit::{Config, Http, Notifier};
/// # use alertkit::testkit::recording_registry;
/// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
/// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
/// # let flink = MockServer::start().await;
/// # let job_state = Arc::new(Mutex::new("RUNNING"));
/// # let s = job_state.clone();
/// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
/// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
/// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
/// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
/// # }).mount(&flink).await;
/// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
/// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
/// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
/// # let flink_url = flink.uri();
/// let config = WatchConfig::new(&flink_url, "prod")?.cause_wait(Duration::ZERO);
/// let mut watcher = FlinkWatcher::new(config, notifier, "flink-prod")?;
/// watcher.poll_once().await;
/// *job_state.lock().unwrap() = "FAILED";
/// let report = watcher.poll_once().await.remove(0);
/// assert_eq!((report.job.as_deref(), report.job_state.as_deref()), (Some("orders-etl"), Some("FAILED")));
/// assert_eq!((report.alert_state, report.group.as_str()), (AlertState::Firing, "flink-prod"));
/// assert_eq!(report.report.status, GroupStatus::Delivered);
/// # Ok::<(), alertkit::Error>(())
/// # })?;
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WatchReport {
    /// The alert's title.
    pub title: String,
    /// Firing or resolved.
    pub alert_state: AlertState,
    /// The alert's fingerprint (what dedup keys on).
    pub fingerprint: String,
    /// The job's name (none for cluster alerts).
    pub job: Option<String>,
    /// The job's id.
    pub jid: Option<String>,
    /// The job's state when the alert was sent.
    pub job_state: Option<String>,
    /// The group it went to.
    pub group: String,
    /// What each member did.
    pub report: DispatchReport,
}

/// The failure an exception-history entry records.
#[derive(Debug, Clone)]
struct Failure {
    ts: i64,
    text: String,
    task: Option<String>,
    endpoint: Option<String>,
    /// `Recovery is suppressed by ...`: the restart strategy gave up.
    gave_up: Option<String>,
}

/// Takes the cause of a `status` alert out of the failures new since the
/// last read (the rest are restarts). A FAILED job's cause is the entry in
/// which the restart strategy gave up; an older entry is a restart's, and
/// is never the cause of the failure (Flink may list it first, the terminal
/// entry up to `refresh-interval` later). Only a job that never restarted
/// (a failure while initializing) may fail without such an entry.
fn take_cause(status: JobStatus, new: &mut Vec<Failure>, restarted: bool) -> Option<Failure> {
    if status != JobStatus::Failed {
        return new.pop();
    }
    match new.iter().rposition(|f| f.gave_up.is_some()) {
        Some(i) => Some(new.remove(i)),
        None if restarted => None,
        None => new.pop(),
    }
}

fn failure_of(e: &Entry) -> Option<Failure> {
    let ts = e.timestamp?;
    let trace = e.stacktrace.as_deref().unwrap_or_default();
    let first = trace.lines().next().unwrap_or_default();
    let suppressed = first.contains("Recovery is suppressed by");
    // A terminal failure's entry is the JobException; the failing task's
    // own exception is its first concurrent one.
    let (src, gave_up) = match (suppressed, e.concurrent.first()) {
        (true, Some(task)) => (
            task,
            first
                .split_once("JobException: ")
                .map(|(_, r)| r.to_owned()),
        ),
        _ => (e, None),
    };
    let cause = cause_of(
        src.stacktrace.as_deref().unwrap_or_default(),
        src.name.as_deref().unwrap_or_default(),
    );
    Some(Failure {
        ts,
        text: cause.text(),
        task: src.task.clone(),
        endpoint: src.endpoint.clone(),
        gave_up,
    })
}

/// Every failure of an answer, oldest first.
fn failures(x: &Exceptions) -> Vec<Failure> {
    let mut out: Vec<Failure> = match &x.history {
        Some(h) if x.root.is_none() || !h.entries.is_empty() => {
            h.entries.iter().filter_map(failure_of).collect()
        }
        _ => match &x.root {
            Some(root) => {
                let c = cause_of(root, "");
                vec![Failure {
                    ts: x.timestamp.unwrap_or(0),
                    text: c.text(),
                    task: None,
                    endpoint: None,
                    gave_up: None,
                }]
            }
            None => Vec::new(),
        },
    };
    out.sort_by_key(|f| f.ts);
    out
}

#[derive(Debug, Clone, Copy, Default)]
struct ClusterInfo {
    major: Option<u32>,
    refresh_ms: Option<i64>,
}

/// An alert to send, and the job it is about.
struct Outgoing {
    alert: Alert,
    view: Option<JobView>,
}

/// A state alert waiting for its cause.
struct Waiting {
    view: JobView,
    status: JobStatus,
    fields: Vec<(String, String)>,
    notes: Vec<String>,
    error: Option<String>,
    /// The exception answer is over the size cap: reading again is no use.
    too_large: bool,
    /// A failure state: without a cause the alert says why.
    wants_cause: bool,
    /// The cause an earlier alert of this failure carried (FAILING → FAILED).
    reuse: Option<String>,
    /// A FAILED job that had restarted, and a new failure that is not the
    /// restart strategy giving up: a restart's, unless no such entry comes,
    /// then the cause.
    tentative: Option<Failure>,
}

/// What one job's poll produced: alerts before, the one waiting, after.
struct Plan {
    jid: String,
    before: Vec<Outgoing>,
    waiting: Option<Waiting>,
    after: Vec<Outgoing>,
}

/// The watcher; see the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use alertkit::flink::{FlinkWatcher, WatchConfig};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # use std::sync::{Arc, Mutex};
/// # use alertkit::{Config, Http, Notifier};
/// # use alertkit::testkit::recording_registry;
/// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
/// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
/// # let flink = MockServer::start().await;
/// # let job_state = Arc::new(Mutex::new("RUNNING"));
/// # let s = job_state.clone();
/// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
/// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
/// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
/// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
/// # }).mount(&flink).await;
/// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
/// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
/// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
/// # let flink_url = flink.uri();
/// let config = WatchConfig::new(&flink_url, "prod")?.cause_wait(Duration::ZERO);
/// let mut watcher = FlinkWatcher::new(config, notifier, "flink-prod")?;
/// assert!(watcher.poll_once().await.is_empty()); // the first poll only records
/// *job_state.lock().unwrap() = "FAILED";
/// assert_eq!(watcher.poll_once().await.len(), 1);
/// assert!(watcher.poll_once().await.is_empty()); // no transition is reported twice
/// # Ok::<(), alertkit::Error>(())
/// # })?;
/// # Ok::<(), alertkit::Error>(())
/// ```
pub struct FlinkWatcher {
    config: WatchConfig,
    notifier: Arc<Notifier>,
    group: String,
    rest: Rest,
    state: WatchState,
    cluster: Option<ClusterInfo>,
    route: Option<RouteFn>,
    enrich: Option<EnrichFn>,
}

impl std::fmt::Debug for FlinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlinkWatcher")
            .field("flink", &redact_url(&self.config.base_url))
            .field("group", &self.group)
            .field("jobs", &self.state.jobs.len())
            .field("routed", &self.route.is_some())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

impl FlinkWatcher {
    /// A watcher dispatching to `group` of `notifier`. Fails when the
    /// notifier has no such group, or the config cannot work (interval 0).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Config, ErrorKind, Http, Notifier};
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// use alertkit::testkit::recording_registry;
    ///
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "flink-prod", "instances": ["ops"]}]}"#)?;
    /// let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new())?);
    /// let flink = WatchConfig::new("http://jobmanager:8081", "prod")?;
    /// assert!(FlinkWatcher::new(flink.clone(), notifier.clone(), "flink-prod").is_ok());
    /// let e = FlinkWatcher::new(flink, notifier, "flink-staging").unwrap_err();
    /// assert_eq!((e.kind(), e.field()), (ErrorKind::InvalidConfig, Some("group")));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn new(
        config: WatchConfig,
        notifier: Arc<Notifier>,
        group: impl Into<String>,
    ) -> Result<Self> {
        let group = group.into();
        config.check()?;
        if notifier.group(&group).is_none() {
            let known: Vec<String> = notifier.groups().into_iter().map(|g| g.name).collect();
            return Err(Error::config(
                "group",
                format!("no group named {group:?} (groups: {})", known.join(", ")),
            ));
        }
        let rest = Rest {
            client: notifier.http().client().clone(),
            base: config.base_url.clone(),
            auth: config.auth.clone(),
            max_reply: config.max_reply,
            timeout: config.request_timeout,
        };
        Ok(FlinkWatcher {
            config,
            notifier,
            group,
            rest,
            state: WatchState::default(),
            cluster: None,
            route: None,
            enrich: None,
        })
    }

    /// Sends each job's alerts to the group `route` names, or drops them
    /// when it answers `None`. A group the notifier does not know is logged
    /// and the alert goes to the watcher's own group. Cluster alerts
    /// (unreachable) always go to the watcher's group.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let config = WatchConfig::new(&flink_url, "prod")?.cause_wait(Duration::ZERO);
    /// let mut watcher = FlinkWatcher::new(config, notifier, "flink-prod")?
    ///     .route(|job| job.name.starts_with("orders-").then(|| "team-a".to_owned()));
    /// watcher.poll_once().await;
    /// *job_state.lock().unwrap() = "FAILED";
    /// assert_eq!(watcher.poll_once().await[0].group, "team-a");
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn route(
        mut self,
        route: impl Fn(&JobView) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.route = Some(Arc::new(route));
        self
    }

    /// Lets `enrich` change each job alert before it is sent (fields,
    /// mentions, labels: a label changes the fingerprint only when the
    /// alert has no dedup key, and the watcher's have one).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::Mention;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let sent = Arc::new(Mutex::new(Vec::new()));
    /// let s = sent.clone();
    /// notifier.on_dispatch(move |alert, _| s.lock().unwrap().push(alert.clone()));
    /// let config = WatchConfig::new(&flink_url, "prod")?.cause_wait(Duration::ZERO);
    /// let mut watcher = FlinkWatcher::new(config, notifier, "flink-prod")?.enrich(|alert, job| {
    ///     alert.fields.push(("Owner".into(), format!("owner of {}", job.name)));
    ///     alert.mentions.push(Mention::UserId("zhangsan".into()));
    /// });
    /// watcher.poll_once().await;
    /// *job_state.lock().unwrap() = "FAILED";
    /// watcher.poll_once().await;
    /// let alert = sent.lock().unwrap().remove(0);
    /// assert!(alert.fields.contains(&("Owner".into(), "owner of orders-etl".into())));
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn enrich(mut self, enrich: impl Fn(&mut Alert, &JobView) + Send + Sync + 'static) -> Self {
        self.enrich = Some(Arc::new(enrich));
        self
    }

    /// Starts from a state saved earlier (see [`FlinkWatcher::state`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let config = WatchConfig::new(&flink_url, "prod")?.cause_wait(Duration::ZERO);
    /// let mut first = FlinkWatcher::new(config.clone(), notifier.clone(), "flink-prod")?;
    /// first.poll_once().await;
    /// *job_state.lock().unwrap() = "FAILED";
    /// assert_eq!(first.poll_once().await.len(), 1);
    /// // a second watcher resumes where the first one stopped: no repeat
    /// let mut second = FlinkWatcher::new(config, notifier, "flink-prod")?.with_state(first.state());
    /// assert!(second.poll_once().await.is_empty());
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn with_state(mut self, state: WatchState) -> Self {
        self.state = state;
        self
    }

    /// What the watcher knows now (serde), to save.
    ///
    /// ```
    /// use alertkit::flink::{FlinkWatcher, WatchConfig, WatchState};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let mut watcher = FlinkWatcher::new(WatchConfig::new(&flink_url, "prod")?, notifier, "flink-prod")?;
    /// assert_eq!(watcher.state(), WatchState::default());
    /// watcher.poll_once().await;
    /// let saved = serde_json::to_value(watcher.state()).unwrap(); // into the control plane's store
    /// assert_eq!(serde_json::from_value::<WatchState>(saved).unwrap(), watcher.state());
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn state(&self) -> WatchState {
        self.state.clone()
    }

    fn cause_wait(&self) -> Duration {
        if let Some(w) = self.config.cause_wait {
            return w;
        }
        let refresh = self
            .cluster
            .and_then(|c| c.refresh_ms)
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or(3000);
        Duration::from_millis(refresh.saturating_add(2000).min(30_000))
    }

    fn ui_base(&self) -> Url {
        let mut u = self
            .config
            .ui_url
            .clone()
            .unwrap_or_else(|| self.config.base_url.clone());
        u.set_query(None);
        u.set_fragment(None);
        u
    }

    /// The job's page: Flink 2.x routes running and completed jobs apart;
    /// 1.x had one route.
    fn job_url(&self, jid: &str, ended: bool) -> String {
        let base = self.ui_base();
        let old = self.cluster.and_then(|c| c.major).is_some_and(|m| m < 2);
        if old {
            format!("{base}#/job/{jid}/overview")
        } else if ended {
            format!("{base}#/job/completed/{jid}/overview")
        } else {
            format!("{base}#/job/running/{jid}/overview")
        }
    }

    fn view(&self, jid: &str, t: &Track, status: JobStatus) -> JobView {
        let mut v = JobView::new(self.config.cluster.clone(), jid, t.name.clone(), status)
            .url(self.job_url(jid, status.is_terminal()));
        v.state = t.state.clone();
        if let Some(start) = ms(t.start) {
            v = v.times(start, ms(t.end));
        }
        v
    }

    async fn send(&self, o: Outgoing, out: &mut Vec<WatchReport>) {
        let Outgoing { mut alert, view } = o;
        let mut group = self.group.clone();
        if let Some(v) = &view {
            if let Some(enrich) = &self.enrich {
                enrich(&mut alert, v);
            }
            if let Some(route) = &self.route {
                match route(v) {
                    Some(g) => group = g,
                    None => {
                        tracing::debug!(job = %v.name, title = %alert.title, "flink alert dropped by the route");
                        return;
                    }
                }
            }
        }
        let mut result = self.notifier.dispatch(&group, &alert).await;
        if result.is_err() && group != self.group && self.notifier.group(&group).is_none() {
            tracing::error!(group = %group, "flink watcher: the route named an unknown group; sending to {}", self.group);
            group = self.group.clone();
            result = self.notifier.dispatch(&group, &alert).await;
        }
        match result {
            Ok(report) => {
                let r = WatchReport {
                    title: alert.title.clone(),
                    alert_state: alert.state,
                    fingerprint: alert.fingerprint(),
                    job: view.as_ref().map(|v| v.name.clone()),
                    jid: view.as_ref().map(|v| v.jid.clone()),
                    job_state: view.as_ref().map(|v| v.state.clone()),
                    group,
                    report,
                };
                tracing::info!(
                    job = r.job.as_deref().unwrap_or("-"),
                    job_state = r.job_state.as_deref().unwrap_or("-"),
                    fingerprint = %r.fingerprint,
                    status = r.report.status.as_str(),
                    "{}", r.title
                );
                out.push(r);
            }
            Err(e) => {
                tracing::error!(error = %e, title = %alert.title, "flink watcher cannot dispatch")
            }
        }
    }

    fn cluster_alert(&self, resolved: bool, detail: &str) -> Outgoing {
        let mut a = Alert::new(format!("Flink cluster {} unreachable", self.config.cluster))
            .severity(Severity::Critical)
            .label("cluster", self.config.cluster.clone())
            .dedup_key(format!("flink/{}/unreachable", self.config.cluster))
            .occurred_at(Utc::now());
        if resolved {
            a = a.body("The REST endpoint answers again.").resolved();
        } else {
            a = a
                .body(format!("{}: {detail}", redact_url(&self.config.base_url)))
                .link("Flink UI", format!("{}#/overview", self.ui_base()));
        }
        Outgoing {
            alert: a,
            view: None,
        }
    }

    /// One poll: reads the cluster, dispatches what the rules say (a
    /// failure alert may wait up to [`WatchConfig::cause_wait`] for its
    /// cause), and returns what was sent, in order.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let config = WatchConfig::new(&flink_url, "prod")?.cause_wait(Duration::ZERO);
    /// let mut watcher = FlinkWatcher::new(config, notifier, "flink-prod")?;
    /// watcher.poll_once().await;
    /// *job_state.lock().unwrap() = "RESTARTING";
    /// let fired = watcher.poll_once().await;
    /// *job_state.lock().unwrap() = "RUNNING";
    /// let resolved = watcher.poll_once().await;
    /// assert_eq!(fired[0].fingerprint, resolved[0].fingerprint);
    /// assert_eq!(resolved[0].title, "Flink job orders-etl RESTARTING");
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub async fn poll_once(&mut self) -> Vec<WatchReport> {
        let started = Instant::now();
        let mut out = Vec::new();
        if self.cluster.is_none() {
            // Asked once per reachable period: a cluster that hides /config
            // gets the 2.x routes and the default cause wait.
            let c = self.rest.get::<ClusterConfig>("config", None).await;
            self.cluster = Some(ClusterInfo::default());
            if let Ok(c) = &c {
                self.cluster = Some(ClusterInfo {
                    major: c
                        .version
                        .as_deref()
                        .and_then(|v| v.split('.').next())
                        .and_then(|m| m.trim().parse().ok()),
                    refresh_ms: c.refresh_interval.filter(|n| *n > 0),
                });
            }
        }
        let overview = match self.rest.get::<Overview>("jobs/overview", None).await {
            Ok(o) => o,
            Err(e) => {
                if !self.state.down {
                    self.state.down = true;
                    let a = self.cluster_alert(false, &e.describe("jobs/overview"));
                    self.send(a, &mut out).await;
                }
                // A cluster that comes back may be another version.
                self.cluster = None;
                return out;
            }
        };
        if self.state.down {
            self.state.down = false;
            let a = self.cluster_alert(true, "");
            self.send(a, &mut out).await;
        }
        let first = !self.state.initialized;
        let now = now_ms();
        let cause_wait = self.cause_wait();
        let cause_wait_ms = i64::try_from(cause_wait.as_millis()).unwrap_or(i64::MAX);

        // What each listed job needs read.
        let mut listed = HashSet::new();
        let mut work = Vec::new();
        let mut jobs = Vec::new();
        for j in overview.jobs {
            let Some(jid) = j.jid.clone().filter(|s| !s.is_empty()) else {
                continue;
            };
            let name = j.name.clone().unwrap_or_else(|| jid.clone());
            if self.config.rules.is_ignored(&name) || !listed.insert(jid.clone()) {
                continue;
            }
            let raw = upper(j.state.as_deref().unwrap_or("UNKNOWN"));
            let status = raw.parse::<JobStatus>().unwrap_or(JobStatus::Unknown);
            let (exc, ckpt) = match self.state.jobs.get(&jid) {
                None if first => (!status.is_terminal(), !status.is_terminal()),
                None => (true, true),
                Some(t) if t.done && t.state == raw => (
                    t.late.as_ref().is_some_and(|(_, until)| now < *until),
                    false,
                ),
                Some(t) => {
                    let changed = t.state != raw || t.modified != j.last_modification;
                    let exc = changed
                        || now < t.recheck_until
                        || t.exc_ts.is_none()
                        || now.saturating_sub(t.exc_read_at) > EXCEPTIONS_AT_LEAST_EVERY_MS;
                    (exc, true)
                }
            };
            if exc || ckpt {
                work.push((jid.clone(), exc, ckpt));
            }
            jobs.push((jid, name, raw, status, j));
        }
        let rest = self.rest.clone();
        let fetched: HashMap<String, Reads> = stream::iter(work)
            .map(move |(jid, exc, ckpt): (String, bool, bool)| {
                let rest = rest.clone();
                async move {
                    let e = async {
                        if exc {
                            Some(
                                rest.get::<Exceptions>(
                                    &format!("jobs/{jid}/exceptions"),
                                    Some("maxExceptions=20"),
                                )
                                .await,
                            )
                        } else {
                            None
                        }
                    };
                    let c = async {
                        if ckpt {
                            Some(
                                rest.get::<Checkpoints>(&format!("jobs/{jid}/checkpoints"), None)
                                    .await,
                            )
                        } else {
                            None
                        }
                    };
                    let (e, c) = tokio::join!(e, c);
                    (jid, (e, c))
                }
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        let mut fetched = fetched;

        let mut plans = Vec::new();
        for (jid, name, raw, status, j) in jobs {
            let (exc, ckpt) = fetched.remove(&jid).unwrap_or((None, None));
            let plan = self.plan(
                &jid,
                name,
                raw,
                status,
                &j,
                exc,
                ckpt,
                first,
                now,
                cause_wait_ms,
            );
            plans.push(plan);
        }

        // Jobs no longer listed.
        let gone: Vec<String> = self
            .state
            .jobs
            .keys()
            .filter(|jid| !listed.contains(*jid))
            .cloned()
            .collect();
        let mut vanished = Vec::new();
        for jid in gone {
            let Some(t) = self.state.jobs.remove(&jid) else {
                continue;
            };
            let status = t.state.parse::<JobStatus>().unwrap_or(JobStatus::Unknown);
            if t.done
                || status.is_terminal()
                || !self.config.rules.vanished_jobs
                || self.config.rules.is_ignored(&t.name)
            {
                continue;
            }
            let mut view = self.view(&jid, &t, status);
            // The UI has no page for a job it does not know.
            view.url = Some(format!("{}#/overview", self.ui_base()));
            let alert = job_alert(&view, &JobEvent::Vanished, None).body(format!(
                "The JobManager no longer lists job {jid}, last seen {}. A JobManager restarted without high availability loses its jobs.",
                t.state
            ));
            vanished.push(Outgoing {
                alert,
                view: Some(view),
            });
        }
        for o in vanished {
            self.send(o, &mut out).await;
        }

        // Send what is complete; then wait for the causes still missing.
        let mut waiting = Vec::new();
        for p in plans {
            for o in p.before {
                self.send(o, &mut out).await;
            }
            match p.waiting {
                Some(w) => waiting.push((p.jid, w, p.after)),
                None => {
                    for o in p.after {
                        self.send(o, &mut out).await;
                    }
                }
            }
        }
        while !waiting.is_empty() {
            let left = cause_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(CAUSE_RETRY)).await;
            let rest = self.rest.clone();
            let ids: Vec<String> = waiting.iter().map(|(jid, _, _)| jid.clone()).collect();
            let reads: Vec<(String, Result<Exceptions, FetchError>)> = stream::iter(ids)
                .map(move |jid: String| {
                    let rest = rest.clone();
                    async move {
                        let r = rest
                            .get::<Exceptions>(
                                &format!("jobs/{jid}/exceptions"),
                                Some("maxExceptions=20"),
                            )
                            .await;
                        (jid, r)
                    }
                })
                .buffer_unordered(self.config.concurrency)
                .collect()
                .await;
            let reads: HashMap<String, Result<Exceptions, FetchError>> =
                reads.into_iter().collect();
            let mut still = Vec::new();
            for (jid, mut w, after) in waiting {
                match reads.get(&jid) {
                    Some(Ok(x)) => {
                        let (before, cause) = self.take_new(&jid, x, &w.view, now_ms(), w.status);
                        // The entry held back was a restart's after all.
                        if cause.is_some()
                            && let Some(f) = w.tentative.take()
                            && let Some(o) = self.restarted(&jid, &w.view, f)
                        {
                            self.send(o, &mut out).await;
                        }
                        for o in before {
                            self.send(o, &mut out).await;
                        }
                        if let Some(f) = cause {
                            w.error = None;
                            let o = self.waiting_alert(&jid, w, Some(&f));
                            self.send(o, &mut out).await;
                            for o in after {
                                self.send(o, &mut out).await;
                            }
                        } else {
                            w.error = None;
                            still.push((jid, w, after));
                        }
                    }
                    Some(Err(e)) => {
                        w.error = Some(e.describe(&format!("jobs/{jid}/exceptions")));
                        w.too_large = matches!(e, FetchError::TooLarge(_));
                        if matches!(e, FetchError::TooLarge(_)) {
                            let o = self.waiting_alert(&jid, w, None);
                            self.send(o, &mut out).await;
                            for o in after {
                                self.send(o, &mut out).await;
                            }
                        } else {
                            still.push((jid, w, after));
                        }
                    }
                    None => still.push((jid, w, after)),
                }
            }
            waiting = still;
        }
        for (jid, mut w, after) in waiting {
            // No entry of the strategy giving up came: the one held back
            // is the cause.
            let tentative = w.tentative.take();
            let o = self.waiting_alert(&jid, w, tentative.as_ref());
            self.send(o, &mut out).await;
            for o in after {
                self.send(o, &mut out).await;
            }
        }
        self.state.initialized = true;
        out
    }

    /// New failures in `x` for job `jid`: the newest is returned (for a
    /// waiting alert), older ones become "restarted" alerts.
    fn take_new(
        &mut self,
        jid: &str,
        x: &Exceptions,
        view: &JobView,
        now: i64,
        status: JobStatus,
    ) -> (Vec<Outgoing>, Option<Failure>) {
        let Some(t) = self.state.jobs.get_mut(jid) else {
            return (Vec::new(), None);
        };
        let base = t.exc_ts;
        let mut new: Vec<Failure> = failures(x)
            .into_iter()
            .filter(|f| base.is_none_or(|b| f.ts > b))
            .collect();
        if let Some(newest) = new.last() {
            t.exc_ts = Some(t.exc_ts.map_or(newest.ts, |b| b.max(newest.ts)));
        }
        t.exc_read_at = now;
        let restarted = !t.restarts.is_empty() || new.len() > 1;
        let cause = take_cause(status, &mut new, restarted);
        let before = new
            .into_iter()
            .filter_map(|f| self.restarted(jid, view, f))
            .collect();
        (before, cause)
    }

    /// A restart seen only in the exception history; `None` when the rules
    /// say it does not alert.
    fn restarted(&mut self, jid: &str, view: &JobView, f: Failure) -> Option<Outgoing> {
        let rules = &self.config.rules;
        if !rules.new_exceptions {
            return None;
        }
        let n = self.count_restart(jid, f.ts);
        if n < self.config.rules.restarts_to_alert {
            return None;
        }
        let failed_at = ms(Some(f.ts)).unwrap_or_else(Utc::now);
        let mut alert = job_alert(view, &JobEvent::Restarted { failed_at }, Some(&f.text))
            .body(format!(
                "The job failed at {} and restarted between two polls; it is {} now.",
                failed_at.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
                view.state
            ))
            .occurred_at(failed_at);
        alert = with_failure_fields(alert, &f);
        if self.config.rules.restarts_to_alert > 1 {
            alert = alert.field("Restarts in window", n.to_string());
        }
        Some(Outgoing {
            alert,
            view: Some(view.clone()),
        })
    }

    fn count_restart(&mut self, jid: &str, at: i64) -> u32 {
        let window =
            i64::try_from(self.config.rules.restart_window.as_millis()).unwrap_or(i64::MAX);
        let Some(t) = self.state.jobs.get_mut(jid) else {
            return 1;
        };
        // Counted in the failures' own time: this one and those within the
        // window before it.
        t.restarts.retain(|r| at.saturating_sub(*r) <= window);
        t.restarts.push(at);
        if t.restarts.len() > 1000 {
            t.restarts.remove(0);
        }
        u32::try_from(t.restarts.len()).unwrap_or(u32::MAX)
    }

    fn waiting_alert(&mut self, jid: &str, w: Waiting, cause: Option<&Failure>) -> Outgoing {
        let text = cause.map(|f| f.text.clone()).or(w.reuse.clone());
        let mut alert = job_alert(&w.view, &JobEvent::Entered(w.status), text.as_deref());
        let mut notes = w.notes;
        match (cause, &w.error) {
            _ if !w.wants_cause || w.reuse.is_some() && cause.is_none() => {}
            (Some(f), _) => {
                alert = with_failure_fields(alert, f);
                if let Some(at) = ms(Some(f.ts)) {
                    alert = alert.occurred_at(at);
                }
            }
            (None, Some(err)) => notes.push(format!("The cause could not be read: {err}.")),
            (None, None) => notes.push(format!(
                "Flink recorded no exception for this failure within {} s (its exception history lags the job state); the cause follows when it comes.",
                self.cause_wait().as_secs_f32()
            )),
        }
        if w.wants_cause
            && cause.is_none()
            && w.reuse.is_none()
            && !w.too_large
            && let Some(t) = self.state.jobs.get_mut(jid)
        {
            t.late = Some((
                w.status.as_str().to_owned(),
                now_ms().saturating_add(LATE_CAUSE_MS),
            ));
        }
        if !notes.is_empty() {
            alert = alert.body(notes.join("\n"));
        }
        for (k, v) in w.fields {
            alert = alert.field(k, v);
        }
        if let Some(t) = self.state.jobs.get_mut(jid)
            && matches!(w.status, JobStatus::Restarting | JobStatus::Failing)
        {
            t.open = Some(w.status.as_str().to_owned());
            t.open_cause = text;
        }
        Outgoing {
            alert,
            view: Some(w.view),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        jid: &str,
        name: String,
        raw: String,
        status: JobStatus,
        j: &super::rest::OverviewJob,
        exc: Option<Result<Exceptions, FetchError>>,
        ckpt: Option<Result<Checkpoints, FetchError>>,
        first: bool,
        now: i64,
        cause_wait_ms: i64,
    ) -> Plan {
        let rules = self.config.rules.clone();
        let prev = self.state.jobs.get(jid).cloned();
        let is_new = prev.is_none();
        let mut t = prev.clone().unwrap_or(Track {
            name: name.clone(),
            state: raw.clone(),
            start: None,
            end: None,
            modified: None,
            from_start: first,
            exc_ts: None,
            exc_read_at: 0,
            recheck_until: 0,
            ckpt_read: false,
            ckpt_failed_id: None,
            ckpt_open: false,
            open: None,
            open_cause: None,
            restarts: Vec::new(),
            done: false,
            late: None,
        });
        let changed = prev.as_ref().is_some_and(|p| p.state != raw);
        let moved = prev
            .as_ref()
            .is_some_and(|p| p.modified != j.last_modification);
        let prev_state = prev.as_ref().map(|p| p.state.clone());
        t.name = name;
        t.state = raw.clone();
        t.start = j.start_time;
        t.end = j.end_time.filter(|e| *e > 0);
        t.modified = j.last_modification;
        if changed || moved {
            // Re-read the exception history until its entry for this change
            // can have appeared (Flink serves it up to `cause_wait` late),
            // and for two more polls after that: a poll that starts late (a
            // loaded host, a slow answer) must not end the window before the
            // entry is read.
            let interval_ms = i64::try_from(self.config.interval.as_millis()).unwrap_or(i64::MAX);
            t.recheck_until = now
                .saturating_add(cause_wait_ms)
                .saturating_add(interval_ms.saturating_mul(2));
        }
        let parsed = raw.parse::<JobStatus>().is_ok();
        let view = self.view(jid, &t, status);
        let mut plan = Plan {
            jid: jid.to_owned(),
            before: Vec::new(),
            waiting: None,
            after: Vec::new(),
        };

        // Exceptions: baseline, or what is new since the last read.
        let mut new: Vec<Failure> = Vec::new();
        let mut exc_error = None;
        match &exc {
            Some(Ok(x)) => {
                let all = failures(x);
                let newest = all.last().map(|f| f.ts);
                if t.exc_ts.is_none() && t.from_start {
                    t.exc_ts = Some(newest.unwrap_or(0));
                } else {
                    let base = t.exc_ts;
                    new = all
                        .into_iter()
                        .filter(|f| base.is_none_or(|b| f.ts > b))
                        .collect();
                    if let Some(n) = newest {
                        t.exc_ts = Some(t.exc_ts.map_or(n, |b| b.max(n)));
                    } else if t.exc_ts.is_none() {
                        t.exc_ts = Some(0);
                    }
                }
                t.exc_read_at = now;
            }
            Some(Err(e)) => {
                let what = e.describe(&format!("jobs/{jid}/exceptions"));
                tracing::debug!(job = %t.name, "flink watcher: {what}");
                exc_error = Some(what);
            }
            None => {}
        }

        // Checkpoints.
        let mut ckpt_fields = Vec::new();
        let mut ckpt_failure: Option<(i64, String)> = None;
        let mut ckpt_complete = false;
        if let Some(Err(e)) = &ckpt {
            // Normal while a job initialises (HTTP 500): the counts wait.
            tracing::debug!(job = %t.name, "flink watcher: {}", e.describe(&format!("jobs/{jid}/checkpoints")));
        }
        if let Some(Ok(c)) = &ckpt {
            if let Some(counts) = &c.counts {
                if let Some(n) = counts.completed {
                    ckpt_fields.push(("Checkpoints completed".to_owned(), n.to_string()));
                }
                if let Some(n) = counts.failed {
                    ckpt_fields.push(("Checkpoints failed".to_owned(), n.to_string()));
                }
            }
            let latest = c.latest.as_ref();
            let failed = latest.and_then(|l| l.failed.as_ref()).and_then(|f| {
                Some((
                    f.id?,
                    f.failure_message.clone().filter(|m| !m.trim().is_empty())?,
                ))
            });
            let completed = latest.and_then(|l| l.completed.as_ref()).and_then(|c| c.id);
            if !t.ckpt_read && t.from_start {
                t.ckpt_failed_id = failed.as_ref().map(|f| f.0);
            } else if let Some((id, msg)) = failed
                && t.ckpt_failed_id != Some(id)
            {
                t.ckpt_failed_id = Some(id);
                ckpt_failure = Some((id, msg));
            }
            if t.ckpt_open
                && ckpt_failure.is_none()
                && completed.zip(t.ckpt_failed_id).is_some_and(|(c, f)| c > f)
            {
                ckpt_complete = true;
            }
            t.ckpt_read = true;
        }

        if first && is_new {
            t.done = status.is_terminal();
            self.state.jobs.insert(jid.to_owned(), t);
            return plan;
        }

        let alerting = rules.alert_states.contains(&status) || (!parsed && rules.unknown_states);
        let entered = (changed || is_new) && alerting && status != JobStatus::Running;
        let mut cause: Option<Failure> = None;
        let mut waiting = None;
        if entered {
            let needs_cause = matches!(
                status,
                JobStatus::Restarting | JobStatus::Failing | JobStatus::Failed
            );
            let mut notes = Vec::new();
            let mut fields = ckpt_fields.clone();
            let mut suppressed = false;
            if status == JobStatus::Restarting {
                let at = new.last().map_or(now, |f| f.ts);
                let n = self.count_restart(jid, at);
                if n < rules.restarts_to_alert {
                    suppressed = true;
                    new.pop();
                } else if rules.restarts_to_alert > 1 {
                    fields.push(("Restarts in window".to_owned(), n.to_string()));
                }
            }
            if status.is_terminal() {
                if let Some((id, msg)) = ckpt_failure.take() {
                    fields.push(("Last failed checkpoint".to_owned(), format!("#{id}: {msg}")));
                } else if t.ckpt_open {
                    notes.push("Its checkpoints were failing.".to_owned());
                }
                t.ckpt_open = false;
            }
            if !suppressed {
                let reuse = (status == JobStatus::Failed && t.open.as_deref() == Some("FAILING"))
                    .then(|| t.open_cause.clone())
                    .flatten();
                let mut tentative = None;
                if needs_cause && reuse.is_none() {
                    let restarted = !t.restarts.is_empty() || new.len() > 1;
                    cause = take_cause(status, &mut new, restarted);
                    if cause.is_none() && status == JobStatus::Failed {
                        // Wait for the entry in which the strategy gave up.
                        tentative = new.pop();
                    }
                }
                let ready = cause.is_some()
                    || reuse.is_some()
                    || !needs_cause
                    || matches!(exc, Some(Err(FetchError::TooLarge(_))));
                let w = Waiting {
                    view: view.clone(),
                    status,
                    fields,
                    notes,
                    error: exc_error.clone(),
                    too_large: matches!(exc, Some(Err(FetchError::TooLarge(_)))),
                    wants_cause: needs_cause,
                    reuse,
                    tentative,
                };
                waiting = Some((w, ready));
            }
        }
        // The cause of an earlier alert that went out without it: the
        // oldest new failure.
        if t.late.as_ref().is_some_and(|(_, until)| now >= *until) {
            t.late = None;
        }
        let mut late = None;
        if let Some((state, _)) = t.late.clone()
            && !new.is_empty()
        {
            t.late = None;
            late = Some((state, new.remove(0)));
        }
        // Older new failures: restarts between polls.
        self.state.jobs.insert(jid.to_owned(), t);
        if let Some((state, f)) = late {
            let status = state.parse::<JobStatus>().unwrap_or(JobStatus::Unknown);
            let alert = job_alert(&view, &JobEvent::Cause(status), Some(&f.text)).body(format!(
                "The cause of the {state} alert, which Flink recorded after it was sent."
            ));
            let mut alert = with_failure_fields(alert, &f);
            if let Some(at) = ms(Some(f.ts)) {
                alert = alert.occurred_at(at);
            }
            plan.before.push(Outgoing {
                alert,
                view: Some(view.clone()),
            });
        }
        for f in new {
            if let Some(o) = self.restarted(jid, &view, f) {
                plan.before.push(o);
            }
        }
        if let Some((w, ready)) = waiting {
            if ready {
                let o = self.waiting_alert(jid, w, cause.as_ref());
                plan.before.push(o);
            } else {
                plan.waiting = Some(w);
            }
        }
        let Some(t) = self.state.jobs.get_mut(jid) else {
            return plan;
        };
        // RUNNING again after an alerted problem.
        if changed
            && status == JobStatus::Running
            && rules.resolve_on_running
            && let Some(open) = t.open.take()
        {
            {
                t.open_cause = None;
                let was = open.parse::<JobStatus>().unwrap_or(JobStatus::Restarting);
                let alert = job_alert(&view, &JobEvent::RunningAgain(was), None).body(format!(
                    "The job is RUNNING again (it was {}).",
                    prev_state.unwrap_or(open)
                ));
                let alert = ckpt_fields.iter().fold(alert, |a, (k, v)| a.field(k, v));
                plan.after.push(Outgoing {
                    alert,
                    view: Some(view.clone()),
                });
            }
        }
        if status.is_terminal() {
            t.open = None;
            t.ckpt_open = false;
            t.done = true;
        }
        if let Some((id, msg)) = ckpt_failure {
            if status == JobStatus::Running && rules.checkpoint_failures && !t.ckpt_open {
                t.ckpt_open = true;
                let alert = job_alert(&view, &JobEvent::CheckpointFailed, Some(&msg))
                    .field("Failed checkpoint", format!("#{id}"));
                let alert = ckpt_fields.iter().fold(alert, |a, (k, v)| a.field(k, v));
                plan.after.push(Outgoing {
                    alert,
                    view: Some(view.clone()),
                });
            }
        } else if ckpt_complete && status == JobStatus::Running {
            t.ckpt_open = false;
            let alert = job_alert(&view, &JobEvent::CheckpointsComplete, None)
                .body("A checkpoint completed after the failed one.");
            let alert = ckpt_fields.iter().fold(alert, |a, (k, v)| a.field(k, v));
            plan.after.push(Outgoing {
                alert,
                view: Some(view),
            });
        }
        plan
    }

    /// Polls every `interval` in a task of its own until
    /// [`WatchHandle::stop`]; see [`WatchHandle`] for the reports.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let config = WatchConfig::new(&flink_url, "prod")?
    ///     .interval(Duration::from_millis(20))
    ///     .cause_wait(Duration::ZERO);
    /// let mut handle = FlinkWatcher::new(config, notifier, "flink-prod")?.start();
    /// # tokio::time::sleep(Duration::from_millis(100)).await;
    /// *job_state.lock().unwrap() = "FAILED";
    /// let report = handle.next_report().await.unwrap();
    /// assert_eq!(report.job_state.as_deref(), Some("FAILED"));
    /// let stopped = handle.stop().await;
    /// assert_eq!(stopped.state.jobs(), 1);
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn start(mut self) -> WatchHandle {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel(self.config.report_buffer.max(1));
        let interval = self.config.interval;
        let shared = Arc::new(Mutex::new(self.state.clone()));
        let dropped = Arc::new(AtomicU64::new(0));
        let (s, d) = (shared.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            loop {
                // A poll, with its dispatches, always completes before stopping.
                for r in self.poll_once().await {
                    if tx.try_send(r).is_err() {
                        let n = d.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                        tracing::warn!(
                            dropped = n,
                            "flink watcher: report buffer full, report dropped (the alert was sent)"
                        );
                    }
                }
                *s.lock().unwrap_or_else(|e| e.into_inner()) = self.state.clone();
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
            state: shared,
            dropped,
        }
    }
}

fn with_failure_fields(mut alert: Alert, f: &Failure) -> Alert {
    if let Some(task) = &f.task {
        alert = alert.field("Failed task", task.clone());
    }
    if let Some(ep) = &f.endpoint {
        alert = alert.field("TaskManager", ep.clone());
    }
    if let Some(g) = &f.gave_up {
        alert = alert.field("No restart", g.clone());
    }
    alert
}

/// A running watcher. Its reports wait in a buffer of
/// [`WatchConfig::report_buffer`] for [`next_report`](WatchHandle::next_report);
/// when nobody takes them, newer ones are dropped (the alerts are sent all
/// the same).
///
/// ```
/// use std::time::Duration;
/// use alertkit::flink::{FlinkWatcher, WatchConfig};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # use std::sync::{Arc, Mutex};
/// # use alertkit::{Config, Http, Notifier};
/// # use alertkit::testkit::recording_registry;
/// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
/// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
/// # let flink = MockServer::start().await;
/// # let job_state = Arc::new(Mutex::new("RUNNING"));
/// # let s = job_state.clone();
/// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
/// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
/// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
/// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
/// # }).mount(&flink).await;
/// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
/// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
/// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
/// # let flink_url = flink.uri();
/// let config = WatchConfig::new(&flink_url, "prod")?
///     .interval(Duration::from_millis(20))
///     .cause_wait(Duration::ZERO);
/// let mut handle = FlinkWatcher::new(config, notifier, "flink-prod")?.start();
/// # tokio::time::sleep(Duration::from_millis(100)).await;
/// *job_state.lock().unwrap() = "FAILED";
/// // an audit log takes the reports as they come
/// let mut audit = Vec::new();
/// while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(500), handle.next_report()).await {
///     audit.push(format!("{} -> {}", r.title, r.report.status.as_str()));
/// }
/// handle.stop().await;
/// assert_eq!(audit, ["Flink job orders-etl FAILED -> delivered"]);
/// # Ok::<(), alertkit::Error>(())
/// # })?;
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug)]
pub struct WatchHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    reports: mpsc::Receiver<WatchReport>,
    state: Arc<Mutex<WatchState>>,
    dropped: Arc<AtomicU64>,
}

/// What [`WatchHandle::stop`] hands back.
///
/// ```
/// use std::time::Duration;
/// use alertkit::flink::{FlinkWatcher, WatchConfig};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # use std::sync::{Arc, Mutex};
/// # use alertkit::{Config, Http, Notifier};
/// # use alertkit::testkit::recording_registry;
/// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
/// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
/// # let flink = MockServer::start().await;
/// # let job_state = Arc::new(Mutex::new("RUNNING"));
/// # let s = job_state.clone();
/// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
/// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
/// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
/// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
/// # }).mount(&flink).await;
/// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
/// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
/// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
/// # let flink_url = flink.uri();
/// let config = WatchConfig::new(&flink_url, "prod")?
///     .interval(Duration::from_millis(20))
///     .cause_wait(Duration::ZERO);
/// let handle = FlinkWatcher::new(config, notifier, "flink-prod")?.start();
/// # tokio::time::sleep(Duration::from_millis(100)).await;
/// *job_state.lock().unwrap() = "FAILED";
/// # tokio::time::sleep(Duration::from_millis(200)).await;
/// let stopped = handle.stop().await; // nobody took the reports: they come back here
/// assert_eq!(stopped.reports.len(), 1);
/// assert_eq!(stopped.dropped, 0);
/// let saved = serde_json::to_string(&stopped.state).unwrap(); // for the next start
/// # let _ = saved;
/// # Ok::<(), alertkit::Error>(())
/// # })?;
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Stopped {
    /// Reports not taken yet.
    pub reports: Vec<WatchReport>,
    /// The watcher's state after its last poll, to save.
    pub state: WatchState,
    /// Reports dropped because the buffer was full.
    pub dropped: u64,
}

impl WatchHandle {
    /// The next report (`None` once stopped and drained).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let config = WatchConfig::new(&flink_url, "prod")?
    ///     .interval(Duration::from_millis(20))
    ///     .cause_wait(Duration::ZERO);
    /// let mut handle = FlinkWatcher::new(config, notifier, "flink-prod")?.start();
    /// # tokio::time::sleep(Duration::from_millis(100)).await;
    /// *job_state.lock().unwrap() = "CANCELED";
    /// let report = handle.next_report().await.unwrap();
    /// assert_eq!(report.title, "Flink job orders-etl CANCELED");
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub async fn next_report(&mut self) -> Option<WatchReport> {
        self.reports.recv().await
    }

    /// The watcher's state after its latest poll (save it to resume later).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let config = WatchConfig::new(&flink_url, "prod")?.interval(Duration::from_millis(20));
    /// let handle = FlinkWatcher::new(config, notifier, "flink-prod")?.start();
    /// # tokio::time::sleep(Duration::from_millis(100)).await;
    /// // save it now and then: a crash loses at most what changed since
    /// assert_eq!(handle.state().jobs(), 1);
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn state(&self) -> WatchState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops after the poll in progress (and its dispatches) finishes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::{FlinkWatcher, WatchConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use std::sync::{Arc, Mutex};
    /// # use alertkit::{Config, Http, Notifier};
    /// # use alertkit::testkit::recording_registry;
    /// # use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::path};
    /// # // A fake JobManager with one job, `orders-etl`, in the state `job_state` holds.
    /// # let flink = MockServer::start().await;
    /// # let job_state = Arc::new(Mutex::new("RUNNING"));
    /// # let s = job_state.clone();
    /// # Mock::given(path("/jobs/overview")).respond_with(move |_: &Request| {
    /// #     ResponseTemplate::new(200).set_body_json(serde_json::json!({"jobs": [{"jid": "a1b2", "name": "orders-etl",
    /// #         "state": *s.lock().unwrap(), "start-time": 1_763_632_800_000i64, "end-time": -1,
    /// #         "duration": 1, "last-modification": 1_763_632_800_000i64, "tasks": {}}]}))
    /// # }).mount(&flink).await;
    /// # let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    /// #     "groups": [{"name": "flink-prod", "instances": ["ops"]}, {"name": "team-a", "instances": ["ops"]}]}"#).unwrap();
    /// # let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
    /// # let flink_url = flink.uri();
    /// let config = WatchConfig::new(&flink_url, "prod")?.interval(Duration::from_secs(3600));
    /// let handle = FlinkWatcher::new(config, notifier, "flink-prod")?.start();
    /// # tokio::time::sleep(Duration::from_millis(100)).await;
    /// let stopped = handle.stop().await; // does not wait out the interval
    /// assert_eq!(stopped.state.jobs(), 1);
    /// # Ok::<(), alertkit::Error>(())
    /// # })?;
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub async fn stop(mut self) -> Stopped {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
        let mut reports = Vec::new();
        while let Ok(r) = self.reports.try_recv() {
            reports.push(r);
        }
        Stopped {
            reports,
            state: self.state(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}
