//! Platform-aware rate limits without loss: a queue per destination that
//! never exceeds the platform's budget and coalesces a backlog into digests.
//!
//! Every alert for a destination (a robot token, a webhook key, an app)
//! goes through one queue, shared by every instance pointing there. A slot
//! of the budget is taken from the [`SharedState`] before each request. While
//! no slot is free, alerts wait; when one frees up and more alerts wait than
//! the window has slots left, the oldest are sent together as one digest
//! message (one line each, sized to the platform's text limit), so every
//! alert reaches the group and the platform never answers with its rate-limit
//! code. Each caller gets the receipt (or error) of the message that carried
//! its alert, with a note when that was a digest.
//!
//! Windows are kept a tenth longer than the platform's own, since the
//! platform counts arrivals and the limiter counts departures.
//!
//! The queue is bounded (`queue_bound`, default 10,000 alerts per
//! destination): past it a send fails at once with a non-retryable
//! [`ErrorKind::RateLimited`] error saying so; nothing is dropped silently.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::state::{SharedState, Slot};
use crate::alert::{Alert, AlertState, Mention, Severity};
use crate::channel::{AlertChannel, DeliveryKey, Limits, Preview, Rate, Receipt};
use crate::error::{Error, ErrorKind, Result};

/// How [`RateLimited`] limits.
///
/// ```
/// use alertkit::policy::RateLimitPolicy;
/// let p: RateLimitPolicy = serde_json::from_str(r#"{"queue_bound": 100, "digest": false}"#).unwrap();
/// assert_eq!((p.queue_bound, p.digest), (100, false));
/// assert!(p.rates.is_none()); // the platform's own rates
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RateLimitPolicy {
    /// Alerts that may wait per destination before sends are refused (default 10,000; at least 1).
    #[serde(deserialize_with = "crate::params::num")]
    pub queue_bound: usize,
    /// Coalesce a backlog into digest messages (default true). Off, alerts
    /// wait for a slot each.
    pub digest: bool,
    /// Override the platform's rates: `[{"count": 20, "per_ms": 60000}]`.
    pub rates: Option<Vec<RateSpec>>,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        RateLimitPolicy {
            queue_bound: 10_000,
            digest: true,
            rates: None,
        }
    }
}

/// A rate in config: `count` per `per_ms` milliseconds.
///
/// ```
/// use alertkit::policy::{RateLimitPolicy, RateSpec};
/// let p: RateLimitPolicy = serde_json::from_str(r#"{"rates": [{"count": 20, "per_ms": 60000}]}"#).unwrap();
/// assert_eq!(p.rates.unwrap(), [RateSpec { count: 20, per_ms: 60_000 }]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    /// Messages per window (at least 1).
    #[serde(deserialize_with = "crate::params::num")]
    pub count: u32,
    /// The window, in milliseconds (at least 1).
    #[serde(deserialize_with = "crate::params::num")]
    pub per_ms: u64,
}

impl RateLimitPolicy {
    /// Refuses settings that cannot work, naming the field.
    ///
    /// ```
    /// use alertkit::policy::RateLimitPolicy;
    /// let p: RateLimitPolicy = serde_json::from_str(r#"{"rates": [{"count": 0, "per_ms": 1000}]}"#).unwrap();
    /// assert_eq!(p.validate().unwrap_err().field(), Some("policy.rate_limit.rates[0]"));
    /// let p: RateLimitPolicy = serde_json::from_str(r#"{"rates": []}"#).unwrap();
    /// assert!(p.validate().is_err()); // an empty list limits nothing
    /// assert!(RateLimitPolicy::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.queue_bound == 0 {
            return Err(Error::config(
                "policy.rate_limit.queue_bound",
                "must be at least 1",
            ));
        }
        for (i, r) in self.rates.iter().flatten().enumerate() {
            if r.count == 0 || r.per_ms == 0 {
                return Err(Error::config(
                    format!("policy.rate_limit.rates[{i}]"),
                    "count and per_ms must be at least 1",
                ));
            }
        }
        if self.rates.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::config(
                "policy.rate_limit.rates",
                "an empty list limits nothing: leave it out for the platform's rates, or set rate_limit = false",
            ));
        }
        Ok(())
    }
}

