//! The [`AlertChannel`] trait every channel implements, and its [`Receipt`].

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::alert::Alert;
use crate::error::{Error, ErrorKind, Result};

/// One configured destination: a DingTalk robot, a WeCom app, an SMTP account,
/// or your own.
///
/// One method is required: [`send`](AlertChannel::send) delivers one alert and
/// says what the platform answered. The trait is object-safe; groups hold
/// members as `Arc<dyn AlertChannel>`.
///
/// # Implementing a channel in your own crate
///
/// ```
/// use alertkit::{async_trait, Alert, AlertChannel, Error, ErrorKind, Receipt};
///
/// #[derive(Debug)]
/// struct Pager { service: String }
///
/// #[async_trait]
/// impl AlertChannel for Pager {
///     fn kind(&self) -> &str { "pager" }
///
///     async fn send(&self, alert: &Alert) -> Result<Receipt, Error> {
///         if alert.title.is_empty() {
///             return Err(Error::new(ErrorKind::InvalidContent, "empty title"));
///         }
///         // ... call your API here; classify its answer into an ErrorKind ...
///         Ok(Receipt::new().with_message_id(format!("{}-1", self.service)))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let pager: Box<dyn AlertChannel> = Box::new(Pager { service: "ops".into() });
/// let receipt = pager.send(&Alert::new("disk full")).await.unwrap();
/// assert_eq!(receipt.message_id.as_deref(), Some("ops-1"));
/// # });
/// ```
///
/// To build it from config, register a factory in a
/// [`Registry`](crate::Registry). Errors should carry the right
/// [`ErrorKind`] and retry flag; never put a secret in an error message.
#[async_trait]
pub trait AlertChannel: Send + Sync + Debug + 'static {
    /// Sends one alert. `Ok` means the platform accepted it (perhaps for only
    /// some recipients: see [`Receipt::rejected_recipients`]).
    ///
    /// ```
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::{Alert, AlertChannel};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ops = RecordingChannel::new();
    /// let receipt = ops.send(&Alert::new("disk full")).await.unwrap();
    /// assert!(!receipt.is_partial());
    /// assert_eq!(ops.sent()[0].title, "disk full");
    /// assert!(RecordingChannel::failing().send(&Alert::new("disk full")).await.is_err());
    /// # });
    /// ```
    async fn send(&self, alert: &Alert) -> Result<Receipt>;

    /// The channel type shown in reports (`dingtalk`, `email`, ...).
    ///
    /// ```
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::AlertChannel;
    /// assert_eq!(RecordingChannel::new().kind(), "recording");
    /// ```
    fn kind(&self) -> &str {
        "custom"
    }

    /// The destination's limits: which budget it shares with every other
    /// instance sending to the same place, the platform's rates, and how much
    /// text one message holds. The rate-limit policy reads these; the default
    /// is no limit.
    ///
    /// ```
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::{AlertChannel, Limits};
    /// // No limits of its own: the rate-limit policy lets everything through.
    /// assert_eq!(RecordingChannel::new().limits(), Limits::default());
    /// ```
    fn limits(&self) -> Limits {
        Limits::default()
    }

    /// What [`send`](AlertChannel::send) would put on the wire for `alert`,
    /// without sending: one entry per request. Signatures and tokens are left
    /// out. Channels that cannot tell return [`ErrorKind::Unsupported`].
    ///
    /// ```
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::{Alert, AlertChannel};
    /// let previews = RecordingChannel::new().preview(&Alert::new("disk full")).unwrap();
    /// assert_eq!(previews.len(), 1); // one request
    /// assert!(previews[0].body.to_string().contains("disk full"));
    /// ```
    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        let _ = alert;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("channel kind {:?} has no preview", self.kind()),
        ))
    }
}

// Object safety, checked at compile time.
const _: fn(Box<dyn AlertChannel>) = |_| {};

/// A platform's limits for one destination (see [`AlertChannel::limits`]).
///
/// ```
/// use alertkit::{Limits, Rate};
/// // A DingTalk robot: 20 messages a minute, about 20 KB of markdown.
/// let limits = Limits::new("dingtalk:3f2a", vec![Rate::per_minute(20)], 20_000);
/// assert_eq!(limits.destination.as_deref(), Some("dingtalk:3f2a"));
/// assert_eq!(Limits::default().rates, []); // no limit
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Identifies the destination (a robot, a webhook key, an app) without
    /// holding its secret; instances with the same destination share one budget.
    pub destination: Option<String>,
    /// Messages allowed per window; all must hold.
    pub rates: Vec<Rate>,
    /// Bytes of text one message can carry (digests are sized to fit).
    pub max_text_bytes: Option<usize>,
}

