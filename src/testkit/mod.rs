//! Test helpers for hosts and for alertkit itself (feature `testkit`: add
//! `alertkit = { version = "..", features = ["testkit"] }` to your
//! `[dev-dependencies]`).
//!
//! [`RecordingChannel`] is an in-memory channel that records what it is sent
//! and can be told to fail or hang; [`recording_registry`] registers it as the
//! type `recording` so config-driven code can be tested without a network.
//!
//! Fake DingTalk, WeCom and Feishu/Lark servers
//! and an SMTP server on 127.0.0.1, as strict as the platforms (signatures,
//! timestamps, keywords, sizes, tokens, rate limits, real error bodies),
//! recording every request, with scriptable faults (`Fault`: an error
//! code, any answer, a delay, a dropped connection), token expiry and
//! shrinkable rate windows; the SMTP server speaks STARTTLS or implicit TLS
//! with a certificate from a CA it generates (`smtp::FakeSmtp::ca_file`);
//! and `Sandbox`, all of them at once with ready-made instance configs.
//!
//! A test a host would write:
//!
//! ```
//! # #[cfg(all(feature = "testkit", feature = "dingtalk"))]
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
//! use alertkit::{Alert, Config, ErrorKind, InstanceConfig, Notifier, policy::PolicyConfig};
//!
//! let ding = FakeDingTalk::start().await;
//! ding.add_robot("tok", RobotSpec { secret: Some("SECx".into()), keywords: vec!["alert".into()] });
//! let config = Config::default().with_instance(
//!     InstanceConfig::new("ops", "dingtalk")
//!         .param("webhook", ding.webhook("tok"))
//!         .param("secret", "SECx")
//!         .param("keywords", vec!["alert"])
//!         .policy(PolicyConfig::off()),
//! );
//! let notifier = Notifier::from_config(&config).unwrap();
//! let ops = notifier.channel("ops").unwrap();
//!
//! ops.send(&Alert::new("orders-etl FAILED")).await.unwrap();
//! assert_eq!(ding.accepted()[0].body["msgtype"], "markdown");
//!
//! ding.push_fault(Fault::errcode(400102, "机器人已停用"));
//! assert_eq!(ops.send(&Alert::new("again")).await.unwrap_err().kind(), ErrorKind::Unauthorized);
//! # });
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::alert::Alert;
use crate::channel::{AlertChannel, Preview, Receipt};
use crate::error::{Error, ErrorKind, Result};
use crate::registry::{BuildContext, FromParams, Registry};
use crate::template::Format;

#[cfg(feature = "testkit")]
mod fake;
#[cfg(feature = "testkit")]
mod pki;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use fake::{FakeServer, Fault, Platform, RateWindow, TokenState, Tokens};
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use pki::{Pki, PkiFiles};
/// The rustls version [`Pki::server_config`] returns.
pub use rustls;
/// The wiremock version the fakes are built on ([`Platform::handle`] gets
/// its `Request`).
pub use wiremock;

#[cfg(all(feature = "testkit", feature = "dingtalk"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "testkit", feature = "dingtalk"))))]
pub mod dingtalk;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod smtp;

#[cfg(all(
    feature = "testkit",
    feature = "dingtalk",
    feature = "wecom",
    feature = "feishu",
    feature = "email"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "testkit",
        feature = "dingtalk",
        feature = "wecom",
        feature = "feishu",
        feature = "email"
    )))
)]
pub mod sandbox;
#[cfg(all(
    feature = "testkit",
    feature = "dingtalk",
    feature = "wecom",
    feature = "feishu",
    feature = "email"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "testkit",
        feature = "dingtalk",
        feature = "wecom",
        feature = "feishu",
        feature = "email"
    )))
)]
pub use sandbox::Sandbox;

#[cfg(all(feature = "testkit", feature = "feishu"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "testkit", feature = "feishu"))))]
pub mod feishu;

#[cfg(all(feature = "testkit", feature = "wecom"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "testkit", feature = "wecom"))))]
pub mod wecom;

