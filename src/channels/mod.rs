//! The built-in channels, one folder each, each behind its cargo feature.
//!
//! ## Typed configs
//!
//! Every mode of every built-in channel has a typed config with a builder,
//! for hosts that configure instances in code rather than from JSON:
//! [`DingTalkRobot`](dingtalk::DingTalkRobot), [`DingTalkApp`](dingtalk::DingTalkApp),
//! [`DingTalkConversation`](dingtalk::DingTalkConversation),
//! [`WeComApp`](wecom::WeComApp), [`WeComRobot`](wecom::WeComRobot),
//! [`FeishuBot`](feishu::FeishuBot), [`FeishuApp`](feishu::FeishuApp),
//! [`EmailConfig`](email::EmailConfig) and [`WebhookConfig`](webhook::WebhookConfig)
//! (`Config` where the mode's name would be the channel's own type name).
//! They all follow one convention:
//!
//! - `Type::builder()` starts empty; each setter is named after the param it
//!   sets (`webhook`, `secret`, `keywords`, ...), takes the channel's
//!   public enums (`MsgType`, `TlsMode`, `EmailFormat`, ...) where the param
//!   is one, a [`SecretString`](secrecy::SecretString) (or a `&str`/`String`
//!   turned into one) for a secret, and any iterator for a list;
//! - `build()` writes the params an instance config would hold (the mode
//!   included) and validates them with the very factory a JSON config goes
//!   through, so the two paths cannot disagree: the same
//!   [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) error,
//!   naming the same field (`params.webhook`), never its value;
//! - the built config gives [`params()`](dingtalk::DingTalkRobot::params),
//!   [`into_instance(name)`](dingtalk::DingTalkRobot::into_instance) (an
//!   [`InstanceConfig`](crate::InstanceConfig) for a [`Config`](crate::Config)
//!   or [`Notifier::upsert_instance`](crate::Notifier::upsert_instance)), and
//!   [`channel(&http)`](dingtalk::DingTalkRobot::channel) (the channel alone,
//!   without policies); a config of a channel with modes names its mode
//!   as `MODE` (`DingTalkRobot::MODE == dingtalk::Mode::Robot`), the value
//!   `build()` writes to `params.mode`;
//! - `Debug` of a config or a builder redacts secrets and URL tokens.
//!
//! ```
//! # #[cfg(feature = "dingtalk")] {
//! use alertkit::channels::dingtalk::DingTalkRobot;
//! use alertkit::{Config, InstanceConfig};
//!
//! let typed = DingTalkRobot::builder()
//!     .webhook("https://oapi.dingtalk.com/robot/send?access_token=abc")
//!     .secret("SEC0123")
//!     .keywords(["alert"])
//!     .build()?
//!     .into_instance("ops-ding");
//! let json = Config::from_json(r#"{"instances": [{"name": "ops-ding", "type": "dingtalk",
//!     "params": {"mode": "robot", "webhook": "https://oapi.dingtalk.com/robot/send?access_token=abc",
//!                "secret": "SEC0123", "keywords": ["alert"]}}]}"#)?;
//! assert_eq!(typed, json.instances[0]);
//! # }
//! # Ok::<(), alertkit::Error>(())
//! ```

use crate::registry::Registry;

#[macro_use]
mod typed;

#[cfg(feature = "dingtalk")]
#[cfg_attr(docsrs, doc(cfg(feature = "dingtalk")))]
pub mod dingtalk;

#[cfg(feature = "email")]
#[cfg_attr(docsrs, doc(cfg(feature = "email")))]
pub mod email;

#[cfg(feature = "feishu")]
#[cfg_attr(docsrs, doc(cfg(feature = "feishu")))]
pub mod feishu;

#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub mod webhook;

#[cfg(feature = "wecom")]
#[cfg_attr(docsrs, doc(cfg(feature = "wecom")))]
pub mod wecom;

impl Default for Registry {
    /// The built-in channels of the enabled features, with Dinky's type
    /// names as aliases (`DingTalk`, `WeChat`, `FeiShu`, `Email`, `Http`).
    fn default() -> Self {
        let mut r = Registry::empty();
        register_builtins(&mut r);
        r
    }
}

/// Registers every built-in channel of the enabled features, with Dinky's
/// type names as aliases.
pub(crate) fn register_builtins(registry: &mut Registry) {
    #[cfg(feature = "dingtalk")]
    dingtalk::register(registry);
    #[cfg(feature = "wecom")]
    wecom::register(registry);
    #[cfg(feature = "feishu")]
    feishu::register(registry);
    #[cfg(feature = "webhook")]
    webhook::register(registry);
    #[cfg(feature = "email")]
    email::register(registry);
    let _ = registry;
}