impl Limits {
    /// Limits for `destination` with `rates`.
    ///
    /// ```
    /// use alertkit::{Limits, Rate};
    /// let limits = Limits::new("wecom:ab12", vec![Rate::per_minute(20), Rate::per_second(5)], 4096);
    /// assert_eq!(limits.rates.len(), 2); // all must hold
    /// assert_eq!(limits.max_text_bytes, Some(4096));
    /// ```
    pub fn new(destination: impl Into<String>, rates: Vec<Rate>, max_text_bytes: usize) -> Self {
        Limits {
            destination: Some(destination.into()),
            rates,
            max_text_bytes: Some(max_text_bytes),
        }
    }
}

/// `count` messages per `per`.
///
/// ```
/// use std::time::Duration;
/// use alertkit::Rate;
/// let r = Rate::per_minute(20);
/// assert_eq!((r.count, r.per), (20, Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Messages allowed in one window.
    pub count: u32,
    /// The window.
    pub per: Duration,
}

impl Rate {
    /// `count` per `per`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::Rate;
    /// const HOURLY: Rate = Rate::new(100, Duration::from_secs(3600));
    /// assert_eq!(HOURLY.count, 100);
    /// assert_eq!(Rate::new(20, Duration::from_secs(60)), Rate::per_minute(20));
    /// ```
    pub const fn new(count: u32, per: Duration) -> Self {
        Rate { count, per }
    }

    /// `count` per minute.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::Rate;
    /// assert_eq!(Rate::per_minute(20).per, Duration::from_secs(60));
    /// ```
    pub const fn per_minute(count: u32) -> Self {
        Rate::new(count, Duration::from_secs(60))
    }

    /// `count` per second.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::Rate;
    /// assert_eq!(Rate::per_second(5), Rate::new(5, Duration::from_secs(1)));
    /// ```
    pub const fn per_second(count: u32) -> Self {
        Rate::new(count, Duration::from_secs(1))
    }
}

/// A short, stable, non-reversible id for a secret destination (a robot
/// token, a webhook key): the first 8 bytes of its SHA-256, in hex.
///
/// ```
/// use alertkit::channel::destination_id;
/// let id = destination_id("dingtalk", "robot-token-123");
/// assert!(id.starts_with("dingtalk:") && !id.contains("robot-token"));
/// assert_eq!(id.len(), "dingtalk:".len() + 16); // 8 bytes in hex
/// assert_eq!(id, destination_id("dingtalk", "robot-token-123")); // stable
/// assert_ne!(id, destination_id("dingtalk", "another-token"));
/// ```
pub fn destination_id(kind: &str, secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(secret.as_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}

/// What a platform said when it accepted an alert.
///
/// ```
/// use alertkit::Receipt;
/// let r = Receipt::new().with_message_id("msg-1").with_rejected(["bob".to_owned()]);
/// assert!(r.is_partial());
/// assert_eq!(r.attempts, 1);
/// // What a report stores; `attempts` is not serialized.
/// assert_eq!(serde_json::to_value(&r).unwrap(), serde_json::json!({"message_id": "msg-1", "rejected_recipients": ["bob"]}));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Receipt {
    /// The platform's message id(s), when it returns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Recipients the platform refused while accepting the others (WeCom
    /// `invaliduser`, SMTP 550 for one address). Non-empty means a partial delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_recipients: Vec<String>,
    /// Things worth knowing that are not failures: a truncated body, a
    /// mention the platform cannot express, a message split in parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Requests it took (split messages, batches); 0 when not counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: u32,
    /// Attempts it took (set by retry wrappers; 1 otherwise).
    #[serde(skip, default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Default for Receipt {
    fn default() -> Self {
        Receipt {
            message_id: None,
            rejected_recipients: Vec::new(),
            notes: Vec::new(),
            requests: 0,
            attempts: 1,
        }
    }
}

