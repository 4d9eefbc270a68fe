//! A generic JSON webhook: the escape hatch for Slack-compatible hooks, an
//! in-house incident system, a chat-ops bot.
//!
//! Config `type`: `webhook` (Dinky: `Http`). Params:
//!
//! | param | meaning |
//! |---|---|
//! | `url` | where to send (`https://`, or `http://` on loopback or with `allow_http`) |
//! | `method` | `POST` (default) or `PUT` |
//! | `headers` | a map (or Dinky's list of `{key, value}`); values are secrets, redacted in `Debug` |
//! | `basic_auth` | `{username, password}` |
//! | `bearer_token` | sent as `Authorization: Bearer …` |
//! | `body` | a JSON value (or a string holding JSON) whose string leaves are minijinja templates rendered against the alert; default: the alert itself |
//! | `success` | `{"status": [200, 201], "json_pointer": "/errcode", "equals": 0}`: which statuses count (2xx by default) and, for APIs that answer 200 with an error code, a field that must hold a value |
//! | `title_field`, `content_field` (Dinky `titleFiled`, `contentFiled`) | dotted paths into the body that receive the title and the text (`markdown.text` sets `{"markdown": {"text": …}}`, creating the objects on the way) |
//!
//! Templates fill string leaves only, so the body is always valid JSON and no
//! alert text (quotes, newlines, `{{`) can break out of its string.
//! 5xx, 408, 429 (with `Retry-After`) and connection errors are retryable;
//! other 4xx are not.
//!
//! ```
//! use alertkit::{Alert, Config, Notifier};
//! let config = Config::from_json(r#"{"instances": [{"name": "slack", "type": "webhook", "params": {
//!   "url": "https://hooks.slack.com/services/T0/B0/XXXX",
//!   "body": {"text": "{{ title }}: {{ body }}"}}}]}"#).unwrap();
//! let n = Notifier::from_config(&config).unwrap();
//! let p = n.preview("slack", &Alert::new("disk \"full\"").body("95%")).unwrap();
//! assert_eq!(p[0].body["text"], "disk \"full\": 95%");
//! assert_eq!(p[0].target, "https://hooks.slack.com/services/T0/B0/XXXX");
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use url::Url;

use crate::alert::Alert;
use crate::channel::{AlertChannel, Preview, Receipt};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{ProxyConfig, Reply, parse_url, send_json};
use crate::registry::{BuildContext, Registry};
use crate::template::JsonTemplate;

mod typed;
pub use typed::{WebhookConfig, WebhookConfigBuilder};

/// The type name.
pub const KIND: &str = "webhook";

/// The text one request is built for (1 MiB): an alert's parts are
/// bounded to it before rendering or serializing.
const MAX_TEXT: usize = 1 << 20;

pub(crate) fn register(r: &mut Registry) {
    r.builtin(KIND, &["http"], |ctx| Ok(Arc::new(Webhook::build(ctx)?)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, deserialize_with = "headers")]
    headers: BTreeMap<String, SecretString>,
    #[serde(default)]
    basic_auth: Option<BasicAuth>,
    #[serde(default)]
    bearer_token: Option<SecretString>,
    #[serde(default, deserialize_with = "body")]
    body: Option<Value>,
    #[serde(default)]
    success: Success,
    #[serde(default, alias = "titleFiled", alias = "titleField")]
    title_field: Option<String>,
    #[serde(default, alias = "contentFiled", alias = "contentField")]
    content_field: Option<String>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    proxy: Option<ProxyConfig>,
    /// `"none"` (default: a 3xx is a failure) or `"same_origin"`: follow
    /// 307/308 redirects (method and body kept) within the URL's own
    /// scheme, host and port, at most 5.
    #[serde(default)]
    follow_redirects: Redirects,
}

/// Which redirects a webhook follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Redirects {
    #[default]
    None,
    SameOrigin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuth {
    username: String,
    #[serde(default)]
    password: Option<SecretString>,
}

