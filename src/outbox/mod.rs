//! The durable outbox: [`Notifier::enqueue`](crate::Notifier::enqueue)
//! writes an alert to a store before it returns, and a background worker
//! delivers it with the same retries, rate limits, digests and dedup as
//! [`Notifier::dispatch`](crate::Notifier::dispatch), recording each
//! member's progress, so that after a crash, a restart or a replica dying
//! only the members not yet delivered are sent again, with the same
//! platform de-dup keys (see [`idempotency_key`](crate::channel::idempotency_key)).
//!
//! Two stores ship: `Journal` (embedded, on redb, in a directory the host
//! names; feature `outbox`, on by default) and `RedisStreams` (feature
//! `redis`; for hosts running several replicas). Others implement
//! [`OutboxStore`].
//!
//! ```
//! # #[cfg(feature = "outbox")] {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use alertkit::outbox::{Journal, OutboxOptions};
//! use alertkit::testkit::recording_registry;
//! use alertkit::{Alert, Config, Http, Notifier};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("alertkit-doc-{}", std::process::id()));
//! let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
//!                                    "groups": [{"name": "oncall", "instances": ["ops"]}]}"#).unwrap();
//! let notifier = Arc::new(Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap());
//! notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
//!
//! // Durably written when this returns; delivered in the background.
//! let ticket = notifier.enqueue("oncall", &Alert::new("orders-etl FAILED")).await.unwrap();
//! assert!(ticket.suppressed.is_none());
//! tokio::time::timeout(Duration::from_secs(10), async {
//!     while !notifier.pending().await.unwrap().is_empty() {
//!         tokio::time::sleep(Duration::from_millis(10)).await;
//!     }
//! }).await.expect("delivered within 10 s");
//! notifier.shutdown(Duration::from_secs(5)).await;
//! # std::fs::remove_dir_all(&dir).ok();
//! # });
//! # }
//! ```

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::alert::Alert;
use crate::error::{Error, ErrorKind, Result};
use crate::group::{DispatchReport, Hold, Outcome, Progress};
use crate::notifier::Notifier;

#[cfg(feature = "outbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "outbox")))]
mod journal;
#[cfg(feature = "outbox")]
pub use journal::Journal;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis_streams;
#[cfg(feature = "redis")]
pub use redis_streams::RedisStreams;

/// What [`Notifier::enqueue`](crate::Notifier::enqueue) gives back.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use alertkit::outbox::{Journal, OutboxOptions};
/// use alertkit::{Alert, Config, Http, Notifier};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("alertkit-doc-ticket-{}", std::process::id()));
/// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
///     "groups": [{"name": "g", "instances": ["ops"], "repeat_interval_secs": 600}]}"#).unwrap();
/// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
/// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
/// let first = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
/// assert!(first.suppressed.is_none() && first.group == "g");
/// let again = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
/// assert!(again.suppressed.unwrap().starts_with("suppressed")); // repeat_interval: nothing stored
/// # notifier.shutdown(Duration::from_secs(5)).await;
/// # std::fs::remove_dir_all(&dir).ok();
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ticket {
    /// The entry's id (32 hex digits): find it in
    /// [`Notifier::pending`](crate::Notifier::pending) or the dead letters,
    /// and in the `alertkit.outbox.*` spans.
    pub id: String,
    /// The group it goes to.
    pub group: String,
    /// When it was accepted.
    pub accepted_at: DateTime<Utc>,
    /// Set when the group's `repeat_interval` suppressed the alert: nothing
    /// was stored and nothing will be sent; says why.
    pub suppressed: Option<String>,
}

