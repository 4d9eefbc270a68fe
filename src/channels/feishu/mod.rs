//! Feishu / Lark (飞书): custom bots and app bots.
//!
//! Config `type`: `feishu` (Dinky: `FeiShu`; also `lark`). The param `mode`
//! picks the API:
//!
//! | mode | params |
//! |---|---|
//! | `bot` (default) | `webhook` (full hook URL on open.feishu.cn or open.larksuite.com) or `token` [+ `base_url`], `secret`, `keywords`, `at_user_ids`, `at_all`, `msg_type` |
//! | `app` | `app_id`, `app_secret`, `receive_id_type` (`chat_id` default, `open_id`, `user_id`, `union_id`, `email`), `receive_ids`, `msg_type`, `base_url` (`https://open.feishu.cn`; Lark: `https://open.larksuite.com`) |
//!
//! `msg_type`: `interactive` (default: a card whose header colour follows
//! severity, the job facts as fields, links as buttons), `post` (rich text:
//! title, paragraphs, links as `a` tags, `at` tags) or `text` (with
//! `<at user_id=…>` tags). Dinky's `keyword`, `atUsers` and proxy fields are
//! accepted as aliases; Dinky rows as stored (where an empty `atUsers`
//! means everyone and `isAtAll` is ignored) load with
//! [`Config::from_dinky`](crate::Config::from_dinky).
//!
//! What the channel guarantees (platforms.md §5, §7.2, §11):
//! - a bot with a `secret` signs every attempt with Feishu's own algorithm
//!   (key = `"{seconds}\n{secret}"` over an empty message), the timestamp and
//!   signature in the JSON body, never DingTalk's algorithm or milliseconds;
//! - a keyword missing from the rendered text is added visibly;
//! - the body stays under 20,000 bytes (bot) or 30,000 (app content):
//!   longer text is cut with a visible marker, never refused by the platform;
//! - `9499 too many request` is a retryable rate limit, `9499 Bad Request` a
//!   permanent content error: they are told apart, never looped on;
//! - app tenant tokens are cached per app until 5 minutes before `expire`,
//!   fetched once under concurrency, and refreshed once on 99991663/99991668.
//!
//! Custom bots cannot resolve phone numbers or e-mail addresses to users:
//! such mentions are noted in the receipt.
//!
//! ```
//! use alertkit::{Config, Notifier};
//! let config = Config::from_json(r#"{"instances": [{"name": "feishu", "type": "FeiShu", "params": {
//!   "webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/abc", "secret": "s", "keyword": "alert",
//!   "atUsers": ["ou_123"]}}]}"#).unwrap();
//! assert!(Notifier::from_config(&config).is_ok());
//! ```

mod app;
mod config;
mod errors;
mod sign;
mod typed;

#[cfg(test)]
pub(crate) use errors::classify;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use config::Params;
pub use config::{Mode, MsgType, ReceiveIdType};
pub use typed::{FeishuApp, FeishuAppBuilder, FeishuBot, FeishuBotBuilder};

use crate::alert::{Alert, Mention, Severity};
use crate::channel::{AlertChannel, Limits, Preview, Rate, Receipt};
use crate::error::{Error, Result};
use crate::http::{join_api, parse_url, post_bytes, redact_url};
use crate::registry::{BuildContext, Registry};
use crate::template::{FactTimes, Format, Lang, Templates};
use crate::text::fit_json;

/// The type name.
pub const KIND: &str = "feishu";
/// Feishu's API host.
pub const FEISHU_BASE: &str = "https://open.feishu.cn";
/// Lark's API host.
pub const LARK_BASE: &str = "https://open.larksuite.com";
/// Largest bot request body (§5.5: "20 KB"; 20,000 to be safe).
pub const MAX_BODY: usize = 20_000;
/// Largest app message `content` kept (§11: cards and posts ≤ 30 KB).
pub const APP_MAX_CONTENT: usize = 30_000;

pub(crate) fn register(r: &mut Registry) {
    r.builtin(KIND, &["lark"], |ctx| Ok(Arc::new(Feishu::build(ctx)?)));
}