struct Job {
    alert: Alert,
    channel: Arc<dyn AlertChannel>,
    rates: Vec<Rate>,
    max_text: usize,
    digest: bool,
    /// The delivery's idempotency key: the queue's worker sends in a task
    /// of its own, so the key travels with the job.
    key: Option<DeliveryKey>,
    reply: oneshot::Sender<Result<Receipt>>,
}

struct Queue {
    tx: mpsc::UnboundedSender<Job>,
    waiting: Arc<AtomicUsize>,
}

/// The queues of every destination, and the state their budgets live in.
/// One per [`Notifier`](crate::Notifier); share it to share budgets.
///
/// ```
/// use std::sync::Arc;
/// use alertkit::policy::{Limiter, MemoryState};
/// use alertkit::{Http, Notifier, Registry};
/// let limiter = Arc::new(Limiter::new(Arc::new(MemoryState::new())));
/// assert_eq!(limiter.waiting_total(), 0);
/// let notifier = Notifier::new(Registry::default(), Http::new());
/// assert_eq!(notifier.limiter().waiting_total(), 0); // every notifier has one
/// ```
pub struct Limiter {
    state: Arc<dyn SharedState>,
    queues: Mutex<HashMap<String, Queue>>,
    flushing: Arc<AtomicBool>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.queues.lock().map(|q| q.len()).unwrap_or(0);
        f.debug_struct("Limiter")
            .field("destinations", &n)
            .field("state", &self.state)
            .finish()
    }
}

impl Limiter {
    /// A limiter keeping its windows in `state`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::policy::{Limiter, MemoryState};
    /// let limiter = Limiter::new(Arc::new(MemoryState::new()));
    /// assert_eq!(limiter.waiting("dingtalk:robot-a"), 0);
    /// ```
    pub fn new(state: Arc<dyn SharedState>) -> Self {
        Limiter {
            state,
            queues: Mutex::new(HashMap::new()),
            flushing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Alerts waiting in every destination's queue now.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::policy::{Limiter, MemoryState};
    /// let limiter = Limiter::new(Arc::new(MemoryState::new()));
    /// assert_eq!(limiter.waiting_total(), 0); // e.g. a gauge, or a reason to wait before exit
    /// ```
    pub fn waiting_total(&self) -> usize {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .values()
            .map(|q| q.waiting.load(Ordering::SeqCst))
            .sum()
    }

    /// From now on, every queue sends its whole backlog at its next free
    /// slot (as digests where digests are on) instead of spreading it over
    /// the window: what a host shutting down wants.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::policy::{Limiter, MemoryState};
    /// let limiter = Limiter::new(Arc::new(MemoryState::new()));
    /// limiter.flush(); // Notifier::shutdown does this
    /// assert_eq!(limiter.waiting_total(), 0);
    /// ```
    pub fn flush(&self) {
        self.flushing.store(true, Ordering::SeqCst);
    }

    /// Alerts waiting for `destination` now.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::policy::{Limiter, MemoryState, RateLimitPolicy, RateLimited};
    /// use alertkit::{Alert, AlertChannel, Limits, Rate, Receipt};
    /// #[derive(Debug)]
    /// struct Robot; // one message a minute
    /// #[alertkit::async_trait]
    /// impl AlertChannel for Robot {
    ///     async fn send(&self, _: &Alert) -> alertkit::Result<Receipt> { Ok(Receipt::new()) }
    ///     fn limits(&self) -> Limits { Limits::new("robot-a", vec![Rate::per_minute(1)], 4096) }
    /// }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let limiter = Arc::new(Limiter::new(Arc::new(MemoryState::new())));
    /// let robot = Arc::new(RateLimited::new(Arc::new(Robot), limiter.clone(), RateLimitPolicy::default()));
    /// robot.send(&Alert::new("first")).await.unwrap(); // the minute's slot
    /// let r = robot.clone();
    /// tokio::spawn(async move { r.send(&Alert::new("second")).await });
    /// tokio::time::sleep(Duration::from_millis(100)).await;
    /// assert_eq!((limiter.waiting("robot-a"), limiter.waiting("robot-b")), (1, 0));
    /// # });
    /// ```
    pub fn waiting(&self, destination: &str) -> usize {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .get(destination)
            .map_or(0, |q| q.waiting.load(Ordering::SeqCst))
    }

    fn submit(&self, key: &str, job: Job, bound: usize) -> Result<()> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        // A queue's worker runs on the runtime of the send that created it;
        // when that runtime is gone (a sync host's `block_on`, a test
        // runtime), the worker is too: start a new one on the caller's.
        if queues.get(key).is_some_and(|q| q.tx.is_closed()) {
            queues.remove(key);
        }
        let q = queues.entry(key.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let waiting = Arc::new(AtomicUsize::new(0));
            tokio::spawn(worker(
                key.to_owned(),
                self.state.clone(),
                rx,
                waiting.clone(),
                self.flushing.clone(),
            ));
            Queue { tx, waiting }
        });
        let n = q.waiting.load(Ordering::SeqCst);
        if n >= bound {
            return Err(Error::new(
                ErrorKind::RateLimited,
                format!(
                    "{n} alerts already wait for this destination (queue_bound {bound}); not queued"
                ),
            )
            .with_retryable(false));
        }
        q.waiting.fetch_add(1, Ordering::SeqCst);
        q.tx.send(job).map_err(|_| {
            q.waiting.fetch_sub(1, Ordering::SeqCst);
            Error::new(ErrorKind::Internal, "the rate-limit queue stopped")
        })
    }
}

