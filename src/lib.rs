//! # alertkit
//!
//! Embeddable alert notifications for job schedulers, Flink control planes
//! and other Rust services: DingTalk (钉钉), WeCom (企业微信), Feishu/Lark
//! (飞书), email and generic webhooks.
//!
//! You configure *instances* (one channel each: a DingTalk robot, an SMTP
//! account, ...), put them in *groups*, and dispatch an [`Alert`] to a group.
//! Every enabled member gets it concurrently, rendered for its platform, and
//! you get a [`DispatchReport`] saying exactly what happened on each: the
//! platform's own error code, whether a retry can help, which recipients
//! were refused.
//!
//! ```
//! use alertkit::{Alert, Config, GroupStatus, Http, JobInfo, JobStatus, Notifier, Severity};
//! use alertkit::testkit::recording_registry;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let config = Config::from_json(r#"{
//!   "instances": [{"name": "ops", "type": "recording"},
//!                 {"name": "broken", "type": "recording", "params": {"fail": true}}],
//!   "groups": [{"name": "flink-prod", "instances": ["ops", "broken"]}]
//! }"#)?;
//! // `Notifier::from_config(&config)` uses the built-in channels; the
//! // recording registry (feature `testkit`) adds an in-memory one for
//! // examples and tests.
//! let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new())?;
//!
//! let alert = Alert::new("Flink job orders-etl FAILED")
//!     .severity(Severity::Critical)
//!     .job(JobInfo::new("orders-etl").status(JobStatus::Failed));
//! let report = notifier.dispatch("flink-prod", &alert).await?;
//!
//! assert_eq!(report.status, GroupStatus::Partial);
//! let broken = report.delivery("broken").unwrap();
//! assert_eq!(broken.error.as_ref().unwrap().code(), Some("310000"));
//! # Ok::<(), alertkit::Error>(())
//! # }).unwrap();
//! ```
//!
//! Third-party channels implement [`AlertChannel`] and [`FromParams`] and
//! are registered by type in a [`Registry`] (see [`registry`]). Secrets are
//! [`secrecy::SecretString`]s and never appear in `Debug`, `Display`, errors
//! or logs.
//!
//! Channel authors build on [`toolkit`] (fitting a message under a byte
//! limit, fanning out over several requests, params, token caching); hosts
//! that configure instances in code use the typed configs of
//! [`channels`] (`DingTalkRobot::builder()…build()?`).
//!
//! ## Naming
//!
//! Values are built by chaining methods that take and return `Self`, one
//! rule for all of them:
//!
//! - **What a host writes** ([`Alert`], [`JobInfo`], [`Config`],
//!   [`InstanceConfig`], [`GroupConfig`], [`AlertGroup`], [`Member`],
//!   [`TemplateOverrides`](template::TemplateOverrides), the typed channel
//!   configs' builders): a method that sets a property is named after it
//!   (`Alert::severity`, `AlertGroup::timeout`, `TemplateOverrides::lang`);
//!   one that adds an element is the element's singular (`Alert::field`,
//!   `Alert::link`, `InstanceConfig::param`, `TemplateOverrides::template`).
//!   `with_` marks adding a named part whose plain name is a look-up
//!   elsewhere (`Notifier::group`, `Error::instance`): `Config::with_group`,
//!   `Config::with_instance`, `AlertGroup::with_member`.
//! - **What a channel returns** ([`Receipt`], [`Error`]): `with_` throughout
//!   (`Receipt::with_note`, `Error::with_code`), as the plain names are how
//!   they are read (`receipt.notes`, `error.code()`).
//! - A separate builder exists only where building validates:
//!   `Type::builder()`, setters, then `build()?` (the typed channel
//!   configs). Everything else starts from `new` (or `Default`).
//!
//! ## Feature flags
//!
#![cfg_attr(feature = "document-features", doc = document_features::document_features!())]
#![cfg_attr(
    not(feature = "document-features"),
    doc = "The `[features]` of Cargo.toml (listed here on docs.rs)."
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Shared helpers serve the channels; with some channel features off, some go unused.
#![cfg_attr(
    not(all(
        feature = "dingtalk",
        feature = "wecom",
        feature = "feishu",
        feature = "email",
        feature = "webhook"
    )),
    allow(dead_code)
)]

pub mod alert;
pub mod channel;
pub mod channels;
pub mod config;
pub mod error;
#[cfg(feature = "flink")]
#[cfg_attr(docsrs, doc(cfg(feature = "flink")))]
pub mod flink;
pub mod group;
pub mod http;
pub mod import;
pub mod notifier;
pub mod outbox;
pub(crate) mod params;
pub mod policy;
#[cfg(test)]
mod proptests;
pub mod registry;
mod secrets;
pub mod template;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
pub(crate) mod text;
pub mod toolkit;

pub use alert::{Alert, AlertState, JobInfo, JobStatus, Link, Mention, Severity};
pub use async_trait::async_trait;
pub use channel::{AlertChannel, Limits, Preview, Rate, Receipt};
/// The `chrono` version alertkit's public types use (`Alert::occurred_at`).
pub use chrono;
pub use config::{Config, GroupConfig, InstanceConfig};
pub use error::{Error, ErrorKind, Result};
pub use group::{AlertGroup, Delivery, DispatchReport, GroupStatus, Member, Outcome};
pub use http::Http;
pub use notifier::{GroupInfo, InstanceInfo, Notifier, TestSendOptions, Undelivered};
pub use registry::{BuildContext, ChannelFactory, FromParams, Registry};
/// The `reqwest` version alertkit's public types use (`Http::with_client`,
/// `Http::client`, `http::Reply`): build your client with this one.
pub use reqwest;
pub use secrecy;
/// The `url` version alertkit's public types use.
pub use url;
