//! State the policies share: rate-limit windows and dedup records, behind a
//! small trait so several processes can share them (Redis, feature `redis`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::channel::Rate;
use crate::error::Result;

/// A `keep` too long for the clock is kept this long instead.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// The answer to a request for a send slot.
///
/// ```
/// use alertkit::Rate;
/// use alertkit::policy::{MemoryState, SharedState, Slot};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let state = MemoryState::new();
/// let rates = [Rate::per_minute(2)];
/// assert_eq!(state.acquire("robot-a", &rates).await.unwrap(), Slot::Taken { remaining: 1 });
/// assert_eq!(state.acquire("robot-a", &rates).await.unwrap(), Slot::Taken { remaining: 0 });
/// assert!(matches!(state.acquire("robot-a", &rates).await.unwrap(), Slot::Wait(_)));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Slot {
    /// A slot was taken; `remaining` more fit in the tightest window now.
    Taken {
        /// Slots left right now.
        remaining: u32,
    },
    /// No slot: try again after this long.
    Wait(Duration),
}

/// Rate-limit windows and dedup records, shared by every instance of a
/// [`Notifier`](crate::Notifier) (and, with a shared backend, by processes).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use alertkit::chrono::Utc;
/// use alertkit::policy::{MemoryState, SharedState};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let state: Arc<dyn SharedState> = Arc::new(MemoryState::new());
/// let now = Utc::now();
/// state.record_delivery("dedup:g:fp", "firing", now, Duration::from_secs(600)).await.unwrap();
/// let last = state.last_delivery("dedup:g:fp").await.unwrap();
/// assert_eq!(last, Some(("firing".to_owned(), now)));
/// # });
/// ```
#[async_trait]
pub trait SharedState: Send + Sync + std::fmt::Debug + 'static {
    /// Takes one slot in every window of `rates` for `key`, or says how long
    /// to wait until all have room. Sliding windows: at most `count` slots
    /// in any span of `per`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::Rate;
    /// use alertkit::policy::{MemoryState, SharedState, Slot};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let state = MemoryState::new();
    /// let rates = [Rate::per_second(1), Rate::per_minute(20)]; // all must hold
    /// assert!(matches!(state.acquire("robot-a", &rates).await.unwrap(), Slot::Taken { .. }));
    /// let Slot::Wait(wait) = state.acquire("robot-a", &rates).await.unwrap() else { panic!("full") };
    /// assert!(wait <= Duration::from_secs(1));
    /// assert!(matches!(state.acquire("robot-b", &rates).await.unwrap(), Slot::Taken { .. })); // per key
    /// # });
    /// ```
    async fn acquire(&self, key: &str, rates: &[Rate]) -> Result<Slot>;

    /// The alert state last delivered under `key` and when.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::chrono::Utc;
    /// use alertkit::policy::{MemoryState, SharedState};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let state = MemoryState::new();
    /// assert_eq!(state.last_delivery("dedup:g:fp").await.unwrap(), None);
    /// let at = Utc::now();
    /// state.record_delivery("dedup:g:fp", "resolved", at, Duration::from_secs(60)).await.unwrap();
    /// assert_eq!(state.last_delivery("dedup:g:fp").await.unwrap(), Some(("resolved".to_owned(), at)));
    /// # });
    /// ```
    async fn last_delivery(&self, key: &str) -> Result<Option<(String, DateTime<Utc>)>>;

    /// Records a delivery of `state` under `key`, kept at least `keep`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::chrono::Utc;
    /// use alertkit::policy::{MemoryState, SharedState};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let state = MemoryState::new();
    /// state.record_delivery("k", "firing", Utc::now(), Duration::from_secs(60)).await.unwrap();
    /// state.record_delivery("k", "resolved", Utc::now(), Duration::from_secs(60)).await.unwrap(); // replaces
    /// assert_eq!(state.last_delivery("k").await.unwrap().unwrap().0, "resolved");
    /// assert_eq!(state.dedup_records(), 1);
    /// # });
    /// ```
    async fn record_delivery(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        keep: Duration,
    ) -> Result<()>;

    /// Atomically: unless `state` was recorded under `key` less than
    /// `interval` before `at`, records it at `at` (kept `interval`) and
    /// grants the send; otherwise says when the record was made. Of many
    /// concurrent identical claims exactly one is granted. A send that then
    /// fails hands its claim back with [`release`](SharedState::release).
    ///
    /// The default is a read then a write, which is not atomic: stores that
    /// can (both built-in ones do) override it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::chrono::Utc;
    /// use alertkit::policy::{Claim, MemoryState, SharedState};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let state = MemoryState::new();
    /// let (now, every) = (Utc::now(), Duration::from_secs(600));
    /// let claims = futures_util::future::join_all((0..5).map(|_| state.claim("dedup:g:fp", "firing", now, every))).await;
    /// let granted = claims.iter().filter(|c| matches!(c, Ok(Claim::Granted { .. }))).count();
    /// assert_eq!(granted, 1); // of many concurrent identical claims, exactly one
    /// # });
    /// ```
    async fn claim(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        interval: Duration,
    ) -> Result<Claim> {
        let previous = self.last_delivery(key).await?;
        if let Some(t) = holding(previous.as_ref(), state, at, interval) {
            return Ok(Claim::Held { at: t });
        }
        self.record_delivery(key, state, at, interval).await?;
        Ok(Claim::Granted { previous })
    }

    /// Undoes a granted [`claim`](SharedState::claim) made at `at` whose
    /// send failed: puts `previous` back (or removes the record), unless
    /// another claim replaced it meanwhile.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::chrono::Utc;
    /// use alertkit::policy::{Claim, MemoryState, SharedState};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let state = MemoryState::new();
    /// let (now, every) = (Utc::now(), Duration::from_secs(600));
    /// let Claim::Granted { previous } = state.claim("k", "firing", now, every).await.unwrap() else { panic!() };
    /// state.release("k", now, previous, every).await.unwrap(); // the send failed
    /// assert!(matches!(state.claim("k", "firing", now, every).await.unwrap(), Claim::Granted { .. })); // claimable again
    /// # });
    /// ```
    async fn release(
        &self,
        key: &str,
        at: DateTime<Utc>,
        previous: Option<(String, DateTime<Utc>)>,
        keep: Duration,
    ) -> Result<()> {
        let _ = at;
        match previous {
            Some((s, t)) => self.record_delivery(key, &s, t, keep).await,
            None => {
                self.record_delivery(key, "", at, Duration::from_millis(1))
                    .await
            }
        }
    }
}