/// Digest lines are at most this many characters.
const LINE: usize = 150;

fn digest_capacity(max_text: usize) -> usize {
    (max_text.saturating_sub(600) / (LINE * 3 + 8)).max(2)
}

/// One alert listing `alerts`, one line each.
///
/// ```
/// use alertkit::policy::digest;
/// use alertkit::{Alert, Severity};
/// let a = Alert::new("disk full").severity(Severity::Critical);
/// let b = Alert::new("cpu hot");
/// let d = digest(&[&a, &b]);
/// assert_eq!(d.severity, Severity::Critical); // the worst of them
/// assert!(d.body.contains("disk full") && d.body.contains("cpu hot"));
/// ```
pub fn digest(alerts: &[&Alert]) -> Alert {
    let severity = alerts
        .iter()
        .map(|a| a.severity)
        .max()
        .unwrap_or(Severity::Error);
    let all_resolved = alerts.iter().all(|a| a.state == AlertState::Resolved);
    let mut counts: Vec<(Severity, usize)> = Vec::new();
    for a in alerts {
        match counts.iter_mut().find(|(s, _)| *s == a.severity) {
            Some((_, n)) => *n += 1,
            None => counts.push((a.severity, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.0));
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let lines: Vec<String> = alerts
        .iter()
        .map(|a| {
            let tag = if a.state == AlertState::Resolved {
                "RESOLVED".to_owned()
            } else {
                a.severity.as_str().to_uppercase()
            };
            let mut line = format!("- [{tag}] {}", a.title.replace(['\r', '\n'], " "));
            if let Some(c) = a.job.as_ref().and_then(|j| j.cluster.as_ref()) {
                line.push_str(&format!(" ({c})"));
            }
            crate::text::limit_chars(&line, LINE)
        })
        .collect();
    let mut d = Alert::new(format!("{} alerts: {}", alerts.len(), summary.join(", ")))
        .severity(severity)
        .body(lines.join("\n"));
    if all_resolved {
        d = d.resolved();
    }
    for m in alerts.iter().flat_map(|a| a.mentions.iter()) {
        if !d.mentions.contains(m) {
            d.mentions.push(m.clone());
        }
    }
    if d.mentions.contains(&Mention::All) {
        d.mentions.retain(|m| *m == Mention::All);
    }
    d
}

/// The longest a worker sleeps on one `Wait` before asking the state again:
/// a bad entry in a shared store or a clock step there must not freeze a
/// destination until restart.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Whether two jobs go out through the same channel, so one digest message
/// reaches exactly the recipients both alerts were meant for.
fn same_channel(a: &Job, b: &Job) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(&a.channel), Arc::as_ptr(&b.channel))
}