impl Receipt {
    /// An empty receipt: accepted, nothing more to say.
    ///
    /// ```
    /// use alertkit::Receipt;
    /// let r = Receipt::new();
    /// assert!(r.message_id.is_none() && !r.is_partial());
    /// assert_eq!((r.requests, r.attempts), (0, 1));
    /// ```
    pub fn new() -> Self {
        Receipt::default()
    }

    /// Sets the message id.
    ///
    /// ```
    /// use alertkit::Receipt;
    /// assert_eq!(Receipt::new().with_message_id("msg-1").message_id.as_deref(), Some("msg-1"));
    /// ```
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Adds recipients the platform refused.
    ///
    /// ```
    /// use alertkit::Receipt;
    /// let r = Receipt::new().with_rejected(["u1".to_owned()]).with_rejected(["u2".to_owned()]);
    /// assert_eq!(r.rejected_recipients, ["u1", "u2"]); // added, not replaced
    /// ```
    pub fn with_rejected(mut self, rejected: impl IntoIterator<Item = String>) -> Self {
        self.rejected_recipients.extend(rejected);
        self
    }

    /// Adds a note.
    ///
    /// ```
    /// use alertkit::Receipt;
    /// let r = Receipt::new().with_note("body truncated to 4096 bytes");
    /// assert_eq!(r.notes, ["body truncated to 4096 bytes"]);
    /// assert!(!r.is_partial()); // a note is not a failure
    /// ```
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Sets the number of requests made.
    ///
    /// ```
    /// use alertkit::Receipt;
    /// assert_eq!(Receipt::new().with_requests(3).requests, 3);
    /// ```
    pub fn with_requests(mut self, requests: u32) -> Self {
        self.requests = requests;
        self
    }

    /// Whether some recipients were refused.
    ///
    /// ```
    /// use alertkit::Receipt;
    /// assert!(!Receipt::new().is_partial());
    /// assert!(Receipt::new().with_rejected(["bob".to_owned()]).is_partial());
    /// ```
    pub fn is_partial(&self) -> bool {
        !self.rejected_recipients.is_empty()
    }
}

/// The results of one alert sent in several requests (batches of users,
/// chats, receivers): who got it, who did not, and the overall outcome
/// (also [`toolkit::Fanout`](crate::toolkit::Fanout)).
///
/// Delivered to anyone is `Ok` (partial, naming the others, when some were
/// refused or a request failed); delivered to no one is the first error.
///
/// ```
/// use alertkit::toolkit::Fanout;
/// use alertkit::{Error, ErrorKind, Receipt};
///
/// let mut out = Fanout::new(Receipt::new());
/// out.request();
/// out.delivered(2, Some("msg-1"));
/// out.rejected(vec!["u3".into()], Some("u3 left the company".into()));
/// out.request();
/// out.failed("chat c9", vec!["c9".into()], Error::new(ErrorKind::RateLimited, "too fast"));
/// let receipt = out.finish()?;
/// assert!(receipt.is_partial());
/// assert_eq!(receipt.rejected_recipients, ["u3", "c9"]);
/// assert_eq!((receipt.message_id.as_deref(), receipt.requests), (Some("msg-1"), 2));
///
/// let mut none = Fanout::new(Receipt::new());
/// none.request();
/// none.failed("chat c9", vec!["c9".into()], Error::new(ErrorKind::RateLimited, "too fast"));
/// assert_eq!(none.finish().unwrap_err().kind(), ErrorKind::RateLimited);
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug)]
pub struct Fanout {
    receipt: Receipt,
    delivered: usize,
    requests: u32,
    first_error: Option<Error>,
}

impl Fanout {
    /// Starts from `receipt` (notes made before sending are kept).
    ///
    /// ```
    /// use alertkit::toolkit::Fanout;
    /// use alertkit::Receipt;
    /// let mut out = Fanout::new(Receipt::new().with_note("split in 2 parts"));
    /// out.request();
    /// out.delivered(1, None);
    /// assert_eq!(out.finish().unwrap().notes, ["split in 2 parts"]); // kept
    /// ```
    pub fn new(receipt: Receipt) -> Self {
        Fanout {
            receipt,
            delivered: 0,
            requests: 0,
            first_error: None,
        }
    }

    /// A request was made.
    ///
    /// ```
    /// use alertkit::toolkit::Fanout;
    /// use alertkit::Receipt;
    /// let mut out = Fanout::new(Receipt::new());
    /// out.request();
    /// out.request();
    /// out.delivered(3, None);
    /// assert_eq!(out.finish().unwrap().requests, 2);
    /// ```
    pub fn request(&mut self) {
        self.requests += 1;
    }

