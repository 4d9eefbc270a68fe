//! [`AlertGroup`]: concurrent dispatch to every enabled member, and the
//! [`DispatchReport`] that says what happened on each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use crate::alert::Alert;
use crate::channel::{AlertChannel, DeliveryKey, Preview, Receipt};
use crate::error::{Error, ErrorKind};
use crate::policy::{Claim, MemoryState, SharedState};
use chrono::Utc;

/// Per-member time limit when none is set: long enough for retries and a
/// rate-limit window (DingTalk's is a minute), short enough that a hung
/// platform does not hold a dispatch for ever. Every HTTP request has its
/// own, much shorter, time limit too.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(alertkit::group::DEFAULT_MEMBER_TIMEOUT, Duration::from_secs(300));
/// ```
pub const DEFAULT_MEMBER_TIMEOUT: Duration = Duration::from_secs(300);

/// One instance in a group.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use alertkit::{Alert, AlertGroup, Member, Outcome};
/// use alertkit::testkit::RecordingChannel;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mail = Arc::new(RecordingChannel::new());
/// let ding = Member::new("ops-ding", Arc::new(RecordingChannel::failing()))
///     .timeout(Duration::from_secs(30))
///     .fallback(Member::new("ops-mail", mail.clone()));
/// let report = AlertGroup::new("g").with(ding).dispatch(&Alert::new("disk full")).await;
/// let d = report.delivery("ops-ding").unwrap();
/// assert_eq!((d.outcome, d.via.as_deref()), (Outcome::Delivered, Some("ops-mail")));
/// assert_eq!(mail.sent().len(), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Member {
    name: String,
    enabled: bool,
    timeout: Option<Duration>,
    channel: Arc<dyn AlertChannel>,
    fallbacks: Vec<Member>,
}

impl Member {
    /// An enabled member named `name`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::Member;
    /// use alertkit::testkit::RecordingChannel;
    /// let m = Member::new("ops", Arc::new(RecordingChannel::new()));
    /// assert_eq!(m.name(), "ops");
    /// assert!(m.is_enabled());
    /// ```
    pub fn new(name: impl Into<String>, channel: Arc<dyn AlertChannel>) -> Self {
        Member {
            name: name.into(),
            enabled: true,
            timeout: None,
            channel,
            fallbacks: Vec::new(),
        }
    }

    /// Adds a fallback, tried (after earlier ones) when this member fails
    /// for good: a permanent error, retries spent, or no answer in time.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, AlertGroup, Member};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ding = Member::new("ops-ding", Arc::new(RecordingChannel::failing()))
    ///     .fallback(Member::new("ops-wecom", Arc::new(RecordingChannel::failing())))
    ///     .fallback(Member::new("ops-mail", Arc::new(RecordingChannel::new())));
    /// let report = AlertGroup::new("g").with(ding).dispatch(&Alert::new("disk full")).await;
    /// let d = &report.deliveries[0];
    /// assert_eq!(d.via.as_deref(), Some("ops-mail")); // the last one tried
    /// assert_eq!(d.primary_error.as_ref().unwrap().code(), Some("310000")); // the member's own
    /// # });
    /// ```
    pub fn fallback(mut self, fallback: Member) -> Self {
        self.fallbacks.push(fallback);
        self
    }