/// When `previous` (a record's state and time) holds a claim of `state` at
/// `at`: the same state, less than `interval` before.
fn holding(
    previous: Option<&(String, DateTime<Utc>)>,
    state: &str,
    at: DateTime<Utc>,
    interval: Duration,
) -> Option<DateTime<Utc>> {
    let (s, t) = previous?;
    (s == state && (at - *t).to_std().unwrap_or_default() < interval).then_some(*t)
}

/// The answer to [`SharedState::claim`].
///
/// ```
/// use std::time::Duration;
/// use alertkit::chrono::Utc;
/// use alertkit::policy::{Claim, MemoryState, SharedState};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let state = MemoryState::new();
/// let (now, every) = (Utc::now(), Duration::from_secs(600));
/// assert_eq!(state.claim("dedup:g:fp", "firing", now, every).await.unwrap(), Claim::Granted { previous: None });
/// assert_eq!(state.claim("dedup:g:fp", "firing", now, every).await.unwrap(), Claim::Held { at: now });
/// // Another state (resolved) is not held by the first.
/// assert!(matches!(state.claim("dedup:g:fp", "resolved", now, every).await.unwrap(), Claim::Granted { .. }));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// Send it; `previous` is the record this claim replaced.
    Granted {
        /// The record before this claim, to restore if the send fails.
        previous: Option<(String, DateTime<Utc>)>,
    },
    /// The same state was recorded at `at`, less than the interval ago (or
    /// is being sent right now).
    Held {
        /// When the holding record was made.
        at: DateTime<Utc>,
    },
}

/// The in-process default. Dedup records expire after their `keep`, so a
/// long-running host's memory stays flat over any number of distinct alerts.
///
/// ```
/// use std::time::Duration;
/// use alertkit::chrono::Utc;
/// use alertkit::policy::{MemoryState, SharedState};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let state = MemoryState::new();
/// state.record_delivery("k", "firing", Utc::now(), Duration::from_millis(20)).await.unwrap();
/// assert_eq!(state.last_delivery("k").await.unwrap().unwrap().0, "firing");
/// tokio::time::sleep(Duration::from_millis(40)).await;
/// assert_eq!(state.last_delivery("k").await.unwrap(), None); // expired
/// # });
/// ```
#[derive(Debug, Default)]
pub struct MemoryState {
    windows: Mutex<HashMap<String, Vec<VecDeque<Instant>>>>,
    deliveries: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    map: HashMap<String, Record>,
    /// Sweep expired records when the map grows past this.
    sweep_at: usize,
}

#[derive(Debug)]
struct Record {
    state: String,
    at: DateTime<Utc>,
    expires: Instant,
}

impl Records {
    fn live(&self, key: &str, now: Instant) -> Option<&Record> {
        self.map.get(key).filter(|r| r.expires > now)
    }

