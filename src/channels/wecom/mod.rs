//! WeCom (企业微信): application messages and group robots.
//!
//! Config `type`: `wecom` (Dinky: `WeChat`). The param `mode` (Dinky
//! `sendType`) picks the API: `app` or `bot` (Dinky's `wechat`).
//!
//! | mode | params |
//! |---|---|
//! | `app` | `corp_id`, `secret` (corpsecret), `agent_id`, `to_users` (list, `a\|b`, or `@all`), `to_parties`, `to_tags`, `chat_ids` (group chats the app created with `appchat/create`; sent through `appchat/send`, no `agent_id` needed), `msg_type`: `markdown` (default), `text`, `textcard`, `base_url` (`https://qyapi.weixin.qq.com`, with or without `/cgi-bin`) |
//! | `bot` | `webhook` (full URL with `key`) or `key` [+ `base_url`], `msg_type`: `markdown` (default), `text`, `markdown_v2`, `keyword` (shown as the title), `mentioned_users`, `mentioned_mobiles`, `at_all`, `mention_fallback_text` |
//!
//! What the channel guarantees (platforms.md §3, §4):
//! - one token per (corp, secret), cached until 5 minutes before
//!   `expires_in` and fetched once under concurrent sends; on 40014, 42001,
//!   41001 (or 40001 from a send) exactly the token used is dropped, a new one
//!   fetched and the message resent once;
//! - more than 1,000 users or 100 parties or tags are split into several
//!   requests; recipients WeCom reports in `invaliduser`/`invalidparty`/
//!   `invalidtag` make the delivery `partial` (parties and tags are listed as
//!   `party:ID`, `tag:ID`); 81013 (all invalid) is a failure;
//! - robot mentions follow the platform: `text` carries `mentioned_list` and
//!   `mentioned_mobile_list` (with `@all`); `markdown` can only mention user
//!   ids, as `<@userid>` in the content: mobiles and `@all` cannot be
//!   expressed there, which the receipt notes, unless `mention_fallback_text`
//!   is set, in which case such a message is sent as text; `markdown_v2` has
//!   no mentions and no colours;
//! - content never exceeds the platform's limits (app: 2,048 bytes; robot text
//!   2,048, markdown 4,096): longer text is cut on a UTF-8 boundary with a
//!   visible marker, never refused with 40058;
//! - markdown uses WeCom's `<font color="warning|info|comment">` for severity.
//!
//! ```
//! use alertkit::{Config, Notifier};
//! let config = Config::from_json(r#"{"instances": [
//!   {"name": "wecom-app", "type": "WeChat", "params": {"sendType": "app", "corpId": "ww123",
//!     "secret": "s3cr3t", "agentId": 1000002, "to_users": ["zhangsan"]}},
//!   {"name": "wecom-bot", "type": "WeChat", "params": {"sendType": "wechat",
//!     "webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", "keyword": "Dinky", "isAtAll": true}}
//! ]}"#).unwrap();
//! assert!(Notifier::from_config(&config).is_ok());
//! ```

mod app;
mod bot;
mod config;
mod errors;
mod typed;

#[cfg(test)]
pub(crate) use errors::classify;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use config::Params;
pub use config::{Mode, MsgType};
pub use typed::{WeComApp, WeComAppBuilder, WeComRobot, WeComRobotBuilder};

use crate::alert::{Alert, Mention};
use crate::channel::{AlertChannel, Limits, Preview, Rate, Receipt};
use crate::error::{Error, Result};
use crate::http::{join_api, parse_url};
use crate::registry::{BuildContext, Registry};
use crate::template::{Format, Templates};
use crate::text::fit_text;

/// The type name.
pub const KIND: &str = "wecom";
/// The WeCom API host.
pub const BASE: &str = "https://qyapi.weixin.qq.com";
/// App message content limit, bytes (§3.2).
pub const APP_MAX: usize = 2048;
/// Robot text content limit, bytes (§4).
pub const BOT_TEXT_MAX: usize = 2048;
/// Robot markdown and markdown_v2 content limit, bytes (§4).
pub const BOT_MARKDOWN_MAX: usize = 4096;

pub(crate) fn register(r: &mut Registry) {
    r.builtin(KIND, &["WeChat", "wework"], |ctx| {
        Ok(Arc::new(WeCom::build(ctx)?))
    });
}

/// WeCom's rule for the chat ids `appchat/create` accepts.
fn is_chat_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A WeCom instance; see the module docs for params.
///
/// ```
/// use alertkit::channels::wecom::WeComRobot;
/// use alertkit::{Alert, Http};
/// let robot = WeComRobot::builder()
///     .webhook("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc")
///     .build()?
///     .channel(&Http::new())?;
/// assert_eq!(robot.kind(), "wecom");
/// let body = &robot.preview(&Alert::new("disk full"))?[0].body;
/// assert_eq!(body["msgtype"], "markdown");
/// # Ok::<(), alertkit::Error>(())
/// ```
pub struct WeCom {
    templates: Templates,
    msg_type: MsgType,
    api: Api,
}