    /// Enables or disables the member.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, AlertGroup, Member, Outcome};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let off = Member::new("ops", Arc::new(RecordingChannel::new())).enabled(false);
    /// assert!(!off.is_enabled());
    /// let report = AlertGroup::new("g").with(off).dispatch(&Alert::new("disk full")).await;
    /// assert_eq!(report.deliveries[0].outcome, Outcome::Skipped);
    /// # });
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets this member's own time limit (the group's otherwise).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use alertkit::{Alert, AlertGroup, ErrorKind, Member, Outcome};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let slow = RecordingChannel::new().with_delay(Duration::from_secs(60));
    /// let m = Member::new("slow", Arc::new(slow)).timeout(Duration::from_millis(50));
    /// let report = AlertGroup::new("g").with(m).dispatch(&Alert::new("disk full")).await;
    /// assert_eq!(report.deliveries[0].outcome, Outcome::TimedOut);
    /// assert_eq!(report.deliveries[0].error.as_ref().unwrap().kind(), ErrorKind::Timeout);
    /// # });
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The instance name.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::AlertGroup;
    /// use alertkit::testkit::RecordingChannel;
    /// let group = AlertGroup::new("g")
    ///     .with_member("ops-ding", Arc::new(RecordingChannel::new()))
    ///     .with_member("ops-mail", Arc::new(RecordingChannel::new()));
    /// let names: Vec<&str> = group.members().iter().map(|m| m.name()).collect();
    /// assert_eq!(names, ["ops-ding", "ops-mail"]);
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it receives alerts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::Member;
    /// use alertkit::testkit::RecordingChannel;
    /// let m = Member::new("ops", Arc::new(RecordingChannel::new()));
    /// assert!(m.is_enabled());
    /// assert!(!m.enabled(false).is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The channel.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::Member;
    /// use alertkit::testkit::RecordingChannel;
    /// let m = Member::new("ops", Arc::new(RecordingChannel::new()));
    /// assert_eq!(m.channel().kind(), "recording");
    /// ```
    pub fn channel(&self) -> &Arc<dyn AlertChannel> {
        &self.channel
    }

    /// Sends under the time limit; on a final failure, tries the fallbacks.
    async fn deliver(&self, alert: &Alert, group_limit: Duration, base: u128) -> Delivery {
        let started = Instant::now();
        let limit = self.timeout.unwrap_or(group_limit);
        let key = DeliveryKey {
            base,
            member: self.name.clone(),
        };
        let result = key
            .scope(tokio::time::timeout(limit, self.channel.send(alert)))
            .await
            .map_err(|_| limit);
        let d = Delivery::from_result(self, started.elapsed(), result);
        if d.is_delivered() || !self.fallbacks.iter().any(|f| f.enabled) {
            record_span(&d);
            return d;
        }
        // Boxed: the common path's future (one per member and dispatch)
        // stays small enough for the allocator's fast path.
        Box::pin(self.fall_back(alert, group_limit, started, d, base)).await
    }

    /// Tries the fallbacks in order after the member itself failed.
    async fn fall_back(
        &self,
        alert: &Alert,
        group_limit: Duration,
        started: Instant,
        mut d: Delivery,
        base: u128,
    ) -> Delivery {
        let primary = d.error.take();
        // A disabled fallback is as good as absent.
        for fb in self.fallbacks.iter().filter(|f| f.enabled) {
            let limit = fb.timeout.unwrap_or(group_limit);
            let key = DeliveryKey {
                base,
                member: fb.name.clone(),
            };
            let result = key
                .scope(tokio::time::timeout(limit, fb.channel.send(alert)))
                .await
                .map_err(|_| limit);
            let f = Delivery::from_result(fb, started.elapsed(), result);
            tracing::info!(instance = %self.name, fallback = %fb.name, outcome = f.outcome.as_str(), "fallback tried");
            d.attempts += f.attempts;
            d.elapsed_ms = f.elapsed_ms;
            d.outcome = f.outcome;
            d.receipt = f.receipt;
            d.error = f.error;
            d.via = Some(fb.name.clone());
            if d.is_delivered() {
                break;
            }
        }
        d.primary_error = primary;
        record_span(&d);
        d
    }
}

fn record_span(d: &Delivery) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("instance", d.instance.clone()),
            ("kind", d.kind.clone()),
            ("outcome", d.outcome.as_str().to_owned()),
        ];
        metrics::counter!("alertkit_deliveries_total", &labels).increment(1);
        metrics::counter!("alertkit_attempts_total", &labels[..2]).increment(u64::from(d.attempts));
        metrics::histogram!("alertkit_delivery_seconds", &labels[..2])
            .record(d.elapsed_ms as f64 / 1000.0);
    }
    let span = tracing::Span::current();
    span.record("outcome", d.outcome.as_str());
    span.record("attempts", d.attempts);
    if let Some(e) = &d.error {
        span.record("error.kind", e.kind().as_str());
    }
}

fn default_state() -> Arc<dyn SharedState> {
    static STATE: std::sync::OnceLock<Arc<dyn SharedState>> = std::sync::OnceLock::new();
    STATE.get_or_init(|| Arc::new(MemoryState::new())).clone()
}

/// A named set of channel instances that receive the same alerts.
///
/// ```
/// use std::sync::Arc;
/// use alertkit::{Alert, AlertGroup, GroupStatus, Outcome};
/// use alertkit::testkit::RecordingChannel;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let ops = Arc::new(RecordingChannel::new());
/// let group = AlertGroup::new("flink-prod")
///     .with_member("ops", ops.clone())
///     .with_member("failing", Arc::new(RecordingChannel::failing()));
///
/// let report = group.dispatch(&Alert::new("orders-etl FAILED")).await;
/// assert_eq!(report.status, GroupStatus::Partial);
/// assert_eq!(report.deliveries[0].outcome, Outcome::Delivered);
/// assert_eq!(report.deliveries[1].outcome, Outcome::Failed);
/// assert_eq!(ops.sent().len(), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct AlertGroup {
    name: String,
    enabled: bool,
    timeout: Duration,
    members: Vec<Member>,
    repeat_interval: Option<Duration>,
    state: Option<Arc<dyn SharedState>>,
}

