//! The one public error type, its kinds and retry classification.
//!
//! Every channel converts what its platform said into an [`Error`] with a
//! semantic [`ErrorKind`], the platform's raw code, and a retry flag that
//! follows the platforms' contracts (a rate limit is retryable, a bad
//! signature is not). The message never holds a secret: URLs are redacted
//! before they reach an error, and channels never format tokens, keys,
//! passwords or signatures into one.

use std::fmt;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// What went wrong, in terms a caller can act on.
///
/// Match on it to decide what to do about a failed delivery:
///
/// ```
/// use alertkit::{Error, ErrorKind};
/// fn action(e: &Error) -> &'static str {
///     match e.kind() {
///         ErrorKind::RateLimited | ErrorKind::Timeout | ErrorKind::Transport => "retry later",
///         ErrorKind::Unauthorized | ErrorKind::SignatureMismatch => "fix the credentials",
///         ErrorKind::KeywordMissing => "add the robot's keyword to the template",
///         _ => "page a human",
///     }
/// }
/// let e = Error::new(ErrorKind::KeywordMissing, "keywords not in content").with_code("310000");
/// assert_eq!(action(&e), "add the robot's keyword to the template");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The platform throttled the sender (DingTalk 130101/410100, WeCom 45009,
    /// Feishu 11232, HTTP 429). See [`Error::retry_after`].
    RateLimited,
    /// An access token expired or was revoked; refresh it and try once more.
    TokenExpired,
    /// Credentials were refused: bad robot token, webhook key, app secret or password.
    Unauthorized,
    /// The caller's IP address is not on the platform's allowlist.
    IpNotAllowed,
    /// The message holds none of the robot's security keywords.
    KeywordMissing,
    /// The request signature or its timestamp was rejected.
    SignatureMismatch,
    /// The message is larger than the platform accepts.
    PayloadTooLarge,
    /// One or more recipients are unknown or not reachable.
    InvalidRecipient,
    /// The platform refused the content (unsafe link, empty content, bad message type).
    InvalidContent,
    /// The instance or group configuration is wrong; found before anything was sent.
    InvalidConfig,
    /// A template failed to compile or render.
    Template,
    /// The request did not complete in time.
    Timeout,
    /// A network-level failure: connection refused or reset, DNS, TLS.
    Transport,
    /// The platform answered with an error this crate does not classify further.
    Platform,
    /// The channel or operation is not supported (e.g. a channel without preview).
    Unsupported,
    /// A bug or unexpected condition inside alertkit or a channel (e.g. a panic).
    Internal,
    /// The notifier was shut down and takes no more alerts.
    ShutDown,
    /// No group or instance has the name asked for.
    NotFound,
    /// The outbox's store cannot take or give back entries: full (its bound
    /// on entries or bytes reached), not writable, or unreachable. An
    /// `enqueue` that fails with it did not accept the alert.
    Storage,
}

/// Every kind, for parsing.
const KINDS: [ErrorKind; 19] = [
    ErrorKind::RateLimited,
    ErrorKind::TokenExpired,
    ErrorKind::Unauthorized,
    ErrorKind::IpNotAllowed,
    ErrorKind::KeywordMissing,
    ErrorKind::SignatureMismatch,
    ErrorKind::PayloadTooLarge,
    ErrorKind::InvalidRecipient,
    ErrorKind::InvalidContent,
    ErrorKind::InvalidConfig,
    ErrorKind::Template,
    ErrorKind::Timeout,
    ErrorKind::Transport,
    ErrorKind::Platform,
    ErrorKind::Unsupported,
    ErrorKind::Internal,
    ErrorKind::ShutDown,
    ErrorKind::NotFound,
    ErrorKind::Storage,
];

impl std::str::FromStr for ErrorKind {
    type Err = Error;

