//! [`Notifier`]: the live set of instances and groups a host dispatches to.
//!
//! Control planes edit alert instances while jobs run. Every change builds
//! and validates first, then swaps in a new immutable snapshot; a dispatch
//! holds the snapshot it started with, so it finishes with that version
//! while later dispatches see the change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::Instrument;

use crate::alert::Alert;
use crate::channel::{AlertChannel, Preview};
use crate::config::{Config, GroupConfig, InstanceConfig, Registry, check_group};
use crate::error::{Error, Result};
use crate::group::{AlertGroup, Delivery, DispatchReport, Member};
use crate::group::{Hold, Repeat};
use crate::http::Http;
use crate::outbox::{Entry, Outbox, OutboxOptions, OutboxStore, Ticket};
use crate::policy::{Limiter, MemoryState, SharedState, Stack};

struct Instance {
    config: InstanceConfig,
    /// The channel as the platform sees it, without retry or rate limit
    /// (what [`Notifier::test_send_with`] uses by default).
    raw: Arc<dyn AlertChannel>,
    channel: Arc<dyn AlertChannel>,
    updated_at: DateTime<Utc>,
}

struct Group {
    config: GroupConfig,
    updated_at: DateTime<Utc>,
    /// Members built with the group's template overrides, by instance name;
    /// empty when the group overrides no template.
    own: HashMap<String, Arc<dyn AlertChannel>>,
}

#[derive(Clone, Default)]
struct State {
    instances: HashMap<String, Arc<Instance>>,
    groups: HashMap<String, Arc<Group>>,
}

/// What [`Notifier::instances`] lists.
///
/// ```
/// use alertkit::{Config, Http, Notifier};
/// use alertkit::testkit::recording_registry;
/// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
/// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
/// let info = &notifier.instances()[0];
/// assert_eq!((info.name.as_str(), info.kind.as_str(), info.enabled), ("ops", "recording", true));
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InstanceInfo {
    /// Name.
    pub name: String,
    /// Type as configured.
    pub kind: String,
    /// Enabled flag.
    pub enabled: bool,
    /// When it was last added, replaced, enabled or disabled.
    pub updated_at: DateTime<Utc>,
}

/// What [`Notifier::groups`] lists.
///
/// ```
/// use alertkit::{Config, Http, Notifier};
/// use alertkit::testkit::recording_registry;
/// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
/// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
/// let info = &notifier.groups()[0];
/// assert_eq!((info.name.as_str(), info.enabled), ("g", true));
/// assert_eq!(info.instances, ["ops"]);
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct GroupInfo {
    /// Name.
    pub name: String,
    /// Enabled flag.
    pub enabled: bool,
    /// Member names.
    pub instances: Vec<String>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Instances and groups, built from config and editable while dispatching.
///
/// ```
/// use alertkit::{Alert, Config, GroupStatus, Notifier, Registry, Http};
/// use alertkit::testkit::recording_registry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = Config::from_json(r#"{
///   "instances": [{"name": "ops", "type": "recording"}],
///   "groups": [{"name": "flink-prod", "instances": ["ops"]}]
/// }"#).unwrap();
/// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
/// let report = notifier.dispatch("flink-prod", &Alert::new("orders-etl FAILED")).await.unwrap();
/// assert_eq!(report.status, GroupStatus::Delivered);
///
/// notifier.set_instance_enabled("ops", false).unwrap();
/// let report = notifier.dispatch("flink-prod", &Alert::new("again")).await.unwrap();
/// assert_eq!(report.status, GroupStatus::Empty);
/// # });
/// ```
pub struct Notifier {
    registry: Registry,
    http: Http,
    shared: Arc<dyn SharedState>,
    limiter: Arc<Limiter>,
    hooks: RwLock<Arc<[Hook]>>,
    state: RwLock<Arc<State>>,
    /// Serializes writers so no change is lost between snapshot and swap.
    write: Mutex<()>,
    inflight: Arc<InFlight>,
    outbox: std::sync::OnceLock<Arc<Outbox>>,
    stack: Stack,
}

/// Dispatches in progress, for [`Notifier::shutdown`] and for naming what a
/// dropped dispatch lost.
#[derive(Default)]
struct InFlight {
    closed: AtomicBool,
    next: AtomicU64,
    running: Mutex<HashMap<u64, Undelivered>>,
    idle: tokio::sync::Notify,
}

/// An alert a dispatch had not finished delivering when the notifier shut
/// down (see [`Notifier::shutdown`]).
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use alertkit::{Alert, Config, Http, Notifier};
/// use alertkit::testkit::recording_registry;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let config = Config::from_json(r#"{"instances": [{"name": "slow", "type": "recording", "params": {"delay_ms": 5000}}],
///                                    "groups": [{"name": "g", "instances": ["slow"]}]}"#).unwrap();
/// let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
/// let n = notifier.clone();
/// tokio::spawn(async move { n.dispatch("g", &Alert::new("disk full")).await });
/// tokio::time::sleep(Duration::from_millis(100)).await;
/// let left = notifier.shutdown(Duration::from_millis(10)).await;
/// assert_eq!((left[0].group.as_str(), left[0].title.as_str()), ("g", "disk full"));
/// assert_eq!(left[0].instances, ["slow"]);
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Undelivered {
    /// The group it was dispatched to.
    pub group: String,
    /// The alert's title.
    pub title: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The enabled members it was being sent to.
    pub instances: Vec<String>,
}

/// Removes a dispatch from [`InFlight`] when it ends; when it ends by being
/// dropped (its task cancelled, its runtime shut down), logs what was lost.
struct Tracked {
    inflight: Arc<InFlight>,
    id: u64,
    finished: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut running = self
            .inflight
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = running.remove(&self.id);
        let empty = running.is_empty();
        drop(running);
        if let (Some(u), false) = (entry, self.finished) {
            tracing::error!(
                group = %u.group,
                title = %u.title,
                fingerprint = %u.fingerprint,
                instances = ?u.instances,
                "a dispatch was dropped before it finished (task cancelled or runtime shut down): the alert may not have reached these instances"
            );
        }
        if empty {
            self.inflight.idle.notify_waiters();
        }
    }
}