/// One request a fake platform received, and what it answered.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::wecom::FakeWeCom;
/// use alertkit::{Alert, Config, InstanceConfig, Notifier};
///
/// let wecom = FakeWeCom::start().await;
/// wecom.add_bot("k1");
/// let config = Config::default().with_instance(InstanceConfig::new("ops", "wecom").param("webhook", wecom.webhook("k1")));
/// let ops = Notifier::from_config(&config).unwrap().channel("ops").unwrap();
/// ops.send(&Alert::new("disk full")).await.unwrap();
///
/// let r = &wecom.requests()[0];
/// assert_eq!((r.path.as_str(), r.query["key"].as_str(), r.status), ("/cgi-bin/webhook/send", "k1", 200));
/// assert_eq!(r.headers["content-type"], "application/json");
/// assert!(r.accepted && !r.duplicate && r.body_len > 0);
/// assert_eq!(r.answer["errcode"], 0);
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recorded {
    /// URL path.
    pub path: String,
    /// Query parameters, decoded once.
    pub query: std::collections::BTreeMap<String, String>,
    /// Request headers (lower-case names).
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: serde_json::Value,
    /// The body's size in bytes.
    pub body_len: usize,
    /// HTTP status answered.
    pub status: u16,
    /// The body answered.
    pub answer: serde_json::Value,
    /// Whether the platform accepted it as a message (not a token request).
    /// A duplicate is answered as the first was but is not a new message.
    pub accepted: bool,
    /// Whether the platform dropped it as a copy of one it had accepted
    /// (same DingTalk `msgUuid`, Feishu `uuid`, or identical WeCom JSON
    /// with the duplicate check on, within the platform's window).
    pub duplicate: bool,
}

type MakeError = Arc<dyn Fn() -> Error + Send + Sync>;

/// An in-memory channel: records every alert it is sent.
///
/// ```
/// use alertkit::{Alert, AlertChannel};
/// use alertkit::testkit::RecordingChannel;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let ch = RecordingChannel::new();
/// ch.send(&Alert::new("disk full")).await.unwrap();
/// assert_eq!(ch.sent()[0].title, "disk full");
/// # });
/// ```
#[derive(Clone, Default)]
pub struct RecordingChannel {
    sent: Arc<Mutex<Vec<Alert>>>,
    delay: Option<Duration>,
    error: Option<MakeError>,
    receipt: Option<Receipt>,
    templates: crate::template::Templates,
}

impl std::fmt::Debug for RecordingChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingChannel")
            .field("sent", &self.sent.lock().map(|s| s.len()).unwrap_or(0))
            .field("delay", &self.delay)
            .field("fails", &self.error.is_some())
            .finish()
    }
}

impl RecordingChannel {
    /// A channel that accepts everything at once.
    ///
    /// ```
    /// use alertkit::AlertChannel;
    /// use alertkit::testkit::RecordingChannel;
    /// let ch = RecordingChannel::new();
    /// assert_eq!(ch.kind(), "recording");
    /// assert!(ch.sent().is_empty());
    /// ```
    pub fn new() -> Self {
        RecordingChannel::default()
    }

    /// A channel that answers like a DingTalk robot whose keyword is missing
    /// (permanent, code 310000).
    ///
    /// ```
    /// use alertkit::{Alert, AlertChannel};
    /// use alertkit::testkit::RecordingChannel;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ch = RecordingChannel::failing();
    /// let e = ch.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.code(), e.is_retryable()), (Some("310000"), false));
    /// assert!(ch.sent().is_empty());
    /// # });
    /// ```
    pub fn failing() -> Self {
        RecordingChannel::new().with_error(|| {
            Error::new(ErrorKind::KeywordMissing, "keywords not in content")
                .with_code("310000")
                .with_retryable(false)
        })
    }

    /// Fails every send with the error `make` builds.
    ///
    /// ```
    /// use alertkit::{Alert, AlertChannel, Error, ErrorKind};
    /// use alertkit::testkit::RecordingChannel;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ch = RecordingChannel::new().with_error(|| Error::new(ErrorKind::RateLimited, "send too fast"));
    /// let e = ch.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::RateLimited);
    /// # });
    /// ```
    pub fn with_error(mut self, make: impl Fn() -> Error + Send + Sync + 'static) -> Self {
        self.error = Some(Arc::new(make));
        self
    }