/// One alert in the outbox, with each member's progress.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use alertkit::outbox::{Journal, OutboxOptions};
/// use alertkit::{Alert, Config, Http, Notifier};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("alertkit-doc-entry-{}", std::process::id()));
/// let config = Config::from_json(r#"{"instances": [{"name": "slow", "type": "recording", "params": {"delay_ms": 5000}}],
///                                    "groups": [{"name": "g", "instances": ["slow"]}]}"#).unwrap();
/// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
/// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
/// let ticket = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
/// let entry = &notifier.pending().await.unwrap()[0];
/// assert_eq!((entry.id.as_str(), entry.group.as_str(), entry.alert.title.as_str()), (ticket.id.as_str(), "g", "disk full"));
/// assert!(entry.members.is_empty() && entry.dead_reason.is_none()); // no member finished yet
/// # notifier.shutdown(Duration::from_millis(10)).await;
/// # std::fs::remove_dir_all(&dir).ok();
/// # });
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Entry {
    /// 32 hex digits, random: also the base of the platform de-dup keys,
    /// so a redelivery carries the keys of the first attempt.
    pub id: String,
    /// The group it goes to.
    pub group: String,
    /// The alert.
    pub alert: Alert,
    /// When [`enqueue`](crate::Notifier::enqueue) accepted it.
    pub accepted_at: DateTime<Utc>,
    /// Delivery attempts finished so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// Each member's latest result, by instance name (absent: not tried yet).
    #[serde(default)]
    pub members: BTreeMap<String, MemberState>,
    /// Why it became a dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_reason: Option<String>,
    /// The group's dedup claim, handed back if the entry dies undelivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hold: Option<Hold>,
}

/// A member's latest result for one entry.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use alertkit::outbox::{Journal, OutboxOptions};
/// use alertkit::{Alert, Config, Http, Notifier, Outcome};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("alertkit-doc-member-{}", std::process::id()));
/// let config = Config::from_json(r#"{"instances": [{"name": "broken", "type": "recording", "params": {"fail": true}}],
///                                    "groups": [{"name": "g", "instances": ["broken"]}]}"#).unwrap();
/// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
/// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
/// notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
/// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
/// let state = &notifier.dead_letters().await.unwrap()[0].members["broken"];
/// assert_eq!(state.outcome, Outcome::Failed);
/// assert_eq!(state.error.as_ref().unwrap().code(), Some("310000"));
/// # notifier.shutdown(Duration::from_secs(5)).await;
/// # std::fs::remove_dir_all(&dir).ok();
/// # });
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemberState {
    /// What happened.
    pub outcome: Outcome,
    /// When.
    pub at: DateTime<Utc>,
    /// The error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
}

impl MemberState {
    /// Whether this member is finished with: delivered (perhaps to some
    /// recipients only), skipped, or failed for good. A retryable failure
    /// or a timeout is tried again.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-final-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "broken", "type": "recording", "params": {"fail": true}}],
    ///                                    "groups": [{"name": "g", "instances": ["broken"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
    /// notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
    /// // A missing keyword is not retryable: failed for good, not tried again.
    /// assert!(notifier.dead_letters().await.unwrap()[0].members["broken"].is_final());
    /// # notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub fn is_final(&self) -> bool {
        match self.outcome {
            Outcome::Delivered | Outcome::Partial | Outcome::Skipped | Outcome::Suppressed => true,
            Outcome::Failed => !self.error.as_ref().is_some_and(Error::is_retryable),
            Outcome::TimedOut => false,
        }
    }

    /// Whether the member has the alert.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-delivered-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "ok", "type": "recording"},
    ///     {"name": "broken", "type": "recording", "params": {"fail": true}}], "groups": [{"name": "g", "instances": ["ok", "broken"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap()), OutboxOptions::default()).unwrap();
    /// notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
    /// let members = notifier.dead_letters().await.unwrap()[0].members.clone();
    /// assert!(members["ok"].is_delivered() && !members["broken"].is_delivered());
    /// # notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, Outcome::Delivered | Outcome::Partial)
    }
}

impl Entry {
    /// A new entry for `alert` to `group`, accepted and due now, with a
    /// fresh id (what [`Notifier::enqueue`](crate::Notifier::enqueue)
    /// stores; for a store's own tests).
    ///
    /// ```
    /// use alertkit::Alert;
    /// use alertkit::outbox::Entry;
    /// let e = Entry::new("oncall", Alert::new("disk full"));
    /// assert_eq!((e.id.len(), e.attempts, e.group.as_str()), (32, 0, "oncall"));
    /// assert_ne!(e.id, Entry::new("oncall", Alert::new("disk full")).id);
    /// ```
    pub fn new(group: &str, alert: Alert) -> Self {
        Entry::new_at(group, alert, Utc::now())
    }

    /// [`new`](Self::new), accepted at `now`.
    pub(crate) fn new_at(group: &str, alert: Alert, now: DateTime<Utc>) -> Self {
        Entry {
            // Random per process (128 bits from the OS at the first use),
            // then distinct per entry: no system call per enqueue.
            id: format!("{:032x}", crate::channel::DeliveryKey::fresh_base()),
            group: group.to_owned(),
            alert,
            accepted_at: now,
            attempts: 0,
            next_attempt_at: now,
            members: BTreeMap::new(),
            dead_reason: None,
            hold: None,
        }
    }

