//! [`Journal`]: the embedded outbox store, a redb database in a directory
//! the host names.
//!
//! Why redb: pure Rust (no C toolchain, one TLS-free dependency tree), ACID
//! with copy-on-write B-trees and a checksummed commit, `Durability::Immediate`
//! (fsync before `commit` returns), crash-safe without a recovery step we
//! would have to write, and a file lock so two processes never share one
//! journal. SQLite would do as well but brings a C build and a second way of
//! doing everything; a hand-written log would need its own recovery.
//!
//! Writes go through one writer thread that commits every request waiting
//! at the time in one transaction (group commit): one fsync for a burst of
//! enqueues, and every caller is answered only after it.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use super::{Entry, MemberState, OutboxStore};
use crate::error::{Error, ErrorKind, Result};

/// id → the entry as appended or last rescheduled.
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// `id \0 member` → that member's final state.
const PROGRESS: TableDefinition<&str, &[u8]> = TableDefinition::new("progress");
/// `nanos since epoch (20 digits) id` → a dead letter, oldest first.
const DEAD: TableDefinition<&str, &[u8]> = TableDefinition::new("dead");

/// The embedded outbox store: a redb database (`outbox.redb`) in a
/// directory. One process at a time: a second [`open`](Journal::open) of
/// the same directory fails while the first holds it (a process that died
/// holds nothing).
///
/// Bounded: [`max_entries`](Journal::max_entries) pending entries and
/// [`max_bytes`](Journal::max_bytes) of them (then `enqueue` fails with
/// [`ErrorKind::Storage`]), [`max_dead`](Journal::max_dead) dead letters
/// (then the oldest go, logged).
///
/// ```
/// use alertkit::outbox::Journal;
/// let dir = std::env::temp_dir().join(format!("alertkit-journal-doc-{}", std::process::id()));
/// let journal = Journal::open(&dir).unwrap().max_entries(50_000);
/// assert!(Journal::open(&dir).is_err()); // held by `journal`
/// drop(journal);
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    db: Arc<Database>,
    writer: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    mem: Mutex<Mem>,
    // Atomics: a bound set on any clone applies to all of them.
    max_entries: AtomicUsize,
    max_bytes: AtomicU64,
    max_dead: AtomicUsize,
}

/// What the journal knows without reading the file.
#[derive(Debug, Default)]
struct Mem {
    /// Entries nobody claimed yet, in order.
    unclaimed: VecDeque<Entry>,
    /// Pending entries (claimed or not) and their sizes.
    sizes: std::collections::HashMap<String, u64>,
    bytes: u64,
    claimed: HashSet<String>,
}

enum Op {
    Put(String, Vec<u8>),
    /// `id`, then `(member, state)`s.
    Progress(String, Vec<(String, Vec<u8>)>),
    Remove(String),
    /// `id`, the dead entry, the bound on dead letters.
    Bury(String, Vec<u8>, usize),
    Revive(String, Vec<u8>),
    Purge(String),
}

struct Job {
    op: Op,
    done: tokio::sync::oneshot::Sender<Result<bool>>,
}