impl AlertGroup {
    /// An empty, enabled group.
    ///
    /// ```
    /// use alertkit::AlertGroup;
    /// let group = AlertGroup::new("flink-prod");
    /// assert_eq!(group.name(), "flink-prod");
    /// assert!(group.is_enabled() && group.members().is_empty());
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        AlertGroup {
            name: name.into(),
            enabled: true,
            timeout: DEFAULT_MEMBER_TIMEOUT,
            members: Vec::new(),
            repeat_interval: None,
            state: None,
        }
    }

    /// Suppresses an alert whose fingerprint and state were delivered less
    /// than `interval` ago (after the last *successful* delivery); a state
    /// change always goes out. Records live in the group's state (see
    /// [`AlertGroup::state`]; in memory by default).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use alertkit::{Alert, AlertGroup, GroupStatus};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ops = Arc::new(RecordingChannel::new());
    /// let group = AlertGroup::new("repeat-example")
    ///     .repeat_interval(Duration::from_secs(600))
    ///     .with_member("ops", ops.clone());
    /// let alert = Alert::new("disk full").label("host", "db-1");
    /// assert_eq!(group.dispatch(&alert).await.status, GroupStatus::Delivered);
    /// assert_eq!(group.dispatch(&alert).await.status, GroupStatus::Suppressed);
    /// // the resolution is a state change: it goes out
    /// assert_eq!(group.dispatch(&alert.clone().resolved()).await.status, GroupStatus::Delivered);
    /// assert_eq!(ops.sent().len(), 2);
    /// # });
    /// ```
    ///
    /// The records live in this group's own memory (shared by its clones),
    /// unless [`state`](Self::state) names a store: two groups built apart
    /// never suppress each other's alerts, whatever their names.
    pub fn repeat_interval(mut self, interval: Duration) -> Self {
        self.repeat_interval = Some(interval);
        self.state
            .get_or_insert_with(|| Arc::new(MemoryState::new()) as Arc<dyn SharedState>);
        self
    }

    /// Where dedup records live (shared between processes with a shared store).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use alertkit::{Alert, AlertGroup, GroupStatus};
    /// use alertkit::policy::MemoryState;
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // two processes' groups over one store (RedisState with the `redis` feature)
    /// let shared = Arc::new(MemoryState::new());
    /// let group = |_| AlertGroup::new("g")
    ///     .repeat_interval(Duration::from_secs(600))
    ///     .state(shared.clone())
    ///     .with_member("ops", Arc::new(RecordingChannel::new()));
    /// let (a, b) = (group(1), group(2));
    /// assert_eq!(a.dispatch(&Alert::new("disk full")).await.status, GroupStatus::Delivered);
    /// assert_eq!(b.dispatch(&Alert::new("disk full")).await.status, GroupStatus::Suppressed);
    /// # });
    /// ```
    pub fn state(mut self, state: Arc<dyn SharedState>) -> Self {
        self.state = Some(state);
        self
    }

    /// Adds an enabled member.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::AlertGroup;
    /// use alertkit::testkit::RecordingChannel;
    /// let group = AlertGroup::new("g").with_member("ops", Arc::new(RecordingChannel::new()));
    /// assert_eq!(group.members()[0].name(), "ops");
    /// assert!(group.members()[0].is_enabled());
    /// ```
    pub fn with_member(self, name: impl Into<String>, channel: Arc<dyn AlertChannel>) -> Self {
        self.with(Member::new(name, channel))
    }

    /// Adds a member.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{AlertGroup, Member};
    /// use alertkit::testkit::RecordingChannel;
    /// let group = AlertGroup::new("g")
    ///     .with(Member::new("ops", Arc::new(RecordingChannel::new())).enabled(false));
    /// assert!(!group.members()[0].is_enabled());
    /// ```
    pub fn with(mut self, member: Member) -> Self {
        self.members.push(member);
        self
    }

    /// Enables or disables the whole group.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, AlertGroup, GroupStatus};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ops = Arc::new(RecordingChannel::new());
    /// let group = AlertGroup::new("g").with_member("ops", ops.clone()).enabled(false);
    /// assert_eq!(group.dispatch(&Alert::new("disk full")).await.status, GroupStatus::Empty);
    /// assert!(ops.sent().is_empty());
    /// # });
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the per-member time limit (default [`DEFAULT_MEMBER_TIMEOUT`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use alertkit::{Alert, AlertGroup, GroupStatus, Outcome};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let group = AlertGroup::new("g")
    ///     .timeout(Duration::from_millis(50))
    ///     .with_member("hung", Arc::new(RecordingChannel::new().with_delay(Duration::from_secs(60))))
    ///     .with_member("ops", Arc::new(RecordingChannel::new()));
    /// let report = group.dispatch(&Alert::new("disk full")).await;
    /// assert_eq!(report.status, GroupStatus::Partial);
    /// assert_eq!(report.deliveries[0].outcome, Outcome::TimedOut);
    /// # });
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The group's name.
    ///
    /// ```
    /// use alertkit::AlertGroup;
    /// assert_eq!(AlertGroup::new("flink-prod").name(), "flink-prod");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the group sends at all.
    ///
    /// ```
    /// use alertkit::AlertGroup;
    /// assert!(AlertGroup::new("g").is_enabled());
    /// assert!(!AlertGroup::new("g").enabled(false).is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The members, in order.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::AlertGroup;
    /// use alertkit::testkit::RecordingChannel;
    /// let group = AlertGroup::new("g")
    ///     .with_member("ops", Arc::new(RecordingChannel::new()))
    ///     .with_member("oncall", Arc::new(RecordingChannel::new()));
    /// assert_eq!(group.members().len(), 2);
    /// assert_eq!(group.members()[1].name(), "oncall");
    /// ```
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// What each enabled member would send for `alert`, in member order,
    /// without sending anything: what an admin UI shows before a test send.
    /// The members share one template context, as in [`dispatch`](Self::dispatch).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::{Alert, AlertGroup};
    ///
    /// let group = AlertGroup::new("ops").with_member("rec", Arc::new(RecordingChannel::new()));
    /// let previews = group.preview(&Alert::new("disk full"));
    /// assert_eq!(previews[0].0, "rec");
    /// assert!(previews[0].1.is_ok());
    /// ```
    pub fn preview(&self, alert: &Alert) -> Vec<(String, crate::Result<Vec<Preview>>)> {
        crate::template::share_context_sync(alert, || {
            self.members
                .iter()
                .filter(|m| self.enabled && m.enabled)
                .map(|m| (m.name.clone(), m.channel.preview(alert)))
                .collect()
        })
    }

    /// Sends `alert` to every enabled member concurrently, each under its time
    /// limit, and reports on each in member order. A member that fails, hangs
    /// or panics never blocks or hides the others (as long as its `send`
    /// awaits rather than blocking the thread). Must run inside a Tokio
    /// runtime; the sends are polled concurrently within this future, so
    /// dropping it cancels them all.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, AlertGroup, GroupStatus};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let group = AlertGroup::new("g").with_member("ops", Arc::new(RecordingChannel::new()));
    /// let alert = Alert::new("disk full");
    /// let report = group.dispatch(&alert).await;
    /// assert_eq!(report.status, GroupStatus::Delivered);
    /// assert_eq!((report.title.as_str(), report.fingerprint.clone()), ("disk full", alert.fingerprint()));
    /// assert!(report.dispatched_at.is_some());
    /// # });
    /// ```
    pub async fn dispatch(&self, alert: &Alert) -> DispatchReport {
        self.dispatch_as(alert, alert.fingerprint()).await
    }

    /// [`dispatch`](Self::dispatch) with the alert's fingerprint already
    /// computed (it is computed once per dispatch).
    pub(crate) async fn dispatch_as(&self, alert: &Alert, fingerprint: String) -> DispatchReport {
        let span = tracing::info_span!(
            "alertkit.dispatch",
            group = %self.name,
            members = self.members.len(),
            status = tracing::field::Empty
        );
        let at = Utc::now();
        let report = self
            .dispatch_checked(alert, &fingerprint)
            .instrument(span.clone())
            .await;
        span.record("status", report.status.as_str());
        report.about(alert, fingerprint, at)
    }

    async fn dispatch_checked(&self, alert: &Alert, fingerprint: &str) -> DispatchReport {
        let hold = match self.claim_repeat(alert, fingerprint).await {
            Repeat::Suppressed(note) => {
                return DispatchReport::suppressed(self.name.clone(), &self.members, note);
            }
            Repeat::Send(hold) => hold,
        };
        let report = self.dispatch_inner(alert, &Progress::fresh()).await;
        // Only successful deliveries start the interval.
        if let Some(hold) = hold
            && !matches!(report.status, GroupStatus::Delivered | GroupStatus::Partial)
        {
            self.release_repeat(&hold).await;
        }
        report
    }

    /// The repeat-interval check of `dispatch` and the outbox's `enqueue`:
    /// one atomic claim, so that of many concurrent identical alerts
    /// exactly one is sent and the others are suppressed, naming the one
    /// in flight. Without an interval, or with the state unreachable (a
    /// duplicate beats a lost alert), the alert is sent with no claim.
    pub(crate) async fn claim_repeat(&self, alert: &Alert, fingerprint: &str) -> Repeat {
        let Some(interval) = self.repeat_interval.filter(|_| self.enabled) else {
            return Repeat::Send(None);
        };
        let state = self.state.clone().unwrap_or_else(default_state);
        let key = format!("dedup:{}:{fingerprint}", self.name);
        let now = Utc::now();
        match state.claim(&key, alert.state.as_str(), now, interval).await {
            Ok(Claim::Granted { previous }) => Repeat::Send(Some(Hold {
                key,
                at: now,
                keep_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
                previous,
            })),
            Ok(Claim::Held { at }) => {
                let age = (now - at).to_std().unwrap_or_default();
                Repeat::Suppressed(format!(
                    "suppressed: the same alert ({}, fingerprint {}) was delivered or is being delivered since {} s ago; repeat_interval is {} s",
                    alert.state.as_str(),
                    fingerprint,
                    age.as_secs(),
                    interval.as_secs()
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "dedup state unavailable; sending");
                Repeat::Send(None)
            }
        }
    }

    /// Hands back a claim whose alert was not delivered (the record it
    /// replaced comes back).
    pub(crate) async fn release_repeat(&self, hold: &Hold) {
        let state = self.state.clone().unwrap_or_else(default_state);
        hold.release(&*state).await;
    }

    pub(crate) async fn dispatch_inner(
        &self,
        alert: &Alert,
        progress: &Progress,
    ) -> DispatchReport {
        // The members' sends run concurrently inside this future rather than
        // as spawned tasks: no task, alert copy or cross-thread wake-up per
        // member, and a member that panics is caught here all the same.
        let mut deliveries: Vec<Option<Delivery>> = vec![None; self.members.len()];
        let mut sends = FuturesUnordered::new();
        for (i, m) in self.members.iter().enumerate() {
            if !self.enabled
                || !m.enabled
                || (!progress.done.is_empty() && progress.done.contains(&m.name))
            {
                deliveries[i] = Some(Delivery::skipped(m));
                continue;
            }
            let span = tracing::info_span!(
                "alertkit.send",
                instance = %m.name,
                kind = %m.channel.kind(),
                outcome = tracing::field::Empty,
                error.kind = tracing::field::Empty,
                attempts = tracing::field::Empty
            );
            let send =
                AssertUnwindSafe(m.deliver(alert, self.timeout, progress.base)).catch_unwind();
            sends.push(async move { (i, send.await) }.instrument(span));
        }
        let collect = async {
            while let Some((i, result)) = sends.next().await {
                match result {
                    Ok(d) => {
                        tracing::debug!(instance = %d.instance, outcome = d.outcome.as_str(), elapsed_ms = d.elapsed_ms, "delivery");
                        if let Some(tx) = &progress.each {
                            // The receiver outlives the dispatch; a closed one only means nobody listens.
                            let _ = tx.send(d.clone());
                        }
                        deliveries[i] = Some(d);
                    }
                    // A panicking channel: its slot stays empty and is reported below.
                    Err(_) => tracing::error!(
                        instance = %self.members[i].name,
                        "alert channel panicked while sending"
                    ),
                }
            }
        };
        // The members render the same alert: its template context is built once.
        crate::template::share_context(alert, collect).await;
        let deliveries: Vec<Delivery> = deliveries
            .into_iter()
            .zip(&self.members)
            .map(|(d, m)| {
                d.unwrap_or_else(|| {
                    Delivery::failed(
                        m,
                        Error::new(ErrorKind::Internal, "the channel panicked while sending"),
                    )
                })
            })
            .collect();
        DispatchReport::new(self.name.clone(), deliveries)
    }
}

/// What [`AlertGroup::claim_repeat`] decided.
pub(crate) enum Repeat {
    /// Send; with the claim to hand back if the alert is not delivered.
    Send(Option<Hold>),
    /// Do not send; the note says why.
    Suppressed(String),
}

/// A repeat-interval claim: kept with an outbox entry (serialized) until
/// the entry is delivered or dies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub(crate) key: String,
    pub(crate) at: chrono::DateTime<Utc>,
    pub(crate) keep_ms: u64,
    pub(crate) previous: Option<(String, chrono::DateTime<Utc>)>,
}

impl Hold {
    /// Hands the claim back in `state` (the record it replaced comes back).
    pub(crate) async fn release(&self, state: &dyn SharedState) {
        let keep = Duration::from_millis(self.keep_ms);
        if let Err(e) = state
            .release(&self.key, self.at, self.previous.clone(), keep)
            .await
        {
            tracing::warn!(error = %e, "cannot release the dedup claim of an undelivered alert");
        }
    }
}

/// How one dispatch runs: the base of its idempotency keys, the members
/// already delivered (an outbox entry's earlier attempts), and where each
/// member's result goes as soon as it is known.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) base: u128,
    pub(crate) done: std::collections::HashSet<String>,
    pub(crate) each: Option<tokio::sync::mpsc::UnboundedSender<Delivery>>,
}

