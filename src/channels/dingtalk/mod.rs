//! DingTalk (钉钉): custom group robots, an app's robot, and legacy chats.
//!
//! Config `type`: `dingtalk` (Dinky: `DingTalk`). The param `mode` picks the API:
//!
//! | mode | params | API |
//! |---|---|---|
//! | `robot` (default) | `webhook` (full URL) or `access_token` [+ `base_url`], `secret`, `keywords`, `at_mobiles`, `at_user_ids`, `at_all`, `msg_type`, `proxy` | `POST /robot/send` |
//! | `app` | `app_key`, `app_secret`, `robot_code`, `user_ids` and/or `open_conversation_ids` | `/v1.0/robot/oToMessages/batchSend`, `/v1.0/robot/groupMessages/send` |
//! | `conversation` | `app_key`, `app_secret`, `chat_ids` | `GET /gettoken`, `POST /chat/send` |
//!
//! `msg_type` is `markdown` (default), `text` or `action_card` (links become
//! buttons). Common params: `base_url` (default `https://oapi.dingtalk.com`,
//! `https://api.dingtalk.com` in app mode), `allow_http`, `proxy`
//! (`{"url", "username", "password"}`; Dinky's `isEnableProxy`, `hostname`,
//! `port`, `user`, `password` work too). Dinky's `keyword`, `atMobiles`,
//! `isAtAll`/`atAll` are accepted as they are.
//!
//! What the channel guarantees (platforms.md §1, §2):
//! - every attempt is signed with a fresh millisecond timestamp, the
//!   signature percent-encoded exactly once;
//! - if the rendered message holds none of the robot's keywords, the first
//!   is appended visibly, so the robot never answers 310000 for it;
//! - mentions (`at_*` params merged with the alert's) set the `at` object and,
//!   for markdown and text, appear as `@…` in the text, as DingTalk requires;
//!   e-mail mentions cannot be expressed and are noted in the receipt;
//! - the request body stays under 20,000 bytes: a longer text is cut on a
//!   UTF-8 boundary with a visible "… (truncated, N bytes omitted)" marker
//!   after which mentions and keyword still follow, and the receipt says so;
//! - every answer is classified by its `errcode`/`code`, never by HTTP status.
//!
//! ```
//! use alertkit::{Config, Notifier};
//! let config = Config::from_json(r#"{"instances": [{
//!     "name": "ops-ding", "type": "DingTalk",
//!     "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=abc",
//!                "secret": "SEC0123", "keyword": "alert", "atMobiles": ["13800000000"], "isAtAll": false}
//! }]}"#).unwrap();
//! let notifier = Notifier::from_config(&config).unwrap();
//! assert_eq!(notifier.instances()[0].kind, "DingTalk");
//! ```

mod app;
mod config;
mod conversation;
mod errors;
mod robot;
mod sign;
mod typed;

#[cfg(test)]
pub(crate) use errors::{classify_errcode, classify_new_api};

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use config::Params;
pub use config::{Mode, MsgType};
pub use typed::{
    DingTalkApp, DingTalkAppBuilder, DingTalkConversation, DingTalkConversationBuilder,
    DingTalkRobot, DingTalkRobotBuilder,
};

use crate::alert::{Alert, Mention};
use crate::channel::{AlertChannel, Limits, Preview, Rate, Receipt};
use crate::error::{Error, Result};
use crate::http::{ProxyConfig, parse_url};
use crate::registry::{BuildContext, Registry};
use crate::template::{Format, Templates};

/// The type name.
pub const KIND: &str = "dingtalk";
/// Robot and legacy API host.
pub const OAPI_BASE: &str = "https://oapi.dingtalk.com";
/// New API host (app mode).
pub const API_BASE: &str = "https://api.dingtalk.com";
/// Largest request body the robot accepts (§1.6).
pub const MAX_BODY: usize = 20_000;

pub(crate) fn register(r: &mut Registry) {
    r.builtin(KIND, &[], |ctx| Ok(Arc::new(DingTalk::build(ctx)?)));
}

/// A DingTalk instance. Build it from config through a
/// [`Registry`]; see the module docs for params.
///
/// ```
/// use alertkit::channels::dingtalk::DingTalkRobot;
/// use alertkit::{Alert, Http};
/// let robot = DingTalkRobot::builder()
///     .webhook("https://oapi.dingtalk.com/robot/send?access_token=abc")
///     .keywords(["alert"])
///     .build()?
///     .channel(&Http::new())?;
/// assert_eq!(robot.kind(), "dingtalk");
/// let body = &robot.preview(&Alert::new("disk full"))?[0].body;
/// assert!(body["markdown"]["text"].as_str().unwrap().contains("alert"), "{body}");
/// # Ok::<(), alertkit::Error>(())
/// ```
pub struct DingTalk {
    templates: Templates,
    msg_type: MsgType,
    mentions: MentionConfig,
    keywords: Vec<String>,
    api: Api,
}