async fn worker(
    key: String,
    state: Arc<dyn SharedState>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    waiting: Arc<AtomicUsize>,
    flushing: Arc<AtomicBool>,
) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(j) => queue.push_back(j),
                None => return,
            }
        }
        while let Ok(j) = rx.try_recv() {
            queue.push_back(j);
        }
        let rates = queue.front().map(|j| j.rates.clone()).unwrap_or_default();
        let slot = loop {
            match state.acquire(&key, &rates).await {
                Ok(Slot::Taken { remaining }) => break Ok(remaining),
                Ok(Slot::Wait(wait)) => {
                    // Keep collecting while waiting: that backlog is what gets coalesced.
                    let sleep = tokio::time::sleep(wait.min(MAX_WAIT));
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            job = rx.recv() => match job {
                                Some(j) => queue.push_back(j),
                                None => { (&mut sleep).await; break }
                            },
                        }
                    }
                }
                Err(e) => break Err(e),
            }
        };
        while let Ok(j) = rx.try_recv() {
            queue.push_back(j);
        }
        let remaining = match slot {
            Ok(r) => r as usize,
            Err(e) => {
                // The shared state failed and was configured to fail closed:
                // fail the waiting alerts (retryable) rather than send past
                // an unknown budget.
                waiting.fetch_sub(queue.len(), Ordering::SeqCst);
                for job in queue.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
                continue;
            }
        };
        let batch = take_batch(&mut queue, remaining, flushing.load(Ordering::SeqCst));
        waiting.fetch_sub(batch.len(), Ordering::SeqCst);
        send_batch(batch).await;
    }
}

/// The next message's alerts: the oldest job, and, when the backlog
/// outgrows the slots left (or the host is flushing), the following jobs of
/// the same channel, up to a digest's capacity. Jobs of other channels
/// sharing this destination's budget keep their place in the queue.
fn take_batch(queue: &mut VecDeque<Job>, remaining: usize, flushing: bool) -> Vec<Job> {
    let Some(first) = queue.pop_front() else {
        return Vec::new();
    };
    let want = if !first.digest || (!flushing && queue.len() <= remaining) {
        1
    } else if flushing {
        digest_capacity(first.max_text)
    } else {
        (queue.len() + 1 - remaining)
            .min(digest_capacity(first.max_text))
            .max(1)
    };
    let mut batch = vec![first];
    let mut i = 0;
    while batch.len() < want && i < queue.len() {
        if same_channel(&batch[0], &queue[i]) {
            if let Some(j) = queue.remove(i) {
                batch.push(j);
            }
        } else {
            i += 1;
        }
    }
    batch
}

async fn send_batch(mut batch: Vec<Job>) {
    if batch.len() == 1 {
        if let Some(job) = batch.pop() {
            let send = job.channel.send(&job.alert);
            let result = match job.key {
                Some(k) => k.scope(send).await,
                None => send.await,
            };
            let _ = job.reply.send(result);
        }
        return;
    }
    let n = batch.len();
    let alerts: Vec<&Alert> = batch.iter().map(|j| &j.alert).collect();
    let d = digest(&alerts);
    // A digest's key is its alerts' keys together: a retry of the same
    // digest is recognised, another combination is not.
    let key =
        batch
            .iter()
            .filter_map(|j| j.key.as_ref())
            .fold(None, |acc: Option<DeliveryKey>, k| {
                Some(match acc {
                    None => k.clone(),
                    Some(mut a) => {
                        a.base = a.base.rotate_left(7) ^ k.base;
                        a
                    }
                })
            });
    let send = batch[0].channel.send(&d);
    let result = match key {
        Some(k) => k.scope(send).await,
        None => send.await,
    };
    tracing::info!(
        alerts = n,
        ok = result.is_ok(),
        "sent a digest to stay within the platform's rate limit"
    );
    for job in batch {
        let r = result.clone().map(|r| {
            r.with_note(format!(
                "sent in a digest of {n} alerts to stay within the platform's rate limit"
            ))
        });
        let _ = job.reply.send(r);
    }
}