impl Progress {
    /// A one-off dispatch: fresh keys, nothing done yet, no listener.
    pub(crate) fn fresh() -> Self {
        Progress {
            base: DeliveryKey::fresh_base(),
            done: Default::default(),
            each: None,
        }
    }
}

/// What happened to one member.
///
/// ```
/// use std::sync::Arc;
/// use alertkit::{Alert, AlertGroup, Outcome};
/// use alertkit::testkit::RecordingChannel;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let group = AlertGroup::new("g")
///     .with_member("ops", Arc::new(RecordingChannel::new()))
///     .with_member("broken", Arc::new(RecordingChannel::failing()));
/// let report = group.dispatch(&Alert::new("disk full")).await;
/// let outcomes: Vec<Outcome> = report.deliveries.iter().map(|d| d.outcome).collect();
/// assert_eq!(outcomes, [Outcome::Delivered, Outcome::Failed]);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The platform accepted the alert for every recipient.
    Delivered,
    /// Accepted for some recipients, refused for others (see the receipt).
    Partial,
    /// Not delivered; see the error.
    Failed,
    /// Not sent because the member or group is disabled.
    Skipped,
    /// No answer within the time limit; the platform may or may not have it.
    TimedOut,
    /// Not sent: the same alert went out less than the repeat interval ago.
    Suppressed,
}