/// A Feishu/Lark instance; see the module docs for params.
///
/// ```
/// use alertkit::channels::feishu::FeishuBot;
/// use alertkit::{Alert, Http};
/// let bot = FeishuBot::builder()
///     .webhook("https://open.feishu.cn/open-apis/bot/v2/hook/abc")
///     .build()?
///     .channel(&Http::new())?;
/// assert_eq!(bot.kind(), "feishu");
/// let body = &bot.preview(&Alert::new("disk full"))?[0].body;
/// assert_eq!(body["msg_type"], "interactive");
/// # Ok::<(), alertkit::Error>(())
/// ```
pub struct Feishu {
    templates: Templates,
    msg_type: MsgType,
    keywords: Vec<String>,
    at_user_ids: Vec<String>,
    at_all: bool,
    api: Api,
}

enum Api {
    Bot {
        client: reqwest::Client,
        url: Url,
        secret: Option<SecretString>,
    },
    App(app::App),
}

impl std::fmt::Debug for Feishu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.api {
            Api::Bot { url, secret, .. } => {
                format!("bot {} signed={}", redact_url(url), secret.is_some())
            }
            Api::App(a) => format!("app {} {}", a.app_id, redact_url(&a.base)),
        };
        f.debug_struct("Feishu")
            .field("mode", &mode)
            .field("msg_type", &self.msg_type)
            .field("keywords", &self.keywords)
            .finish_non_exhaustive()
    }
}

/// The mentions of one message.
struct Mentions {
    users: Vec<String>,
    all: bool,
}