    /// Waits `delay` before answering.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use alertkit::{Alert, AlertChannel};
    /// use alertkit::testkit::RecordingChannel;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ch = RecordingChannel::new().with_delay(Duration::from_millis(50));
    /// let started = Instant::now();
    /// ch.send(&Alert::new("disk full")).await.unwrap();
    /// assert!(started.elapsed() >= Duration::from_millis(50));
    /// # });
    /// ```
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Answers with `receipt` (e.g. one with rejected recipients).
    ///
    /// ```
    /// use alertkit::{Alert, AlertChannel, Receipt};
    /// use alertkit::testkit::RecordingChannel;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ch = RecordingChannel::new().with_receipt(Receipt::new().with_message_id("m-42"));
    /// let receipt = ch.send(&Alert::new("disk full")).await.unwrap();
    /// assert_eq!(receipt.message_id.as_deref(), Some("m-42"));
    /// # });
    /// ```
    pub fn with_receipt(mut self, receipt: Receipt) -> Self {
        self.receipt = Some(receipt);
        self
    }

    /// The alerts accepted so far (failed sends are not recorded).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{Alert, AlertGroup};
    /// use alertkit::testkit::RecordingChannel;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let ops = Arc::new(RecordingChannel::new());
    /// let group = AlertGroup::new("g").with_member("ops", ops.clone()); // clones share the record
    /// group.dispatch(&Alert::new("disk full")).await;
    /// group.dispatch(&Alert::new("disk full").resolved()).await;
    /// let titles: Vec<String> = ops.sent().into_iter().map(|a| a.title).collect();
    /// assert_eq!(titles, ["disk full", "disk full"]);
    /// # });
    /// ```
    pub fn sent(&self) -> Vec<Alert> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl AlertChannel for RecordingChannel {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        if let Some(make) = &self.error {
            return Err(make());
        }
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(alert.clone());
        Ok(self.receipt.clone().unwrap_or_default())
    }

    fn kind(&self) -> &str {
        "recording"
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        let text = self.templates.render(Format::Text, alert, "recording")?;
        Ok(vec![Preview::new(
            "memory",
            serde_json::json!({ "text": text }),
        )])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingParams {
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    delay_ms: u64,
}

/// Params `fail` (bool: answer like a robot whose keyword is missing,
/// 310000) and `delay_ms`; the instance's templates render its preview.
impl FromParams for RecordingChannel {
    fn from_params(ctx: &BuildContext<'_>) -> Result<Self> {
        let p: RecordingParams = ctx.params()?;
        let mut ch = if p.fail {
            RecordingChannel::failing()
        } else {
            RecordingChannel::new()
        };
        ch.templates = ctx.templates().clone();
        if p.delay_ms > 0 {
            ch = ch.with_delay(Duration::from_millis(p.delay_ms));
        }
        Ok(ch)
    }
}

/// [`Registry::default`] plus the type `recording`: a [`RecordingChannel`]
/// with params `fail` (bool: answer 310000) and `delay_ms`.
///
/// ```
/// use alertkit::{Alert, Config, GroupStatus, Http, Notifier};
/// use alertkit::testkit::recording_registry;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = Config::from_json(r#"{"instances": [
///     {"name": "ok", "type": "recording"},
///     {"name": "slow", "type": "recording", "params": {"delay_ms": 20}},
///     {"name": "broken", "type": "recording", "params": {"fail": true}}],
///   "groups": [{"name": "g", "instances": ["ok", "slow", "broken"]}]}"#).unwrap();
/// let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
/// let report = notifier.dispatch("g", &Alert::new("disk full")).await.unwrap();
/// assert_eq!(report.status, GroupStatus::Partial);
/// # });
/// ```
pub fn recording_registry() -> Registry {
    let mut r = Registry::default();
    r.register_channel::<RecordingChannel>("recording")
        .expect("no built-in channel is called recording");
    r
}
