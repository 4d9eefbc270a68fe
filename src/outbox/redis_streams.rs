//! [`RedisStreams`]: the outbox in a Redis stream with a consumer group,
//! for hosts running several replicas.
//!
//! Every replica reads new entries through the consumer group, so each
//! entry goes to one replica. A replica says every poll that it still holds
//! its entries (`XCLAIM … JUSTID` of its own pending entries, which resets
//! their idle time); entries of a replica that stopped saying so (it died)
//! are taken over by another with `XAUTOCLAIM` once idle for
//! [`claim_after`](RedisStreams::claim_after). Members' progress is a hash
//! per entry, so the taker sends only what the dead replica had not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use redis::aio::ConnectionManager;

use super::{Entry, MemberState, OutboxStore};
use crate::error::{Error, ErrorKind, Result};

/// XADD unless full. KEYS: stream, bytes counter. ARGV: max entries, max
/// bytes, size, id, entry.
const APPEND: &str = r#"
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return redis.error_reply('outbox full: ' .. ARGV[1] .. ' entries')
end
local bytes = tonumber(redis.call('GET', KEYS[2]) or '0')
if bytes + tonumber(ARGV[3]) > tonumber(ARGV[2]) then
  return redis.error_reply('outbox full: ' .. ARGV[2] .. ' bytes')
end
redis.call('INCRBY', KEYS[2], ARGV[3])
return redis.call('XADD', KEYS[1], '*', 'id', ARGV[4], 'e', ARGV[5], 'n', ARGV[3])
"#;

/// Renews this consumer's own pending entries; returns those it no longer
/// owns. KEYS: stream. ARGV: group, consumer, stream ids...
const KEEP: &str = r#"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"#;

/// Finishes an entry (removed, or buried when ARGV[5] is set). KEYS:
/// stream, bytes counter, entry override, progress, dead hash, dead index
/// (scored by burial time). ARGV: group, stream id, size, id, dead entry or
/// '', max dead letters. The oldest dead letters beyond the bound go.
const FINISH: &str = r#"
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local deleted = redis.call('XDEL', KEYS[1], ARGV[2])
if deleted == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[3])
end
redis.call('DEL', KEYS[3], KEYS[4])
if ARGV[5] ~= '' then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[5], ARGV[4], ARGV[5])
  redis.call('ZADD', KEYS[6], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[4])
  local over = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[6])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[6], over)
    for i = 1, #popped, 2 do
      redis.call('HDEL', KEYS[5], popped[i])
    end
  end
end
return deleted
"#;

/// The outbox in Redis Streams (feature `redis`).
///
/// ```no_run
/// # async fn run() -> Result<(), alertkit::Error> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use alertkit::outbox::{OutboxOptions, RedisStreams};
/// let store = RedisStreams::connect("redis://127.0.0.1:6379/0", "alertkit")
///     .await?
///     .claim_after(Duration::from_secs(30));
/// let notifier = Arc::new(alertkit::Notifier::from_config(&alertkit::Config::default())?);
/// notifier.start_outbox(Arc::new(store), OutboxOptions::default())?;
/// # Ok(()) }
/// ```
pub struct RedisStreams {
    conn: ConnectionManager,
    stream: String,
    prefix: String,
    group: String,
    consumer: String,
    claim_after: Duration,
    timeout: Duration,
    max_entries: u64,
    max_bytes: u64,
    max_dead: u64,
    append: redis::Script,
    keep: redis::Script,
    finish: redis::Script,
    /// Entries this replica holds: id → (stream id, size).
    held: Mutex<HashMap<String, (String, u64)>>,
    cursor: Mutex<String>,
}

impl std::fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreams")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .field("claim_after", &self.claim_after)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: redis::RedisError, what: &str) -> Error {
    // RedisError's text never holds the URL (which may hold a password).
    Error::new(ErrorKind::Storage, format!("outbox redis {what}: {e}")).with_source(e)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

/// `[[sid, [field, value, ...]], ...]` → (sid, fields).
fn stream_entries(v: &Value) -> Vec<(String, HashMap<String, Vec<u8>>)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let sid = text(pair.first()?)?;
            let Value::Array(kv) = pair.get(1)? else {
                return None;
            };
            let fields = kv
                .chunks(2)
                .filter_map(|c| Some((text(c.first()?)?, bytes(c.get(1)?)?.to_vec())))
                .collect();
            Some((sid, fields))
        })
        .collect()
}