impl Feishu {
    /// Builds from a [`BuildContext`]; every param is validated here.
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self> {
        let p: Params = ctx.params()?;
        let proxy = match &p.proxy {
            Some(proxy) => Some(proxy.clone()),
            None => crate::http::dinky_proxy(
                p.enable_proxy,
                p.hostname.as_deref(),
                p.port,
                p.user.as_deref(),
                p.password.as_ref(),
            )?,
        };
        let client = ctx.http().client_for(proxy.as_ref())?;
        let base = parse_url(
            "params.base_url",
            p.base_url.as_deref().unwrap_or(FEISHU_BASE),
            p.allow_http,
        )?;
        let api = match p.mode {
            Mode::Bot => {
                let url = match (&p.webhook, &p.token) {
                    (Some(w), _) if !w.trim().is_empty() => {
                        let u = parse_url("params.webhook", w, p.allow_http)?;
                        if !u.path().contains("/hook/") || u.path().ends_with("/hook/") {
                            return Err(Error::config(
                                "params.webhook",
                                "not a bot hook URL (expected …/open-apis/bot/v2/hook/<token>)",
                            ));
                        }
                        u
                    }
                    (_, Some(token)) => join_api(
                        &base,
                        &format!("open-apis/bot/v2/hook/{}", token.expose_secret()),
                    )?,
                    _ => {
                        return Err(Error::config(
                            "params.webhook",
                            "bot mode needs `webhook` (or `token`)",
                        ));
                    }
                };
                let secret = p
                    .secret
                    .clone()
                    .filter(|s| !s.expose_secret().trim().is_empty());
                Api::Bot {
                    client,
                    url,
                    secret,
                }
            }
            Mode::App => {
                let app_id = p
                    .app_id
                    .clone()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| Error::config("params.app_id", "required in app mode"))?;
                let app_secret = p
                    .app_secret
                    .clone()
                    .filter(|s| !s.expose_secret().trim().is_empty())
                    .ok_or_else(|| Error::config("params.app_secret", "required in app mode"))?;
                if p.receive_ids.is_empty() {
                    return Err(Error::config("params.receive_ids", "required in app mode"));
                }
                let tokens =
                    ctx.http()
                        .token_cache(&crate::http::token_key(KIND, &app_id, &app_secret));
                Api::App(app::App {
                    client,
                    base,
                    app_id,
                    app_secret,
                    receive_id_type: p.receive_id_type,
                    receive_ids: p.receive_ids.clone(),
                    tokens,
                })
            }
        };
        Ok(Feishu {
            templates: ctx.templates().clone(),
            msg_type: p.msg_type,
            keywords: p.keywords,
            at_user_ids: p.at_user_ids,
            at_all: p.at_all,
            api,
        })
    }

    fn mentions(&self, alert: &Alert, receipt: &mut Receipt) -> Mentions {
        let mut m = Mentions {
            users: self.at_user_ids.clone(),
            all: self.at_all,
        };
        for mention in &alert.mentions {
            match mention {
                Mention::All => m.all = true,
                Mention::UserId(u) if !crate::alert::is_plain_id(u) => receipt
                    .notes
                    .push("a mention that is not a plain user id was left out".to_owned()),
                Mention::UserId(u) if !m.users.contains(u) => m.users.push(u.clone()),
                Mention::Mobile(x) => receipt
                    .notes
                    .push(format!("Feishu bots cannot mention mobile {x}")),
                Mention::Email(x) => receipt
                    .notes
                    .push(format!("Feishu bots cannot mention email {x}")),
                _ => {}
            }
        }
        m
    }

    /// The keyword to add, when none is in `texts`.
    fn missing_keyword(&self, texts: &[&str]) -> Option<&str> {
        let present = self
            .keywords
            .iter()
            .any(|k| texts.iter().any(|t| t.contains(k.as_str())));
        (!present)
            .then(|| self.keywords.first().map(String::as_str))
            .flatten()
    }

    /// The message as `(msg_type, content)`: `content` is the bot's
    /// `content`/`card` object, fitted so that the whole `wrap`ped body fits
    /// in `max` bytes.
    fn message(
        &self,
        alert: &Alert,
        max: usize,
        wrap: &Wrap,
    ) -> Result<(&'static str, Vec<u8>, Receipt)> {
        let (alert, notes) = crate::text::fit_alert(alert, max);
        let (mut msg_type, mut bytes, mut receipt, cut_keyword) =
            self.message_once(&alert, max, wrap, false)?;
        if cut_keyword {
            // The only keyword was in the body, and fitting may have cut it:
            // add it where it cannot be cut.
            (msg_type, bytes, receipt, _) = self.message_once(&alert, max, wrap, true)?;
        }
        receipt.notes.extend(notes);
        Ok((msg_type, bytes, receipt))
    }

    /// [`message`](Self::message) for an alert already bounded; with
    /// `force_keyword`, the first keyword is added even when the body holds
    /// one. The last value says whether the body's keyword may have been cut.
    fn message_once(
        &self,
        alert: &Alert,
        max: usize,
        wrap: &Wrap,
        force_keyword: bool,
    ) -> Result<(&'static str, Vec<u8>, Receipt, bool)> {
        let mut receipt = Receipt::new();
        let missing = |texts: &[&str]| -> Option<String> {
            if force_keyword {
                self.keywords.first().cloned()
            } else {
                self.missing_keyword(texts).map(str::to_owned)
            }
        };
        // Whether a keyword is in a part fitting never cuts.
        let mut kept_keyword = self.keywords.is_empty();
        let m = self.mentions(alert, &mut receipt);
        let (body_format, platform) = match self.msg_type {
            MsgType::Interactive => (Format::Markdown, "feishu_card"),
            MsgType::Text | MsgType::Post => (Format::Text, KIND),
        };
        let [title, rendered] =
            self.templates
                .render_many([Format::Title, body_format], alert, platform)?;
        let title = crate::template::neutralized(title);
        let lang = self.templates.lang();
        let (msg_type, fitted) = match self.msg_type {
            MsgType::Text => {
                // Feishu parses `<at user_id=...>` in text: alert text may not.
                let text = crate::template::neutralized(rendered);
                let mut suffix = String::new();
                for u in &m.users {
                    suffix.push_str(&format!(" <at user_id=\"{u}\"></at>"));
                }
                if m.all {
                    suffix.push_str(" <at user_id=\"all\">所有人</at>");
                }
                let first_line = text.lines().next().unwrap_or("");
                kept_keyword |= self.missing_keyword(&[first_line]).is_none();
                if let Some(k) = missing(&[&text]) {
                    kept_keyword = true;
                    suffix.push_str(&format!("\n{k}"));
                }
                let f = fit_json(&text, &suffix, max, |t| {
                    wrap.apply("text", json!({"text": t}))
                })?;
                ("text", f)
            }
            MsgType::Post => {
                let text = crate::template::neutralized(rendered);
                // The first line is the title, shown as the post's title.
                let text = text
                    .split_once('\n')
                    .map_or("", |(_, rest)| rest)
                    .trim()
                    .to_owned();
                kept_keyword |= self.missing_keyword(&[&title]).is_none();
                let keyword = missing(&[&text, &title]);
                kept_keyword |= keyword.is_some();
                let locale = if lang == Lang::Zh { "zh_cn" } else { "en_us" };
                let links: Vec<Value> = alert
                    .web_links_with_job("Job")
                    .into_iter()
                    .flat_map(|(t, u)| {
                        [
                            json!({"tag": "a", "text": crate::template::neutralize(t), "href": u}),
                            json!({"tag": "text", "text": "  "}),
                        ]
                    })
                    .collect();
                let mut ats: Vec<Value> = m
                    .users
                    .iter()
                    .map(|u| json!({"tag": "at", "user_id": u}))
                    .collect();
                if m.all {
                    ats.push(json!({"tag": "at", "user_id": "all", "user_name": "所有人"}));
                }
                let f = fit_json(&text, "", max, |t| {
                    let mut paragraphs: Vec<Value> = t
                        .lines()
                        .map(|l| json!([{"tag": "text", "text": l}]))
                        .collect();
                    for extra in [&links, &ats] {
                        if !extra.is_empty() {
                            paragraphs.push(Value::Array(extra.clone()));
                        }
                    }
                    if let Some(k) = &keyword {
                        paragraphs.push(json!([{"tag": "text", "text": k}]));
                    }
                    let post = json!({locale: {"title": title, "content": paragraphs}});
                    // im/v1 (app) takes the post body without the "post" wrapper.
                    let content = match wrap {
                        Wrap::App => post,
                        Wrap::Bot(_) => json!({"post": post}),
                    };
                    wrap.apply("post", content)
                })?;
                ("post", f)
            }
            MsgType::Interactive => {
                let body = rendered;
                let times = FactTimes::new(alert);
                let facts = times.rows(alert, lang);
                let fields: Vec<card::Field> =
                    facts.iter().map(|(k, v)| card::Field::new(k, v)).collect();
                let keyword = {
                    let mut texts = vec![title.as_str()];
                    texts.extend(facts.iter().flat_map(|(k, v)| [*k, *v]));
                    kept_keyword |= self.missing_keyword(&texts).is_none();
                    texts.push(body.as_str());
                    missing(&texts)
                };
                kept_keyword |= keyword.is_some();
                let template = card_colour(alert);
                let links = alert.web_links_with_job("Job");
                let titles: Vec<_> = links
                    .iter()
                    .map(|(t, _)| crate::template::neutralize(t))
                    .collect();
                let buttons: Vec<card::Button> = links
                    .iter()
                    .zip(&titles)
                    .enumerate()
                    .map(|(i, ((_, u), t))| card::Button::new(t, u, i == 0))
                    .collect();
                let mut at_line = String::new();
                for u in &m.users {
                    at_line.push_str(&format!("<at id={u}></at> "));
                }
                if m.all {
                    at_line.push_str("<at id=all></at>");
                }
                let at_line = at_line.trim_end();
                let f = fit_json(&body, "", max, |t| {
                    let mut elements = Vec::with_capacity(5);
                    if !t.is_empty() {
                        // The only part that changes while fitting: owned.
                        elements.push(card::Element::body(t.to_owned()));
                    }
                    if !fields.is_empty() {
                        elements.push(card::Element::Fields {
                            tag: "div",
                            fields: &fields,
                        });
                    }
                    if !at_line.is_empty() {
                        elements.push(card::Element::text(at_line));
                    }
                    if !buttons.is_empty() {
                        elements.push(card::Element::Action {
                            tag: "action",
                            actions: &buttons,
                        });
                    }
                    if let Some(k) = &keyword {
                        elements.push(card::Element::note(k));
                    }
                    wrap.apply("interactive", card::Card::new(&title, template, elements))
                })?;
                ("interactive", f)
            }
        };
        if fitted.omitted > 0 {
            receipt.notes.push(format!(
                "text truncated to fit {max} bytes ({} bytes omitted)",
                fitted.omitted
            ));
        }
        let cut_keyword = fitted.omitted > 0 && !kept_keyword;
        Ok((msg_type, fitted.bytes, receipt, cut_keyword))
    }

    /// The bot body: `msg_type` + `content` (or `card`), signed when a secret is set.
    fn bot_body(&self, alert: &Alert, secret: Option<&SecretString>) -> Result<(Vec<u8>, Receipt)> {
        let signed = secret.map(|s| {
            let ts = chrono::Utc::now().timestamp();
            (ts.to_string(), sign::signature(s, ts))
        });
        let wrap = Wrap::Bot(signed);
        let (_, bytes, receipt) = self.message(alert, MAX_BODY, &wrap)?;
        Ok((bytes, receipt))
    }

    /// The app message: `msg_type` and its `content` as a JSON string (§11).
    fn app_content(&self, alert: &Alert) -> Result<(&'static str, String, Receipt)> {
        let wrap = Wrap::App;
        let (msg_type, bytes, receipt) = self.message(alert, APP_MAX_CONTENT, &wrap)?;
        let content = String::from_utf8(bytes).map_err(|e| {
            Error::new(crate::ErrorKind::Internal, "payload is not UTF-8").with_source(e)
        })?;
        Ok((msg_type, content, receipt))
    }
}

