//! [`SharedState`] in Redis (feature `redis`): several scheduler replicas
//! share one robot's budget and one dedup window.
//!
//! Rate windows are sorted sets scored by Redis's own clock (`TIME`, so the
//! replicas' clocks need not agree), checked and updated in one Lua script,
//! so two processes can never both take the last slot. Dedup claims are one
//! Lua script too: of many replicas sending the same alert, one sends.
//!
//! **When Redis fails** (refused, reset, or no answer within
//! [`timeout`](RedisState::timeout), 1 s by default) alerting goes on: by
//! default every call falls back to an in-process [`MemoryState`] (this
//! process's own budget and dedup window), a warning is logged once per
//! outage and its end is logged too, and each failed call counts in the
//! `alertkit_shared_state_failures_total{op}` counter (feature `metrics`).
//! A host that prefers not to send past an unknown budget chooses
//! [`fail_closed`](RedisState::fail_closed): rate-limited sends then fail
//! (retryable) while Redis is down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

use super::state::{Claim, MemoryState, SharedState, Slot};
use crate::channel::Rate;
use crate::error::{Error, ErrorKind, Result};

// Entries scored in the future (Redis's clock stepped back, or a bad entry)
// are dropped, and no wait is longer than the window: a window can never
// freeze a destination for longer than itself.
const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local wait = 0
for i = 1, n do
  local count = tonumber(ARGV[2*i-1])
  local per = tonumber(ARGV[2*i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - per)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '(' .. now, '+inf')
  if redis.call('ZCARD', KEYS[i]) >= count then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + per - now
    if w < 1 then w = 1 end
    if w > per then w = per end
    if w > wait then wait = w end
  end
end
if wait > 0 then return {0, wait} end
local remaining = -1
for i = 1, n do
  local count = tonumber(ARGV[2*i-1])
  local per = tonumber(ARGV[2*i])
  redis.call('ZADD', KEYS[i], now, ARGV[2*n+1])
  redis.call('PEXPIRE', KEYS[i], per)
  local left = count - redis.call('ZCARD', KEYS[i])
  if remaining < 0 or left < remaining then remaining = left end
end
return {1, remaining}
"#;

// KEYS[1] the record; ARGV: state, at (ms), interval (ms), the new value.
// Values are `state|rfc3339|ms`.
const CLAIM: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then
  local s, t = string.match(v, '^(.*)|[^|]*|(%-?%d+)$')
  if s == ARGV[1] and t and tonumber(ARGV[2]) - tonumber(t) < tonumber(ARGV[3]) then
    return {0, v}
  end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
return {1, v or ''}
"#;

// KEYS[1] the record; ARGV: the claim's `|ms` suffix, the previous value
// ('' for none), its keep (ms). Only a record still holding the claim is
// touched.
const RELEASE: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, -string.len(ARGV[1])) == ARGV[1] then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
return 1
"#;

