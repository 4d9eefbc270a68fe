//! [`Notifier`]: the live set of instances and groups a host dispatches to.
//!
//! Control planes edit alert instances while jobs run. Every change builds
//! and validates first, then swaps in a new immutable snapshot; a dispatch
//! holds the snapshot it started with, so it finishes with that version
//! while later dispatches see the change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alert::Alert;
use crate::channel::{AlertChannel, Preview};
use crate::config::{Config, GroupConfig, InstanceConfig, Registry, check_group};
use crate::error::{Error, Result};
use crate::group::{AlertGroup, Delivery, DispatchReport, Member};
use crate::http::Http;
use crate::policy::{Limiter, MemoryState, SharedState};

struct Instance {
    config: InstanceConfig,
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
    hook: RwLock<Option<Hook>>,
    state: RwLock<Arc<State>>,
    /// Serializes writers so no change is lost between snapshot and swap.
    write: Mutex<()>,
}

/// Called with every dispatch's alert and report (an audit table, metrics).
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
    pub fn new(registry: Registry, http: Http) -> Self {
        Notifier::with_state(registry, http, Arc::new(MemoryState::new()))
    }

    /// An empty notifier whose rate-limit windows and dedup records live in
    /// `shared` (e.g. Redis, so several processes share one robot's budget).
    pub fn with_state(registry: Registry, http: Http, shared: Arc<dyn SharedState>) -> Self {
        Notifier {
            registry,
            http,
            limiter: Arc::new(Limiter::new(shared.clone())),
            shared,
            hook: RwLock::new(None),
            state: RwLock::new(Arc::new(State::default())),
            write: Mutex::new(()),
        }
    }

    /// Calls `hook` with the alert and report of every dispatch (after it
    /// finished): write an audit row, count metrics, page a human.
    pub fn on_dispatch(&self, hook: impl Fn(&Alert, &DispatchReport) + Send + Sync + 'static) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
    }

    /// The rate limiter every instance's queue lives in.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Builds every instance and group of `config` with the built-in channels.
    pub fn from_config(config: &Config) -> Result<Self> {
        Notifier::from_config_with(config, Registry::default(), Http::new())
    }

    /// Builds every instance and group of `config` with `registry` and `http`.
    /// The first misconfiguration is returned, naming the instance and field;
    /// nothing is sent.
    pub fn from_config_with(config: &Config, registry: Registry, http: Http) -> Result<Self> {
        let n = Notifier::new(registry, http);
        n.apply(config)?;
        Ok(n)
    }

    /// Replaces the whole set with `config`, atomically: on error nothing changes.
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
        let channel = config.policy.apply(raw, &self.limiter);
        Ok(Arc::new(Instance {
            config,
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
                    own.insert(name.clone(), inst.config.policy.apply(ch, &self.limiter));
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
    pub fn remove_instance(&self, name: &str) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        let mut users: Vec<&str> = next
            .groups
            .values()
            .filter(|g| g.config.instances.iter().any(|i| i == name))
            .map(|g| g.config.name.as_str())
            .collect();
        if !users.is_empty() {
            users.sort_unstable();
            return Err(Error::config(
                "name",
                format!("still a member of group(s) {}", users.join(", ")),
            )
            .with_instance(name));
        }
        if next.instances.remove(name).is_none() {
            return Err(unknown_instance(name));
        }
        self.swap(next);
        Ok(())
    }

    /// Enables or disables an instance.
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
            channel: old.channel.clone(),
            updated_at: Utc::now(),
        });
        next.instances.insert(name.to_owned(), inst);
        self.swap(next);
        Ok(())
    }

    /// Adds a group, or replaces the one with the same name.
    pub fn upsert_group(&self, config: GroupConfig) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        let g = self.build_group(&next, config, Utc::now())?;
        next.groups.insert(g.config.name.clone(), g);
        self.swap(next);
        Ok(())
    }

    /// Removes a group.
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
    pub async fn dispatch(&self, group: &str, alert: &Alert) -> Result<DispatchReport> {
        let g = self.group(group).ok_or_else(|| unknown_group(group))?;
        let report = g.dispatch(alert).await;
        let hook = self.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(alert, &report);
        }
        Ok(report)
    }

    /// Sends [`Alert::sample`] to one instance, enabled or not, and returns
    /// its delivery: the "test" button of an admin UI.
    pub async fn test_send(&self, instance: &str) -> Result<Delivery> {
        let channel = self
            .channel(instance)
            .ok_or_else(|| unknown_instance(instance))?;
        let member = Member::new(instance, channel);
        let started = Instant::now();
        let limit = crate::group::DEFAULT_MEMBER_TIMEOUT;
        let result = tokio::time::timeout(limit, member.channel().send(&Alert::sample()))
            .await
            .map_err(|_| limit);
        Ok(Delivery::from_result(&member, started.elapsed(), result))
    }

    /// What `instance` would send for `alert`, without sending.
    pub fn preview(&self, instance: &str, alert: &Alert) -> Result<Vec<Preview>> {
        let channel = self
            .channel(instance)
            .ok_or_else(|| unknown_instance(instance))?;
        channel
            .preview(alert)
            .map_err(|e| e.with_instance(instance))
    }

    /// The channel of an instance.
    pub fn channel(&self, name: &str) -> Option<Arc<dyn AlertChannel>> {
        self.snapshot()
            .instances
            .get(name)
            .map(|i| i.channel.clone())
    }

    /// Every instance, sorted by name.
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
    pub fn http(&self) -> &Http {
        &self.http
    }
}

fn unknown_instance(name: &str) -> Error {
    Error::config("name", format!("no instance named {name:?}")).with_instance(name)
}

fn unknown_group(name: &str) -> Error {
    Error::config("group", format!("no group named {name:?}"))
}