enum Api {
    App(app::App),
    Bot(bot::Bot, BotOptions),
}

struct BotOptions {
    keyword: Option<String>,
    users: Vec<String>,
    mobiles: Vec<String>,
    all: bool,
    fallback_text: bool,
}

impl std::fmt::Debug for WeCom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.api {
            Api::App(a) => format!("app corp {} agent {:?}", a.corp_id, a.agent_id),
            Api::Bot(b, _) => format!("bot {}", b.target()),
        };
        f.debug_struct("WeCom")
            .field("mode", &mode)
            .field("msg_type", &self.msg_type)
            .finish_non_exhaustive()
    }
}

impl WeCom {
    /// Builds from a [`BuildContext`]; every param is validated here.
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self> {
        let p: Params = ctx.params()?;
        let client = ctx.http().client_for(p.proxy.as_ref())?;
        let base = parse_url(
            "params.base_url",
            p.base_url.as_deref().unwrap_or(BASE),
            p.allow_http,
        )?;
        let has_webhook =
            p.webhook.as_deref().is_some_and(|w| !w.trim().is_empty()) || p.key.is_some();
        let mode = p
            .mode
            .unwrap_or(if has_webhook { Mode::Bot } else { Mode::App });
        let need = |v: Option<String>, field: &str| {
            v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                Error::config(
                    format!("params.{field}"),
                    format!("required in {mode:?} mode"),
                )
            })
        };
        let api = match mode {
            Mode::App => {
                if p.msg_type == MsgType::MarkdownV2 {
                    return Err(Error::config(
                        "params.msg_type",
                        "markdown_v2 exists for robots only",
                    ));
                }
                let corp_id = need(p.corp_id.clone(), "corp_id")?;
                let secret = p
                    .secret
                    .clone()
                    .filter(|s| !s.expose_secret().trim().is_empty())
                    .ok_or_else(|| Error::config("params.secret", "required in app mode"))?;
                let direct =
                    !(p.to_users.is_empty() && p.to_parties.is_empty() && p.to_tags.is_empty());
                if !direct && p.chat_ids.is_empty() {
                    return Err(Error::config(
                        "params.to_users",
                        "app mode needs `to_users`, `to_parties`, `to_tags` (`@all` for everyone) or `chat_ids`",
                    ));
                }
                if direct && p.agent_id.is_none() {
                    return Err(Error::config(
                        "params.agent_id",
                        "required in app mode (to send to users, parties or tags)",
                    ));
                }
                if let Some((i, _)) = p.chat_ids.iter().enumerate().find(|(_, c)| !is_chat_id(c)) {
                    return Err(Error::config(
                        format!("params.chat_ids[{i}]"),
                        "a chat id is 1 to 32 characters 0-9, a-z, A-Z",
                    ));
                }
                let tokens = ctx
                    .http()
                    .token_cache(&crate::http::token_key(KIND, &corp_id, &secret));
                Api::App(app::App {
                    client,
                    base,
                    corp_id,
                    secret,
                    agent_id: p.agent_id,
                    users: p.to_users,
                    parties: p.to_parties,
                    tags: p.to_tags,
                    chats: p.chat_ids,
                    tokens,
                })
            }
            Mode::Bot => {
                if p.msg_type == MsgType::Textcard {
                    return Err(Error::config(
                        "params.msg_type",
                        "textcard exists for app messages only",
                    ));
                }
                let url = match (&p.webhook, &p.key) {
                    (Some(w), _) if !w.trim().is_empty() => {
                        let u = parse_url("params.webhook", w, p.allow_http)?;
                        if !u.query_pairs().any(|(k, v)| k == "key" && !v.is_empty()) {
                            return Err(Error::config(
                                "params.webhook",
                                "the webhook URL has no key",
                            ));
                        }
                        u
                    }
                    (_, Some(key)) => {
                        let mut u = join_api(&base, "cgi-bin/webhook/send")?;
                        u.query_pairs_mut().append_pair("key", key.expose_secret());
                        u
                    }
                    _ => {
                        return Err(Error::config(
                            "params.webhook",
                            "bot mode needs `webhook` (or `key`)",
                        ));
                    }
                };
                Api::Bot(
                    bot::Bot { client, url },
                    BotOptions {
                        keyword: p.keyword.filter(|k| !k.trim().is_empty()),
                        users: p.mentioned_users,
                        mobiles: p.mentioned_mobiles,
                        all: p.at_all,
                        fallback_text: p.mention_fallback_text,
                    },
                )
            }
        };
        Ok(WeCom {
            templates: ctx.templates().clone(),
            msg_type: p.msg_type,
            api,
        })
    }

    /// The app message (without recipients) and notes.
    fn app_message(&self, alert: &Alert) -> Result<(Map<String, Value>, Receipt)> {
        let (alert, notes) = crate::text::fit_alert(alert, APP_MAX);
        let alert = &*alert;
        let mut receipt = notes.into_iter().fold(Receipt::new(), Receipt::with_note);
        if !alert.mentions.is_empty() {
            receipt =
                receipt.with_note("application messages cannot mention anyone; mentions dropped");
        }
        let fitted = |format, platform: &str| -> Result<(String, usize)> {
            let text = self.templates.render(format, alert, platform)?;
            let text = if format == Format::Text {
                crate::template::neutralized(text)
            } else {
                text
            };
            Ok(fit_text(&text, "", APP_MAX))
        };
        let first_link = alert
            .job
            .as_ref()
            .and_then(|j| j.url.clone())
            .or_else(|| alert.links.first().map(|l| l.url.clone()))
            .filter(|u| crate::template::is_web_url(u));
        let (msg, omitted) = match (self.msg_type, first_link) {
            (MsgType::Textcard, Some(url)) => {
                let title = crate::template::neutralized(self.templates.render(
                    Format::Title,
                    alert,
                    KIND,
                )?);
                let text = crate::template::neutralized(self.templates.render(
                    Format::Text,
                    alert,
                    KIND,
                )?);
                // The body without its first line (the title, shown above).
                let desc = text.split_once('\n').map_or("", |(_, rest)| rest).trim();
                let card = json!({"title": crate::text::limit_chars(&title, 128),
                                  "description": crate::text::limit_chars(desc, 512),
                                  "url": url, "btntxt": "详情"});
                (json!({"msgtype": "textcard", "textcard": card}), 0)
            }
            (MsgType::Textcard, None) => {
                receipt = receipt.with_note("textcard needs a link; sent as text");
                let (content, omitted) = fitted(Format::Text, KIND)?;
                (
                    json!({"msgtype": "text", "text": {"content": content}}),
                    omitted,
                )
            }
            (MsgType::Text, _) => {
                let (content, omitted) = fitted(Format::Text, KIND)?;
                (
                    json!({"msgtype": "text", "text": {"content": content}}),
                    omitted,
                )
            }
            (MsgType::Markdown | MsgType::MarkdownV2, _) => {
                let (content, omitted) = fitted(Format::Markdown, KIND)?;
                (
                    json!({"msgtype": "markdown", "markdown": {"content": content}}),
                    omitted,
                )
            }
        };
        if omitted > 0 {
            receipt = receipt.with_note(format!(
                "content truncated to {APP_MAX} bytes ({omitted} bytes omitted)"
            ));
        }
        let Value::Object(map) = msg else {
            return Ok((Map::new(), receipt));
        };
        Ok((map, receipt))
    }

    /// The robot payload and notes.
    fn bot_message(&self, alert: &Alert, o: &BotOptions) -> Result<(BotMessage, Receipt)> {
        let (alert, notes) = crate::text::fit_alert(alert, BOT_MARKDOWN_MAX);
        let alert = &*alert;
        let mut receipt = notes.into_iter().fold(Receipt::new(), Receipt::with_note);
        let (mut users, mut mobiles, mut all) = (o.users.clone(), o.mobiles.clone(), o.all);
        for m in &alert.mentions {
            match m {
                Mention::All => all = true,
                Mention::UserId(x) | Mention::Mobile(x) if !crate::alert::is_plain_id(x) => {
                    receipt = receipt.with_note("a mention that is not a plain id was left out")
                }
                Mention::UserId(u) if !users.contains(u) => users.push(u.clone()),
                Mention::Mobile(x) if !mobiles.contains(x) => mobiles.push(x.clone()),
                Mention::Email(e) => {
                    receipt = receipt.with_note(format!("WeCom robots cannot mention email {e}"))
                }
                _ => {}
            }
        }
        let mut msg_type = self.msg_type;
        if msg_type == MsgType::Markdown && o.fallback_text && (all || !mobiles.is_empty()) {
            msg_type = MsgType::Text;
            receipt = receipt.with_note("sent as text: markdown cannot mention mobiles or @all");
        }
        let (body, omitted, max) = match msg_type {
            MsgType::Text | MsgType::Textcard => {
                let mut text = crate::template::neutralized(self.templates.render(
                    Format::Text,
                    alert,
                    KIND,
                )?);
                if let Some(k) = &o.keyword {
                    text = format!("{k}\n{text}");
                }
                let (content, omitted) = fit_text(&text, "", BOT_TEXT_MAX);
                let mut list = users.clone();
                let mut mobile_list = mobiles.clone();
                if all {
                    list.push("@all".into());
                    mobile_list.push("@all".into());
                }
                let body = BotMessage::Text(BotText {
                    content,
                    mentioned_list: list,
                    mentioned_mobile_list: mobile_list,
                });
                (body, omitted, BOT_TEXT_MAX)
            }
            MsgType::Markdown => {
                let mut text = self.templates.render(Format::Markdown, alert, KIND)?;
                if let Some(k) = &o.keyword {
                    text = format!("**{k}**\n{text}");
                }
                let suffix: String = users.iter().map(|u| format!("<@{u}>")).collect();
                let suffix = if suffix.is_empty() {
                    suffix
                } else {
                    format!("\n{suffix}")
                };
                if all || !mobiles.is_empty() {
                    receipt = receipt.with_note(
                        "WeCom markdown cannot mention mobiles or @all (set mention_fallback_text to send such alerts as text)",
                    );
                }
                let (content, omitted) = fit_text(&text, &suffix, BOT_MARKDOWN_MAX);
                (BotMessage::Markdown(content), omitted, BOT_MARKDOWN_MAX)
            }
            MsgType::MarkdownV2 => {
                let mut text = self.templates.render(Format::Markdown, alert, "wecom_v2")?;
                if let Some(k) = &o.keyword {
                    text = format!("**{k}**\n{text}");
                }
                if all || !mobiles.is_empty() || !users.is_empty() {
                    receipt = receipt
                        .with_note("WeCom markdown_v2 cannot mention anyone; mentions dropped");
                }
                let (content, omitted) = fit_text(&text, "", BOT_MARKDOWN_MAX);
                (BotMessage::MarkdownV2(content), omitted, BOT_MARKDOWN_MAX)
            }
        };
        if omitted > 0 {
            receipt = receipt.with_note(format!(
                "content truncated to {max} bytes ({omitted} bytes omitted)"
            ));
        }
        Ok((body, receipt))
    }
}