enum Api {
    Robot(robot::Robot),
    App(app::App),
    Conversation(conversation::Conversation),
}

impl std::fmt::Debug for DingTalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.api {
            Api::Robot(r) => format!("robot {}", r.target()),
            Api::App(_) => "app".to_owned(),
            Api::Conversation(_) => "conversation".to_owned(),
        };
        f.debug_struct("DingTalk")
            .field("mode", &mode)
            .field("msg_type", &self.msg_type)
            .field("keywords", &self.keywords)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default)]
struct MentionConfig {
    mobiles: Vec<String>,
    user_ids: Vec<String>,
    all: bool,
}

/// Mentions of one message: config merged with the alert's own.
#[derive(Debug, Default)]
pub(crate) struct Mentions {
    pub mobiles: Vec<String>,
    pub user_ids: Vec<String>,
    pub all: bool,
    pub unsupported: Vec<String>,
}

impl Mentions {
    /// The `@…` tokens DingTalk needs in the text for the `at` object to work.
    pub fn inline(&self) -> String {
        let mut s = String::new();
        for m in self.mobiles.iter().chain(&self.user_ids) {
            s.push('@');
            s.push_str(m);
            s.push(' ');
        }
        if self.all && s.is_empty() {
            s.push_str("@all");
        }
        s.trim_end().to_owned()
    }

    /// The robot's `at` object.
    pub fn at_object(&self) -> At<'_> {
        At {
            at_mobiles: &self.mobiles,
            at_user_ids: &self.user_ids,
            is_at_all: self.all,
        }
    }
}

/// The robot's `at` object: who the message mentions.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct At<'a> {
    at_mobiles: &'a [String],
    at_user_ids: &'a [String],
    is_at_all: bool,
}

/// A robot `text` or `markdown` message, serialized without building a
/// `serde_json::Value` tree. The text is owned: it is the part a fit cuts.
#[derive(serde::Serialize)]
struct RobotMessage<'a> {
    msgtype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<RobotText<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    markdown: Option<RobotText<'a>>,
    at: &'a At<'a>,
}

#[derive(serde::Serialize)]
struct RobotText<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl<'a> RobotMessage<'a> {
    fn text(content: &str, at: &'a At<'a>) -> Self {
        RobotMessage {
            msgtype: "text",
            text: Some(RobotText {
                title: None,
                content: Some(content.to_owned()),
                text: None,
            }),
            markdown: None,
            at,
        }
    }

    fn markdown(title: &'a str, text: &str, at: &'a At<'a>) -> Self {
        RobotMessage {
            msgtype: "markdown",
            text: None,
            markdown: Some(RobotText {
                title: Some(title),
                content: None,
                text: Some(text.to_owned()),
            }),
            at,
        }
    }
}

fn non_empty(s: Option<SecretString>) -> Option<SecretString> {
    s.filter(|s| !s.expose_secret().trim().is_empty())
}

fn required<T>(v: Option<T>, field: &str, mode: &str) -> Result<T> {
    v.ok_or_else(|| {
        Error::config(
            format!("params.{field}"),
            format!("required in {mode} mode"),
        )
    })
}