fn storage(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Storage, format!("outbox journal: {what}: {e}"))
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, with its entries as
    /// a crash or shutdown left them.
    ///
    /// ```
    /// use alertkit::outbox::{Journal, OutboxStore};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = std::env::temp_dir().join(format!("alertkit-doc-open-{}", std::process::id()));
    /// let journal = Journal::open(&dir).unwrap(); // creates the directory
    /// assert!(journal.pending(10).await.unwrap().is_empty());
    /// assert!(journal.path().exists());
    /// # drop(journal);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Journal> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| storage("cannot create the directory", e))?;
        let path = dir.join("outbox.redb");
        let db = Database::create(&path).map_err(|e| storage("cannot open", e))?;
        // Create the tables, so that reads find them.
        let w = db.begin_write().map_err(|e| storage("cannot write", e))?;
        for t in [ENTRIES, PROGRESS, DEAD] {
            w.open_table(t)
                .map_err(|e| storage("cannot open a table", e))?;
        }
        w.commit().map_err(|e| storage("cannot commit", e))?;
        let db = Arc::new(db);
        let mut mem = Mem::default();
        for e in load(&db, ENTRIES, usize::MAX)? {
            let size = e.to_bytes().map(|b| b.len() as u64).unwrap_or(0);
            mem.bytes = mem.bytes.saturating_add(size);
            mem.sizes.insert(e.id.clone(), size);
            mem.unclaimed.push_back(e);
        }
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let wdb = db.clone();
        let thread = std::thread::Builder::new()
            .name("alertkit-journal".into())
            .spawn(move || writer(&wdb, &rx))
            .map_err(|e| storage("cannot start the writer thread", e))?;
        Ok(Journal {
            inner: Arc::new(Inner {
                path,
                db,
                writer: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                mem: Mutex::new(mem),
                max_entries: AtomicUsize::new(100_000),
                max_bytes: AtomicU64::new(256 << 20),
                max_dead: AtomicUsize::new(10_000),
            }),
        })
    }

    /// At most `n` pending entries (default 100,000).
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, ErrorKind, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-maxent-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "slow", "type": "recording", "params": {"delay_ms": 5000}}],
    ///                                    "groups": [{"name": "g", "instances": ["slow"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap().max_entries(1)), OutboxOptions::default()).unwrap();
    /// notifier.enqueue("g", &Alert::new("disk full")).await.unwrap();
    /// let e = notifier.enqueue("g", &Alert::new("cpu hot")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::Storage); // full: not accepted
    /// # notifier.shutdown(Duration::from_millis(10)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub fn max_entries(self, n: usize) -> Self {
        self.inner.max_entries.store(n.max(1), Ordering::Relaxed);
        self
    }

    /// At most `n` bytes of pending entries (default 256 MiB).
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, ErrorKind, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-maxbytes-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
    ///                                    "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap().max_bytes(64)), OutboxOptions::default()).unwrap();
    /// let e = notifier.enqueue("g", &Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::Storage); // one entry is more than 64 bytes
    /// # notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub fn max_bytes(self, n: u64) -> Self {
        self.inner.max_bytes.store(n.max(1), Ordering::Relaxed);
        self
    }

    /// At most `n` dead letters; beyond, the oldest are deleted (default 10,000).
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use alertkit::outbox::{Journal, OutboxOptions};
    /// use alertkit::{Alert, Config, Http, Notifier};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("alertkit-doc-maxdead-{}", std::process::id()));
    /// let config = Config::from_json(r#"{"instances": [{"name": "broken", "type": "recording", "params": {"fail": true}}],
    ///                                    "groups": [{"name": "g", "instances": ["broken"]}]}"#).unwrap();
    /// let notifier = Arc::new(Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap());
    /// notifier.start_outbox(Arc::new(Journal::open(&dir).unwrap().max_dead(1)), OutboxOptions::default()).unwrap();
    /// notifier.enqueue("g", &Alert::new("first")).await.unwrap();
    /// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap().is_empty() { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
    /// notifier.enqueue("g", &Alert::new("second")).await.unwrap();
    /// tokio::time::timeout(Duration::from_secs(10), async { while notifier.dead_letters().await.unwrap()[0].alert.title != "second" { tokio::time::sleep(Duration::from_millis(10)).await; } }).await.unwrap();
    /// assert_eq!(notifier.dead_letters().await.unwrap().len(), 1); // the oldest went
    /// # notifier.shutdown(Duration::from_secs(5)).await;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # });
    /// ```
    pub fn max_dead(self, n: usize) -> Self {
        self.inner.max_dead.store(n, Ordering::Relaxed);
        self
    }

    /// The journal file.
    ///
    /// ```
    /// use alertkit::outbox::Journal;
    /// let dir = std::env::temp_dir().join(format!("alertkit-doc-path-{}", std::process::id()));
    /// let journal = Journal::open(&dir).unwrap();
    /// assert_eq!(journal.path(), dir.join("outbox.redb"));
    /// # drop(journal);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn mem(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.inner.mem.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(&self, op: Op) -> Result<bool> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let sent = match &*self.inner.writer.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(Job { op, done }).is_ok(),
            None => false,
        };
        if !sent {
            return Err(Error::new(
                ErrorKind::Storage,
                "outbox journal: the writer stopped",
            ));
        }
        rx.await
            .map_err(|_| Error::new(ErrorKind::Storage, "outbox journal: the writer stopped"))?
    }

    fn forget(&self, id: &str) {
        let mut mem = self.mem();
        if let Some(size) = mem.sizes.remove(id) {
            mem.bytes = mem.bytes.saturating_sub(size);
        }
        // A claimed entry is not in the queue: no scan for it.
        if !mem.claimed.remove(id) {
            mem.unclaimed.retain(|e| e.id != id);
        }
    }
}