impl RedisStreams {
    /// Connects to `url`; keys start with `prefix:outbox:`. Creates the
    /// stream and its consumer group if they do not exist. Each value this
    /// returns is one consumer (one replica).
    ///
    /// ```
    /// use alertkit::outbox::RedisStreams;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // A URL that is not one fails before any connection.
    /// let e = RedisStreams::connect("not a url", "alertkit").await.unwrap_err();
    /// assert_eq!(e.field(), Some("redis_url"));
    /// # });
    /// ```
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let mut conn = crate::policy::redis_state::connect(
            url,
            Duration::from_secs(2),
            Duration::from_secs(5),
            ErrorKind::Storage,
        )
        .await?;
        let stream = format!("{prefix}:outbox:stream");
        let group = "alertkit".to_owned();
        let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(&group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(redis_error(e, "create the consumer group"));
        }
        let consumer = format!(
            "{}-{:016x}",
            std::process::id(),
            crate::channel::random_u128() as u64
        );
        Ok(RedisStreams {
            conn,
            stream,
            prefix: format!("{prefix}:outbox"),
            group,
            consumer,
            claim_after: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            max_entries: 1_000_000,
            max_bytes: 1 << 30,
            max_dead: 10_000,
            append: redis::Script::new(APPEND),
            keep: redis::Script::new(KEEP),
            finish: redis::Script::new(FINISH),
            held: Mutex::new(HashMap::new()),
            cursor: Mutex::new("0-0".to_owned()),
        })
    }

    /// How long an entry's holder may be silent before another replica
    /// takes it over (default 30 s). Keep it well above the outbox's
    /// [`poll`](super::OutboxOptions::poll), which is how often holders
    /// renew.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use std::time::Duration;
    /// use alertkit::outbox::RedisStreams;
    /// let store = RedisStreams::connect("redis://127.0.0.1:6379/0", "alertkit").await?
    ///     .claim_after(Duration::from_secs(10)); // poll (1 s) renews well within it
    /// # Ok(()) }
    /// ```
    pub fn claim_after(mut self, after: Duration) -> Self {
        self.claim_after = after.max(Duration::from_millis(100));
        self
    }

    /// At most `n` pending entries (default 1,000,000).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use alertkit::outbox::RedisStreams;
    /// let store = RedisStreams::connect("redis://127.0.0.1:6379/0", "alertkit").await?
    ///     .max_entries(50_000); // then enqueue fails with ErrorKind::Storage
    /// # Ok(()) }
    /// ```
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// At most `n` bytes of pending entries (default 1 GiB).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use alertkit::outbox::RedisStreams;
    /// let store = RedisStreams::connect("redis://127.0.0.1:6379/0", "alertkit").await?
    ///     .max_bytes(64 << 20); // then enqueue fails with ErrorKind::Storage
    /// # Ok(()) }
    /// ```
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// At most `n` dead letters; beyond, the oldest are deleted (default 10,000).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use alertkit::outbox::RedisStreams;
    /// let store = RedisStreams::connect("redis://127.0.0.1:6379/0", "alertkit").await?
    ///     .max_dead(1_000); // the oldest dead letters go beyond it
    /// # Ok(()) }
    /// ```
    pub fn max_dead(mut self, n: u64) -> Self {
        self.max_dead = n;
        self
    }

    /// This replica's consumer name in the group.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alertkit::Error> {
    /// use alertkit::outbox::RedisStreams;
    /// let a = RedisStreams::connect("redis://127.0.0.1:6379/0", "alertkit").await?;
    /// let b = RedisStreams::connect("redis://127.0.0.1:6379/0", "alertkit").await?;
    /// assert_ne!(a.consumer(), b.consumer()); // each value is one replica
    /// # Ok(()) }
    /// ```
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    fn key(&self, what: &str, id: &str) -> String {
        format!("{}:{what}:{id}", self.prefix)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u64)>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn call<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| redis_error(e, what)),
            Err(_) => Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "outbox redis {what}: no answer in {} ms",
                    self.timeout.as_millis()
                ),
            )),
        }
    }

    /// Stream entries as entries, with their latest state and progress.
    async fn load(
        &self,
        raw: Vec<(String, HashMap<String, Vec<u8>>)>,
    ) -> Result<Vec<(String, u64, Entry)>> {
        // Every entry's latest state and progress in one round trip.
        let parsed: Vec<(String, String, u64, Vec<u8>)> = raw
            .into_iter()
            .filter_map(|(sid, mut fields)| {
                let id = String::from_utf8_lossy(&fields.remove("id")?).into_owned();
                let body = fields.remove("e")?;
                let size = fields
                    .get("n")
                    .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
                    .unwrap_or(0u64);
                Some((sid, id, size, body))
            })
            .collect();
        if parsed.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (_, id, _, _) in &parsed {
            pipe.get(self.key("entry", id))
                .hgetall(self.key("progress", id));
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = self
            .call("read entries", pipe.query_async(&mut conn))
            .await?;
        if replies.len() != 2 * parsed.len() {
            return Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "outbox redis read entries: {} answers for {} entries",
                    replies.len(),
                    parsed.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(parsed.len());
        for ((sid, _, size, body), pair) in parsed.into_iter().zip(replies.chunks(2)) {
            let latest: Option<Vec<u8>> = pair
                .first()
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .flatten();
            let progress: HashMap<String, Vec<u8>> = pair
                .get(1)
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .unwrap_or_default();
            let mut e = match Entry::from_bytes(latest.as_deref().unwrap_or(&body)) {
                Ok(e) => e,
                Err(err) => {
                    tracing::error!(error = %err, sid = %sid, "outbox redis: skipping an unreadable entry");
                    continue;
                }
            };
            for (member, state) in progress {
                if let Ok(s) = serde_json::from_slice::<MemberState>(&state) {
                    e.members.insert(member, s);
                }
            }
            out.push((sid, size, e));
        }
        Ok(out)
    }

    async fn finish_entry(&self, id: &str, dead: Option<Vec<u8>>) -> Result<()> {
        let held = self.held().remove(id);
        let Some((sid, size)) = held else {
            return Err(Error::new(
                ErrorKind::Storage,
                format!("outbox redis: entry {id} is not held by this replica"),
            ));
        };
        let mut conn = self.conn.clone();
        let mut inv = self.finish.prepare_invoke();
        inv.key(&self.stream)
            .key(format!("{}:bytes", self.prefix))
            .key(self.key("entry", id))
            .key(self.key("progress", id))
            .key(format!("{}:dead", self.prefix))
            .key(format!("{}:dead-index", self.prefix))
            .arg(&self.group)
            .arg(&sid)
            .arg(size)
            .arg(id)
            .arg(dead.unwrap_or_default())
            .arg(self.max_dead);
        let _: i64 = self
            .call("finish an entry", inv.invoke_async(&mut conn))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for RedisStreams {
    async fn append(&self, entry: &Entry) -> Result<()> {
        let body = entry.to_bytes()?;
        let mut conn = self.conn.clone();
        let mut inv = self.append.prepare_invoke();
        inv.key(&self.stream)
            .key(format!("{}:bytes", self.prefix))
            .arg(self.max_entries)
            .arg(self.max_bytes)
            .arg(body.len())
            .arg(&entry.id)
            .arg(body);
        let _: String = self.call("append", inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn claim(&self, max: usize) -> Result<Vec<Entry>> {
        let mut conn = self.conn.clone();
        let mut raw = Vec::new();
        // Entries a silent replica left behind first.
        let cursor = self
            .cursor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let v: Value = self
            .call(
                "take over entries",
                redis::cmd("XAUTOCLAIM")
                    .arg(&self.stream)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(u64::try_from(self.claim_after.as_millis()).unwrap_or(u64::MAX))
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(max)
                    .query_async(&mut conn),
            )
            .await?;
        if let Value::Array(parts) = &v {
            if let Some(next) = parts.first().and_then(text) {
                *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = next;
            }
            if let Some(entries) = parts.get(1) {
                let taken = stream_entries(entries);
                if !taken.is_empty() {
                    tracing::warn!(
                        entries = taken.len(),
                        "outbox redis: took over entries of a silent replica"
                    );
                }
                raw.extend(taken);
            }
        }
        if raw.len() < max {
            let v: Value = self
                .call(
                    "read new entries",
                    redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(&self.group)
                        .arg(&self.consumer)
                        .arg("COUNT")
                        .arg(max - raw.len())
                        .arg("STREAMS")
                        .arg(&self.stream)
                        .arg(">")
                        .query_async(&mut conn),
                )
                .await?;
            // [[stream, entries]] (RESP2) or {stream: entries} (RESP3).
            match &v {
                Value::Array(streams) => {
                    for s in streams {
                        if let Value::Array(pair) = s
                            && let Some(entries) = pair.get(1)
                        {
                            raw.extend(stream_entries(entries));
                        }
                    }
                }
                Value::Map(m) => {
                    for (_, entries) in m {
                        raw.extend(stream_entries(entries));
                    }
                }
                _ => {}
            }
        }
        let loaded = self.load(raw).await?;
        let mut held = self.held();
        Ok(loaded
            .into_iter()
            .map(|(sid, size, e)| {
                held.insert(e.id.clone(), (sid, size));
                e
            })
            .collect())
    }

    async fn keep(&self, ids: &[String]) -> Result<Vec<String>> {
        let sids: Vec<(String, String)> = {
            let held = self.held();
            ids.iter()
                .filter_map(|id| held.get(id).map(|(sid, _)| (sid.clone(), id.clone())))
                .collect()
        };
        if sids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut inv = self.keep.prepare_invoke();
        inv.key(&self.stream).arg(&self.group).arg(&self.consumer);
        for (sid, _) in &sids {
            inv.arg(sid);
        }
        let lost: Vec<String> = self
            .call("renew held entries", inv.invoke_async(&mut conn))
            .await?;
        let by_sid: HashMap<&str, &str> =
            sids.iter().map(|(s, i)| (s.as_str(), i.as_str())).collect();
        let lost: Vec<String> = lost
            .iter()
            .filter_map(|sid| by_sid.get(sid.as_str()).map(|id| (*id).to_owned()))
            .collect();
        let mut held = self.held();
        for id in &lost {
            held.remove(id);
        }
        Ok(lost)
    }

    async fn record_member(&self, id: &str, member: &str, state: &MemberState) -> Result<()> {
        let body = serde_json::to_vec(state).map_err(|e| {
            Error::new(ErrorKind::Internal, "cannot serialize a member state").with_source(e)
        })?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .call(
                "record a member",
                redis::cmd("HSET")
                    .arg(self.key("progress", id))
                    .arg(member)
                    .arg(body)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn record_members(&self, id: &str, states: &[(String, MemberState)]) -> Result<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.key("progress", id));
        for (member, state) in states {
            let body = serde_json::to_vec(state).map_err(|e| {
                Error::new(ErrorKind::Internal, "cannot serialize a member state").with_source(e)
            })?;
            cmd.arg(member).arg(body);
        }
        let mut conn = self.conn.clone();
        let _: i64 = self
            .call("record members", cmd.query_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn reschedule(&self, entry: &Entry) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: () = self
            .call(
                "reschedule",
                redis::cmd("SET")
                    .arg(self.key("entry", &entry.id))
                    .arg(entry.to_bytes()?)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.finish_entry(id, None).await
    }

    async fn bury(&self, entry: &Entry) -> Result<()> {
        self.finish_entry(&entry.id, Some(entry.to_bytes()?)).await
    }

    async fn pending(&self, max: usize) -> Result<Vec<Entry>> {
        let mut conn = self.conn.clone();
        let v: Value = self
            .call(
                "list pending",
                redis::cmd("XRANGE")
                    .arg(&self.stream)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(max)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(self
            .load(stream_entries(&v))
            .await?
            .into_iter()
            .map(|(_, _, e)| e)
            .collect())
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<Entry>> {
        let mut conn = self.conn.clone();
        let all: HashMap<String, Vec<u8>> = self
            .call(
                "list dead letters",
                redis::cmd("HGETALL")
                    .arg(format!("{}:dead", self.prefix))
                    .query_async(&mut conn),
            )
            .await?;
        let mut out: Vec<Entry> = all
            .values()
            .filter_map(|b| Entry::from_bytes(b).ok())
            .collect();
        out.sort_by_key(|e| e.accepted_at);
        out.truncate(max);
        Ok(out)
    }

    async fn revive(&self, entry: &Entry) -> Result<bool> {
        let mut conn = self.conn.clone();
        let dead = format!("{}:dead", self.prefix);
        let exists: bool = self
            .call(
                "revive",
                redis::cmd("HEXISTS")
                    .arg(&dead)
                    .arg(&entry.id)
                    .query_async(&mut conn),
            )
            .await?;
        if !exists {
            return Ok(false);
        }
        // Pending first, then out of the dead letters: a failure between
        // the two leaves a copy, never nothing.
        self.append(entry).await?;
        let _: (i64, i64) = self
            .call(
                "revive",
                redis::pipe()
                    .atomic()
                    .cmd("HDEL")
                    .arg(&dead)
                    .arg(&entry.id)
                    .cmd("ZREM")
                    .arg(format!("{}:dead-index", self.prefix))
                    .arg(&entry.id)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(true)
    }

    async fn purge(&self, id: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let (removed, _): (i64, i64) = self
            .call(
                "drop a dead letter",
                redis::pipe()
                    .atomic()
                    .cmd("HDEL")
                    .arg(format!("{}:dead", self.prefix))
                    .arg(id)
                    .cmd("ZREM")
                    .arg(format!("{}:dead-index", self.prefix))
                    .arg(id)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(removed > 0)
    }
}
