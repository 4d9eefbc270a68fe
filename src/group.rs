//! [`AlertGroup`]: concurrent dispatch to every enabled member, and the
//! [`DispatchReport`] that says what happened on each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::alert::Alert;
use crate::channel::{AlertChannel, Receipt};
use crate::error::{Error, ErrorKind};

/// Per-member time limit when none is set: long enough for a token fetch, a
/// send and a slow SMTP relay, short enough that a hung platform does not
/// hold up an alert storm.
pub const DEFAULT_MEMBER_TIMEOUT: Duration = Duration::from_secs(30);

/// One instance in a group.
#[derive(Debug, Clone)]
pub struct Member {
    name: String,
    enabled: bool,
    timeout: Option<Duration>,
    channel: Arc<dyn AlertChannel>,
}

impl Member {
    /// An enabled member named `name`.
    pub fn new(name: impl Into<String>, channel: Arc<dyn AlertChannel>) -> Self {
        Member {
            name: name.into(),
            enabled: true,
            timeout: None,
            channel,
        }
    }

    /// Enables or disables the member.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets this member's own time limit (the group's otherwise).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it receives alerts.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The channel.
    pub fn channel(&self) -> &Arc<dyn AlertChannel> {
        &self.channel
    }
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
}

impl AlertGroup {
    /// An empty, enabled group.
    pub fn new(name: impl Into<String>) -> Self {
        AlertGroup {
            name: name.into(),
            enabled: true,
            timeout: DEFAULT_MEMBER_TIMEOUT,
            members: Vec::new(),
        }
    }

    /// Adds an enabled member.
    pub fn with_member(self, name: impl Into<String>, channel: Arc<dyn AlertChannel>) -> Self {
        self.with(Member::new(name, channel))
    }

    /// Adds a member.
    pub fn with(mut self, member: Member) -> Self {
        self.members.push(member);
        self
    }

    /// Enables or disables the whole group.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the per-member time limit (default [`DEFAULT_MEMBER_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the group sends at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The members, in order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Sends `alert` to every enabled member concurrently, each under its time
    /// limit, and reports on each in member order. A member that fails, hangs
    /// or panics never blocks or hides the others. Must run inside a Tokio
    /// runtime; each member's send is a task of its own.
    pub async fn dispatch(&self, alert: &Alert) -> DispatchReport {
        let span = tracing::info_span!("alertkit.dispatch", group = %self.name, members = self.members.len());
        self.dispatch_inner(alert).instrument(span).await
    }

    async fn dispatch_inner(&self, alert: &Alert) -> DispatchReport {
        let mut deliveries: Vec<Option<Delivery>> = vec![None; self.members.len()];
        let mut tasks = JoinSet::new();
        let shared = Arc::new(alert.clone());
        for (i, m) in self.members.iter().enumerate() {
            if !self.enabled || !m.enabled {
                deliveries[i] = Some(Delivery::skipped(m));
                continue;
            }
            let channel = m.channel.clone();
            let alert = shared.clone();
            let limit = m.timeout.unwrap_or(self.timeout);
            let span =
                tracing::info_span!("alertkit.send", instance = %m.name, kind = %m.channel.kind());
            tasks.spawn(
                async move {
                    let started = Instant::now();
                    let result = tokio::time::timeout(limit, channel.send(&alert)).await;
                    (i, started.elapsed(), result.map_err(|_| limit))
                }
                .instrument(span),
            );
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, elapsed, result)) => {
                    let d = Delivery::from_result(&self.members[i], elapsed, result);
                    tracing::debug!(instance = %d.instance, outcome = d.outcome.as_str(), elapsed_ms = d.elapsed_ms, "delivery");
                    deliveries[i] = Some(d);
                }
                // A panicking channel: its slot stays empty and is reported below.
                Err(e) => tracing::error!(error = %e, "alert channel task failed"),
            }
        }
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

/// What happened to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
}

impl Outcome {
    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::TimedOut => "timed_out",
        }
    }
}

/// One member's line in a [`DispatchReport`].
#[derive(Debug, Clone, Serialize)]
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
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Delivered | Outcome::Partial)
    }
}

/// The group's overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
}

impl GroupStatus {
    /// Exit code convention of `examples/send.rs`: 0 delivered or empty,
    /// 1 partial, 2 failed.
    pub fn exit_code(self) -> i32 {
        match self {
            GroupStatus::Delivered | GroupStatus::Empty => 0,
            GroupStatus::Partial => 1,
            GroupStatus::Failed => 2,
        }
    }
}

/// What happened on each member of a group for one alert.
///
/// Serializes as `{"group", "status", "deliveries": [...]}`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DispatchReport {
    /// The group's name.
    pub group: String,
    /// Overall result.
    pub status: GroupStatus,
    /// One entry per member, in member order.
    pub deliveries: Vec<Delivery>,
}

impl DispatchReport {
    /// Builds a report, computing the overall status from the deliveries.
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
            deliveries,
        }
    }

    /// The delivery of the instance named `name`.
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
        assert_eq!(
            v,
            json!({"group": "flink-prod", "status": "partial", "deliveries": [
                {"instance": "ok", "kind": "recording", "outcome": "delivered", "attempts": 1, "elapsed_ms": 0, "receipt": {}},
                {"instance": "partial", "kind": "recording", "outcome": "partial", "attempts": 1, "elapsed_ms": 0,
                 "receipt": {"rejected_recipients": ["u9"]}},
                {"instance": "bad", "kind": "recording", "outcome": "failed", "attempts": 1, "elapsed_ms": 0,
                 "error": {"kind": "platform", "retryable": false, "code": "310000", "message": "keywords not in content"}},
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