/// How [`Notifier::test_send_with`] sends.
///
/// ```
/// use std::time::Duration;
/// use alertkit::TestSendOptions;
/// let o = TestSendOptions::default();
/// assert_eq!((o.timeout, o.retry, o.rate_limit), (Duration::from_secs(10), false, false));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TestSendOptions {
    /// The time limit for the whole test (default 10 s).
    pub timeout: Duration,
    /// Apply the instance's retry policy (default false: one attempt, so
    /// the admin sees the platform's first answer at once).
    pub retry: bool,
    /// Wait in the instance's rate-limit queue (default false).
    pub rate_limit: bool,
}

impl Default for TestSendOptions {
    fn default() -> Self {
        TestSendOptions {
            timeout: Duration::from_secs(10),
            retry: false,
            rate_limit: false,
        }
    }
}

impl TestSendOptions {
    /// Sets the time limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::TestSendOptions;
    /// let o = TestSendOptions::default().timeout(Duration::from_secs(3));
    /// assert_eq!(o.timeout, Duration::from_secs(3));
    /// assert!(!o.retry);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends through the instance's policies (retry and rate limit) as a
    /// dispatch would.
    ///
    /// ```
    /// use alertkit::TestSendOptions;
    /// let o = TestSendOptions::default().with_policies();
    /// assert!(o.retry && o.rate_limit);
    /// ```
    pub fn with_policies(mut self) -> Self {
        self.retry = true;
        self.rate_limit = true;
        self
    }
}

