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

/// The answer to a request for a send slot.
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
#[async_trait]
pub trait SharedState: Send + Sync + std::fmt::Debug + 'static {
    /// Takes one slot in every window of `rates` for `key`, or says how long
    /// to wait until all have room. Sliding windows: at most `count` slots
    /// in any span of `per`.
    async fn acquire(&self, key: &str, rates: &[Rate]) -> Result<Slot>;

    /// The alert state last delivered under `key` and when.
    async fn last_delivery(&self, key: &str) -> Result<Option<(String, DateTime<Utc>)>>;

    /// Records a delivery of `state` under `key`, kept at least `keep`.
    async fn record_delivery(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        keep: Duration,
    ) -> Result<()>;
}

/// The in-process default.
#[derive(Debug, Default)]
pub struct MemoryState {
    windows: Mutex<HashMap<String, Vec<VecDeque<Instant>>>>,
    deliveries: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        MemoryState::default()
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
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned())
    }

    async fn record_delivery(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        _keep: Duration,
    ) -> Result<()> {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), (state.to_owned(), at));
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