    /// The snake_case name of [`ErrorKind::as_str`] back to the kind.
    ///
    /// ```
    /// use alertkit::ErrorKind;
    /// assert_eq!("rate_limited".parse::<ErrorKind>().unwrap(), ErrorKind::RateLimited);
    /// assert!("nope".parse::<ErrorKind>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Error> {
        KINDS
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("{s:?} is not an error kind"),
                )
                .with_retryable(false)
            })
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown error kind {s:?}")))
    }
}

impl ErrorKind {
    /// The stable snake_case name used in reports and logs.
    ///
    /// ```
    /// use alertkit::ErrorKind;
    /// assert_eq!(ErrorKind::IpNotAllowed.as_str(), "ip_not_allowed");
    /// assert_eq!(ErrorKind::IpNotAllowed.to_string(), "ip_not_allowed");
    /// assert_eq!("ip_not_allowed".parse::<ErrorKind>().unwrap(), ErrorKind::IpNotAllowed);
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::TokenExpired => "token_expired",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::IpNotAllowed => "ip_not_allowed",
            ErrorKind::KeywordMissing => "keyword_missing",
            ErrorKind::SignatureMismatch => "signature_mismatch",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::InvalidRecipient => "invalid_recipient",
            ErrorKind::InvalidContent => "invalid_content",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::Template => "template",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Platform => "platform",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
            ErrorKind::ShutDown => "shut_down",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Storage => "storage",
        }
    }

    /// Whether an error of this kind is worth retrying when nothing more
    /// specific is known. Channels override this per platform code.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// assert!(ErrorKind::RateLimited.default_retryable());
    /// assert!(!ErrorKind::Unauthorized.default_retryable());
    /// // `Error::new` starts from it
    /// assert!(Error::new(ErrorKind::Timeout, "no answer in 10s").is_retryable());
    /// ```
    pub fn default_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::TokenExpired
                | ErrorKind::Timeout
                | ErrorKind::Transport
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every alertkit operation.
///
/// Build one with [`Error::new`] and the `with_*` methods; read it with the
/// accessors. `Display` reads like
/// `instance "ops-ding": keyword_missing (code 310000): keywords not in content`.
///
/// ```
/// use alertkit::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::RateLimited, "send too fast")
///     .with_code("130101")
///     .with_retryable(true);
/// assert!(e.is_retryable());
/// assert_eq!(e.code(), Some("130101"));
///
/// let e = Error::new(ErrorKind::KeywordMissing, "keywords not in content")
///     .with_code("310000")
///     .with_instance("ops-ding");
/// assert_eq!(
///     e.to_string(),
///     r#"instance "ops-ding": keyword_missing (code 310000): keywords not in content"#
/// );
/// ```
#[derive(Clone)]
pub struct Error(Box<Inner>);

// Boxed: an error is one pointer wide, so `Result<T>` stays small on the happy path.
#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    retryable: bool,
    code: Option<String>,
    message: String,
    instance: Option<String>,
    field: Option<String>,
    retry_after: Option<Duration>,
    attempts: u32,
    http_status: Option<u16>,
    source: Option<Source>,
}