/// What counts as delivered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Success {
    /// Statuses that count; empty means any 2xx.
    #[serde(default)]
    status: Vec<u16>,
    /// A JSON pointer into the answer that must equal `equals`.
    #[serde(default)]
    json_pointer: Option<String>,
    #[serde(default)]
    equals: Option<Value>,
}

/// A map, or Dinky's list of `{key, value}` pairs.
fn headers<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, SecretString>, D::Error> {
    #[derive(Deserialize)]
    struct Pair {
        key: String,
        value: SecretString,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Headers {
        Map(BTreeMap<String, SecretString>),
        List(Vec<Pair>),
    }
    Ok(match Option::<Headers>::deserialize(d)? {
        None => BTreeMap::new(),
        Some(Headers::Map(m)) => m,
        Some(Headers::List(l)) => l
            .into_iter()
            .filter(|p| !p.key.is_empty())
            .map(|p| (p.key, p.value))
            .collect(),
    })
}

/// A JSON value, or a string holding JSON (Dinky stores the body as text).
fn body<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("body is a string but not JSON: {e}"))),
        Some(v) => Ok(Some(v)),
    }
}

/// Sets `value` at the dotted `path` of `doc`, creating objects on the way
/// (Hutool's `putByPath`, which Dinky's `titleFiled`/`contentFiled` use).
fn set_path(doc: &mut Value, path: &str, value: Value) -> std::result::Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{path:?} is not a dotted path of field names"));
    }
    let mut at = doc;
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = at else {
            let what = if i == 0 {
                "the body".to_owned()
            } else {
                format!("{:?}", parts[..i].join("."))
            };
            return Err(format!(
                "{what} must be a JSON object to set {path:?} in it"
            ));
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return Ok(());
        }
        at = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// A webhook instance; see the module docs for params.
///
/// ```
/// use alertkit::channels::webhook::WebhookConfig;
/// use alertkit::{Alert, Http};
/// let hook = WebhookConfig::builder()
///     .url("https://hooks.example.com/alerts")
///     .build()?
///     .channel(&Http::new())?;
/// assert_eq!(hook.kind(), "webhook");
/// // Without a body template, the alert itself is the JSON body.
/// assert_eq!(hook.preview(&Alert::new("disk full"))?[0].body["title"], "disk full");
/// # Ok::<(), alertkit::Error>(())
/// ```
pub struct Webhook {
    client: reqwest::Client,
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Option<JsonTemplate>,
    success: Success,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are secrets; show the names only.
        let names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("Webhook")
            .field("url", &crate::http::redact_url(&self.url))
            .field("method", &self.method)
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

fn header_value(field: &str, value: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| Error::config(field, "not a valid header value"))?;
    v.set_sensitive(true);
    Ok(v)
}