    /// `n` recipients accepted it; the first message id is kept.
    ///
    /// ```
    /// use alertkit::toolkit::Fanout;
    /// use alertkit::Receipt;
    /// let mut out = Fanout::new(Receipt::new());
    /// out.delivered(2, Some("msg-1"));
    /// out.delivered(1, Some("msg-2"));
    /// assert_eq!(out.finish().unwrap().message_id.as_deref(), Some("msg-1")); // the first
    /// ```
    pub fn delivered(&mut self, n: usize, message_id: Option<&str>) {
        self.delivered += n;
        if let Some(id) = message_id {
            self.receipt.message_id.get_or_insert_with(|| id.to_owned());
        }
    }

    /// Recipients the platform refused while accepting others.
    ///
    /// ```
    /// use alertkit::toolkit::Fanout;
    /// use alertkit::Receipt;
    /// let mut out = Fanout::new(Receipt::new());
    /// out.delivered(1, None);
    /// out.rejected(vec!["u3".into()], Some("u3 left the company".into()));
    /// let r = out.finish().unwrap();
    /// assert_eq!((r.rejected_recipients.as_slice(), r.notes.as_slice()), (&["u3".to_owned()][..], &["u3 left the company".to_owned()][..]));
    /// ```
    pub fn rejected(&mut self, who: Vec<String>, note: Option<String>) {
        if let Some(n) = note {
            self.receipt.notes.push(n);
        }
        self.receipt.rejected_recipients.extend(who);
    }

    /// A request failed for `who` (`what` names it in the receipt's notes).
    ///
    /// ```
    /// use alertkit::toolkit::Fanout;
    /// use alertkit::{Error, ErrorKind, Receipt};
    /// let mut out = Fanout::new(Receipt::new());
    /// out.delivered(1, None);
    /// out.failed("chat c9", vec!["c9".into()], Error::new(ErrorKind::Timeout, "no answer"));
    /// let r = out.finish().unwrap(); // partial: someone got it
    /// assert_eq!(r.rejected_recipients, ["c9"]);
    /// assert!(r.notes[0].starts_with("chat c9 failed"));
    /// ```
    pub fn failed(&mut self, what: &str, who: Vec<String>, e: Error) {
        self.receipt.notes.push(format!("{what} failed: {e}"));
        self.receipt.rejected_recipients.extend(who);
        self.first_error.get_or_insert(e);
    }

    /// `Ok` when anyone got it (partial when some did not), else the first error.
    ///
    /// ```
    /// use alertkit::toolkit::Fanout;
    /// use alertkit::{Error, ErrorKind, Receipt};
    /// let mut out = Fanout::new(Receipt::new());
    /// out.failed("batch 1", vec!["u1".into()], Error::new(ErrorKind::InvalidRecipient, "unknown user"));
    /// out.failed("batch 2", vec!["u2".into()], Error::new(ErrorKind::Timeout, "no answer"));
    /// // Nobody got it: the first error.
    /// assert_eq!(out.finish().unwrap_err().kind(), ErrorKind::InvalidRecipient);
    /// ```
    pub fn finish(self) -> Result<Receipt> {
        if self.delivered > 0 {
            return Ok(self.receipt.with_requests(self.requests));
        }
        Err(self.first_error.unwrap_or_else(|| {
            Error::new(
                ErrorKind::InvalidRecipient,
                "no recipient accepted the message",
            )
            .with_retryable(false)
        }))
    }
}

/// One delivery of one alert to one member: what its idempotency keys are
/// derived from. Set by the group around each member's send (and kept by
/// the outbox across redeliveries), read by channels through
/// [`idempotency_key`].
#[derive(Debug, Clone)]
pub(crate) struct DeliveryKey {
    /// The dispatch (random) or the outbox entry (its id).
    pub(crate) base: u128,
    /// The member's instance name: two members never share a key.
    pub(crate) member: String,
}

tokio::task_local! {
    static DELIVERY: DeliveryKey;
}