impl Outcome {
    /// The snake_case name used in reports.
    ///
    /// ```
    /// use alertkit::Outcome;
    /// assert_eq!(Outcome::TimedOut.as_str(), "timed_out");
    /// assert_eq!(serde_json::to_value(Outcome::TimedOut).unwrap(), "timed_out");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::TimedOut => "timed_out",
            Outcome::Suppressed => "suppressed",
        }
    }
}

/// One member's line in a [`DispatchReport`].
///
/// ```
/// use alertkit::{Delivery, Outcome};
/// let d: Delivery = serde_json::from_str(r#"{"instance": "ops", "kind": "dingtalk", "outcome": "delivered",
///     "attempts": 2, "elapsed_ms": 120, "receipt": {"message_id": "m-1"}}"#).unwrap();
/// assert_eq!((d.outcome, d.attempts), (Outcome::Delivered, 2));
/// assert_eq!(d.receipt.unwrap().message_id.as_deref(), Some("m-1"));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// Instance name.
    pub instance: String,
    /// Channel type (`dingtalk`, `email`, ...).
    pub kind: String,
    /// What happened.
    pub outcome: Outcome,
    /// Attempts made (0 when skipped).
    pub attempts: u32,
    /// Wall time spent on it.
    pub elapsed_ms: u64,
    /// What the platform said, when it accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// Why it failed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    /// The fallback instance that was tried last, when the member failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The member's own error, when a fallback was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_error: Option<Error>,
    /// Why it was skipped or suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Delivery {
    fn base(m: &Member, outcome: Outcome) -> Self {
        Delivery {
            instance: m.name.clone(),
            kind: m.channel.kind().to_owned(),
            outcome,
            attempts: 0,
            elapsed_ms: 0,
            receipt: None,
            error: None,
            via: None,
            primary_error: None,
            note: None,
        }
    }

    fn skipped(m: &Member) -> Self {
        Delivery::base(m, Outcome::Skipped)
    }

    fn failed(m: &Member, error: Error) -> Self {
        Delivery {
            error: Some(error.with_instance(m.name.clone())),
            ..Delivery::base(m, Outcome::Failed)
        }
    }

    pub(crate) fn from_result(
        m: &Member,
        elapsed: Duration,
        result: Result<crate::Result<Receipt>, Duration>,
    ) -> Self {
        let mut d = Delivery::base(m, Outcome::Failed);
        d.elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(Ok(receipt)) => {
                d.outcome = if receipt.is_partial() {
                    Outcome::Partial
                } else {
                    Outcome::Delivered
                };
                d.attempts = receipt.attempts.max(1);
                d.receipt = Some(receipt);
            }
            Ok(Err(e)) => {
                d.attempts = e.attempts();
                d.error = Some(e.with_instance(m.name.clone()));
            }
            Err(limit) => {
                d.outcome = Outcome::TimedOut;
                d.attempts = 1;
                d.error = Some(
                    Error::new(
                        ErrorKind::Timeout,
                        format!("no answer within {} ms", limit.as_millis()),
                    )
                    .with_instance(m.name.clone()),
                );
            }
        }
        d
    }

    /// Whether the alert reached at least some of this member's recipients.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, AlertGroup, Outcome, Receipt};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // one recipient refused: a partial delivery still counts as delivered
    /// let rec = RecordingChannel::new().with_receipt(Receipt::new().with_rejected(["13800000000".to_owned()]));
    /// let report = AlertGroup::new("g").with_member("ops", Arc::new(rec)).dispatch(&Alert::new("disk full")).await;
    /// assert_eq!(report.deliveries[0].outcome, Outcome::Partial);
    /// assert!(report.deliveries[0].is_delivered());
    /// # });
    /// ```
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Delivered | Outcome::Partial)
    }
}