/// A group robot message (§4): `{"msgtype": "text", "text": {...}}` and
/// the like, serialized without a `serde_json::Value` tree.
enum BotMessage {
    Text(BotText),
    Markdown(String),
    MarkdownV2(String),
}

#[derive(serde::Serialize)]
struct BotText {
    content: String,
    mentioned_list: Vec<String>,
    mentioned_mobile_list: Vec<String>,
}

impl serde::Serialize for BotMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(serde::Serialize)]
        struct Content<'a> {
            content: &'a str,
        }
        let mut m = s.serialize_map(Some(2))?;
        match self {
            BotMessage::Text(text) => {
                m.serialize_entry("msgtype", "text")?;
                m.serialize_entry("text", text)?;
            }
            BotMessage::Markdown(content) => {
                m.serialize_entry("msgtype", "markdown")?;
                m.serialize_entry("markdown", &Content { content })?;
            }
            BotMessage::MarkdownV2(content) => {
                m.serialize_entry("msgtype", "markdown_v2")?;
                m.serialize_entry("markdown_v2", &Content { content })?;
            }
        }
        m.end()
    }
}

#[async_trait]
impl AlertChannel for WeCom {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        match &self.api {
            Api::App(a) => {
                let (msg, receipt) = self.app_message(alert)?;
                // Boxed of its own (token fetch, batches): the robot's
                // future, sent most, stays small.
                Box::pin(a.send(&msg, receipt)).await
            }
            Api::Bot(b, o) => {
                let (body, receipt) = self.bot_message(alert, o)?;
                b.send(&body, receipt).await
            }
        }
    }

    fn kind(&self) -> &str {
        KIND
    }

    fn limits(&self) -> Limits {
        match &self.api {
            // §4: 20 a minute per robot.
            Api::Bot(b, _) => {
                let max = if self.msg_type == MsgType::Text {
                    BOT_TEXT_MAX
                } else {
                    BOT_MARKDOWN_MAX
                };
                Limits::new(b.destination(), vec![Rate::per_minute(20)], max - 256)
            }
            // §3.4: 30 a minute per member; every member gets every message.
            Api::App(a) => Limits::new(
                format!("wecom-app:{}:{}", a.corp_id, a.agent_id.unwrap_or_default()),
                vec![Rate::per_minute(30)],
                APP_MAX - 256,
            ),
        }
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        match &self.api {
            Api::App(a) => a.preview(&self.app_message(alert)?.0),
            Api::Bot(b, o) => {
                let (body, _) = self.bot_message(alert, o)?;
                let body = serde_json::to_value(body).map_err(|e| {
                    Error::new(crate::ErrorKind::Internal, "cannot serialize the payload")
                        .with_source(e)
                })?;
                Ok(vec![Preview::new(b.target(), body)])
            }
        }
    }
}
