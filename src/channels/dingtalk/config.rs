//! DingTalk instance params, with Dinky's names as aliases (platforms.md §10).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::params::{one_or_many, port};

use crate::http::ProxyConfig;

/// Which DingTalk API an instance uses.
///
/// ```
/// use alertkit::channels::dingtalk::{DingTalkApp, DingTalkRobot, Mode};
/// assert_eq!(Mode::default(), Mode::Robot);
/// assert_eq!((DingTalkRobot::MODE, DingTalkApp::MODE), (Mode::Robot, Mode::App));
/// assert_eq!(serde_json::to_value(Mode::Conversation).unwrap(), "conversation");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// A custom group robot webhook (default).
    #[default]
    Robot,
    /// An enterprise internal app's robot (api.dingtalk.com).
    App,
    /// The legacy `gettoken` + `chat/send` flow.
    Conversation,
}

/// Message type of robot and conversation sends.
///
/// ```
/// use alertkit::channels::dingtalk::MsgType;
/// assert_eq!(MsgType::default(), MsgType::Markdown);
/// // Dinky stores `MarkDown`; both spellings read.
/// let t: MsgType = serde_json::from_value(serde_json::json!("MarkDown")).unwrap();
/// assert_eq!(t, MsgType::Markdown);
/// assert_eq!(serde_json::to_value(MsgType::ActionCard).unwrap(), "action_card");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MsgType {
    /// Markdown (default).
    #[default]
    #[serde(alias = "MarkDown", alias = "markDown")]
    Markdown,
    /// Plain text.
    #[serde(alias = "Text")]
    Text,
    /// An action card whose buttons are the alert's links.
    #[serde(alias = "actionCard")]
    ActionCard,
}

/// The params of a `dingtalk` instance.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, alias = "msgType", alias = "msgtype")]
    pub msg_type: MsgType,

    // robot
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default, alias = "accessToken")]
    pub access_token: Option<SecretString>,
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(default, alias = "keyword", deserialize_with = "one_or_many")]
    pub keywords: Vec<String>,
    #[serde(default, alias = "atMobiles")]
    pub at_mobiles: Vec<String>,
    #[serde(default, alias = "atUserIds", alias = "atUsers")]
    pub at_user_ids: Vec<String>,
    #[serde(default, alias = "isAtAll", alias = "atAll")]
    pub at_all: bool,

    // app and conversation
    #[serde(default, alias = "client_id", alias = "appKey")]
    pub app_key: Option<String>,
    #[serde(default, alias = "client_secret", alias = "appSecret")]
    pub app_secret: Option<SecretString>,
    #[serde(default, alias = "robotCode")]
    pub robot_code: Option<String>,
    #[serde(default, alias = "userIds")]
    pub user_ids: Vec<String>,
    #[serde(default, alias = "openConversationIds")]
    pub open_conversation_ids: Vec<String>,
    #[serde(default, alias = "chatIds")]
    pub chat_ids: Vec<String>,
    /// How often flow-controlled users are tried again within one send.
    #[serde(default = "two", deserialize_with = "crate::params::num")]
    pub flow_control_retries: u32,
    #[serde(default = "one_second", deserialize_with = "crate::params::num")]
    pub flow_control_wait_ms: u64,

    // transport
    #[serde(default, alias = "baseUrl")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    // Dinky's proxy fields.
    #[serde(default, alias = "isEnableProxy")]
    pub enable_proxy: bool,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
}

fn two() -> u32 {
    2
}

fn one_second() -> u64 {
    1000
}
