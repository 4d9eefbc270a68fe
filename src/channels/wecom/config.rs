//! WeCom instance params, with Dinky's `WeChat` names as aliases (§10).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::http::ProxyConfig;

/// Which WeCom API an instance uses.
///
/// ```
/// use alertkit::channels::wecom::{Mode, WeComApp, WeComRobot};
/// assert_eq!((WeComApp::MODE, WeComRobot::MODE), (Mode::App, Mode::Bot));
/// // Dinky's `sendType = "wechat"` is the group robot.
/// let m: Mode = serde_json::from_value(serde_json::json!("wechat")).unwrap();
/// assert_eq!(m, Mode::Bot);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// Application message (Dinky `sendType: app`).
    App,
    /// Group robot webhook (Dinky `sendType: wechat`).
    #[serde(alias = "wechat", alias = "robot", alias = "webhook")]
    Bot,
}

/// Message type.
///
/// ```
/// use alertkit::channels::wecom::MsgType;
/// assert_eq!(MsgType::default(), MsgType::Markdown);
/// assert_eq!(serde_json::to_value(MsgType::Textcard).unwrap(), "textcard");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MsgType {
    /// Markdown with WeCom's `<font color>` (default).
    #[default]
    #[serde(alias = "MarkDown", alias = "markDown")]
    Markdown,
    /// Plain text (the only type where robots can @mobile or @all).
    #[serde(alias = "Text")]
    Text,
    /// App text card: title, description and the first link (app mode).
    Textcard,
    /// Markdown v2: tables and code, no mentions, no colours (bot mode).
    #[serde(rename = "markdown_v2")]
    MarkdownV2,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    #[serde(default, alias = "sendType")]
    pub mode: Option<Mode>,
    #[serde(default, alias = "msgType", alias = "msgtype")]
    pub msg_type: MsgType,

    // app
    #[serde(default, alias = "corpId", alias = "corpid")]
    pub corp_id: Option<String>,
    #[serde(default, alias = "corpsecret")]
    pub secret: Option<SecretString>,
    #[serde(
        default,
        alias = "agentId",
        alias = "agentid",
        deserialize_with = "crate::params::opt_num"
    )]
    pub agent_id: Option<i64>,
    #[serde(
        default,
        alias = "users",
        alias = "touser",
        deserialize_with = "crate::params::ids"
    )]
    pub to_users: Vec<String>,
    #[serde(default, alias = "toparty", deserialize_with = "crate::params::ids")]
    pub to_parties: Vec<String>,
    #[serde(default, alias = "totag", deserialize_with = "crate::params::ids")]
    pub to_tags: Vec<String>,
    /// Group chats the app created (`appchat/send`).
    #[serde(default, deserialize_with = "crate::params::ids")]
    pub chat_ids: Vec<String>,

    // bot
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub key: Option<SecretString>,
    #[serde(default)]
    pub keyword: Option<String>,
    // Not Dinky's `atUsers`: in app mode those are the recipients
    // (`Config::from_dinky` maps them).
    #[serde(
        default,
        alias = "mentioned_list",
        deserialize_with = "crate::params::ids"
    )]
    pub mentioned_users: Vec<String>,
    #[serde(
        default,
        alias = "atMobiles",
        alias = "mentioned_mobile_list",
        deserialize_with = "crate::params::ids"
    )]
    pub mentioned_mobiles: Vec<String>,
    #[serde(default, alias = "isAtAll", alias = "atAll")]
    pub at_all: bool,
    /// Send as text when a markdown message has mentions markdown cannot carry.
    #[serde(default)]
    pub mention_fallback_text: bool,

    // transport
    #[serde(default, alias = "sendUrl", alias = "baseUrl")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
}