    /// The base of its de-dup keys.
    fn key_base(&self) -> u128 {
        u128::from_str_radix(&self.id, 16).unwrap_or_else(|_| {
            use sha2::{Digest, Sha256};
            let d = Sha256::digest(self.id.as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&d[..16]);
            u128::from_le_bytes(b)
        })
    }

    /// Serialized as the stores keep it.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| {
            Error::new(ErrorKind::Internal, "cannot serialize an outbox entry").with_source(e)
        })
    }

    /// Read back from a store.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                "an outbox entry in the store is not readable",
            )
            .with_source(e)
        })
    }
}

/// Where the outbox keeps its entries. Every method that changes an entry
/// must have it durably written (flushed to disk, or acknowledged by the
/// shared store) before it returns `Ok`.
///
/// The worker calls [`claim`](OutboxStore::claim) for entries to deliver;
/// a claimed entry belongs to this process until it is removed, buried, or
/// (in a store shared by replicas) the process stops calling
/// [`keep`](OutboxStore::keep) for it and another replica claims it.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use alertkit::outbox::{Journal, OutboxOptions, OutboxStore};
/// use alertkit::{Alert, Config, Http, Notifier};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-{}", std::process::id()));
/// let store: Arc<dyn OutboxStore> = Arc::new(Journal::open(&dir).unwrap()); // or your own
/// let config = Config::from_json(r#"{"instances": [{"name": "slow", "type": "recording", "params": {"delay_ms": 5000}}],
///                                    "groups": [{"name": "g", "instances": ["slow"]}]}"#).unwrap();
/// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
/// notifier.start_outbox(store.clone(), OutboxOptions::default()).unwrap();
/// let ticket = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
/// assert_eq!(store.pending(10).await.unwrap()[0].id, ticket.id); // written before enqueue returned
/// # notifier.shutdown(Duration::from_millis(10)).await;
/// # std::fs::remove_dir_all(&dir).ok();
/// # });
/// ```
#[async_trait]
pub trait OutboxStore: Send + Sync + Debug + 'static {
    /// Stores a new entry. Fails with [`ErrorKind::Storage`] when the store
    /// is full or cannot be written: the caller must not consider the alert
    /// accepted.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-append-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap(); // durable when this returns
    /// assert_eq!(store.pending(10).await.unwrap()[0].id, entry(1).id);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn append(&self, entry: &Entry) -> Result<()>;

    /// Up to `max` entries nobody holds, now held by this process (with
    /// their members' progress).
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-claim-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// store.append(&entry(2)).await.unwrap();
    /// assert_eq!(store.claim(1).await.unwrap().len(), 1);
    /// assert_eq!(store.claim(10).await.unwrap()[0].id, entry(2).id); // the one left
    /// assert!(store.claim(10).await.unwrap().is_empty()); // both held now
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn claim(&self, max: usize) -> Result<Vec<Entry>>;

    /// Says this process still holds these entries; returns the ones it
    /// lost (another replica claimed them). The default holds for ever.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-keep-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// let held: Vec<String> = store.claim(10).await.unwrap().into_iter().map(|e| e.id).collect();
    /// assert!(store.keep(&held).await.unwrap().is_empty()); // one process: nothing lost
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn keep(&self, ids: &[String]) -> Result<Vec<String>> {
        let _ = ids;
        Ok(Vec::new())
    }

    /// Records that one member is finished with (delivered, or failed for good).
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-record-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// # let delivered: alertkit::outbox::MemberState = serde_json::from_value(serde_json::json!({"outcome": "delivered", "at": alertkit::chrono::Utc::now()})).unwrap();
    /// let e = entry(1);
    /// store.append(&e).await.unwrap();
    /// store.claim(10).await.unwrap();
    /// store.record_member(&e.id, "ops", &delivered).await.unwrap();
    /// assert!(store.pending(10).await.unwrap()[0].members["ops"].is_delivered());
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn record_member(&self, id: &str, member: &str, state: &MemberState) -> Result<()>;

    /// Records several members at once (one write where the store can);
    /// the default records them one by one.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-records-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// # let delivered: alertkit::outbox::MemberState = serde_json::from_value(serde_json::json!({"outcome": "delivered", "at": alertkit::chrono::Utc::now()})).unwrap();
    /// let e = entry(1);
    /// store.append(&e).await.unwrap();
    /// store.claim(10).await.unwrap();
    /// store.record_members(&e.id, &[("ops".into(), delivered.clone()), ("mail".into(), delivered)]).await.unwrap();
    /// assert_eq!(store.pending(10).await.unwrap()[0].members.len(), 2);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn record_members(&self, id: &str, states: &[(String, MemberState)]) -> Result<()> {
        for (member, state) in states {
            self.record_member(id, member, state).await?;
        }
        Ok(())
    }

    /// Writes the entry back after an attempt that left members to retry
    /// (its attempts, next attempt time and members' results).
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-resched-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// let mut e = store.claim(10).await.unwrap().remove(0);
    /// e.attempts += 1;
    /// e.next_attempt_at += alertkit::chrono::Duration::seconds(30);
    /// store.reschedule(&e).await.unwrap();
    /// assert_eq!(store.pending(10).await.unwrap()[0].attempts, 1);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn reschedule(&self, entry: &Entry) -> Result<()>;

    /// Removes a finished entry (every member delivered): pruned.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-remove-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// store.claim(10).await.unwrap();
    /// store.remove(&entry(1).id).await.unwrap(); // every member delivered
    /// assert!(store.pending(10).await.unwrap().is_empty());
    /// assert!(store.dead_letters(10).await.unwrap().is_empty());
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn remove(&self, id: &str) -> Result<()>;

    /// Moves an entry to the dead letters.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-bury-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// let mut e = store.claim(10).await.unwrap().remove(0);
    /// e.dead_reason = Some("out of attempts".into());
    /// store.bury(&e).await.unwrap();
    /// assert!(store.pending(10).await.unwrap().is_empty());
    /// assert_eq!(store.dead_letters(10).await.unwrap()[0].dead_reason.as_deref(), Some("out of attempts"));
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn bury(&self, entry: &Entry) -> Result<()>;

    /// Entries not yet finished, oldest first, up to `max`.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-pending-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// for n in 1..=3 { store.append(&entry(n)).await.unwrap(); }
    /// let first_two = store.pending(2).await.unwrap();
    /// assert_eq!(first_two.len(), 2);
    /// assert_eq!(first_two[0].id, entry(1).id); // oldest first
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn pending(&self, max: usize) -> Result<Vec<Entry>>;

    /// Dead letters, oldest first, up to `max`.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-dead-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// assert!(store.dead_letters(10).await.unwrap().is_empty());
    /// store.append(&entry(1)).await.unwrap();
    /// let e = store.claim(10).await.unwrap().remove(0);
    /// store.bury(&e).await.unwrap();
    /// assert_eq!(store.dead_letters(10).await.unwrap()[0].id, e.id);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn dead_letters(&self, max: usize) -> Result<Vec<Entry>>;

    /// Moves a dead letter back to pending (as `entry`, reset by the caller);
    /// `false` if there is no such dead letter.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-revive-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// let e = store.claim(10).await.unwrap().remove(0);
    /// store.bury(&e).await.unwrap();
    /// assert!(store.revive(&e).await.unwrap()); // back to pending
    /// assert_eq!(store.pending(10).await.unwrap().len(), 1);
    /// assert!(!store.revive(&e).await.unwrap()); // no longer a dead letter
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn revive(&self, entry: &Entry) -> Result<bool>;

    /// Deletes a dead letter; `false` if there is none with this id.
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-purge-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// let e = store.claim(10).await.unwrap().remove(0);
    /// store.bury(&e).await.unwrap();
    /// assert!(store.purge(&e.id).await.unwrap());
    /// assert!(!store.purge(&e.id).await.unwrap()); // already gone
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn purge(&self, id: &str) -> Result<bool>;

    /// Makes every entry this process holds claimable again: the worker
    /// that held them stopped (its runtime shut down) and a new one starts.
    /// The default does nothing: right for a store whose holds lapse on
    /// their own (the Redis Streams store's, after `claim_after`).
    ///
    /// ```
    /// use alertkit::outbox::{Entry, Journal, OutboxStore};
    /// # fn entry(n: u8) -> Entry {
    /// #     let now = alertkit::chrono::Utc::now();
    /// #     serde_json::from_value(serde_json::json!({"id": format!("{n:032x}"), "group": "g",
    /// #         "alert": alertkit::Alert::new("disk full"), "accepted_at": now, "next_attempt_at": now})).unwrap()
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-store-release-{}", std::process::id()));
    /// let store = Journal::open(&dir).unwrap(); // any OutboxStore
    /// store.append(&entry(1)).await.unwrap();
    /// assert_eq!(store.claim(10).await.unwrap().len(), 1);
    /// assert!(store.claim(10).await.unwrap().is_empty()); // held
    /// store.release_claims().await.unwrap(); // the worker that held it stopped
    /// assert_eq!(store.claim(10).await.unwrap().len(), 1);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    async fn release_claims(&self) -> Result<()> {
        Ok(())
    }
}