impl Error {
    /// A new error of `kind`; retryable as [`ErrorKind::default_retryable`] says.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::PayloadTooLarge, "body is 30000 bytes, limit 20000");
    /// assert_eq!(e.kind(), ErrorKind::PayloadTooLarge);
    /// assert!(!e.is_retryable());
    /// assert_eq!(e.to_string(), "payload_too_large: body is 30000 bytes, limit 20000");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            retryable: kind.default_retryable(),
            code: None,
            message: message.into(),
            instance: None,
            field: None,
            retry_after: None,
            attempts: 1,
            http_status: None,
            source: None,
        }))
    }

    /// A configuration error naming the field at fault.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::config("params.webhook", "not a URL");
    /// assert_eq!((e.kind(), e.field()), (ErrorKind::InvalidConfig, Some("params.webhook")));
    /// assert_eq!(e.to_string(), r#"field "params.webhook": invalid_config: not a URL"#);
    /// ```
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidConfig, message).with_field(field)
    }

    /// The same error with its message passed through `f` (to take a
    /// secret out of a platform's text).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let secret = "s3cr3t-key";
    /// let e = Error::new(ErrorKind::Unauthorized, format!("invalid key {secret}"))
    ///     .map_message(|m| m.replace(secret, "***"));
    /// assert_eq!(e.message(), "invalid key ***");
    /// ```
    pub fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.0.message = f(&self.0.message);
        self
    }

    /// Sets the platform's raw error code (`errcode`, `code`, SMTP reply code).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Unauthorized, "invalid webhook key").with_code("93000");
    /// assert_eq!(e.code(), Some("93000"));
    /// assert_eq!(e.to_string(), "unauthorized (code 93000): invalid webhook key");
    /// ```
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.0.code = Some(code.into());
        self
    }

    /// Sets the HTTP status of the answer the error was read from (channels
    /// set it wherever they classify an answer, success status or not).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Platform, "bad gateway").with_http_status(502);
    /// assert_eq!((e.http_status(), e.code()), (Some(502), None));
    /// ```
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.0.http_status = Some(status);
        self
    }

    /// Overrides the retry flag.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// // a platform-specific code known to be temporary
    /// let e = Error::new(ErrorKind::Platform, "system busy").with_code("-1").with_retryable(true);
    /// assert!(e.is_retryable());
    /// ```
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable = retryable;
        self
    }

    /// Names the alert instance the error belongs to (kept if already set).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Timeout, "no answer")
    ///     .with_instance("ops-ding")
    ///     .with_instance("other"); // the first one stays
    /// assert_eq!(e.instance(), Some("ops-ding"));
    /// assert_eq!(e.to_string(), r#"instance "ops-ding": timeout: no answer"#);
    /// ```
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        if self.0.instance.is_none() {
            self.0.instance = Some(instance.into());
        }
        self
    }

    /// The same error without an instance name (a typed config's, built
    /// before it has one).
    pub(crate) fn without_instance(mut self) -> Self {
        self.0.instance = None;
        self
    }

    /// Names the config field or param at fault (kept if already set).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::InvalidConfig, "must be 1..=5").with_field("params.retries");
    /// assert_eq!(e.field(), Some("params.retries"));
    /// ```
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        if self.0.field.is_none() {
            self.0.field = Some(field.into());
        }
        self
    }

    /// How long the platform asked to wait before the next attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::RateLimited, "too many requests")
    ///     .with_http_status(429)
    ///     .with_retry_after(Duration::from_secs(30));
    /// assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    /// assert!(e.is_retryable());
    /// ```
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.0.retry_after = Some(wait);
        self
    }

    /// How many attempts were made before giving up (set by retry wrappers).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Timeout, "no answer").with_attempts(3);
    /// assert_eq!(e.attempts(), 3);
    /// assert_eq!(Error::new(ErrorKind::Timeout, "").with_attempts(0).attempts(), 1);
    /// ```
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.0.attempts = attempts.max(1);
        self
    }

    /// Attaches the underlying cause. The cause's own `Display` must not hold
    /// secrets: pass reqwest errors through [`crate::http`] helpers, which
    /// strip URLs.
    ///
    /// ```
    /// use std::error::Error as _;
    /// use alertkit::{Error, ErrorKind};
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    /// let e = Error::new(ErrorKind::Transport, "cannot reach smtp.example.com").with_source(io);
    /// assert_eq!(e.source().unwrap().to_string(), "connection refused");
    /// ```
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The kind of failure.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e: Error = serde_json::from_str(r#"{"kind": "not_found", "retryable": false, "message": "no group \"x\""}"#).unwrap();
    /// assert_eq!(e.kind(), ErrorKind::NotFound);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// Whether sending the same alert again may succeed.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// assert!(Error::new(ErrorKind::Transport, "connection reset").is_retryable());
    /// assert!(!Error::new(ErrorKind::Transport, "bad certificate").with_retryable(false).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        self.0.retryable
    }

    /// The platform's raw error code, if it gave one.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::RateLimited, "send too fast").with_code("130101");
    /// assert_eq!(e.code(), Some("130101"));
    /// assert_eq!(Error::new(ErrorKind::Timeout, "no answer").code(), None);
    /// ```
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// The HTTP status of the answer that caused the error, apart from the
    /// platform's [`code`](Error::code): DingTalk answers `errcode 310000`
    /// under HTTP 200, a gateway 503 has no platform code of its own. `None`
    /// when no HTTP answer came (a timeout, a refused connection, SMTP, a
    /// config error).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::KeywordMissing, "keywords not in content")
    ///     .with_code("310000")
    ///     .with_http_status(200);
    /// assert_eq!((e.http_status(), e.code()), (Some(200), Some("310000")));
    /// let back: Error = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
    /// assert_eq!(back.http_status(), Some(200));
    /// ```
    pub fn http_status(&self) -> Option<u16> {
        self.0.http_status
    }

    /// The human-readable message, without instance or code.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Timeout, "no answer in 10s").with_instance("ops").with_code("x");
    /// assert_eq!(e.message(), "no answer in 10s");
    /// ```
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The alert instance the error belongs to.
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// assert_eq!(Error::new(ErrorKind::Timeout, "").instance(), None);
    /// assert_eq!(Error::new(ErrorKind::Timeout, "").with_instance("ops").instance(), Some("ops"));
    /// ```
    pub fn instance(&self) -> Option<&str> {
        self.0.instance.as_deref()
    }

    /// The config field or param at fault.
    ///
    /// ```
    /// use alertkit::Config;
    /// let e = Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording", "timeout_ms": "x"}]}"#)
    ///     .unwrap_err();
    /// assert_eq!(e.field(), Some("instances[0].timeout_ms"));
    /// ```
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// How long the platform asked to wait, if it said.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::RateLimited, "").with_retry_after(Duration::from_millis(1500));
    /// assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    /// assert_eq!(Error::new(ErrorKind::RateLimited, "").retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// Attempts made (1 unless a retry wrapper tried more).
    ///
    /// ```
    /// use alertkit::{Error, ErrorKind};
    /// assert_eq!(Error::new(ErrorKind::Timeout, "no answer").attempts(), 1);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(instance) = &self.0.instance {
            write!(f, "instance {instance:?}: ")?;
        }
        if let Some(field) = &self.0.field {
            write!(f, "field {field:?}: ")?;
        }
        write!(f, "{}", self.0.kind)?;
        if let Some(code) = &self.0.code {
            write!(f, " (code {code})")?;
        }
        if !self.0.message.is_empty() {
            write!(f, ": {}", self.0.message)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind)
            .field("retryable", &self.0.retryable)
            .field("code", &self.0.code)
            .field("message", &self.0.message);
        if let Some(i) = &self.0.instance {
            d.field("instance", i);
        }
        if let Some(field) = &self.0.field {
            d.field("field", field);
        }
        if let Some(r) = &self.0.retry_after {
            d.field("retry_after", r);
        }
        if let Some(h) = &self.0.http_status {
            d.field("http_status", h);
        }
        if let Some(s) = &self.0.source {
            // The source's Display, never its Debug: reqwest's Debug holds the URL.
            d.field("source", &format_args!("{s}"));
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Serializes as `{"kind", "retryable", "code", "message"}` (plus `field`,
/// `retry_after_ms` and `http_status` when set), the shape of a failed delivery in a
/// [`DispatchReport`](crate::DispatchReport).
impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = 4
            + usize::from(self.0.field.is_some())
            + usize::from(self.0.retry_after.is_some())
            + usize::from(self.0.http_status.is_some())
            + usize::from(self.0.instance.is_some())
            + usize::from(self.0.attempts > 1);
        let mut s = serializer.serialize_struct("Error", len)?;
        s.serialize_field("kind", self.0.kind.as_str())?;
        s.serialize_field("retryable", &self.0.retryable)?;
        s.serialize_field("code", &self.0.code)?;
        s.serialize_field("message", &self.0.message)?;
        if let Some(field) = &self.0.field {
            s.serialize_field("field", field)?;
        }
        if let Some(wait) = self.0.retry_after {
            s.serialize_field("retry_after_ms", &(wait.as_millis() as u64))?;
        }
        if let Some(status) = self.0.http_status {
            s.serialize_field("http_status", &status)?;
        }
        if let Some(instance) = &self.0.instance {
            s.serialize_field("instance", instance)?;
        }
        if self.0.attempts > 1 {
            s.serialize_field("attempts", &self.0.attempts)?;
        }
        s.end()
    }
}

