//! Delivery guarantees, as wrappers that implement [`AlertChannel`]:
//! [`Retrying`] (backoff with jitter, `Retry-After` honoured) over
//! [`RateLimited`] (the platform's budget per destination, queued and
//! coalesced into digests, never exceeded). Both are on by default for every
//! instance a [`Notifier`](crate::Notifier) builds, with the platform's own
//! limits; an instance turns them off or tunes them with its `policy`:
//!
//! ```json
//! {"name": "ops-ding", "type": "dingtalk", "params": {"...": "..."},
//!  "policy": {"retry": {"max_attempts": 6}, "rate_limit": false}}
//! ```
//!
//! Group-level policies (repeat interval, failover) are options of
//! [`GroupConfig`](crate::GroupConfig) and [`AlertGroup`](crate::AlertGroup).
//! Rate-limit windows and dedup records live in a [`SharedState`]: in
//! memory by default, or shared by several processes (Redis, feature `redis`).

mod layer;
mod rate_limit;
#[cfg(feature = "redis")]
pub(crate) mod redis_state;
mod retry;
mod state;

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use layer::{Layer, Stack};
pub use rate_limit::{Limiter, RateLimitPolicy, RateLimited, RateSpec, digest};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_state::RedisState;
pub use retry::{MAX_ATTEMPTS, RetryPolicy, Retrying};
pub use state::{Claim, MemoryState, SharedState, Slot};

use crate::channel::AlertChannel;

/// A policy that is on (with settings) or off. In config: `false`, `true`
/// (defaults) or an object of settings.
///
/// ```
/// use alertkit::policy::{PolicyConfig, RetryPolicy, Toggle};
/// let p: PolicyConfig = serde_json::from_str(r#"{"retry": true, "rate_limit": false}"#).unwrap();
/// assert_eq!(p.retry, Toggle::On(RetryPolicy::default()));
/// assert_eq!(p.rate_limit, Toggle::Off);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toggle<T> {
    /// Off.
    Off,
    /// On, with these settings.
    On(T),
}

impl<T: Default> Default for Toggle<T> {
    fn default() -> Self {
        Toggle::On(T::default())
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<T> {
            Flag(bool),
            Settings(T),
        }
        Ok(match Repr::<T>::deserialize(d)? {
            Repr::Flag(false) => Toggle::Off,
            Repr::Flag(true) => Toggle::On(T::default()),
            Repr::Settings(t) => Toggle::On(t),
        })
    }
}

/// Written back as read: `false`, `true` for the defaults, or the settings,
/// so a config saved from [`Notifier`](crate::Notifier) loads the same.
///
/// ```
/// use alertkit::policy::PolicyConfig;
/// let p: PolicyConfig = serde_json::from_str(r#"{"retry": {"max_attempts": 2, "min_delay_ms": 100}, "rate_limit": false}"#).unwrap();
/// let back: PolicyConfig = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
/// assert_eq!(back, p);
/// ```
impl<T: Serialize + Default + PartialEq> Serialize for Toggle<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Toggle::Off => s.serialize_bool(false),
            Toggle::On(t) if *t == T::default() => s.serialize_bool(true),
            Toggle::On(t) => t.serialize(s),
        }
    }
}

/// The policies of one instance.
///
/// ```
/// use alertkit::policy::{PolicyConfig, Toggle};
/// let p: PolicyConfig = serde_json::from_str(r#"{"retry": {"max_attempts": 6}}"#).unwrap();
/// let Toggle::On(retry) = &p.retry else { panic!("retry is on") };
/// assert_eq!(retry.max_attempts, 6);
/// assert_eq!(p.rate_limit, PolicyConfig::default().rate_limit); // left out: the default
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Retries of retryable errors (on by default).
    pub retry: Toggle<RetryPolicy>,
    /// The platform's rate limit, queued and coalesced (on by default).
    pub rate_limit: Toggle<RateLimitPolicy>,
}

impl PolicyConfig {
    /// Both policies off: the channel as it is.
    ///
    /// ```
    /// use alertkit::policy::{PolicyConfig, Toggle};
    /// let p = PolicyConfig::off();
    /// assert_eq!(p.retry, Toggle::Off);
    /// assert_eq!(p.rate_limit, Toggle::Off);
    /// assert!(!p.is_default());
    /// ```
    pub fn off() -> Self {
        PolicyConfig {
            retry: Toggle::Off,
            rate_limit: Toggle::Off,
        }
    }

    /// Refuses settings that cannot work, naming the field.
    ///
    /// ```
    /// use alertkit::policy::PolicyConfig;
    /// let p: PolicyConfig = serde_json::from_str(r#"{"retry": {"max_attempts": 0}}"#).unwrap();
    /// assert_eq!(p.validate().unwrap_err().field(), Some("policy.retry.max_attempts"));
    /// assert!(PolicyConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> crate::Result<()> {
        if let Toggle::On(r) = &self.retry {
            r.validate()?;
        }
        if let Toggle::On(r) = &self.rate_limit {
            r.validate()?;
        }
        Ok(())
    }

    /// Whether both are at their defaults (for skipping in serialization).
    ///
    /// ```
    /// use alertkit::policy::PolicyConfig;
    /// assert!(PolicyConfig::default().is_default());
    /// let p: PolicyConfig = serde_json::from_str(r#"{"rate_limit": false}"#).unwrap();
    /// assert!(!p.is_default());
    /// ```
    pub fn is_default(&self) -> bool {
        *self == PolicyConfig::default()
    }

    /// `channel` wrapped as configured: retry outside the rate limit, so that
    /// every attempt also waits for its slot.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::AlertChannel;
    /// use alertkit::policy::{Limiter, MemoryState, PolicyConfig};
    /// use alertkit::testkit::RecordingChannel;
    /// let limiter = Arc::new(Limiter::new(Arc::new(MemoryState::new())));
    /// let raw: Arc<dyn AlertChannel> = Arc::new(RecordingChannel::new());
    /// assert!(Arc::ptr_eq(&PolicyConfig::off().apply(raw.clone(), &limiter), &raw)); // nothing added
    /// let wrapped = PolicyConfig::default().apply(raw.clone(), &limiter);
    /// assert!(!Arc::ptr_eq(&wrapped, &raw));
    /// assert_eq!(wrapped.kind(), "recording");
    /// ```
    pub fn apply(
        &self,
        channel: Arc<dyn AlertChannel>,
        limiter: &Arc<Limiter>,
    ) -> Arc<dyn AlertChannel> {
        let mut c = channel;
        if let Toggle::On(p) = &self.rate_limit {
            c = Arc::new(RateLimited::new(c, limiter.clone(), p.clone()));
        }
        if let Toggle::On(p) = &self.retry {
            c = Arc::new(Retrying::new(c, *p));
        }
        c
    }
}