impl Webhook {
    /// Builds from a [`BuildContext`]; every param is validated here.
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self> {
        let p: Params = ctx.params()?;
        let url = parse_url("params.url", &p.url, p.allow_http)?;
        let method = match p.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("") | Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some(other) => {
                return Err(Error::config(
                    "params.method",
                    format!("{other:?} is not POST or PUT"),
                ));
            }
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &p.headers {
            let field = format!("params.headers.{name}");
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::config(&field, "not a valid header name"))?;
            headers.insert(n, header_value(&field, value.expose_secret())?);
        }
        if let Some(auth) = &p.basic_auth {
            use base64::Engine;
            let pass = auth
                .password
                .as_ref()
                .map(|s| s.expose_secret())
                .unwrap_or("");
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{pass}", auth.username));
            headers.insert(
                AUTHORIZATION,
                header_value("params.basic_auth", &format!("Basic {token}"))?,
            );
        }
        if let Some(t) = &p.bearer_token {
            headers.insert(
                AUTHORIZATION,
                header_value(
                    "params.bearer_token",
                    &format!("Bearer {}", t.expose_secret()),
                )?,
            );
        }
        let mut body = p.body;
        for (field, path, source) in [
            ("params.title_field", &p.title_field, "{{ title }}"),
            (
                "params.content_field",
                &p.content_field,
                "{% include \"text\" %}",
            ),
        ] {
            if let Some(path) = path.as_deref().filter(|n| !n.is_empty()) {
                let doc = body.get_or_insert_with(|| Value::Object(Default::default()));
                set_path(doc, path, Value::String(source.into()))
                    .map_err(|why| Error::config(field, why))?;
            }
        }
        let body = body
            .map(|doc| JsonTemplate::compile(doc, "params.body", ctx.templates()))
            .transpose()?;
        if let (Some(ptr), None) = (&p.success.json_pointer, &p.success.equals) {
            return Err(Error::config(
                "params.success.equals",
                format!("json_pointer {ptr:?} needs a value to equal"),
            ));
        }
        Ok(Webhook {
            client: match p.follow_redirects {
                Redirects::None => ctx.http().client_for(p.proxy.as_ref())?,
                Redirects::SameOrigin => crate::http::same_origin_client(p.proxy.as_ref())?,
            },
            url,
            method,
            headers,
            body,
            success: p.success,
        })
    }

    fn payload(&self, alert: &Alert) -> Result<Value> {
        match &self.body {
            None => serde_json::to_value(alert).map_err(|e| {
                Error::new(ErrorKind::Internal, "cannot serialize the alert").with_source(e)
            }),
            Some(t) => t.render(alert, KIND),
        }
    }

    fn classify(&self, reply: &Reply) -> Option<Error> {
        let status = reply.status.as_u16();
        let ok_status = if self.success.status.is_empty() {
            reply.status.is_success()
        } else {
            self.success.status.contains(&status)
        };
        if !ok_status {
            let mut e = crate::http::unexpected_reply(reply);
            let msg = reply.message();
            if !msg.is_empty() {
                e = Error::new(e.kind(), msg)
                    .with_code(format!("HTTP {status}"))
                    .with_retryable(e.is_retryable())
                    .with_http_status(status);
                if let Some(w) = reply.retry_after {
                    e = e.with_retry_after(w);
                }
            }
            return Some(e);
        }
        if let (Some(ptr), Some(want)) = (&self.success.json_pointer, &self.success.equals) {
            let got = reply.body.pointer(ptr);
            if got != Some(want) {
                let code = got.map_or_else(
                    || "missing".to_owned(),
                    |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                );
                let msg = reply.message();
                return Some(
                    Error::new(
                        ErrorKind::Platform,
                        if msg.is_empty() {
                            format!("{ptr} is {code}")
                        } else {
                            msg
                        },
                    )
                    .with_code(code)
                    .with_retryable(false)
                    .with_http_status(status),
                );
            }
        }
        None
    }
}

#[async_trait]
impl AlertChannel for Webhook {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        let (alert, _) = crate::text::fit_alert(alert, MAX_TEXT);
        let alert = &*alert;
        let (client, method, mut headers) =
            (&self.client, self.method.clone(), self.headers.clone());
        // The IETF draft's header: a receiver can drop a retried or
        // redelivered copy. A header the host configured wins.
        if !headers.contains_key("idempotency-key")
            && let Some(key) = crate::channel::idempotency_key("")
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&key)
        {
            headers.insert("idempotency-key", v);
        }
        let reply = match &self.body {
            // The alert itself, serialized straight into the request body.
            None => send_json(client, method, &self.url, headers, Some(alert)).await?,
            Some(t) => {
                let body = t.render(alert, KIND)?;
                send_json(client, method, &self.url, headers, Some(&body)).await?
            }
        };
        match self.classify(&reply) {
            None => Ok(Receipt::new().with_requests(1)),
            Some(e) => Err(e),
        }
    }

    fn kind(&self) -> &str {
        KIND
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        let (alert, _) = crate::text::fit_alert(alert, MAX_TEXT);
        let alert = &*alert;
        Ok(vec![Preview::new(
            crate::http::redact_url(&self.url),
            self.payload(alert)?,
        )])
    }
}