impl Drop for Inner {
    /// Stops the writer and waits for it, so the file is closed (and its
    /// lock released) when the last clone is dropped.
    fn drop(&mut self) {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// How long the writer waits for more writes to join a commit.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// The writer thread: commits every job waiting in one transaction.
fn writer(db: &Database, rx: &std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        // What arrives within GATHER of the first write shares its commit
        // (and fsync): a commit's fixed cost (page allocation, freed-page
        // bookkeeping, the fsync) is paid once per burst instead of once
        // per few writes, for at most GATHER more latency per enqueue.
        let until = std::time::Instant::now() + GATHER;
        while jobs.len() < 4096 {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        match commit(db, &jobs) {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.done.send(Ok(r));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox journal: a write failed");
                for job in jobs {
                    let _ = job
                        .done
                        .send(Err(Error::new(ErrorKind::Storage, e.to_string())));
                }
            }
        }
    }
}

fn commit(db: &Database, jobs: &[Job]) -> std::result::Result<Vec<bool>, redb::Error> {
    let mut w = db.begin_write()?;
    // fsync before commit returns (redb's default, stated).
    if let Err(e) = w.set_durability(Durability::Immediate) {
        return Err(redb::Error::from(redb::StorageError::Io(
            std::io::Error::other(e.to_string()),
        )));
    }
    let mut results = Vec::with_capacity(jobs.len());
    {
        let mut entries = w.open_table(ENTRIES)?;
        let mut progress = w.open_table(PROGRESS)?;
        let mut dead = w.open_table(DEAD)?;
        for job in jobs {
            let r = match &job.op {
                Op::Put(id, bytes) => {
                    entries.insert(id.as_str(), bytes.as_slice())?;
                    true
                }
                Op::Progress(id, states) => {
                    // Only for an entry still pending (a late write after
                    // removal would leave an orphan).
                    if entries.get(id.as_str())?.is_some() {
                        for (member, bytes) in states {
                            let key = format!("{id}\0{member}");
                            progress.insert(key.as_str(), bytes.as_slice())?;
                        }
                    }
                    true
                }
                Op::Remove(id) => {
                    let found = entries.remove(id.as_str())?.is_some();
                    remove_progress(&mut progress, id)?;
                    found
                }
                Op::Bury(id, bytes, max_dead) => {
                    entries.remove(id.as_str())?;
                    remove_progress(&mut progress, id)?;
                    let key = format!("{:020}{id}", now_nanos());
                    dead.insert(key.as_str(), bytes.as_slice())?;
                    // Bounded in the same commit: the oldest go.
                    let len = usize::try_from(dead.len()?).unwrap_or(usize::MAX);
                    let over = len.saturating_sub(*max_dead);
                    for _ in 0..over {
                        dead.pop_first()?;
                    }
                    if over > 0 {
                        tracing::warn!(
                            deleted = over,
                            "outbox journal: dead letters over the bound; the oldest were deleted"
                        );
                    }
                    true
                }
                Op::Revive(id, bytes) => match find_dead(&dead, id)? {
                    Some(key) => {
                        dead.remove(key.as_str())?;
                        entries.insert(id.as_str(), bytes.as_slice())?;
                        true
                    }
                    None => false,
                },
                Op::Purge(id) => match find_dead(&dead, id)? {
                    Some(key) => {
                        dead.remove(key.as_str())?;
                        true
                    }
                    None => false,
                },
            };
            results.push(r);
        }
    }
    w.commit()?;
    Ok(results)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn remove_progress(
    progress: &mut redb::Table<&str, &[u8]>,
    id: &str,
) -> std::result::Result<(), redb::Error> {
    let from = format!("{id}\0");
    let to = format!("{id}\u{1}");
    progress.retain_in(from.as_str()..to.as_str(), |_, _| false)?;
    Ok(())
}

fn find_dead(
    dead: &redb::Table<&str, &[u8]>,
    id: &str,
) -> std::result::Result<Option<String>, redb::Error> {
    for row in dead.iter()? {
        let (k, _) = row?;
        if k.value().get(20..) == Some(id) {
            return Ok(Some(k.value().to_owned()));
        }
    }
    Ok(None)
}

/// Entries of `table` (with their members' progress for pending ones),
/// oldest first, up to `max`.
fn load(db: &Database, table: TableDefinition<&str, &[u8]>, max: usize) -> Result<Vec<Entry>> {
    let r = db.begin_read().map_err(|e| storage("cannot read", e))?;
    let t = r.open_table(table).map_err(|e| storage("cannot read", e))?;
    let progress = r
        .open_table(PROGRESS)
        .map_err(|e| storage("cannot read", e))?;
    let mut out = Vec::new();
    for row in t.iter().map_err(|e| storage("cannot read", e))? {
        let (_, v) = row.map_err(|e| storage("cannot read", e))?;
        let mut e = match Entry::from_bytes(v.value()) {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(error = %err, "outbox journal: skipping an unreadable entry");
                continue;
            }
        };
        let from = format!("{}\0", e.id);
        let to = format!("{}\u{1}", e.id);
        for p in progress
            .range(from.as_str()..to.as_str())
            .map_err(|e| storage("cannot read", e))?
        {
            let (k, v) = p.map_err(|e| storage("cannot read", e))?;
            let member = k.value().split('\0').nth(1).unwrap_or_default().to_owned();
            if let Ok(state) = serde_json::from_slice::<MemberState>(v.value()) {
                e.members.insert(member, state);
            }
        }
        out.push(e);
    }
    out.sort_by_key(|e| e.accepted_at);
    out.truncate(max);
    Ok(out)
}

#[async_trait]
impl OutboxStore for Journal {
    async fn append(&self, entry: &Entry) -> Result<()> {
        let bytes = entry.to_bytes()?;
        let size = bytes.len() as u64;
        {
            // Reserve room first, so concurrent appends cannot overshoot.
            let mut mem = self.mem();
            let (max_entries, max_bytes) = (
                self.inner.max_entries.load(Ordering::Relaxed),
                self.inner.max_bytes.load(Ordering::Relaxed),
            );
            if mem.sizes.len() >= max_entries || mem.bytes.saturating_add(size) > max_bytes {
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!(
                        "outbox journal full: {} entries, {} bytes pending (bounds {}, {})",
                        mem.sizes.len(),
                        mem.bytes,
                        max_entries,
                        max_bytes
                    ),
                ));
            }
            mem.bytes = mem.bytes.saturating_add(size);
            mem.sizes.insert(entry.id.clone(), size);
        }
        if let Err(e) = self.run(Op::Put(entry.id.clone(), bytes)).await {
            self.forget(&entry.id);
            return Err(e);
        }
        self.mem().unclaimed.push_back(entry.clone());
        Ok(())
    }

    async fn claim(&self, max: usize) -> Result<Vec<Entry>> {
        let mut mem = self.mem();
        let n = max.min(mem.unclaimed.len());
        let out: Vec<Entry> = mem.unclaimed.drain(..n).collect();
        for e in &out {
            mem.claimed.insert(e.id.clone());
        }
        Ok(out)
    }

    async fn record_member(&self, id: &str, member: &str, state: &MemberState) -> Result<()> {
        self.record_members(id, &[(member.to_owned(), state.clone())])
            .await
    }

    async fn record_members(&self, id: &str, states: &[(String, MemberState)]) -> Result<()> {
        let states = states
            .iter()
            .map(|(member, state)| {
                let bytes = serde_json::to_vec(state).map_err(|e| {
                    Error::new(ErrorKind::Internal, "cannot serialize a member state")
                        .with_source(e)
                })?;
                Ok((member.clone(), bytes))
            })
            .collect::<Result<Vec<_>>>()?;
        self.run(Op::Progress(id.to_owned(), states))
            .await
            .map(|_| ())
    }

    async fn reschedule(&self, entry: &Entry) -> Result<()> {
        self.run(Op::Put(entry.id.clone(), entry.to_bytes()?))
            .await
            .map(|_| ())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.run(Op::Remove(id.to_owned())).await?;
        self.forget(id);
        Ok(())
    }

    async fn bury(&self, entry: &Entry) -> Result<()> {
        let max_dead = self.inner.max_dead.load(Ordering::Relaxed);
        self.run(Op::Bury(entry.id.clone(), entry.to_bytes()?, max_dead))
            .await?;
        self.forget(&entry.id);
        Ok(())
    }

    async fn pending(&self, max: usize) -> Result<Vec<Entry>> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || load(&db, ENTRIES, max))
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "journal read failed").with_source(e))?
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<Entry>> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || load(&db, DEAD, max))
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "journal read failed").with_source(e))?
    }

    async fn revive(&self, entry: &Entry) -> Result<bool> {
        let bytes = entry.to_bytes()?;
        let size = bytes.len() as u64;
        let revived = self.run(Op::Revive(entry.id.clone(), bytes)).await?;
        if revived {
            let mut mem = self.mem();
            mem.bytes = mem.bytes.saturating_add(size);
            mem.sizes.insert(entry.id.clone(), size);
            mem.unclaimed.push_back(entry.clone());
        }
        Ok(revived)
    }

    async fn purge(&self, id: &str) -> Result<bool> {
        self.run(Op::Purge(id.to_owned())).await
    }

    async fn release_claims(&self) -> Result<()> {
        let db = self.inner.db.clone();
        let stored = tokio::task::spawn_blocking(move || load(&db, ENTRIES, usize::MAX))
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "journal read failed").with_source(e))??;
        let mut mem = self.mem();
        let claimed = std::mem::take(&mut mem.claimed);
        // As stored (with members' progress), oldest first, ahead of the
        // entries nobody had claimed yet.
        for e in stored.into_iter().rev() {
            if claimed.contains(&e.id) {
                mem.unclaimed.push_front(e);
            }
        }
        Ok(())
    }
}