impl DingTalk {
    /// Builds from a [`BuildContext`]; every param is validated here.
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self> {
        let p: Params = ctx.params()?;
        let client = ctx.http().client_for(dinky_proxy(&p)?.as_ref())?;
        let base = |default: &str| -> Result<url::Url> {
            parse_url(
                "params.base_url",
                p.base_url.as_deref().unwrap_or(default),
                p.allow_http,
            )
        };
        let api = match p.mode {
            Mode::Robot => {
                let url = match (&p.webhook, &p.access_token) {
                    (Some(w), _) if !w.trim().is_empty() => {
                        let u = parse_url("params.webhook", w, p.allow_http)?;
                        if !u
                            .query_pairs()
                            .any(|(k, v)| k == "access_token" && !v.is_empty())
                        {
                            return Err(Error::config(
                                "params.webhook",
                                "the webhook URL has no access_token",
                            ));
                        }
                        u
                    }
                    (_, Some(token)) => {
                        let mut u = base(OAPI_BASE)?.join("robot/send").map_err(|_| {
                            Error::config(
                                "params.base_url",
                                "cannot append robot/send to the base URL",
                            )
                        })?;
                        u.query_pairs_mut()
                            .append_pair("access_token", token.expose_secret());
                        u
                    }
                    _ => {
                        return Err(Error::config(
                            "params.webhook",
                            "robot mode needs `webhook` (or `access_token`)",
                        ));
                    }
                };
                Api::Robot(robot::Robot::new(client, url, non_empty(p.secret.clone())))
            }
            Mode::App => {
                let key = required(p.app_key.clone(), "app_key", "app")?;
                let secret = required(non_empty(p.app_secret.clone()), "app_secret", "app")?;
                let robot_code = required(p.robot_code.clone(), "robot_code", "app")?;
                if p.user_ids.is_empty() && p.open_conversation_ids.is_empty() {
                    return Err(Error::config(
                        "params.user_ids",
                        "app mode needs `user_ids` and/or `open_conversation_ids`",
                    ));
                }
                let tokens =
                    ctx.http()
                        .token_cache(&crate::http::token_key("dingtalk-app", &key, &secret));
                Api::App(app::App {
                    client,
                    base: base(API_BASE)?,
                    app_key: key,
                    app_secret: secret,
                    robot_code,
                    user_ids: p.user_ids.clone(),
                    conversations: p.open_conversation_ids.clone(),
                    tokens,
                    flow_retries: p.flow_control_retries,
                    flow_wait: std::time::Duration::from_millis(p.flow_control_wait_ms),
                })
            }
            Mode::Conversation => {
                let key = required(p.app_key.clone(), "app_key", "conversation")?;
                let secret = required(
                    non_empty(p.app_secret.clone()),
                    "app_secret",
                    "conversation",
                )?;
                if p.chat_ids.is_empty() {
                    return Err(Error::config(
                        "params.chat_ids",
                        "required in conversation mode",
                    ));
                }
                let tokens = ctx.http().token_cache(&crate::http::token_key(
                    "dingtalk-legacy",
                    &key,
                    &secret,
                ));
                Api::Conversation(conversation::Conversation {
                    client,
                    base: base(OAPI_BASE)?,
                    app_key: key,
                    app_secret: secret,
                    chat_ids: p.chat_ids.clone(),
                    tokens,
                })
            }
        };
        Ok(DingTalk {
            templates: ctx.templates().clone(),
            msg_type: p.msg_type,
            mentions: MentionConfig {
                mobiles: p.at_mobiles,
                user_ids: p.at_user_ids,
                all: p.at_all,
            },
            keywords: p.keywords,
            api,
        })
    }

    fn mentions(&self, alert: &Alert) -> Mentions {
        let mut m = Mentions {
            mobiles: self.mentions.mobiles.clone(),
            user_ids: self.mentions.user_ids.clone(),
            all: self.mentions.all,
            unsupported: Vec::new(),
        };
        for mention in &alert.mentions {
            match mention {
                Mention::All => m.all = true,
                Mention::Mobile(x) | Mention::UserId(x) if !crate::alert::is_plain_id(x) => m
                    .unsupported
                    .push("a mention that is not a plain id".to_owned()),
                Mention::Mobile(x) if !m.mobiles.contains(x) => m.mobiles.push(x.clone()),
                Mention::UserId(x) if !m.user_ids.contains(x) => m.user_ids.push(x.clone()),
                Mention::Email(x) => m.unsupported.push(format!("email {x}")),
                _ => {}
            }
        }
        m
    }

