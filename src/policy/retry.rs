//! Retries of retryable errors with exponential backoff and jitter (backon).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::alert::Alert;
use crate::channel::{AlertChannel, Limits, Preview, Receipt};
use crate::error::Result;

/// How [`Retrying`] retries.
///
/// ```
/// use alertkit::policy::RetryPolicy;
/// let p: RetryPolicy = serde_json::from_str(r#"{"max_attempts": 6, "min_delay_ms": 200}"#).unwrap();
/// assert_eq!((p.max_attempts, p.min_delay_ms), (6, 200));
/// assert_eq!(p.max_delay_ms, RetryPolicy::default().max_delay_ms); // left out: the default
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 4; 1 to 20).
    #[serde(deserialize_with = "crate::params::num")]
    pub max_attempts: u32,
    /// First backoff, in milliseconds (default 500; at least 1).
    #[serde(deserialize_with = "crate::params::num")]
    pub min_delay_ms: u64,
    /// Longest backoff, in milliseconds (default 30,000; at least `min_delay_ms`).
    #[serde(deserialize_with = "crate::params::num")]
    pub max_delay_ms: u64,
    /// Never start an attempt later than this after the first, in
    /// milliseconds (default 120,000; at least 1).
    #[serde(deserialize_with = "crate::params::num")]
    pub max_elapsed_ms: u64,
    /// Randomize backoffs so that many senders do not retry in step (default true).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            min_delay_ms: 500,
            max_delay_ms: 30_000,
            max_elapsed_ms: 120_000,
            jitter: true,
        }
    }
}

/// The most attempts a retry policy may make: past this, retries hide a
/// permanent problem and hold the member for minutes.
///
/// ```
/// use alertkit::policy::{MAX_ATTEMPTS, RetryPolicy};
/// let mut p = RetryPolicy::default();
/// p.max_attempts = MAX_ATTEMPTS + 1;
/// assert!(p.validate().is_err());
/// p.max_attempts = MAX_ATTEMPTS;
/// assert!(p.validate().is_ok());
/// ```
pub const MAX_ATTEMPTS: u32 = 20;

impl RetryPolicy {
    /// Refuses settings that cannot work, naming the field.
    ///
    /// ```
    /// use alertkit::policy::RetryPolicy;
    /// let mut p = RetryPolicy::default();
    /// p.max_attempts = 21;
    /// assert_eq!(p.validate().unwrap_err().field(), Some("policy.retry.max_attempts"));
    /// p.max_attempts = 3;
    /// p.max_delay_ms = 10; // below min_delay_ms (500)
    /// assert_eq!(p.validate().unwrap_err().field(), Some("policy.retry.max_delay_ms"));
    /// ```
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field: &str, msg: String| {
            Err(crate::Error::config(format!("policy.retry.{field}"), msg))
        };
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return bad(
                "max_attempts",
                format!("must be 1 to {MAX_ATTEMPTS}, got {}", self.max_attempts),
            );
        }
        if self.min_delay_ms == 0 {
            return bad("min_delay_ms", "must be at least 1".into());
        }
        if self.max_delay_ms < self.min_delay_ms {
            return bad(
                "max_delay_ms",
                format!("must be at least min_delay_ms ({})", self.min_delay_ms),
            );
        }
        if self.max_elapsed_ms == 0 {
            return bad("max_elapsed_ms", "must be at least 1".into());
        }
        Ok(())
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        let mut b = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.min_delay_ms))
            .with_max_delay(Duration::from_millis(self.max_delay_ms))
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

/// Sends through `inner`, retrying retryable errors: exponential backoff with
/// jitter, never shorter than the platform's `Retry-After` or rate-limit
/// window, bounded by attempts and total time. Each attempt calls the inner
/// channel again, so it is rendered and signed afresh (new timestamp).
/// Permanent errors (bad signature, keyword, IP, token, 535, ...) are never
/// retried. The receipt or error carries the number of attempts.
///
/// ```
/// use std::sync::Arc;
/// use alertkit::policy::{RetryPolicy, Retrying};
/// use alertkit::testkit::RecordingChannel;
/// use alertkit::{Alert, AlertChannel, Error, ErrorKind};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut policy = RetryPolicy::default();
/// (policy.max_attempts, policy.min_delay_ms, policy.max_delay_ms) = (3, 1, 5);
/// let flaky = RecordingChannel::new().with_error(|| Error::new(ErrorKind::Timeout, "no answer"));
/// let e = Retrying::new(Arc::new(flaky), policy).send(&Alert::new("disk full")).await.unwrap_err();
/// assert_eq!(e.attempts(), 3); // a timeout is retryable
/// let refused = RecordingChannel::failing(); // a missing keyword is not
/// let e = Retrying::new(Arc::new(refused), policy).send(&Alert::new("disk full")).await.unwrap_err();
/// assert_eq!(e.attempts(), 1);
/// # });
/// ```
#[derive(Debug)]
pub struct Retrying {
    inner: Arc<dyn AlertChannel>,
    policy: RetryPolicy,
}

impl Retrying {
    /// Wraps `inner`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::policy::{RetryPolicy, Retrying};
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::{Alert, AlertChannel};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let retrying = Retrying::new(Arc::new(RecordingChannel::new()), RetryPolicy::default());
    /// let receipt = retrying.send(&Alert::new("disk full")).await.unwrap();
    /// assert_eq!(receipt.attempts, 1);
    /// # });
    /// ```
    pub fn new(inner: Arc<dyn AlertChannel>, policy: RetryPolicy) -> Self {
        Retrying { inner, policy }
    }
}

#[async_trait]
impl AlertChannel for Retrying {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        let started = Instant::now();
        let limit = Duration::from_millis(self.policy.max_elapsed_ms);
        let mut backoff = self.policy.backoff();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let e = match self.inner.send(alert).await {
                Ok(mut r) => {
                    r.attempts = attempt;
                    return Ok(r);
                }
                Err(e) => e,
            };
            if !e.is_retryable() || attempt >= self.policy.max_attempts {
                return Err(e.with_attempts(attempt));
            }
            let Some(next) = backoff.next() else {
                return Err(e.with_attempts(attempt));
            };
            // A server's wait is its word, not ours: saturate, and give up
            // rather than sleep past the policy's time limit.
            let wait = next.max(e.retry_after().unwrap_or_default());
            if started.elapsed().saturating_add(wait) > limit {
                return Err(e.with_attempts(attempt));
            }
            tracing::warn!(
                kind = self.inner.kind(),
                attempt,
                wait_ms = wait.as_millis() as u64,
                error.kind = e.kind().as_str(),
                error.code = e.code().unwrap_or(""),
                "alert send failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        self.inner.preview(alert)
    }
}
