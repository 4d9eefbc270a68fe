//! [`SharedState`] in Redis (feature `redis`): several scheduler replicas
//! share one robot's budget and one dedup window.
//!
//! Rate windows are sorted sets scored by Redis's own clock (`TIME`, so the
//! replicas' clocks need not agree), checked and updated in one Lua script,
//! so two processes can never both take the last slot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

use super::state::{SharedState, Slot};
use crate::channel::Rate;
use crate::error::{Error, ErrorKind, Result};

const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local wait = 0
for i = 1, n do
  local count = tonumber(ARGV[2*i-1])
  local per = tonumber(ARGV[2*i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - per)
  if redis.call('ZCARD', KEYS[i]) >= count then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + per - now
    if w < 1 then w = 1 end
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

/// Rate windows and dedup records in Redis.
///
/// ```no_run
/// # async fn run() -> Result<(), alertkit::Error> {
/// use std::sync::Arc;
/// use alertkit::policy::RedisState;
/// let state = RedisState::connect("redis://127.0.0.1:6379/0", "alertkit").await?;
/// let notifier = alertkit::Notifier::with_state(Default::default(), Default::default(), Arc::new(state));
/// # let _ = notifier; Ok(()) }
/// ```
pub struct RedisState {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    seq: AtomicU64,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: redis::RedisError, what: &str) -> Error {
    // RedisError's text never holds the URL (which may hold a password).
    Error::new(ErrorKind::Transport, format!("redis {what}: {e}")).with_source(e)
}

impl RedisState {
    /// Connects to `url` (`redis://[:password@]host:port/db`); keys start with `prefix:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|_| Error::config("redis_url", "not a valid Redis URL"))?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(|e| redis_error(e, "connect"))?;
        Ok(RedisState {
            conn,
            prefix: prefix.to_owned(),
            script: redis::Script::new(ACQUIRE),
            seq: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl SharedState for RedisState {
    async fn acquire(&self, key: &str, rates: &[Rate]) -> Result<Slot> {
        if rates.is_empty() {
            return Ok(Slot::Taken {
                remaining: u32::MAX,
            });
        }
        let mut inv = self.script.prepare_invoke();
        for i in 0..rates.len() {
            inv.key(format!("{}:rl:{key}:{i}", self.prefix));
        }
        for r in rates {
            inv.arg(r.count)
                .arg(u64::try_from(r.per.as_millis()).unwrap_or(u64::MAX));
        }
        let member = format!(
            "{}-{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        inv.arg(member);
        let mut conn = self.conn.clone();
        let (taken, n): (i64, i64) = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error(e, "acquire"))?;
        Ok(if taken == 1 {
            Slot::Taken {
                remaining: u32::try_from(n.max(0)).unwrap_or(u32::MAX),
            }
        } else {
            Slot::Wait(Duration::from_millis(u64::try_from(n.max(1)).unwrap_or(1)))
        })
    }

    async fn last_delivery(&self, key: &str) -> Result<Option<(String, DateTime<Utc>)>> {
        let mut conn = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{}:dd:{key}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(e, "get"))?;
        Ok(v.and_then(|v| {
            let (state, at) = v.split_once('|')?;
            Some((
                state.to_owned(),
                DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            ))
        }))
    }

    async fn record_delivery(
        &self,
        key: &str,
        state: &str,
        at: DateTime<Utc>,
        keep: Duration,
    ) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(format!("{}:dd:{key}", self.prefix))
            .arg(format!("{state}|{}", at.to_rfc3339()))
            .arg("PX")
            .arg(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(e, "set"))?;
        Ok(())
    }
}