    /// Renders the message parts every mode shares.
    fn render<'a>(&self, alert: &'a Alert) -> Result<Rendered<'a>> {
        let body_format = match self.msg_type {
            MsgType::Text => Format::Text,
            MsgType::Markdown | MsgType::ActionCard => Format::Markdown,
        };
        let [title, body] =
            self.templates
                .render_many([Format::Title, body_format], alert, KIND)?;
        // Text is shown as it is; alert text still never carries markup.
        let title = crate::template::neutralized(title);
        let body = if body_format == Format::Text {
            crate::template::neutralized(body)
        } else {
            body
        };
        let mentions = self.mentions(alert);
        // Keyword: present in what DingTalk scans, or appended visibly. One
        // found only in the body may be cut off by fitting: `fit` appends it
        // then.
        let in_title = self.keywords.iter().any(|k| title.contains(k.as_str()));
        let in_body = self.keywords.iter().any(|k| body.contains(k.as_str()));
        let (keyword, keyword_if_cut) = match self.keywords.first() {
            Some(first) if !in_title && !in_body => (Some(first.clone()), None),
            Some(first) if !in_title => (None, Some(first.clone())),
            _ => (None, None),
        };
        Ok(Rendered {
            title,
            body,
            mentions,
            keyword,
            keyword_if_cut,
            // Buttons: http(s) only (the markdown shows others as text).
            links: alert
                .web_links_with_job("Job")
                .into_iter()
                .map(|(t, u)| (crate::template::neutralize(t), u))
                .collect(),
        })
    }

    /// The robot payload for `alert` and the notes about it, within
    /// [`MAX_BODY`] bytes once serialized.
    /// With a `msg_uuid` (the delivery's idempotency key), the robot
    /// de-duplicates a retried or redelivered message (§1.1).
    pub(crate) fn robot_payload(
        &self,
        alert: &Alert,
        msg_uuid: Option<&str>,
    ) -> Result<(Vec<u8>, Vec<String>)> {
        // Room for `"msgUuid":"<key>",` when there is one.
        let max = MAX_BODY - msg_uuid.map_or(0, |k| k.len() + 16);
        let (alert, mut notes) = crate::text::fit_alert(alert, max);
        let r = self.render(&alert)?;
        let (body, more) = r.robot_body(self.msg_type, max)?;
        notes.extend(more);
        Ok((with_msg_uuid(body, msg_uuid), notes))
    }

    /// The most text one message of this mode carries.
    fn max_text(&self) -> usize {
        match &self.api {
            Api::Robot(_) => MAX_BODY,
            Api::App(_) => app::MAX_PARAM,
            Api::Conversation(_) => conversation::MAX_CONTENT,
        }
    }
}

/// Everything rendered for one alert, before it is fitted into a payload.
pub(crate) struct Rendered<'a> {
    pub title: String,
    pub body: String,
    pub mentions: Mentions,
    pub keyword: Option<String>,
    /// The keyword to append should fitting cut the body (where the only
    /// keyword was).
    pub keyword_if_cut: Option<String>,
    /// Borrowed from the alert (titles copied only when neutralized).
    pub links: Vec<(std::borrow::Cow<'a, str>, &'a str)>,
}

impl Rendered<'_> {
    /// The text after `body`: mentions and keyword, which truncation must keep.
    fn suffix(&self, with_mentions: bool) -> String {
        let mut s = String::new();
        if with_mentions {
            let inline = self.mentions.inline();
            if !inline.is_empty() {
                s.push_str("\n\n");
                s.push_str(&inline);
            }
        }
        if let Some(k) = &self.keyword {
            s.push_str("\n\n");
            s.push_str(k);
        }
        s
    }

    /// Builds the body with `make(text)` and cuts `self.body` until the
    /// serialized JSON fits in `max` bytes.
    fn fit<F, T>(&self, max: usize, suffix: &str, make: F) -> Result<(Vec<u8>, Vec<String>)>
    where
        F: Fn(&str) -> T,
        T: serde::Serialize,
    {
        let mut notes: Vec<String> = self
            .mentions
            .unsupported
            .iter()
            .map(|m| format!("DingTalk cannot mention {m}"))
            .collect();
        let mut fitted = crate::text::fit_json(&self.body, suffix, max, &make)?;
        if fitted.omitted > 0
            && let Some(k) = &self.keyword_if_cut
        {
            // The body's keyword may be in the part cut off: append it.
            fitted = crate::text::fit_json(&self.body, &format!("{suffix}\n\n{k}"), max, &make)?;
        }
        if fitted.omitted > 0 {
            notes.push(format!(
                "text truncated to fit {max} bytes ({} bytes omitted)",
                fitted.omitted
            ));
        }
        Ok((fitted.bytes, notes))
    }

    pub(crate) fn robot_body(
        &self,
        msg_type: MsgType,
        max: usize,
    ) -> Result<(Vec<u8>, Vec<String>)> {
        let at = self.mentions.at_object();
        match msg_type {
            MsgType::Text => self.fit(max, &self.suffix(true), |text| {
                RobotMessage::text(text, &at)
            }),
            MsgType::Markdown => self.fit(max, &self.suffix(true), |text| {
                RobotMessage::markdown(&self.title, text, &at)
            }),
            MsgType::ActionCard if self.links.is_empty() => {
                let (b, mut notes) = self.fit(max, &self.suffix(true), |text| {
                    RobotMessage::markdown(&self.title, text, &at)
                })?;
                notes.push("action_card without links sent as markdown".to_owned());
                Ok((b, notes))
            }
            MsgType::ActionCard => {
                let (b, mut notes) = self.fit(max, &self.suffix(false), |text| {
                    let card = if self.links.len() == 1 {
                        json!({"title": self.title, "text": text, "singleTitle": self.links[0].0,
                               "singleURL": self.links[0].1, "btnOrientation": "0"})
                    } else {
                        let btns: Vec<_> = self
                            .links
                            .iter()
                            .map(|(t, u)| json!({"title": t, "actionURL": u}))
                            .collect();
                        json!({"title": self.title, "text": text, "btns": btns, "btnOrientation": "0"})
                    };
                    json!({"msgtype": "actionCard", "actionCard": card})
                })?;
                if !self.mentions.inline().is_empty() {
                    notes.push("action cards cannot mention anyone; mentions dropped".to_owned());
                }
                Ok((b, notes))
            }
        }
    }
}