    fn insert(&mut self, key: &str, record: Record, now: Instant) {
        self.map.insert(key.to_owned(), record);
        if self.map.len() > self.sweep_at {
            self.map.retain(|_, r| r.expires > now);
            // Amortized: the next sweep waits until the live set doubles.
            self.sweep_at = (self.map.len() * 2).max(1024);
        }
    }
}

impl MemoryState {
    /// An empty store.
    ///
    /// ```
    /// use alertkit::policy::MemoryState;
    /// let state = MemoryState::new();
    /// assert_eq!(state.dedup_records(), 0);
    /// ```
    pub fn new() -> Self {
        MemoryState::default()
    }

    /// Dedup records held now, expired ones not yet swept included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::chrono::Utc;
    /// use alertkit::policy::{MemoryState, SharedState};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let state = MemoryState::new();
    /// state.record_delivery("dedup:g:fp", "firing", Utc::now(), Duration::from_secs(60)).await.unwrap();
    /// assert_eq!(state.dedup_records(), 1);
    /// # });
    /// ```
    pub fn dedup_records(&self) -> usize {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SharedState for MemoryState {
    async fn acquire(&self, key: &str, rates: &[Rate]) -> Result<Slot> {
        let now = Instant::now();
        let mut all = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let windows = all.entry(key.to_owned()).or_default();
        windows.resize_with(rates.len(), VecDeque::new);
        let mut wait = Duration::ZERO;
        for (rate, sent) in rates.iter().zip(windows.iter_mut()) {
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= rate.per)
            {
                sent.pop_front();
            }
            if sent.len() as u32 >= rate.count {
                // The oldest send in the window leaves it at `oldest + per`.
                let oldest = sent.front().copied().unwrap_or(now);
                wait = wait.max((oldest + rate.per).saturating_duration_since(now));
            }
        }
        if wait > Duration::ZERO {
            return Ok(Slot::Wait(wait));
        }
        let mut remaining = u32::MAX;
        for (rate, sent) in rates.iter().zip(windows.iter_mut()) {
            sent.push_back(now);
            remaining = remaining.min(rate.count.saturating_sub(sent.len() as u32));
        }
        Ok(Slot::Taken { remaining })
    }

    async fn last_delivery(&self, key: &str) -> Result<Option<(String, DateTime<Utc>)>> {
        Ok(self
            .records()
            .live(key, Instant::now())
            .map(|r| (r.state.clone(), r.at)))
    }

    async fn record_delivery(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        keep: Duration,
    ) -> Result<()> {
        let now = Instant::now();
        let record = Record {
            state: state.to_owned(),
            at,
            expires: now.checked_add(keep).unwrap_or(now + YEAR),
        };
        self.records().insert(key, record, now);
        Ok(())
    }

    async fn claim(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        interval: Duration,
    ) -> Result<Claim> {
        let now = Instant::now();
        let mut records = self.records();
        let previous = records.live(key, now).map(|r| (r.state.clone(), r.at));
        if let Some(t) = holding(previous.as_ref(), state, at, interval) {
            return Ok(Claim::Held { at: t });
        }
        let record = Record {
            state: state.to_owned(),
            at,
            expires: now.checked_add(interval).unwrap_or(now + YEAR),
        };
        records.insert(key, record, now);
        Ok(Claim::Granted { previous })
    }

    async fn release(
        &self,
        key: &str,
        at: DateTime<Utc>,
        previous: Option<(String, DateTime<Utc>)>,
        keep: Duration,
    ) -> Result<()> {
        let now = Instant::now();
        let mut records = self.records();
        if records.map.get(key).is_none_or(|r| r.at != at) {
            return Ok(());
        }
        match previous {
            Some((state, at)) => {
                let expires = now.checked_add(keep).unwrap_or(now + YEAR);
                records.insert(key, Record { state, at, expires }, now);
            }
            None => {
                records.map.remove(key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sliding_windows_hold_every_rate() {
        let s = MemoryState::new();
        let rates = [Rate::per_second(2), Rate::per_minute(3)];
        assert_eq!(
            s.acquire("k", &rates).await.unwrap(),
            Slot::Taken { remaining: 1 }
        );
        assert_eq!(
            s.acquire("k", &rates).await.unwrap(),
            Slot::Taken { remaining: 0 }
        );
        assert_eq!(
            s.acquire("k", &rates).await.unwrap(),
            Slot::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            s.acquire("other", &rates).await.unwrap(),
            Slot::Taken { remaining: 1 }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            s.acquire("k", &rates).await.unwrap(),
            Slot::Taken { remaining: 0 }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        // The minute window is full now: wait until the first send leaves it.
        assert_eq!(
            s.acquire("k", &rates).await.unwrap(),
            Slot::Wait(Duration::from_secs(58))
        );
    }
}