/// The group's overall result.
///
/// ```
/// use alertkit::GroupStatus;
/// let status: GroupStatus = serde_json::from_str(r#""partial""#).unwrap();
/// assert_eq!(status, GroupStatus::Partial);
/// assert_eq!(status.as_str(), "partial");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupStatus {
    /// Every enabled member delivered in full.
    Delivered,
    /// Some delivered (or delivered in part), some did not.
    Partial,
    /// No enabled member delivered.
    Failed,
    /// Nothing to send to: the group is disabled or has no enabled member.
    Empty,
    /// Not sent: the same alert went out less than the repeat interval ago.
    Suppressed,
}

impl GroupStatus {
    /// The snake_case name used in reports.
    ///
    /// ```
    /// use alertkit::GroupStatus;
    /// assert_eq!(GroupStatus::Suppressed.as_str(), "suppressed");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Delivered => "delivered",
            GroupStatus::Partial => "partial",
            GroupStatus::Failed => "failed",
            GroupStatus::Empty => "empty",
            GroupStatus::Suppressed => "suppressed",
        }
    }

    /// Exit code convention of `examples/send.rs`: 0 delivered, empty or
    /// suppressed, 1 partial, 2 failed.
    ///
    /// ```
    /// use alertkit::GroupStatus;
    /// assert_eq!(GroupStatus::Delivered.exit_code(), 0);
    /// assert_eq!(GroupStatus::Suppressed.exit_code(), 0);
    /// assert_eq!(GroupStatus::Partial.exit_code(), 1);
    /// assert_eq!(GroupStatus::Failed.exit_code(), 2);
    /// ```
    pub fn exit_code(self) -> i32 {
        match self {
            GroupStatus::Delivered | GroupStatus::Empty | GroupStatus::Suppressed => 0,
            GroupStatus::Partial => 1,
            GroupStatus::Failed => 2,
        }
    }
}