/// Rate windows and dedup records in Redis.
///
/// ```no_run
/// # async fn run() -> Result<(), alertkit::Error> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use alertkit::policy::RedisState;
/// let state = RedisState::connect("redis://127.0.0.1:6379/0", "alertkit")
///     .await?
///     .timeout(Duration::from_millis(500)); // fail open after 500 ms without an answer
/// let notifier = alertkit::Notifier::with_state(Default::default(), Default::default(), Arc::new(state));
/// # let _ = notifier; Ok(()) }
/// ```
pub struct RedisState {
    conn: ConnectionManager,
    prefix: String,
    acquire: redis::Script,
    claim: redis::Script,
    release: redis::Script,
    seq: AtomicU64,
    timeout: Duration,
    fail_open: bool,
    local: MemoryState,
    outage: AtomicBool,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("fail_open", &self.fail_open)
            .field("outage", &self.outage.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn redis_error(e: redis::RedisError, what: &str) -> Error {
    // RedisError's text never holds the URL (which may hold a password).
    Error::new(ErrorKind::Transport, format!("redis {what}: {e}")).with_source(e)
}

/// A connection manager for `url` (one retry, the given deadlines), shared
/// by [`RedisState`] and the outbox's Redis store. A bad URL is a config
/// error on `redis_url` that never shows the URL (it may hold a password);
/// a failed connection is an error of `kind`.
pub(crate) async fn connect(
    url: &str,
    connect_timeout: Duration,
    response_timeout: Duration,
    kind: ErrorKind,
) -> Result<ConnectionManager> {
    let client = redis::Client::open(url)
        .map_err(|_| Error::config("redis_url", "not a valid Redis URL"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| Error::new(kind, format!("redis connect: {e}")).with_source(e))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisState {
    /// Connects to `url` (`redis://[:password@]host:port/db`); keys start with `prefix:`.
    ///
    /// ```
    /// use alertkit::policy::RedisState;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let e = RedisState::connect("not a url", "alertkit").await.unwrap_err();
    /// assert_eq!(e.field(), Some("redis_url")); // refused before any connection
    /// # });
    /// ```
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let conn = connect(
            url,
            Duration::from_secs(1),
            Duration::from_secs(1),
            ErrorKind::Transport,
        )
        .await?;
        Ok(RedisState {
            conn,
            prefix: prefix.to_owned(),
            acquire: redis::Script::new(ACQUIRE),
            claim: redis::Script::new(CLAIM),
            release: redis::Script::new(RELEASE),
            seq: AtomicU64::new(0),
            timeout: Duration::from_secs(1),
            fail_open: true,
            local: MemoryState::new(),
            outage: AtomicBool::new(false),
        })
    }

    /// How long one call waits for Redis before it counts as failed (default 1 s).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use std::time::Duration;
    /// use alertkit::policy::RedisState;
    /// let state = RedisState::connect("redis://127.0.0.1:6379/0", "alertkit").await?
    ///     .timeout(Duration::from_millis(300)); // then this process's own limiter takes over
    /// assert!(!state.in_outage());
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// While Redis fails, fail rate-limited sends (retryable) instead of
    /// falling back to this process's own limiter and dedup. Dedup still
    /// fails open: a duplicate beats a lost alert.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use alertkit::policy::RedisState;
    /// // Never exceed the shared budget, even if sends fail while Redis is down.
    /// let state = RedisState::connect("redis://127.0.0.1:6379/0", "alertkit").await?.fail_closed();
    /// assert!(!state.in_outage());
    /// # Ok(()) }
    /// ```
    pub fn fail_closed(mut self) -> Self {
        self.fail_open = false;
        self
    }

    /// Whether the last call to Redis failed (an outage in progress).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use alertkit::policy::RedisState;
    /// let state = RedisState::connect("redis://127.0.0.1:6379/0", "alertkit").await?;
    /// assert!(!state.in_outage()); // a health check can report it
    /// # Ok(()) }
    /// ```
    pub fn in_outage(&self) -> bool {
        self.outage.load(Ordering::Relaxed)
    }

    /// Runs one Redis call under the time limit, keeping the outage flag.
    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(e, op)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("redis {op}: no answer in {} ms", self.timeout.as_millis()),
            )),
        };
        match &result {
            Ok(_) => {
                if self.outage.swap(false, Ordering::Relaxed) {
                    tracing::warn!(prefix = %self.prefix, "redis is reachable again; shared rate limits and dedup resumed");
                }
            }
            Err(e) => {
                #[cfg(feature = "metrics")]
                metrics::counter!("alertkit_shared_state_failures_total", "op" => op).increment(1);
                if !self.outage.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        prefix = %self.prefix,
                        error = %e,
                        fail_open = self.fail_open,
                        "redis failed; until it is back, rate limits and dedup are this process's own{}",
                        if self.fail_open { "" } else { " (rate-limited sends fail: fail_closed)" }
                    );
                }
            }
        }
        result
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}:{key}", self.prefix)
    }
}

fn value(state: &str, at: DateTime<Utc>) -> String {
    format!("{state}|{}|{}", at.to_rfc3339(), at.timestamp_millis())
}

