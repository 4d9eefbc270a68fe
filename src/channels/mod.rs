//! The built-in channels, one folder each, each behind its cargo feature.

use crate::registry::Registry;

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