/// `{"msgUuid":"<key>", ...rest of the object}`: the key goes first, so
/// the fitted body is not serialized again.
fn with_msg_uuid(body: Vec<u8>, msg_uuid: Option<&str>) -> Vec<u8> {
    let Some(key) = msg_uuid else { return body };
    match body.split_first() {
        Some((b'{', rest)) if rest.first() != Some(&b'}') => {
            let mut out = Vec::with_capacity(body.len() + key.len() + 16);
            out.extend_from_slice(b"{\"msgUuid\":");
            // A key is UUID-shaped; serializing it keeps any other text valid JSON.
            out.extend_from_slice(&serde_json::to_vec(key).unwrap_or_else(|_| b"\"\"".to_vec()));
            out.push(b',');
            out.extend_from_slice(rest);
            out
        }
        _ => body,
    }
}

fn dinky_proxy(p: &Params) -> Result<Option<ProxyConfig>> {
    if let Some(proxy) = &p.proxy {
        return Ok(Some(proxy.clone()));
    }
    crate::http::dinky_proxy(
        p.enable_proxy,
        p.hostname.as_deref(),
        p.port,
        p.user.as_deref(),
        p.password.as_ref(),
    )
}

#[async_trait]
impl AlertChannel for DingTalk {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        match &self.api {
            Api::Robot(r) => {
                let key = crate::channel::idempotency_key("");
                let (body, notes) = self.robot_payload(alert, key.as_deref())?;
                let receipt = r.send(body).await?;
                Ok(notes.into_iter().fold(receipt, Receipt::with_note))
            }
            // The app modes' futures (token fetch, batches) are boxed of
            // their own so that the robot's, sent most, stays small.
            Api::App(a) => {
                let (alert, notes) = crate::text::fit_alert(alert, self.max_text());
                let receipt = Box::pin(a.send(&self.render(&alert)?, self.msg_type)).await?;
                Ok(notes.into_iter().fold(receipt, Receipt::with_note))
            }
            Api::Conversation(c) => {
                let (alert, notes) = crate::text::fit_alert(alert, self.max_text());
                let receipt = Box::pin(c.send(&self.render(&alert)?, self.msg_type)).await?;
                Ok(notes.into_iter().fold(receipt, Receipt::with_note))
            }
        }
    }

    fn kind(&self) -> &str {
        KIND
    }

    fn limits(&self) -> Limits {
        match &self.api {
            // §1.6: 20 a minute per robot, then throttled for 10 minutes.
            Api::Robot(r) => Limits::new(
                r.destination(),
                vec![Rate::per_minute(20)],
                MAX_BODY - 2_000,
            ),
            // §2.2: ~20 QPS per app and API; msgParam ≤ 15,000 bytes.
            Api::App(a) => Limits::new(
                format!("dingtalk-app:{}", a.app_key),
                vec![Rate::per_second(20)],
                13_000,
            ),
            // §2.3: KubeSphere throttles 25/s per app key; content ≤ 5,000.
            Api::Conversation(c) => Limits::new(
                format!("dingtalk-chat:{}", c.app_key),
                vec![Rate::per_second(25)],
                4_500,
            ),
        }
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        match &self.api {
            Api::Robot(r) => {
                let (body, _) = self.robot_payload(alert, None)?;
                let value = serde_json::from_slice(&body).map_err(|e| {
                    Error::new(crate::ErrorKind::Internal, "payload is not JSON").with_source(e)
                })?;
                Ok(vec![Preview::new(r.target(), value)])
            }
            Api::App(a) => {
                let (alert, _) = crate::text::fit_alert(alert, self.max_text());
                a.preview(&self.render(&alert)?, self.msg_type)
            }
            Api::Conversation(c) => {
                let (alert, _) = crate::text::fit_alert(alert, self.max_text());
                c.preview(&self.render(&alert)?, self.msg_type)
            }
        }
    }
}