impl DeliveryKey {
    /// A fresh base for one dispatch: unique across processes and hosts.
    pub(crate) fn fresh_base() -> u128 {
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEED: OnceLock<u128> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(random_u128);
        // The seed is random per process; the counter makes each dispatch's
        // base distinct within it (and the hash below spreads them).
        seed ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    /// The key of the delivery in progress, to carry to another task.
    pub(crate) fn current() -> Option<DeliveryKey> {
        DELIVERY.try_with(Clone::clone).ok()
    }

    /// Runs `fut` (one member's send, with its retries) under this key.
    pub(crate) async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        DELIVERY.scope(self, fut).await
    }
}

/// 128 random bits from the operating system (a time- and process-based
/// value if it has none to give).
pub(crate) fn random_u128() -> u128 {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let fallback = now ^ (u128::from(std::process::id()) << 96);
        b = fallback.to_le_bytes();
    }
    u128::from_le_bytes(b)
}

/// The idempotency key of the delivery in progress, for the request named
/// `part` (a recipient batch, a chat, `""` for a channel's only request):
/// the same for every retry of this alert to this member, and for every
/// redelivery of a durable ([`Notifier::enqueue`](crate::Notifier::enqueue))
/// entry after a restart; different for every other alert, member and
/// part. UUID-shaped (36 characters), so it fits every platform's field
/// (DingTalk `msgUuid`, Feishu `uuid` ≤ 50, an email `Message-ID`).
///
/// `None` outside a group's dispatch (a channel's `send` called directly):
/// then send without a key.
///
/// ```
/// use alertkit::channel::idempotency_key;
/// assert_eq!(idempotency_key(""), None); // not inside a dispatch
/// ```
pub fn idempotency_key(part: &str) -> Option<String> {
    DELIVERY
        .try_with(|k| derive_key(k.base, &k.member, part))
        .ok()
}

/// The key of `part` of `member`'s delivery under `base`. Stable across
/// processes, versions and platforms (a redelivery after an upgrade must
/// carry the first attempt's key), hence our own hash rather than std's:
/// FNV-1a 128 of the names, XORed into the base, then splitmix64's
/// bijective finalizer on each half, so distinct inputs stay distinct.
/// About 300 instructions (SHA-256 and `format!` took 16,000).
fn derive_key(base: u128, member: &str, part: &str) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for b in member
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(part.bytes())
    {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    let x = base ^ h;
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let hi = mix((x >> 64) as u64);
    let lo = mix(x as u64);
    let mut b = ((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes();
    // RFC 9562 version 8 (custom), variant 10.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod key_tests {
    use super::derive_key;

    /// Keys are stored implicitly (an outbox entry's id is their base): a
    /// change here makes a redelivery after an upgrade a new message.
    #[test]
    fn keys_are_stable_distinct_and_uuid_shaped() {
        let k = derive_key(1, "ops", "");
        assert_eq!(k, derive_key(1, "ops", ""));
        assert_eq!(k.len(), 36);
        assert_eq!(&k[14..15], "8", "version 8");
        assert_eq!(k, "2305b1b6-1aad-813b-ae50-65afc3e10567");
        let others = [
            derive_key(2, "ops", ""),
            derive_key(1, "ops2", ""),
            derive_key(1, "ops", "chat-1"),
            derive_key(1, "op", "s"),
        ];
        for o in &others {
            assert_ne!(&k, o);
        }
    }
}

/// One request a channel would send, as [`AlertChannel::preview`] shows it.
///
/// ```
/// use alertkit::{Alert, Config, Http, Notifier};
/// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap();
/// let notifier = Notifier::from_config_with(&config, alertkit::testkit::recording_registry(), Http::new()).unwrap();
/// let p = &notifier.preview("ops", &Alert::new("disk full")).unwrap()[0];
/// assert_eq!(p.target, "memory");
/// assert!(p.body["text"].as_str().unwrap().contains("disk full"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Preview {
    /// Where it goes, with credentials redacted.
    pub target: String,
    /// The body: a JSON payload for HTTP channels, a message for email.
    pub body: serde_json::Value,
}

impl Preview {
    /// A preview entry.
    ///
    /// ```
    /// use alertkit::Preview;
    /// let p = Preview::new("https://hooks.example/***", serde_json::json!({"text": "disk full"}));
    /// assert_eq!(p.body["text"], "disk full");
    /// assert!(!p.target.contains("token"));
    /// ```
    pub fn new(target: impl Into<String>, body: serde_json::Value) -> Self {
        Preview {
            target: target.into(),
            body,
        }
    }
}
