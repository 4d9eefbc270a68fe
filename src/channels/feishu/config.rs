//! Feishu/Lark instance params, with Dinky's `FeiShu` names as aliases (§10).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::http::ProxyConfig;

/// Which Feishu API an instance uses.
///
/// ```
/// use alertkit::channels::feishu::{FeishuApp, FeishuBot, Mode};
/// assert_eq!(Mode::default(), Mode::Bot);
/// assert_eq!((FeishuBot::MODE, FeishuApp::MODE), (Mode::Bot, Mode::App));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// A custom bot webhook (default).
    #[default]
    Bot,
    /// An app bot sending to chats or people (im/v1/messages).
    App,
}

/// Message type.
///
/// ```
/// use alertkit::channels::feishu::MsgType;
/// assert_eq!(MsgType::default(), MsgType::Interactive); // a card
/// let t: MsgType = serde_json::from_value(serde_json::json!("rich_text")).unwrap();
/// assert_eq!(t, MsgType::Post);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MsgType {
    /// A card: header coloured by severity, facts as fields, links as buttons (default).
    #[default]
    #[serde(alias = "card")]
    Interactive,
    /// Rich text: title, paragraphs, links as `a` tags, `at` tags.
    #[serde(alias = "rich_text", alias = "richText")]
    Post,
    /// Plain text with `<at>` tags.
    #[serde(alias = "Text")]
    Text,
}

/// Id kinds `receive_ids` may hold in app mode (§11).
///
/// ```
/// use alertkit::channels::feishu::ReceiveIdType;
/// assert_eq!(ReceiveIdType::default(), ReceiveIdType::ChatId);
/// assert_eq!(serde_json::to_value(ReceiveIdType::OpenId).unwrap(), "open_id");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReceiveIdType {
    /// Group chats (default).
    #[default]
    ChatId,
    /// open_id of users.
    OpenId,
    /// user_id of users.
    UserId,
    /// union_id of users.
    UnionId,
    /// E-mail addresses of users.
    Email,
}

impl ReceiveIdType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReceiveIdType::ChatId => "chat_id",
            ReceiveIdType::OpenId => "open_id",
            ReceiveIdType::UserId => "user_id",
            ReceiveIdType::UnionId => "union_id",
            ReceiveIdType::Email => "email",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, alias = "msgType", alias = "msgtype")]
    pub msg_type: MsgType,

    // bot
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(
        default,
        alias = "keyword",
        deserialize_with = "crate::params::one_or_many"
    )]
    pub keywords: Vec<String>,
    #[serde(default, alias = "atUsers", alias = "at_users")]
    pub at_user_ids: Vec<String>,
    // Not Dinky's `isAtAll`: Dinky ignores it and mentions everyone when
    // `atUsers` is empty (`Config::from_dinky` maps that).
    #[serde(default, alias = "atAll")]
    pub at_all: bool,

    // app
    #[serde(default, alias = "appId")]
    pub app_id: Option<String>,
    #[serde(default, alias = "appSecret")]
    pub app_secret: Option<SecretString>,
    #[serde(default)]
    pub receive_id_type: ReceiveIdType,
    #[serde(default)]
    pub receive_ids: Vec<String>,

    // transport
    #[serde(default, alias = "baseUrl")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    #[serde(default, alias = "isEnableProxy")]
    pub enable_proxy: bool,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default, deserialize_with = "crate::params::port")]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
}