/// What happened on each member of a group for one alert.
///
/// Serializes as `{"group", "status", "deliveries": [...]}`, and reads
/// back from it (a host's audit table):
///
/// ```
/// use alertkit::{DispatchReport, GroupStatus};
/// let json = r#"{"group": "g", "status": "failed", "deliveries": [{"instance": "ops",
///   "kind": "dingtalk", "outcome": "failed", "attempts": 1, "elapsed_ms": 41,
///   "error": {"kind": "keyword_missing", "retryable": false, "code": "310000",
///             "message": "keywords not in content"}}]}"#;
/// let report: DispatchReport = serde_json::from_str(json).unwrap();
/// assert_eq!(report.status, GroupStatus::Failed);
/// assert_eq!(report.deliveries[0].error.as_ref().unwrap().code(), Some("310000"));
/// assert_eq!(serde_json::to_value(&report).unwrap(), serde_json::from_str::<serde_json::Value>(json).unwrap());
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DispatchReport {
    /// The group's name.
    pub group: String,
    /// Overall result.
    pub status: GroupStatus,
    /// The alert's title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// The alert's [fingerprint](Alert::fingerprint) (what dedup keys on).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    /// When the dispatch started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<chrono::DateTime<Utc>>,
    /// One entry per member, in member order.
    pub deliveries: Vec<Delivery>,
}

impl DispatchReport {
    /// Builds a report, computing the overall status from the deliveries.
    ///
    /// ```
    /// use alertkit::{Delivery, DispatchReport, GroupStatus};
    /// let d = |outcome: &str| -> Delivery {
    ///     serde_json::from_value(serde_json::json!({"instance": outcome, "kind": "webhook",
    ///         "outcome": outcome, "attempts": 1, "elapsed_ms": 5})).unwrap()
    /// };
    /// let report = DispatchReport::new("g".into(), vec![d("delivered"), d("skipped")]);
    /// assert_eq!(report.status, GroupStatus::Delivered); // skipped members do not count
    /// let report = DispatchReport::new("g".into(), vec![d("delivered"), d("timed_out")]);
    /// assert_eq!(report.status, GroupStatus::Partial);
    /// assert_eq!(DispatchReport::new("g".into(), vec![]).status, GroupStatus::Empty);
    /// ```
    pub fn new(group: String, deliveries: Vec<Delivery>) -> Self {
        let active: Vec<&Delivery> = deliveries
            .iter()
            .filter(|d| d.outcome != Outcome::Skipped)
            .collect();
        let full = active
            .iter()
            .filter(|d| d.outcome == Outcome::Delivered)
            .count();
        let some = active.iter().filter(|d| d.is_delivered()).count();
        let status = if active.is_empty() {
            GroupStatus::Empty
        } else if active.iter().all(|d| d.outcome == Outcome::Suppressed) {
            // A report read back from deliveries that were all suppressed.
            GroupStatus::Suppressed
        } else if full == active.len() {
            GroupStatus::Delivered
        } else if some > 0 {
            GroupStatus::Partial
        } else {
            GroupStatus::Failed
        };
        DispatchReport {
            group,
            status,
            title: String::new(),
            fingerprint: String::new(),
            dispatched_at: None,
            deliveries,
        }
    }

    /// The report with the alert's title and fingerprint and the time the
    /// dispatch started.
    pub(crate) fn about(
        mut self,
        alert: &Alert,
        fingerprint: String,
        at: chrono::DateTime<Utc>,
    ) -> Self {
        self.title.clone_from(&alert.title);
        self.fingerprint = fingerprint;
        self.dispatched_at = Some(at);
        self
    }

    fn suppressed(group: String, members: &[Member], note: String) -> Self {
        let deliveries = members
            .iter()
            .map(|m| {
                let mut d = Delivery::base(
                    m,
                    if m.enabled {
                        Outcome::Suppressed
                    } else {
                        Outcome::Skipped
                    },
                );
                d.note = Some(note.clone());
                d
            })
            .collect();
        DispatchReport {
            group,
            status: GroupStatus::Suppressed,
            title: String::new(),
            fingerprint: String::new(),
            dispatched_at: None,
            deliveries,
        }
    }

    /// The delivery of the instance named `name`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, AlertGroup, Outcome};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let group = AlertGroup::new("g").with_member("ops", Arc::new(RecordingChannel::failing()));
    /// let report = group.dispatch(&Alert::new("disk full")).await;
    /// assert_eq!(report.delivery("ops").unwrap().outcome, Outcome::Failed);
    /// assert!(report.delivery("nobody").is_none());
    /// # });
    /// ```
    pub fn delivery(&self, name: &str) -> Option<&Delivery> {
        self.deliveries.iter().find(|d| d.instance == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::RecordingChannel;
    use serde_json::json;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hanging_member_times_out_while_others_deliver() {
        let fast = Arc::new(RecordingChannel::new());
        let slow = Arc::new(RecordingChannel::new().with_delay(Duration::from_secs(30)));
        let group = AlertGroup::new("g")
            .timeout(Duration::from_millis(200))
            .with_member("slow", slow.clone())
            .with_member("fast", fast.clone());
        let started = Instant::now();
        let report = group.dispatch(&Alert::new("t")).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "dispatch waited for the hung member"
        );
        assert_eq!(report.deliveries[0].instance, "slow");
        assert_eq!(report.deliveries[0].outcome, Outcome::TimedOut);
        assert_eq!(
            report.deliveries[0].error.as_ref().unwrap().kind(),
            ErrorKind::Timeout
        );
        assert_eq!(report.deliveries[1].outcome, Outcome::Delivered);
        assert!(report.deliveries[1].elapsed_ms < 200);
        assert_eq!(report.status, GroupStatus::Partial);
        assert_eq!(fast.sent().len(), 1);
    }

    #[tokio::test]
    async fn members_run_concurrently() {
        let mut group = AlertGroup::new("g");
        for i in 0..5 {
            group = group.with_member(
                format!("m{i}"),
                Arc::new(RecordingChannel::new().with_delay(Duration::from_millis(300))),
            );
        }
        let started = Instant::now();
        let report = group.dispatch(&Alert::new("t")).await;
        assert_eq!(report.status, GroupStatus::Delivered);
        // Five 300 ms members in sequence would take 1.5 s.
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "{:?}",
            started.elapsed()
        );
    }