/// What surrounds the message: a bot body (`msg_type`, `card`/`content`,
/// and the signature) or, for app messages, the content alone.
enum Wrap {
    Bot(Option<(String, String)>),
    App,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Wrapped<'a, T: serde::Serialize> {
    Bot {
        msg_type: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        card: Option<T>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<T>,
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sign: Option<&'a str>,
    },
    Raw(T),
}

impl Wrap {
    fn apply<'a, T: serde::Serialize>(&'a self, msg_type: &'a str, payload: T) -> Wrapped<'a, T> {
        match self {
            Wrap::App => Wrapped::Raw(payload),
            Wrap::Bot(signed) => {
                let (card, content) = if msg_type == "interactive" {
                    (Some(payload), None)
                } else {
                    (None, Some(payload))
                };
                Wrapped::Bot {
                    msg_type,
                    card,
                    content,
                    timestamp: signed.as_ref().map(|(ts, _)| ts.as_str()),
                    sign: signed.as_ref().map(|(_, s)| s.as_str()),
                }
            }
        }
    }
}

/// The interactive card as typed structs: serialized straight to bytes,
/// without building (and cloning) a `serde_json::Value` tree per message.
mod card {
    use serde::Serialize;

    #[derive(Serialize)]
    pub struct Card<'a> {
        config: Config,
        header: Header<'a>,
        elements: Vec<Element<'a>>,
    }

    impl<'a> Card<'a> {
        pub fn new(title: &'a str, template: &'a str, elements: Vec<Element<'a>>) -> Self {
            Card {
                config: Config {
                    wide_screen_mode: true,
                },
                header: Header {
                    title: Plain::new(title),
                    template,
                },
                elements,
            }
        }
    }

    #[derive(Serialize)]
    struct Config {
        wide_screen_mode: bool,
    }

    #[derive(Serialize)]
    struct Header<'a> {
        title: Plain<'a>,
        template: &'a str,
    }

    #[derive(Serialize)]
    pub struct Plain<'a> {
        tag: &'static str,
        content: &'a str,
    }

    impl<'a> Plain<'a> {
        fn new(content: &'a str) -> Self {
            Plain {
                tag: "plain_text",
                content,
            }
        }
    }

    #[derive(Serialize)]
    pub struct LarkMd<'a> {
        tag: &'static str,
        content: &'a str,
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    pub enum Element<'a> {
        Text {
            tag: &'static str,
            text: LarkMd<'a>,
        },
        Body {
            tag: &'static str,
            text: OwnedText,
        },
        Fields {
            tag: &'static str,
            fields: &'a [Field<'a>],
        },
        Action {
            tag: &'static str,
            actions: &'a [Button<'a>],
        },
        Note {
            tag: &'static str,
            elements: [Plain<'a>; 1],
        },
    }

    impl<'a> Element<'a> {
        pub fn text(content: &'a str) -> Self {
            Element::Text {
                tag: "div",
                text: LarkMd {
                    tag: "lark_md",
                    content,
                },
            }
        }

        pub fn body(content: String) -> Self {
            Element::Body {
                tag: "div",
                text: OwnedText {
                    tag: "lark_md",
                    content,
                },
            }
        }

        pub fn note(content: &'a str) -> Self {
            Element::Note {
                tag: "note",
                elements: [Plain::new(content)],
            }
        }
    }

    #[derive(Serialize)]
    pub struct Field<'a> {
        is_short: bool,
        text: FieldText<'a>,
    }

    impl<'a> Field<'a> {
        pub fn new(name: &'a str, value: &'a str) -> Self {
            Field {
                is_short: value.chars().count() <= 40,
                text: FieldText {
                    tag: "lark_md",
                    content: (name, value),
                },
            }
        }
    }

    /// A field's `**name**\nvalue`, written straight into the JSON string.
    pub struct FieldText<'a> {
        tag: &'static str,
        content: (&'a str, &'a str),
    }

    impl Serialize for FieldText<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let (name, value) = self.content;
            let (name, value) = (
                crate::template::md_escape_cow(name),
                crate::template::md_escape_cow(value),
            );
            let mut st = s.serialize_struct("FieldText", 2)?;
            st.serialize_field("tag", self.tag)?;
            st.serialize_field("content", &format_args!("**{name}**\n{value}"))?;
            st.end()
        }
    }

    #[derive(Serialize)]
    pub struct OwnedText {
        tag: &'static str,
        content: String,
    }

    #[derive(Serialize)]
    pub struct Button<'a> {
        tag: &'static str,
        text: Plain<'a>,
        url: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
    }

    impl<'a> Button<'a> {
        pub fn new(title: &'a str, url: &'a str, primary: bool) -> Self {
            Button {
                tag: "button",
                text: Plain::new(title),
                url,
                kind: if primary { "primary" } else { "default" },
            }
        }
    }
}