/// How the outbox delivers.
///
/// ```
/// use std::time::Duration;
/// use alertkit::outbox::OutboxOptions;
/// let o = OutboxOptions::default();
/// assert_eq!((o.concurrency, o.max_attempts, o.poll), (256, 12, Duration::from_secs(1)));
/// assert_eq!((o.min_backoff, o.max_backoff), (Duration::from_secs(1), Duration::from_secs(300)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxOptions {
    /// Entries delivered at once (default 256).
    pub concurrency: usize,
    /// Attempts before an entry becomes a dead letter (default 12, at least 1).
    pub max_attempts: u32,
    /// Age after which an entry still failing becomes a dead letter
    /// (default 24 h).
    pub max_age: Duration,
    /// Wait before the second attempt; doubles each time (default 1 s).
    pub min_backoff: Duration,
    /// Longest wait between attempts (default 5 min).
    pub max_backoff: Duration,
    /// How often the worker looks for entries other processes enqueued or
    /// left behind (default 1 s; the in-process `enqueue` wakes it at once).
    pub poll: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            concurrency: 256,
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

impl OutboxOptions {
    /// Sets [`concurrency`](Self::concurrency).
    ///
    /// ```
    /// use alertkit::outbox::OutboxOptions;
    /// assert_eq!(OutboxOptions::default().concurrency(16).concurrency, 16);
    /// assert_eq!(OutboxOptions::default().concurrency(0).concurrency, 1); // at least one
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    ///
    /// ```
    /// use alertkit::outbox::OutboxOptions;
    /// assert_eq!(OutboxOptions::default().max_attempts(3).max_attempts, 3);
    /// assert_eq!(OutboxOptions::default().max_attempts(0).max_attempts, 1); // at least one
    /// ```
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets [`max_age`](Self::max_age).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::outbox::OutboxOptions;
    /// let o = OutboxOptions::default().max_age(Duration::from_secs(3600));
    /// assert_eq!(o.max_age, Duration::from_secs(3600));
    /// ```
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Sets the backoff between attempts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::outbox::OutboxOptions;
    /// let o = OutboxOptions::default().backoff(Duration::from_secs(5), Duration::from_secs(60));
    /// assert_eq!((o.min_backoff, o.max_backoff), (Duration::from_secs(5), Duration::from_secs(60)));
    /// // A longest wait below the first one is raised to it.
    /// let o = OutboxOptions::default().backoff(Duration::from_secs(5), Duration::from_secs(1));
    /// assert_eq!(o.max_backoff, Duration::from_secs(5));
    /// ```
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Sets [`poll`](Self::poll).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::outbox::OutboxOptions;
    /// assert_eq!(OutboxOptions::default().poll(Duration::from_millis(250)).poll, Duration::from_millis(250));
    /// assert_eq!(OutboxOptions::default().poll(Duration::ZERO).poll, Duration::from_millis(10)); // the floor
    /// ```
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    fn backoff_after(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
        self.min_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// The outbox attached to a notifier.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) store: Arc<dyn OutboxStore>,
    options: OutboxOptions,
    wake: tokio::sync::Notify,
    closed: AtomicBool,
    /// Entries being delivered right now.
    busy: AtomicUsize,
    idle: tokio::sync::Notify,
    notifier: Weak<Notifier>,
    /// The worker, to start again when its runtime is gone.
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Outbox {
    /// Starts the worker for `notifier` on the current Tokio runtime.
    pub(crate) fn start(
        notifier: Weak<Notifier>,
        store: Arc<dyn OutboxStore>,
        options: OutboxOptions,
    ) -> Result<Arc<Outbox>> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                "start_outbox must be called inside a Tokio runtime",
            )
            .with_retryable(false)
        })?;
        let mut options = options;
        options.concurrency = options.concurrency.max(1);
        options.max_attempts = options.max_attempts.max(1);
        options.poll = options.poll.max(Duration::from_millis(10));
        let ob = Arc::new(Outbox {
            store,
            options,
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            notifier: notifier.clone(),
            task: std::sync::Mutex::new(None),
        });
        let task = rt.spawn(run(notifier, ob.clone(), false));
        *ob.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(ob)
    }

    /// A new entry is in the store: wakes the worker, starting it again on
    /// the caller's runtime if the one it ran on is gone (a sync host's
    /// `block_on`, a test runtime).
    pub(crate) fn wake(self: &Arc<Self>) {
        if !self.closed.load(Ordering::SeqCst) {
            let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
            if task.as_ref().is_none_or(|t| t.is_finished())
                && let Ok(rt) = tokio::runtime::Handle::try_current()
            {
                tracing::warn!("outbox: the worker's runtime is gone; starting it on this one");
                *task = Some(rt.spawn(run(self.notifier.clone(), self.clone(), true)));
            }
        }
        self.wake.notify_one();
    }

    /// Stops taking entries; waits (up to `deadline`) for deliveries in
    /// progress. Entries not finished stay in the store.
    pub(crate) async fn close(&self, deadline: Duration) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let wait = async {
            loop {
                let idle = self.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.busy.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        self.busy.load(Ordering::SeqCst)
    }

    /// Moves a dead letter back to pending, its failed members to be tried
    /// again (delivered ones are not sent again).
    pub(crate) async fn revive(self: &Arc<Self>, id: &str) -> Result<bool> {
        let dead = self.store.dead_letters(usize::MAX).await?;
        let Some(mut e) = dead.into_iter().find(|e| e.id == id) else {
            return Ok(false);
        };
        e.members
            .retain(|_, s| s.is_delivered() || s.outcome == Outcome::Skipped);
        e.attempts = 0;
        e.dead_reason = None;
        e.next_attempt_at = Utc::now();
        let revived = self.store.revive(&e).await?;
        if revived {
            metric("alertkit_outbox_revived_total");
            self.wake();
        }
        Ok(revived)
    }
}