/// Sends through the destination's queue; see the module docs.
///
/// ```
/// use std::sync::Arc;
/// use alertkit::policy::{Limiter, MemoryState, RateLimitPolicy, RateLimited};
/// use alertkit::testkit::RecordingChannel;
/// use alertkit::{Alert, AlertChannel};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let limiter = Arc::new(Limiter::new(Arc::new(MemoryState::new())));
/// let ops = Arc::new(RecordingChannel::new());
/// let limited = RateLimited::new(ops.clone(), limiter.clone(), RateLimitPolicy::default());
/// limited.send(&Alert::new("disk full")).await.unwrap();
/// assert_eq!(ops.sent().len(), 1);
/// assert_eq!(limiter.waiting_total(), 0);
/// # });
/// ```
#[derive(Debug)]
pub struct RateLimited {
    inner: Arc<dyn AlertChannel>,
    limiter: Arc<Limiter>,
    policy: RateLimitPolicy,
}

impl RateLimited {
    /// Wraps `inner`; its [`limits`](AlertChannel::limits) (or the policy's
    /// `rates`) set the budget.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::policy::{Limiter, MemoryState, RateLimitPolicy, RateLimited};
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::AlertChannel;
    /// let limiter = Arc::new(Limiter::new(Arc::new(MemoryState::new())));
    /// let limited = RateLimited::new(Arc::new(RecordingChannel::new()), limiter, RateLimitPolicy::default());
    /// assert_eq!(limited.kind(), "recording");
    /// ```
    pub fn new(
        inner: Arc<dyn AlertChannel>,
        limiter: Arc<Limiter>,
        policy: RateLimitPolicy,
    ) -> Self {
        RateLimited {
            inner,
            limiter,
            policy,
        }
    }
}

#[async_trait]
impl AlertChannel for RateLimited {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        let limits = self.limits();
        let (Some(key), false) = (limits.destination, limits.rates.is_empty()) else {
            return self.inner.send(alert).await;
        };
        let (reply, rx) = oneshot::channel();
        // The platform counts arrivals, we count departures: keep each window
        // a tenth longer so latency never pushes a burst over its limit.
        let rates = limits
            .rates
            .iter()
            .map(|r| Rate::new(r.count, r.per + r.per / 10))
            .collect();
        let job = Job {
            alert: alert.clone(),
            channel: self.inner.clone(),
            rates,
            max_text: limits.max_text_bytes.unwrap_or(4096),
            digest: self.policy.digest,
            key: DeliveryKey::current(),
            reply,
        };
        self.limiter.submit(&key, job, self.policy.queue_bound)?;
        rx.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Internal,
                "the rate-limit queue dropped the alert",
            ))
        })
    }

    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn limits(&self) -> Limits {
        let mut l = self.inner.limits();
        if let Some(rates) = &self.policy.rates {
            l.rates = rates
                .iter()
                .map(|r| Rate::new(r.count, Duration::from_millis(r.per_ms)))
                .collect();
            if l.destination.is_none() {
                l.destination = Some(format!(
                    "{}:{:p}",
                    self.inner.kind(),
                    Arc::as_ptr(&self.inner)
                ));
            }
        }
        l
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        self.inner.preview(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_lists_every_alert_once() {
        let a = Alert::new("a FAILED").severity(Severity::Critical);
        let b = Alert::new("b\r\nslow")
            .severity(Severity::Warning)
            .mention(Mention::Mobile("138".into()));
        let c = Alert::new("c").resolved();
        let d = digest(&[&a, &b, &c]);
        assert_eq!(d.title, "3 alerts: 1 critical, 1 error, 1 warning");
        assert_eq!(d.severity, Severity::Critical);
        assert_eq!(
            d.body,
            "- [CRITICAL] a FAILED\n- [WARNING] b  slow\n- [RESOLVED] c"
        );
        assert_eq!(d.mentions, vec![Mention::Mobile("138".into())]);
        assert!(digest_capacity(18_000) >= 30);
        assert!(digest_capacity(3_840) >= 6);
    }
}