/// Reads an error back from what [`Serialize`] wrote (a stored report): the
/// kind, retry flag, code, message, field, wait, HTTP status, instance and
/// attempts; not the source.
impl<'de> serde::Deserialize<'de> for Error {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Repr {
            kind: ErrorKind,
            retryable: bool,
            #[serde(default)]
            code: Option<String>,
            message: String,
            #[serde(default)]
            field: Option<String>,
            #[serde(default)]
            retry_after_ms: Option<u64>,
            #[serde(default)]
            http_status: Option<u16>,
            #[serde(default)]
            instance: Option<String>,
            #[serde(default)]
            attempts: Option<u32>,
        }
        let r = Repr::deserialize(d)?;
        let mut e = Error::new(r.kind, r.message).with_retryable(r.retryable);
        if let Some(c) = r.code {
            e = e.with_code(c);
        }
        if let Some(f) = r.field {
            e = e.with_field(f);
        }
        if let Some(ms) = r.retry_after_ms {
            e = e.with_retry_after(Duration::from_millis(ms));
        }
        if let Some(status) = r.http_status {
            e = e.with_http_status(status);
        }
        if let Some(instance) = r.instance {
            e = e.with_instance(instance);
        }
        if let Some(n) = r.attempts {
            e = e.with_attempts(n);
        }
        Ok(e)
    }
}