/// Called with every dispatch's alert and report (an audit table, metrics).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use alertkit::notifier::Hook;
/// use alertkit::{Alert, DispatchReport};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let hook: Hook = Arc::new(move |alert: &Alert, report: &DispatchReport| {
///     s.lock().unwrap().push(format!("{} {}", report.group, alert.title));
/// });
/// hook(&Alert::new("disk full"), &DispatchReport::new("g".into(), vec![]));
/// assert_eq!(*seen.lock().unwrap(), ["g disk full"]);
/// ```
pub type Hook = Arc<dyn Fn(&Alert, &DispatchReport) + Send + Sync>;

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Notifier")
            .field("instances", &s.instances.len())
            .field("groups", &s.groups.len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// An empty notifier building channels with `registry`, sharing `http`.
    ///
    /// ```
    /// use alertkit::{Http, InstanceConfig, Notifier, Registry};
    /// let notifier = Notifier::new(Registry::default(), Http::new());
    /// assert!(notifier.instances().is_empty() && notifier.groups().is_empty());
    /// // The default registry has the built-in types only.
    /// assert!(notifier.upsert_instance(InstanceConfig::new("ops", "recording")).is_err());
    /// ```
    pub fn new(registry: Registry, http: Http) -> Self {
        Notifier::with_state(registry, http, Arc::new(MemoryState::new()))
    }

    /// An empty notifier whose rate-limit windows and dedup records live in
    /// `shared` (e.g. Redis, so several processes share one robot's budget).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// use alertkit::policy::MemoryState;
    /// use alertkit::testkit::recording_registry;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let state = Arc::new(MemoryState::new()); // or RedisState, shared between processes
    /// let notifier = Notifier::with_state(recording_registry(), Http::new(), state.clone());
    /// notifier.apply(&Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///     "groups": [{"name": "g", "instances": ["ops"], "repeat_interval_secs": 600}]}"#).unwrap()).unwrap();
    /// notifier.dispatch("g", &Alert::new("disk full")).await.unwrap();
    /// assert_eq!(state.dedup_records(), 1);
    /// # });
    /// ```
    pub fn with_state(registry: Registry, http: Http, shared: Arc<dyn SharedState>) -> Self {
        Notifier {
            registry,
            http,
            limiter: Arc::new(Limiter::new(shared.clone())),
            shared,
            hooks: RwLock::new(Arc::new([])),
            state: RwLock::new(Arc::new(State::default())),
            write: Mutex::new(()),
            inflight: Arc::default(),
            outbox: std::sync::OnceLock::new(),
            stack: Stack::default(),
        }
    }

    /// Sets the layers around every instance this notifier builds (call it
    /// before [`apply`](Notifier::apply)): the host's own decorators and
    /// the built-in retry and rate limit, in the order the [`Stack`] lists
    /// them. The default is [`Stack::default`].
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::policy::Stack;
    /// use alertkit::testkit::recording_registry;
    /// // Retry outside the rate limit's queue, no host layers.
    /// let notifier = Notifier::new(recording_registry(), Http::new()).layers(Stack::new().retry().rate_limit());
    /// notifier.apply(&Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap()).unwrap();
    /// assert_eq!(notifier.channel("ops").unwrap().kind(), "recording");
    /// ```
    pub fn layers(mut self, stack: Stack) -> Self {
        self.stack = stack;
        self
    }

    /// Reports as a channel, for a sink that writes them somewhere slow (a
    /// database) without holding up any dispatch: every report (dispatch,
    /// outbox attempt, test send) with its alert is offered to a queue of
    /// `capacity`; when the sink falls that far behind, the report is not
    /// queued for it (logged, and counted in
    /// `alertkit_reports_dropped_total` with feature `metrics`) and the
    /// dispatch goes on. Several sinks can be opened.
    ///
    /// ```
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let mut reports = notifier.report_sink(1024);
    /// let writer = tokio::spawn(async move {
    ///     let mut rows = Vec::new();
    ///     while let Some((alert, report)) = reports.recv().await {
    ///         rows.push(format!("{} {} {}", report.group, alert.title, report.status.as_str()));
    ///     }
    ///     rows // `INSERT INTO alert_history ...` in a real host
    /// });
    /// notifier.dispatch("g", &Alert::new("disk full")).await.unwrap();
    /// drop(notifier); // closes the sink
    /// assert_eq!(writer.await.unwrap(), ["g disk full delivered"]);
    /// # });
    /// ```
    pub fn report_sink(
        &self,
        capacity: usize,
    ) -> tokio::sync::mpsc::Receiver<(Alert, DispatchReport)> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        self.on_dispatch(move |alert, report| {
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) =
                tx.try_send((alert.clone(), report.clone()))
            {
                #[cfg(feature = "metrics")]
                metrics::counter!("alertkit_reports_dropped_total").increment(1);
                tracing::warn!(group = %report.group, title = %alert.title, "report sink full: this report was not queued for it");
            }
        });
        rx
    }

    /// Calls `hook` with the alert and report of every dispatch (after it
    /// finished): write an audit row, count metrics, page a human.
    ///
    /// Each call adds an observer (an audit table, metrics, a pager); all
    /// are called, in the order they were added.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// for name in ["audit", "metrics"] {
    ///     let seen = seen.clone();
    ///     notifier.on_dispatch(move |_, report| seen.lock().unwrap().push((name, report.group.clone())));
    /// }
    /// notifier.dispatch("g", &Alert::new("disk full")).await.unwrap();
    /// assert_eq!(*seen.lock().unwrap(), [("audit", "g".to_owned()), ("metrics", "g".to_owned())]);
    /// # });
    /// ```
    pub fn on_dispatch(&self, hook: impl Fn(&Alert, &DispatchReport) + Send + Sync + 'static) {
        let mut hooks = self.hooks.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Hook> = hooks.iter().cloned().collect();
        next.push(Arc::new(hook));
        *hooks = next.into();
    }

    /// The rate limiter every instance's queue lives in.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// assert_eq!(notifier.limiter().waiting_total(), 0); // nothing queued for a slot
    /// ```
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Builds every instance and group of `config` with the built-in channels.
    ///
    /// ```
    /// use alertkit::{Config, ErrorKind, Notifier};
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "no-such-type"}]}"#).unwrap();
    /// let e = Notifier::from_config(&config).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    /// assert_eq!(e.instance(), Some("ops"));
    /// assert!(Notifier::from_config(&Config::default()).unwrap().instances().is_empty());
    /// ```
    pub fn from_config(config: &Config) -> Result<Self> {
        Notifier::from_config_with(config, Registry::default(), Http::new())
    }

    /// Builds every instance and group of `config` with `registry` and `http`.
    /// The first misconfiguration is returned, naming the instance and field;
    /// nothing is sent.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// assert_eq!(notifier.instances()[0].kind, "recording");
    /// ```
    pub fn from_config_with(config: &Config, registry: Registry, http: Http) -> Result<Self> {
        let n = Notifier::new(registry, http);
        n.apply(config)?;
        Ok(n)
    }

    /// Replaces the whole set with `config`, atomically: on error nothing changes.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let notifier = Notifier::new(recording_registry(), Http::new());
    /// notifier.apply(&Config::from_json(r#"{"instances": [{"name": "a", "type": "recording"}]}"#).unwrap()).unwrap();
    /// let bad = Config::from_json(r#"{"instances": [{"name": "b", "type": "recording"},
    ///                                               {"name": "c", "type": "no-such-type"}]}"#).unwrap();
    /// assert!(notifier.apply(&bad).is_err());
    /// assert_eq!(notifier.instances()[0].name, "a"); // nothing changed
    /// ```
    pub fn apply(&self, config: &Config) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now();
        let mut next = State::default();
        for cfg in &config.instances {
            if next.instances.contains_key(&cfg.name) {
                return Err(Error::config(
                    "name",
                    format!("instance name {:?} is used twice", cfg.name),
                )
                .with_instance(cfg.name.clone()));
            }
            let inst = self.build_instance(cfg.clone(), now)?;
            next.instances.insert(cfg.name.clone(), inst);
        }
        for cfg in &config.groups {
            if next.groups.contains_key(&cfg.name) {
                return Err(Error::config(
                    "groups",
                    format!("group name {:?} is used twice", cfg.name),
                ));
            }
            let g = self.build_group(&next, cfg.clone(), now)?;
            next.groups.insert(cfg.name.clone(), g);
        }
        self.swap(next);
        Ok(())
    }

    fn snapshot(&self) -> Arc<State> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn swap(&self, next: State) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }

    fn build_instance(&self, config: InstanceConfig, now: DateTime<Utc>) -> Result<Arc<Instance>> {
        let raw = self
            .registry
            .build(&config, &self.http, &Default::default())?;
        let channel = self
            .stack
            .apply(raw.clone(), &config, &config.policy, &self.limiter);
        Ok(Arc::new(Instance {
            config,
            raw,
            channel,
            updated_at: now,
        }))
    }

    fn build_group(
        &self,
        state: &State,
        config: GroupConfig,
        now: DateTime<Utc>,
    ) -> Result<Arc<Group>> {
        check_group(&config, &|name| state.instances.contains_key(name))?;
        let mut own = HashMap::new();
        if !config.templates.is_empty() {
            for name in &config.instances {
                if let Some(inst) = state.instances.get(name) {
                    let ch = self
                        .registry
                        .build(&inst.config, &self.http, &config.templates)?;
                    own.insert(
                        name.clone(),
                        self.stack
                            .apply(ch, &inst.config, &inst.config.policy, &self.limiter),
                    );
                }
            }
        }
        Ok(Arc::new(Group {
            config,
            updated_at: now,
            own,
        }))
    }

    /// Adds an instance, or replaces the one with the same name (its groups
    /// pick up the new version for their next dispatch).
    ///
    /// ```
    /// use alertkit::{Http, InstanceConfig, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let notifier = Notifier::new(recording_registry(), Http::new());
    /// notifier.upsert_instance(InstanceConfig::new("ops", "recording")).unwrap();
    /// notifier.upsert_instance(InstanceConfig::new("ops", "recording")).unwrap(); // replaces
    /// assert_eq!(notifier.instances().len(), 1);
    /// assert!(notifier.upsert_instance(InstanceConfig::new("x", "no-such-type")).is_err());
    /// ```
    pub fn upsert_instance(&self, config: InstanceConfig) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now();
        let mut next = (*self.snapshot()).clone();
        let name = config.name.clone();
        let inst = self.build_instance(config, now)?;
        next.instances.insert(name.clone(), inst);
        // Groups with their own templates hold their own build of the instance.
        let affected: Vec<GroupConfig> = next
            .groups
            .values()
            .filter(|g| !g.own.is_empty() && g.config.instances.contains(&name))
            .map(|g| g.config.clone())
            .collect();
        for g in affected {
            let rebuilt = self.build_group(&next, g.clone(), now)?;
            next.groups.insert(g.name, rebuilt);
        }
        self.swap(next);
        Ok(())
    }

    /// Removes an instance. Refused while a group still names it.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// assert!(notifier.remove_instance("ops").is_err()); // group g names it
    /// notifier.remove_group("g").unwrap();
    /// notifier.remove_instance("ops").unwrap();
    /// assert!(notifier.instances().is_empty());
    /// ```
    pub fn remove_instance(&self, name: &str) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        // Refused while a group names it, as a member or as a fallback.
        type Uses = fn(&GroupConfig, &str) -> bool;
        let checks: [(&str, Uses); 2] = [
            ("a member", |g, n| g.instances.iter().any(|i| i == n)),
            ("a fallback", |g, n| {
                g.fallbacks.values().flatten().any(|i| i == n)
            }),
        ];
        for (what, uses) in checks {
            let mut users: Vec<&str> = next
                .groups
                .values()
                .filter(|g| uses(&g.config, name))
                .map(|g| g.config.name.as_str())
                .collect();
            if !users.is_empty() {
                users.sort_unstable();
                return Err(Error::config(
                    "name",
                    format!("still {what} of group(s) {}", users.join(", ")),
                )
                .with_instance(name));
            }
        }
        if next.instances.remove(name).is_none() {
            return Err(unknown_instance(name));
        }
        self.swap(next);
        Ok(())
    }

    /// Enables or disables an instance.
    ///
    /// ```
    /// use alertkit::{Config, ErrorKind, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// notifier.set_instance_enabled("ops", false).unwrap();
    /// assert!(!notifier.instances()[0].enabled);
    /// assert_eq!(notifier.set_instance_enabled("nope", true).unwrap_err().kind(), ErrorKind::NotFound);
    /// ```
    pub fn set_instance_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        let old = next
            .instances
            .get(name)
            .ok_or_else(|| unknown_instance(name))?;
        let mut config = old.config.clone();
        config.enabled = enabled;
        let inst = Arc::new(Instance {
            config,
            raw: old.raw.clone(),
            channel: old.channel.clone(),
            updated_at: Utc::now(),
        });
        next.instances.insert(name.to_owned(), inst);
        self.swap(next);
        Ok(())
    }

    /// Adds a group, or replaces the one with the same name.
    ///
    /// ```
    /// use alertkit::{Config, GroupConfig, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// notifier.upsert_group(GroupConfig::new("g", ["ops"])).unwrap();
    /// assert_eq!(notifier.groups()[0].instances, ["ops"]);
    /// assert!(notifier.upsert_group(GroupConfig::new("h", ["missing"])).is_err());
    /// ```
    pub fn upsert_group(&self, config: GroupConfig) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        let g = self.build_group(&next, config, Utc::now())?;
        next.groups.insert(g.config.name.clone(), g);
        self.swap(next);
        Ok(())
    }

    /// Removes a group.
    ///
    /// ```
    /// use alertkit::{Config, ErrorKind, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// notifier.remove_group("g").unwrap();
    /// assert!(notifier.groups().is_empty());
    /// assert_eq!(notifier.remove_group("g").unwrap_err().kind(), ErrorKind::NotFound);
    /// ```
    pub fn remove_group(&self, name: &str) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        if next.groups.remove(name).is_none() {
            return Err(unknown_group(name));
        }
        self.swap(next);
        Ok(())
    }

    /// Enables or disables a group.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// notifier.set_group_enabled("g", false).unwrap();
    /// assert!(!notifier.groups()[0].enabled);
    /// assert!(!notifier.group("g").unwrap().is_enabled());
    /// ```
    pub fn set_group_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        let old = next.groups.get(name).ok_or_else(|| unknown_group(name))?;
        let mut config = old.config.clone();
        config.enabled = enabled;
        let g = Arc::new(Group {
            config,
            updated_at: Utc::now(),
            own: old.own.clone(),
        });
        next.groups.insert(name.to_owned(), g);
        self.swap(next);
        Ok(())
    }

    /// The group as it is now, ready to dispatch (a snapshot: later changes
    /// do not affect it).
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let g = notifier.group("g").unwrap();
    /// assert_eq!(g.members()[0].name(), "ops");
    /// assert!(notifier.group("nope").is_none());
    /// ```
    pub fn group(&self, name: &str) -> Option<AlertGroup> {
        let state = self.snapshot();
        let g = state.groups.get(name)?;
        let mut group = AlertGroup::new(g.config.name.clone())
            .enabled(g.config.enabled)
            .state(self.shared.clone());
        if let Some(t) = g.config.timeout() {
            group = group.timeout(t);
        }
        if let Some(secs) = g.config.repeat_interval_secs {
            group = group.repeat_interval(Duration::from_secs(secs));
        }
        let member = |name: &str| -> Option<Member> {
            // check_group guarantees members exist; a removed one is refused.
            let inst = state.instances.get(name)?;
            let channel = g.own.get(name).unwrap_or(&inst.channel).clone();
            let mut m = Member::new(name, channel).enabled(inst.config.enabled);
            if let Some(ms) = inst.config.timeout_ms {
                m = m.timeout(Duration::from_millis(ms));
            }
            Some(m)
        };
        for name in &g.config.instances {
            let Some(mut m) = member(name) else { continue };
            for fb in g.config.fallbacks.get(name).into_iter().flatten() {
                if let Some(f) = member(fb) {
                    m = m.fallback(f);
                }
            }
            group = group.with(m);
        }
        Some(group)
    }

    /// Dispatches `alert` to the group named `group`.
    ///
    /// After [`shutdown`](Notifier::shutdown) began this fails at once with
    /// [`ErrorKind::ShutDown`](crate::ErrorKind::ShutDown).
    ///
    /// ```
    /// use alertkit::{Alert, Config, ErrorKind, GroupStatus, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let report = notifier.dispatch("g", &Alert::new("disk full")).await.unwrap();
    /// assert_eq!((report.status, report.deliveries.len()), (GroupStatus::Delivered, 1));
    /// let e = notifier.dispatch("nope", &Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::NotFound);
    /// # });
    /// ```
    pub async fn dispatch(&self, group: &str, alert: &Alert) -> Result<DispatchReport> {
        if self.inflight.closed.load(Ordering::SeqCst) {
            return Err(shut_down());
        }
        let g = self.group(group).ok_or_else(|| unknown_group(group))?;
        let fingerprint = alert.fingerprint();
        let mut tracked = self.track(&g, alert, fingerprint.clone());
        let report = g.dispatch_as(alert, fingerprint).await;
        tracked.finished = true;
        drop(tracked);
        self.notify(alert, &report);
        Ok(report)
    }

    pub(crate) fn notify(&self, alert: &Alert, report: &DispatchReport) {
        let hooks = self.hooks.read().unwrap_or_else(|e| e.into_inner()).clone();
        for hook in hooks.iter() {
            hook(alert, report);
        }
    }

    fn track(&self, g: &AlertGroup, alert: &Alert, fingerprint: String) -> Tracked {
        let id = self.inflight.next.fetch_add(1, Ordering::Relaxed);
        let instances = if g.is_enabled() {
            g.members()
                .iter()
                .filter(|m| m.is_enabled())
                .map(|m| m.name().to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let u = Undelivered {
            group: g.name().to_owned(),
            title: alert.title.clone(),
            fingerprint,
            instances,
        };
        self.inflight
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, u);
        Tracked {
            inflight: self.inflight.clone(),
            id,
            finished: false,
        }
    }

    /// Stops taking alerts and finishes what is in flight: dispatches still
    /// running (their retries included) get until `deadline` to finish, and
    /// every rate-limit queue sends its whole backlog at its next free slot
    /// (as digests) instead of spreading it out. Returns the alerts whose
    /// dispatch had not finished by then (empty when everything finished);
    /// their callers still get their reports when the dispatches end or are
    /// dropped. Later dispatches fail with
    /// [`ErrorKind::ShutDown`](crate::ErrorKind::ShutDown).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::{Alert, Config, ErrorKind, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let left = notifier.shutdown(Duration::from_secs(5)).await;
    /// assert!(left.is_empty());
    /// let e = notifier.dispatch("g", &Alert::new("late")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::ShutDown);
    /// # });
    /// ```
    pub async fn shutdown(&self, deadline: Duration) -> Vec<Undelivered> {
        self.inflight.closed.store(true, Ordering::SeqCst);
        self.limiter.flush();
        if let Some(ob) = self.outbox.get() {
            // Entries not finished stay in the store for the next start.
            let busy = ob.close(deadline).await;
            if busy > 0 {
                tracing::warn!(
                    busy,
                    "shutdown deadline passed with outbox deliveries running; their entries stay pending"
                );
            }
        }
        let wait = async {
            loop {
                let idle = self.inflight.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.running().is_empty() {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        let left = self.running();
        if !left.is_empty() {
            tracing::warn!(
                undelivered = left.len(),
                "shutdown deadline passed with dispatches still running"
            );
        }
        left
    }

    /// Attaches a durable outbox and starts its worker on the current Tokio
    /// runtime: entries left in `store` by an earlier run (a crash, a
    /// restart, another replica that died) are delivered first, then those
    /// [`enqueue`](Notifier::enqueue) adds. The worker stops with
    /// [`shutdown`](Notifier::shutdown) or when the last `Arc` of the
    /// notifier is dropped. Once per notifier. See [`crate::outbox`].
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = std::env::temp_dir().join(format!("alertkit-doc-start-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
    /// let again = notifier.start_outbox(Arc::new(Journal::open(dir.join("b")).unwrap()), OutboxOptions::default());
    /// assert!(again.is_err()); // once per notifier
    /// notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub fn start_outbox(
        self: &Arc<Self>,
        store: Arc<dyn OutboxStore>,
        options: OutboxOptions,
    ) -> Result<()> {
        if self.outbox.get().is_some() {
            return Err(Error::new(
                crate::ErrorKind::InvalidConfig,
                "this notifier already has an outbox",
            )
            .with_retryable(false));
        }
        let ob = Outbox::start(Arc::downgrade(self), store, options)?;
        self.outbox.set(ob).map_err(|_| {
            Error::new(
                crate::ErrorKind::InvalidConfig,
                "this notifier already has an outbox",
            )
            .with_retryable(false)
        })
    }

    fn outbox(&self) -> Result<&Arc<Outbox>> {
        self.outbox.get().ok_or_else(|| {
            Error::new(
                crate::ErrorKind::InvalidConfig,
                "no outbox: call Notifier::start_outbox first",
            )
            .with_retryable(false)
        })
    }

    /// Accepts `alert` for durable delivery to `group`: when this returns
    /// `Ok`, the alert is in the outbox's store (flushed to disk, or
    /// acknowledged by Redis), and the worker delivers it in the background
    /// with the same retries, rate limits, digests and dedup as
    /// [`dispatch`](Notifier::dispatch), surviving a crash or restart (see
    /// README, "Delivery guarantees"). Reports go to the
    /// [`on_dispatch`](Notifier::on_dispatch) hooks, one per attempt.
    ///
    /// Fails, and the alert is not accepted, if the group does not exist
    /// ([`NotFound`](crate::ErrorKind::NotFound)), the store is full or
    /// cannot be written ([`Storage`](crate::ErrorKind::Storage)), there is
    /// no outbox, or the notifier is shut down. When the group's
    /// `repeat_interval` suppresses the alert, nothing is stored and the
    /// ticket says so.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, ErrorKind, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-enqueue-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
    /// let ticket = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// assert_eq!((ticket.group.as_str(), ticket.id.len()), ("g", 32));
    /// let e = notifier.enqueue("nope", &Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::NotFound); // not accepted
    /// notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub async fn enqueue(&self, group: &str, alert: &Alert) -> Result<Ticket> {
        let span =
            tracing::info_span!("alertkit.outbox.enqueue", group, id = tracing::field::Empty);
        self.enqueue_inner(group, alert, &span)
            .instrument(span.clone())
            .await
    }

    async fn enqueue_inner(
        &self,
        group: &str,
        alert: &Alert,
        span: &tracing::Span,
    ) -> Result<Ticket> {
        if self.inflight.closed.load(Ordering::SeqCst) {
            return Err(shut_down());
        }
        let ob = self.outbox()?;
        let g = self.group(group).ok_or_else(|| unknown_group(group))?;
        let now = Utc::now();
        let mut entry = Entry::new_at(group, alert.clone(), now);
        span.record("id", entry.id.as_str());
        // The group's repeat-interval check, as `dispatch` makes it; the
        // claim stays with the entry until it is delivered or dies.
        match g.claim_repeat(alert, &alert.fingerprint()).await {
            Repeat::Send(hold) => entry.hold = hold,
            Repeat::Suppressed(note) => {
                return Ok(Ticket {
                    id: entry.id,
                    group: group.to_owned(),
                    accepted_at: now,
                    suppressed: Some(note),
                });
            }
        }
        if let Err(e) = ob.store.append(&entry).await {
            if let Some(h) = &entry.hold {
                g.release_repeat(h).await;
            }
            tracing::error!(error = %e, group, "outbox: enqueue failed; the alert was not accepted");
            return Err(e);
        }
        #[cfg(feature = "metrics")]
        metrics::counter!("alertkit_outbox_enqueued_total").increment(1);
        tracing::debug!(id = %entry.id, group, "outbox: enqueued");
        ob.wake();
        Ok(Ticket {
            id: entry.id,
            group: group.to_owned(),
            accepted_at: now,
            suppressed: None,
        })
    }

    /// Hands back a dedup claim made at enqueue time (the entry died), in
    /// the state every group of this notifier keeps its records in.
    pub(crate) async fn release_hold(&self, h: &Hold) {
        h.release(&*self.shared).await;
    }

    /// The outbox's entries not yet finished, oldest first (at most 10,000):
    /// for an admin page. Each shows its members' progress.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-pending-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "slow", "type": "recording", "params": {"delay_ms": 5000}}],
    ///                                    "groups": [{"name": "g", "instances": ["slow"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
    /// let ticket = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// let pending = notifier.pending().await.unwrap();
    /// assert_eq!((pending.len(), pending[0].id.as_str()), (1, ticket.id.as_str()));
    /// notifier.shutdown(Duration::from_millis(10)).await; // it stays pending for the next start
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub async fn pending(&self) -> Result<Vec<Entry>> {
        self.outbox()?.store.pending(10_000).await
    }

    /// The outbox's dead letters (entries that failed for good or ran out
    /// of attempts or age), oldest first (at most 10,000).
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-dead-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "broken", "type": "recording", "params": {"fail": true}}],
    ///                                    "groups": [{"name": "g", "instances": ["broken"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default().max_attempts(1)).unwrap();
    /// let ticket = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
    /// let dead = notifier.dead_letters().await.unwrap();
    /// assert_eq!(dead[0].id, ticket.id);
    /// assert!(dead[0].dead_reason.is_some());
    /// # notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub async fn dead_letters(&self) -> Result<Vec<Entry>> {
        self.outbox()?.store.dead_letters(10_000).await
    }

    /// Puts a dead letter back in the outbox: its members that failed are
    /// tried again (those delivered are not). `false` if there is no dead
    /// letter with this id.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-retry-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "broken", "type": "recording", "params": {"fail": true}}],
    ///                                    "groups": [{"name": "g", "instances": ["broken"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default().max_attempts(1)).unwrap();
    /// let ticket = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
    /// assert!(notifier.retry_dead_letter(&ticket.id).await.unwrap()); // back in the outbox
    /// assert!(!notifier.retry_dead_letter("no-such-id").await.unwrap());
    /// # notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub async fn retry_dead_letter(&self, id: &str) -> Result<bool> {
        self.outbox()?.revive(id).await
    }

    /// Deletes a dead letter. `false` if there is none with this id.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-drop-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "broken", "type": "recording", "params": {"fail": true}}],
    ///                                    "groups": [{"name": "g", "instances": ["broken"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default().max_attempts(1)).unwrap();
    /// let ticket = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
    /// assert!(notifier.drop_dead_letter(&ticket.id).await.unwrap());
    /// assert!(!notifier.drop_dead_letter(&ticket.id).await.unwrap()); // already gone
    /// assert!(notifier.dead_letters().await.unwrap().is_empty());
    /// # notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub async fn drop_dead_letter(&self, id: &str) -> Result<bool> {
        self.outbox()?.store.purge(id).await
    }

    /// Whether [`shutdown`](Notifier::shutdown) was called.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::{Http, Notifier, Registry};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let notifier = Notifier::new(Registry::default(), Http::new());
    /// assert!(!notifier.is_shut_down());
    /// notifier.shutdown(Duration::from_secs(1)).await;
    /// assert!(notifier.is_shut_down());
    /// # });
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.inflight.closed.load(Ordering::SeqCst)
    }

    fn running(&self) -> Vec<Undelivered> {
        let running = self
            .inflight
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<&u64> = running.keys().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| running.get(id).cloned())
            .collect()
    }

    /// Sends [`Alert::sample`] to one instance, enabled or not, and returns
    /// its delivery: the "test" button of an admin UI. Same as
    /// [`test_send_with`](Notifier::test_send_with) with the default options
    /// (one attempt, no rate-limit queue, 10 s).
    ///
    /// ```
    /// use alertkit::{Config, ErrorKind, Http, Notifier, Outcome};
    /// use alertkit::testkit::recording_registry;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording", "enabled": false}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// assert_eq!(notifier.test_send("ops").await.unwrap().outcome, Outcome::Delivered); // disabled or not
    /// assert_eq!(notifier.test_send("nope").await.unwrap_err().kind(), ErrorKind::NotFound);
    /// # });
    /// ```
    pub async fn test_send(&self, instance: &str) -> Result<Delivery> {
        self.test_send_with(instance, TestSendOptions::default())
            .await
    }

    /// Sends [`Alert::sample`] to one instance, enabled or not, as `options`
    /// say, and returns its delivery. The report goes to the
    /// [`on_dispatch`](Notifier::on_dispatch) hook like any dispatch's, with
    /// the group name `test:<instance>`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::{Config, Http, Notifier, Outcome, TestSendOptions};
    /// use alertkit::testkit::recording_registry;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let d = notifier
    ///     .test_send_with("ops", TestSendOptions::default().timeout(Duration::from_secs(3)))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(d.outcome, Outcome::Delivered);
    /// # });
    /// ```
    pub async fn test_send_with(
        &self,
        instance: &str,
        options: TestSendOptions,
    ) -> Result<Delivery> {
        let inst = self
            .snapshot()
            .instances
            .get(instance)
            .cloned()
            .ok_or_else(|| unknown_instance(instance))?;
        let channel = match (options.retry, options.rate_limit) {
            (true, true) => inst.channel.clone(),
            // The host's layers stay (a tenant filter, metrics); only the
            // built-in policies are left out.
            (retry, rate_limit) => {
                let mut policy = inst.config.policy.clone();
                if !retry {
                    policy.retry = crate::policy::Toggle::Off;
                }
                if !rate_limit {
                    policy.rate_limit = crate::policy::Toggle::Off;
                }
                self.stack
                    .apply(inst.raw.clone(), &inst.config, &policy, &self.limiter)
            }
        };
        let member = Member::new(instance, channel);
        let alert = Alert::sample();
        let started = Instant::now();
        let result = tokio::time::timeout(options.timeout, member.channel().send(&alert))
            .await
            .map_err(|_| options.timeout);
        let delivery = Delivery::from_result(&member, started.elapsed(), result);
        let report = DispatchReport::new(format!("test:{instance}"), vec![delivery.clone()]).about(
            &alert,
            alert.fingerprint(),
            chrono::Utc::now(),
        );
        self.notify(&alert, &report);
        Ok(delivery)
    }

    /// What `instance` would send for `alert`, without sending.
    ///
    /// ```
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let previews = notifier.preview("ops", &Alert::new("disk full")).unwrap();
    /// assert_eq!(previews[0].target, "memory");
    /// assert!(previews[0].body["text"].as_str().unwrap().contains("disk full"));
    /// ```
    pub fn preview(&self, instance: &str, alert: &Alert) -> Result<Vec<Preview>> {
        let channel = self
            .channel(instance)
            .ok_or_else(|| unknown_instance(instance))?;
        channel
            .preview(alert)
            .map_err(|e| e.with_instance(instance))
    }

    /// The channel of an instance.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// assert_eq!(notifier.channel("ops").unwrap().kind(), "recording");
    /// assert!(notifier.channel("nope").is_none());
    /// ```
    pub fn channel(&self, name: &str) -> Option<Arc<dyn AlertChannel>> {
        self.snapshot()
            .instances
            .get(name)
            .map(|i| i.channel.clone())
    }

    /// The live configuration: every instance and group as they are now
    /// (sorted by name), ready to save and load again.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording",
    ///     "policy": {"retry": {"max_attempts": 2}}}], "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// notifier.set_instance_enabled("ops", false).unwrap();
    /// let saved = serde_json::to_string(&notifier.config()).unwrap();
    /// let loaded = Config::from_json(&saved).unwrap();
    /// assert_eq!(loaded, notifier.config());
    /// assert!(!loaded.instances[0].enabled);
    /// assert_eq!(loaded.instances[0].policy, config.instances[0].policy);
    /// ```
    pub fn config(&self) -> Config {
        let s = self.snapshot();
        let mut instances: Vec<InstanceConfig> =
            s.instances.values().map(|i| i.config.clone()).collect();
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        let mut groups: Vec<GroupConfig> = s.groups.values().map(|g| g.config.clone()).collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Config { instances, groups }
    }

    /// Every instance, sorted by name.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "b", "type": "recording"},
    ///                                                  {"name": "a", "type": "recording"}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let names: Vec<String> = notifier.instances().into_iter().map(|i| i.name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    pub fn instances(&self) -> Vec<InstanceInfo> {
        let mut v: Vec<InstanceInfo> = self
            .snapshot()
            .instances
            .values()
            .map(|i| InstanceInfo {
                name: i.config.name.clone(),
                kind: i.config.kind.clone(),
                enabled: i.config.enabled,
                updated_at: i.updated_at,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every group, sorted by name.
    ///
    /// ```
    /// use alertkit::{Config, Http, Notifier};
    /// use alertkit::testkit::recording_registry;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///     "groups": [{"name": "z", "instances": ["ops"]}, {"name": "a", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    /// let names: Vec<String> = notifier.groups().into_iter().map(|g| g.name).collect();
    /// assert_eq!(names, ["a", "z"]);
    /// ```
    pub fn groups(&self) -> Vec<GroupInfo> {
        let mut v: Vec<GroupInfo> = self
            .snapshot()
            .groups
            .values()
            .map(|g| GroupInfo {
                name: g.config.name.clone(),
                enabled: g.config.enabled,
                instances: g.config.instances.clone(),
                updated_at: g.updated_at,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The shared HTTP plumbing.
    ///
    /// ```
    /// use alertkit::{Http, Notifier, Registry};
    /// let notifier = Notifier::new(Registry::default(), Http::new());
    /// let a = notifier.http().token_cache("dingtalk:app");
    /// let b = notifier.http().token_cache("dingtalk:app");
    /// assert!(std::sync::Arc::ptr_eq(&a, &b)); // one token cache per key, shared by every instance
    /// ```
    pub fn http(&self) -> &Http {
        &self.http
    }
}

fn unknown_instance(name: &str) -> Error {
    Error::new(
        crate::ErrorKind::NotFound,
        format!("no instance named {name:?}"),
    )
    .with_field("name")
    .with_instance(name)
    .with_retryable(false)
}

fn shut_down() -> Error {
    Error::new(
        crate::ErrorKind::ShutDown,
        "the notifier is shut down and takes no more alerts",
    )
    .with_retryable(false)
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let queued = self.limiter.waiting_total();
        if queued > 0 && !self.is_shut_down() {
            tracing::error!(
                queued,
                "notifier dropped without shutdown while alerts waited in rate-limit queues; they are still sent while the runtime runs, but may be lost when it stops (call Notifier::shutdown)"
            );
        }
    }
}

fn unknown_group(name: &str) -> Error {
    Error::new(
        crate::ErrorKind::NotFound,
        format!("no group named {name:?}"),
    )
    .with_field("group")
    .with_retryable(false)
}