fn metric(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = name;
}

/// An entry waiting for its next attempt, earliest first.
struct Due(DateTime<Utc>, String);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.1 == other.1
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap.
        other.0.cmp(&self.0).then_with(|| other.1.cmp(&self.1))
    }
}

/// The worker: claims entries, delivers them `concurrency` at a time, holds
/// those waiting for a retry, and says it still holds them.
async fn run(notifier: Weak<Notifier>, ob: Arc<Outbox>, restarted: bool) {
    let o = ob.options.clone();
    if restarted && let Err(e) = ob.store.release_claims().await {
        tracing::error!(error = %e, "outbox: cannot take back the entries the stopped worker held");
    }
    let mut waiting: HashMap<String, Entry> = HashMap::new();
    let mut due: BinaryHeap<Due> = BinaryHeap::new();
    let mut running: tokio::task::JoinSet<(String, Option<Entry>)> = tokio::task::JoinSet::new();
    let mut held_running: HashSet<String> = HashSet::new();
    let mut more = true;
    let keep_every = o.poll.max(Duration::from_millis(100));
    let mut last_keep = tokio::time::Instant::now();
    let mut claim_failures = 0u32;
    loop {
        if ob.closed.load(Ordering::SeqCst) {
            break;
        }
        let Some(n) = notifier.upgrade() else { break };
        let now = Utc::now();
        // Start what is due.
        while running.len() < o.concurrency && due.peek().is_some_and(|d| d.0 <= now) {
            let Some(Due(_, id)) = due.pop() else { break };
            if let Some(e) = waiting.remove(&id) {
                held_running.insert(id);
                spawn_attempt(&mut running, n.clone(), ob.clone(), e);
            }
        }
        // Claim more while there is room.
        let room = o.concurrency.saturating_sub(running.len());
        if more && room > 0 && waiting.len() < o.concurrency.saturating_mul(4) {
            match ob.store.claim(room).await {
                Ok(entries) => {
                    claim_failures = 0;
                    more = entries.len() == room;
                    for e in entries {
                        if held_running.contains(&e.id) || waiting.contains_key(&e.id) {
                            continue;
                        }
                        if e.next_attempt_at <= now {
                            held_running.insert(e.id.clone());
                            spawn_attempt(&mut running, n.clone(), ob.clone(), e);
                        } else {
                            due.push(Due(e.next_attempt_at, e.id.clone()));
                            waiting.insert(e.id.clone(), e);
                        }
                    }
                }
                Err(e) => {
                    claim_failures = claim_failures.saturating_add(1);
                    tracing::error!(error = %e, "outbox: cannot claim entries; trying again");
                    more = false;
                }
            }
        }
        // Say we still hold what we hold.
        if last_keep.elapsed() >= keep_every {
            last_keep = tokio::time::Instant::now();
            let ids: Vec<String> = held_running.iter().chain(waiting.keys()).cloned().collect();
            if !ids.is_empty() {
                match ob.store.keep(&ids).await {
                    Ok(lost) => {
                        for id in lost {
                            if waiting.remove(&id).is_some() {
                                tracing::warn!(id = %id, "outbox: another replica took over an entry");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "outbox: cannot renew held entries"),
                }
            }
        }
        drop(n);
        // Wait for a wake-up, a finished delivery, the next due entry or the poll.
        let next_due = due
            .peek()
            .and_then(|d| (d.0 - Utc::now()).to_std().ok())
            .unwrap_or(Duration::ZERO);
        let mut sleep_for = o.poll.min(keep_every);
        if !due.is_empty() {
            sleep_for = sleep_for.min(next_due);
        }
        if claim_failures > 0 {
            sleep_for = o.poll;
        }
        tokio::select! {
            _ = ob.wake.notified() => more = true,
            Some(done) = running.join_next(), if !running.is_empty() => {
                match done {
                    Ok((id, again)) => {
                        held_running.remove(&id);
                        if let Some(e) = again {
                            due.push(Due(e.next_attempt_at, e.id.clone()));
                            waiting.insert(e.id.clone(), e);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "outbox: a delivery task failed; its entry is delivered after a restart"),
                }
            }
            _ = tokio::time::sleep(sleep_for) => more = true,
        }
    }
    // Closed or the notifier is gone: finish what runs.
    while running.join_next().await.is_some() {}
}

/// One delivery in progress; counted down however the task ends (a
/// runtime shutting down drops it).
struct Busy(Arc<Outbox>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

fn spawn_attempt(
    running: &mut tokio::task::JoinSet<(String, Option<Entry>)>,
    n: Arc<Notifier>,
    ob: Arc<Outbox>,
    e: Entry,
) {
    ob.busy.fetch_add(1, Ordering::SeqCst);
    let busy = Busy(ob.clone());
    let span = tracing::info_span!(
        "alertkit.outbox.deliver",
        id = %e.id,
        group = %e.group,
        attempt = e.attempts.saturating_add(1),
        redelivery = e.attempts > 0 || !e.members.is_empty()
    );
    running.spawn(
        async move {
            let id = e.id.clone();
            let again = attempt(&n, &ob, e).await;
            drop(n);
            drop(busy);
            (id, again)
        }
        .instrument(span),
    );
}

/// One attempt at an entry: sends to the members not finished with,
/// records each as it finishes, then removes, reschedules or buries it.
/// Returns the entry if it waits for another attempt.
async fn attempt(n: &Notifier, ob: &Outbox, mut e: Entry) -> Option<Entry> {
    let store = &*ob.store;
    let o = &ob.options;
    if e.attempts > 0 || !e.members.is_empty() {
        metric("alertkit_outbox_redeliveries_total");
        tracing::info!("outbox: redelivering");
    }
    let Some(g) = n.group(&e.group) else {
        e.dead_reason = Some(format!("no group named {:?}", e.group));
        bury(n, ob, e).await;
        return None;
    };
    let done: HashSet<String> = e
        .members
        .iter()
        .filter(|(_, s)| s.is_final())
        .map(|(m, _)| m.clone())
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Progress {
        base: e.key_base(),
        done: done.clone(),
        each: Some(tx),
    };
    let id = e.id.clone();
    let alert = &e.alert;
    let dispatch = async move {
        let report = g.dispatch_inner(alert, &progress).await;
        drop(progress);
        report
    };
    // Each member's result is written as soon as it is known: a crash later
    // in this attempt does not send it again.
    // Results that arrive together are written together; once the attempt
    // is over (the channel closed) they are not written on their own: the
    // removal, rescheduling or burial that follows at once writes them.
    let record = async {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(d) = rx.try_recv() {
                batch.push(d);
            }
            if rx.is_closed() && rx.is_empty() {
                break;
            }
            let states: Vec<(String, MemberState)> = batch
                .into_iter()
                .map(|d| {
                    let state = MemberState {
                        outcome: d.outcome,
                        at: Utc::now(),
                        error: d.error,
                    };
                    (d.instance, state)
                })
                .filter(|(_, s)| s.is_final())
                .collect();
            if states.is_empty() {
                continue;
            }
            if let Err(err) = store.record_members(&id, &states).await {
                tracing::warn!(error = %err, "outbox: cannot record members' deliveries; a restart may send them again (with the same de-dup keys)");
            }
        }
    };
    let (report, ()) = tokio::join!(dispatch, record);
    let now = Utc::now();
    for d in &report.deliveries {
        if done.contains(&d.instance) {
            continue;
        }
        e.members.insert(
            d.instance.clone(),
            MemberState {
                outcome: d.outcome,
                at: now,
                error: d.error.clone(),
            },
        );
    }
    // A member taken out of the group since an earlier attempt is not
    // waited for.
    let current: HashSet<&str> = report
        .deliveries
        .iter()
        .map(|d| d.instance.as_str())
        .collect();
    e.members.retain(|m, s| {
        let keep = s.is_final() || current.contains(m.as_str());
        if !keep {
            tracing::info!(member = %m, "outbox: member no longer in the group; not retried");
        }
        keep
    });
    let fingerprint = e.alert.fingerprint();
    let report = report.about(&e.alert, fingerprint, e.accepted_at);
    n.notify(&e.alert, &report);
    finish(n, ob, e, &report, o).await
}

/// After an attempt: remove, reschedule or bury.
async fn finish(
    n: &Notifier,
    ob: &Outbox,
    mut e: Entry,
    report: &DispatchReport,
    o: &OutboxOptions,
) -> Option<Entry> {
    let store = &*ob.store;
    let pending: Vec<&String> = e
        .members
        .iter()
        .filter(|(_, s)| !s.is_final())
        .map(|(m, _)| m)
        .collect();
    if pending.is_empty() {
        let failed: Vec<String> = e
            .members
            .iter()
            .filter(|(_, s)| s.outcome == Outcome::Failed)
            .map(|(m, _)| m.clone())
            .collect();
        if failed.is_empty() {
            match store.remove(&e.id).await {
                Ok(()) => {
                    metric("alertkit_outbox_delivered_total");
                    tracing::debug!(status = report.status.as_str(), "outbox: delivered");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "outbox: delivered but cannot remove the entry; its members are recorded, so it is not sent again")
                }
            }
            return None;
        }
        e.dead_reason = Some(format!("failed for good on {}", failed.join(", ")));
        bury(n, ob, e).await;
        return None;
    }
    e.attempts = e.attempts.saturating_add(1);
    let age = (Utc::now() - e.accepted_at).to_std().unwrap_or_default();
    if e.attempts >= o.max_attempts || age >= o.max_age {
        let who: Vec<&str> = pending.iter().map(|s| s.as_str()).collect();
        e.dead_reason = Some(format!(
            "not delivered to {} after {} attempts over {} s",
            who.join(", "),
            e.attempts,
            age.as_secs()
        ));
        bury(n, ob, e).await;
        return None;
    }
    let wait = o.backoff_after(e.attempts);
    e.next_attempt_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    if let Err(err) = store.reschedule(&e).await {
        tracing::warn!(error = %err, "outbox: cannot write the retry schedule; the entry is retried from its last stored state");
    }
    tracing::info!(
        attempts = e.attempts,
        wait_ms = wait.as_millis() as u64,
        "outbox: will retry"
    );
    Some(e)
}

async fn bury(n: &Notifier, ob: &Outbox, e: Entry) {
    metric("alertkit_outbox_dead_letters_total");
    tracing::error!(
        reason = e.dead_reason.as_deref().unwrap_or(""),
        "outbox: dead letter"
    );
    if let Some(h) = &e.hold {
        n.release_hold(h).await;
    }
    if let Err(err) = ob.store.bury(&e).await {
        tracing::error!(error = %err, "outbox: cannot move the entry to the dead letters; it stays pending");
    }
}