/// Shorthand for `Result<T, alertkit::Error>`.
///
/// ```
/// use alertkit::{Config, Result};
/// fn load(json: &str) -> Result<usize> {
///     Ok(Config::from_json(json)?.instances.len())
/// }
/// assert_eq!(load(r#"{"instances": []}"#).unwrap(), 0);
/// assert!(load("{").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_instance_field_kind_and_code() {
        let e = Error::config("webhook", "not a URL").with_instance("ops-ding");
        assert_eq!(
            e.to_string(),
            "instance \"ops-ding\": field \"webhook\": invalid_config: not a URL"
        );
        let e =
            Error::new(ErrorKind::KeywordMissing, "keywords not in content").with_code("310000");
        assert_eq!(
            e.to_string(),
            "keyword_missing (code 310000): keywords not in content"
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn retry_defaults_follow_kind() {
        assert!(Error::new(ErrorKind::RateLimited, "").is_retryable());
        assert!(Error::new(ErrorKind::Transport, "").is_retryable());
        assert!(!Error::new(ErrorKind::SignatureMismatch, "").is_retryable());
        assert!(
            !Error::new(ErrorKind::Unauthorized, "")
                .with_retryable(false)
                .is_retryable()
        );
    }

    #[test]
    fn serializes_report_shape() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_code("130101")
            .with_retry_after(Duration::from_secs(60));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "rate_limited", "retryable": true, "code": "130101",
                               "message": "slow down", "retry_after_ms": 60000})
        );
    }

    #[test]
    fn source_chain_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(ErrorKind::Transport, "connect failed").with_source(io);
        let src = std::error::Error::source(&e).expect("source");
        assert_eq!(src.to_string(), "refused");
    }
}