    #[derive(Debug)]
    struct Panicker;
    #[async_trait::async_trait]
    impl AlertChannel for Panicker {
        async fn send(&self, _: &Alert) -> crate::Result<Receipt> {
            panic!("boom")
        }
    }

    #[tokio::test]
    async fn panicking_member_is_reported_not_propagated() {
        let ok = Arc::new(RecordingChannel::new());
        let report = AlertGroup::new("g")
            .with_member("bad", Arc::new(Panicker))
            .with_member("ok", ok.clone())
            .dispatch(&Alert::new("t"))
            .await;
        assert_eq!(report.deliveries[0].outcome, Outcome::Failed);
        assert_eq!(
            report.deliveries[0].error.as_ref().unwrap().kind(),
            ErrorKind::Internal
        );
        assert_eq!(report.deliveries[1].outcome, Outcome::Delivered);
        assert_eq!(report.status, GroupStatus::Partial);
    }

    #[tokio::test]
    async fn disabled_members_and_groups_are_skipped() {
        let a = Arc::new(RecordingChannel::new());
        let b = Arc::new(RecordingChannel::new());
        let group = AlertGroup::new("g")
            .with(Member::new("a", a.clone()).enabled(false))
            .with_member("b", b.clone());
        let report = group.dispatch(&Alert::new("t")).await;
        assert_eq!(report.deliveries[0].outcome, Outcome::Skipped);
        assert_eq!(report.deliveries[0].attempts, 0);
        assert_eq!(report.status, GroupStatus::Delivered);
        assert!(a.sent().is_empty());

        let report = group
            .clone()
            .enabled(false)
            .dispatch(&Alert::new("t"))
            .await;
        assert_eq!(report.status, GroupStatus::Empty);
        assert!(
            report
                .deliveries
                .iter()
                .all(|d| d.outcome == Outcome::Skipped)
        );
        assert_eq!(b.sent().len(), 1);
    }

    #[tokio::test]
    async fn report_serializes_with_contract_names() {
        let group = AlertGroup::new("flink-prod")
            .with_member("ok", Arc::new(RecordingChannel::new()))
            .with_member(
                "partial",
                Arc::new(
                    RecordingChannel::new()
                        .with_receipt(Receipt::new().with_rejected(["u9".to_string()])),
                ),
            )
            .with_member("bad", Arc::new(RecordingChannel::failing()))
            .with(Member::new("off", Arc::new(RecordingChannel::new())).enabled(false));
        let report = group.dispatch(&Alert::new("t")).await;
        let mut v = serde_json::to_value(&report).unwrap();
        for d in v["deliveries"].as_array_mut().unwrap() {
            assert!(d["elapsed_ms"].is_u64());
            d["elapsed_ms"] = json!(0);
        }
        assert!(v["dispatched_at"].is_string(), "{v}");
        v["dispatched_at"] = json!("t0");
        assert_eq!(
            v,
            json!({"group": "flink-prod", "status": "partial", "title": "t",
                   "fingerprint": Alert::new("t").fingerprint(), "dispatched_at": "t0", "deliveries": [
                {"instance": "ok", "kind": "recording", "outcome": "delivered", "attempts": 1, "elapsed_ms": 0, "receipt": {}},
                {"instance": "partial", "kind": "recording", "outcome": "partial", "attempts": 1, "elapsed_ms": 0,
                 "receipt": {"rejected_recipients": ["u9"]}},
                {"instance": "bad", "kind": "recording", "outcome": "failed", "attempts": 1, "elapsed_ms": 0,
                 "error": {"kind": "keyword_missing", "retryable": false, "code": "310000", "message": "keywords not in content",
                           "instance": "bad"}},
                {"instance": "off", "kind": "recording", "outcome": "skipped", "attempts": 0, "elapsed_ms": 0}
            ]})
        );
    }

    #[test]
    fn status_rules() {
        let m = Member::new("x", Arc::new(RecordingChannel::new()));
        let ok = || Delivery::from_result(&m, Duration::ZERO, Ok(Ok(Receipt::new())));
        let bad = || Delivery::failed(&m, Error::new(ErrorKind::Transport, "x"));
        let st = |d: Vec<Delivery>| DispatchReport::new("g".into(), d).status;
        assert_eq!(st(vec![]), GroupStatus::Empty);
        assert_eq!(st(vec![Delivery::skipped(&m)]), GroupStatus::Empty);
        assert_eq!(
            st(vec![ok(), Delivery::skipped(&m)]),
            GroupStatus::Delivered
        );
        assert_eq!(st(vec![ok(), bad()]), GroupStatus::Partial);
        assert_eq!(st(vec![bad(), bad()]), GroupStatus::Failed);
        assert_eq!(GroupStatus::Failed.exit_code(), 2);
    }
}