/// The card header colour: green when resolved, else by severity.
fn card_colour(alert: &Alert) -> &'static str {
    if alert.state == crate::alert::AlertState::Resolved {
        return "green";
    }
    match alert.severity {
        Severity::Info => "blue",
        Severity::Warning => "orange",
        _ => "red",
    }
}

#[async_trait]
impl AlertChannel for Feishu {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        match &self.api {
            Api::Bot {
                client,
                url,
                secret,
            } => {
                // Signed here, per attempt: a queued or retried alert is never stale.
                let (body, receipt) = self.bot_body(alert, secret.as_ref())?;
                let reply = post_bytes(client, url, HeaderMap::new(), body).await?;
                match errors::classify(&reply) {
                    None => Ok(receipt.with_requests(1)),
                    Some(e) => Err(e),
                }
            }
            Api::App(a) => {
                let (msg_type, content, receipt) = self.app_content(alert)?;
                // Boxed of its own (token fetch and refresh): the bot's
                // future, sent most, stays small.
                Box::pin(a.send(msg_type, &content, receipt)).await
            }
        }
    }

    fn kind(&self) -> &str {
        KIND
    }

    fn limits(&self) -> Limits {
        match &self.api {
            // §5.5: 5 a second and 100 a minute per bot.
            Api::Bot { url, .. } => Limits::new(
                crate::channel::destination_id("feishu-bot", url.path()),
                vec![Rate::per_second(5), Rate::per_minute(100)],
                MAX_BODY - 4_000,
            ),
            // §11: 50 a second and 1,000 a minute per app.
            Api::App(a) => Limits::new(
                format!("feishu-app:{}", a.app_id),
                vec![Rate::per_second(50), Rate::per_minute(1000)],
                APP_MAX_CONTENT - 4_000,
            ),
        }
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        match &self.api {
            Api::Bot { url, .. } => {
                let (body, _) = self.bot_body(alert, None)?;
                let value = serde_json::from_slice(&body).map_err(|e| {
                    Error::new(crate::ErrorKind::Internal, "payload is not JSON").with_source(e)
                })?;
                Ok(vec![Preview::new(redact_url(url), value)])
            }
            Api::App(a) => {
                let (msg_type, content, _) = self.app_content(alert)?;
                a.preview(msg_type, &content)
            }
        }
    }
}