fn parse(v: &str) -> Option<(String, DateTime<Utc>)> {
    let (state, rest) = v.split_once('|')?;
    let at = rest.split('|').next()?;
    Some((
        state.to_owned(),
        DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
    ))
}

#[async_trait]
impl SharedState for RedisState {
    async fn acquire(&self, key: &str, rates: &[Rate]) -> Result<Slot> {
        if rates.is_empty() {
            return Ok(Slot::Taken {
                remaining: u32::MAX,
            });
        }
        let mut inv = self.acquire.prepare_invoke();
        for i in 0..rates.len() {
            inv.key(self.key("rl", &format!("{key}:{i}")));
        }
        for r in rates {
            inv.arg(r.count).arg(millis(r.per));
        }
        let member = format!(
            "{}-{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        inv.arg(member);
        let mut conn = self.conn.clone();
        let answer: Result<(i64, i64)> = self.call("acquire", inv.invoke_async(&mut conn)).await;
        match answer {
            Ok((1, n)) => Ok(Slot::Taken {
                remaining: u32::try_from(n.max(0)).unwrap_or(u32::MAX),
            }),
            Ok((_, n)) => Ok(Slot::Wait(Duration::from_millis(
                u64::try_from(n.max(1)).unwrap_or(1),
            ))),
            Err(_) if self.fail_open => self.local.acquire(key, rates).await,
            Err(e) => Err(e),
        }
    }

    async fn last_delivery(&self, key: &str) -> Result<Option<(String, DateTime<Utc>)>> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(self.key("dd", key)).clone();
        match self
            .call::<Option<String>>("get", cmd.query_async(&mut conn))
            .await
        {
            Ok(v) => Ok(v.as_deref().and_then(parse)),
            Err(_) => self.local.last_delivery(key).await,
        }
    }

    async fn record_delivery(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        keep: Duration,
    ) -> Result<()> {
        // Kept locally too, so an outage later still knows recent deliveries.
        self.local.record_delivery(key, state, at, keep).await?;
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(self.key("dd", key))
            .arg(value(state, at))
            .arg("PX")
            .arg(millis(keep))
            .clone();
        // A failed write is counted and logged by `call`; the local record
        // above serves until Redis is back.
        let _ = self.call::<()>("set", cmd.query_async(&mut conn)).await;
        Ok(())
    }

    async fn claim(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        interval: Duration,
    ) -> Result<Claim> {
        let mut inv = self.claim.prepare_invoke();
        inv.key(self.key("dd", key))
            .arg(state)
            .arg(at.timestamp_millis())
            .arg(millis(interval))
            .arg(value(state, at));
        let mut conn = self.conn.clone();
        let answer: Result<(i64, String)> = self.call("claim", inv.invoke_async(&mut conn)).await;
        match answer {
            Ok((1, previous)) => {
                // Mirrored locally, for an outage to come.
                let _ = self.local.claim(key, state, at, interval).await;
                Ok(Claim::Granted {
                    previous: parse(&previous),
                })
            }
            Ok((_, holder)) => Ok(match parse(&holder) {
                Some((_, at)) => Claim::Held { at },
                None => Claim::Held { at },
            }),
            // Dedup always fails open, to this process's own records.
            Err(_) => self.local.claim(key, state, at, interval).await,
        }
    }

    async fn release(
        &self,
        key: &str,
        at: DateTime<Utc>,
        previous: Option<(String, DateTime<Utc>)>,
        keep: Duration,
    ) -> Result<()> {
        let _ = self.local.release(key, at, previous.clone(), keep).await;
        let mut inv = self.release.prepare_invoke();
        inv.key(self.key("dd", key))
            .arg(format!("|{}", at.timestamp_millis()))
            .arg(previous.map(|(s, t)| value(&s, t)).unwrap_or_default())
            .arg(millis(keep));
        let mut conn = self.conn.clone();
        self.call::<i64>("release", inv.invoke_async(&mut conn))
            .await
            .map(|_| ())
    }
}
