//! Email over SMTP: explicit TLS modes, HTML tables and spreadsheet attachments.
//!
//! Config `type`: `email` (Dinky: `Email`). Params:
//!
//! | param | meaning |
//! |---|---|
//! | `host`, `port` | the server (port default: 465 for `implicit`, 587 for `starttls`, 25 for `none`) |
//! | `tls` | `implicit` (SMTPS; default on port 465), `starttls` (required: fails rather than continue in clear; default otherwise), `none` (refused unless the host is loopback or `allow_plaintext` is set) |
//! | `username`, `password` | AUTH PLAIN or LOGIN, only after TLS (or on an allowed plaintext link) |
//! | `from`, `from_name` | sender address and display name (Chinese is fine: RFC 2047) |
//! | `to`, `cc`, `bcc` | lists (or one string separated by `,`); Bcc never appears in headers |
//! | `subject` | a template (default: the title template) |
//! | `format` | `html` (default), `text`, `table`, `attachment`, `table_attachment` |
//! | `ca_file` | PEM file of a private CA to trust |
//! | `accept_invalid_certs` | explicit opt-in to skip certificate checks (default false) |
//! | `max_connections` | SMTP sessions open at once (default 4): a burst waits for one instead of opening hundreds |
//! | `pool_size` | idle connections kept for reuse (default 4, at most `max_connections`) |
//! | `hello_name` | the EHLO name (default: this host's name when fully qualified, else the connection's address as `[a.b.c.d]`) |
//! | `timeout_ms` | time limit of each SMTP step (default 15,000); a whole transaction gets twice this |
//!
//! These Dinky names are accepted as aliases: `receivers`, `receiverCcs`,
//! `serverHost`, `serverPort`, `enableSmtpAuth`, `password`,
//! `starttlsEnable`, `sslEnable`, `smtpSslTrust` (`*`, or the server's host
//! name, accepts its certificate unchecked, with a warning logged),
//! `mailProtocol`. Dinky's `sender` (a display name) and `user` (the From
//! address and login) are not: load Dinky rows with
//! [`Config::from_dinky`](crate::Config::from_dinky), which maps them.
//!
//! Messages are multipart/alternative with a plain-text part always present;
//! `table` renders every fact as an escaped HTML table; `attachment` adds an
//! .xlsx of the same rows, built in memory and named after the alert (a
//! Chinese name is encoded both as RFC 2231 and RFC 2047). CR/LF in a
//! subject or name become spaces and addresses are parsed strictly, so an
//! alert can never add a header or a recipient.
//!
//! SMTP answers: 4xx and connection errors are retryable, 5xx are not (535:
//! unauthorized); when some recipients are refused and others accepted, the
//! delivery is `partial` with the refused ones in the receipt.
//!
//! ```
//! use alertkit::{Config, Notifier};
//! let config = Config::from_json(r#"{"instances": [
//!   {"name": "relay", "type": "email", "params": {"host": "smtp.corp.example", "port": 587,
//!     "username": "alerts", "password": "pw", "from": "alerts@corp.example", "from_name": "告警中心",
//!     "to": ["ops@corp.example"], "format": "table_attachment"}},
//!   {"name": "qq", "type": "Email", "params": {"serverHost": "smtp.qq.com", "serverPort": 465,
//!     "sslEnable": true, "enableSmtpAuth": true, "username": "12345@qq.com", "password": "授权码",
//!     "from": "12345@qq.com", "from_name": "Flink", "receivers": ["ops@example.com"]}}
//! ]}"#).unwrap();
//! assert!(Notifier::from_config(&config).is_ok());
//! ```

mod config;
mod message;
mod smtp;
mod tls;
mod typed;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lettre::Address;
use lettre::message::Mailbox;
use lettre::transport::smtp::extension::ClientId;
use serde_json::{Value, json};

use config::Params;
pub use config::{EmailFormat, TlsMode};
pub use typed::{EmailConfig, EmailConfigBuilder};

use crate::alert::Alert;
use crate::channel::{AlertChannel, Preview, Receipt};
use crate::error::{Error, Result};
use crate::registry::{BuildContext, Registry};
use crate::template::{Format, JsonTemplate, Templates};

/// The type name.
pub const KIND: &str = "email";

/// The waits before sending again to recipients a server deferred (4xx)
/// while it accepted the others.
const DEFERRED_RETRIES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];

/// The text one mail is built for (1 MiB): an alert's parts are bounded to
/// it before rendering.
const MAX_TEXT: usize = 1 << 20;

pub(crate) fn register(r: &mut Registry) {
    r.builtin(KIND, &["mail", "smtp"], |ctx| {
        Ok(Arc::new(Email::build(ctx)?))
    });
}

/// An email instance; see the module docs for params.
///
/// ```
/// use alertkit::channels::email::{EmailConfig, EmailFormat, TlsMode};
/// use alertkit::{Alert, Http};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mail = EmailConfig::builder()
///     .host("smtp.example.com")
///     .port(587)
///     .tls(TlsMode::Starttls)
///     .from("alerts@example.com")
///     .to(["ops@example.com"])
///     .format(EmailFormat::Text)
///     .build()?
///     .channel(&Http::new())?;
/// assert_eq!(mail.kind(), "email");
/// assert!(!mail.preview(&Alert::new("disk full"))?.is_empty());
/// # Ok::<(), alertkit::Error>(())
/// # }).unwrap();
/// ```
pub struct Email {
    smtp: smtp::Smtp,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    envelope: Vec<Address>,
    subject: Option<JsonTemplate>,
    format: EmailFormat,
    templates: Templates,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("server", &format!("{}:{}", self.smtp.host, self.smtp.port))
            .field("tls", &self.smtp.tls)
            .field("user", &self.smtp.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from.email.to_string())
            .field("recipients", &self.envelope.len())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

fn mailbox(field: &str, value: &str) -> Result<Mailbox> {
    if value.chars().any(char::is_control) {
        return Err(Error::config(
            field,
            "an address may not hold control characters",
        ));
    }
    value
        .parse::<Mailbox>()
        .map_err(|e| Error::config(field, format!("not a valid address ({e})")))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Email {
    /// Builds from a [`BuildContext`]; every param is validated here.
    pub fn build(ctx: &BuildContext<'_>) -> Result<Self> {
        let p: Params = ctx.params()?;
        let host = p.host.trim().to_owned();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(Error::config("params.host", "not a host name"));
        }
        if let Some(proto) = p.mail_protocol.as_deref().filter(|s| !s.is_empty())
            && !proto.eq_ignore_ascii_case("smtp")
        {
            return Err(Error::config(
                "params.mailProtocol",
                format!("only SMTP is supported, not {proto:?}"),
            ));
        }
        let tls = match (p.tls, p.ssl_enable, p.starttls_enable, p.port) {
            (Some(t), _, _, _) => t,
            (None, Some(true), _, _) => TlsMode::Implicit,
            (None, _, Some(true), _) => TlsMode::Starttls,
            // Dinky with both switches off asks for plain SMTP.
            (None, Some(false), Some(false), _) => TlsMode::None,
            (None, _, _, Some(465)) => TlsMode::Implicit,
            (None, _, _, _) => TlsMode::Starttls,
        };
        let port = p.port.unwrap_or(match tls {
            TlsMode::Implicit => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        });
        if tls == TlsMode::None && !p.allow_plaintext && !is_loopback(&host) {
            return Err(Error::config(
                "params.tls",
                "plain SMTP to a non-loopback host would send the message (and any password) in clear; use implicit or starttls, or set allow_plaintext",
            ));
        }
        let trust_all = match p.smtp_ssl_trust.as_deref().map(str::trim) {
            Some("*") => true,
            Some(list) if !list.is_empty() => list
                .split([' ', ','])
                .any(|h| h.eq_ignore_ascii_case(&host)),
            _ => false,
        };
        let accept_invalid = p.accept_invalid_certs || trust_all;
        if accept_invalid {
            tracing::warn!(instance = ctx.name(), host = %host, "TLS certificates of this SMTP server are accepted without verification");
        }
        let ca_pem = match p.ca_file.as_deref().filter(|s| !s.is_empty()) {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::config("params.ca_file", format!("cannot read {path:?}: {e}"))
            })?),
            None => None,
        };
        // Implicit TLS runs over alertkit's own rustls session (shared
        // config, bounded reads); STARTTLS is lettre's upgrade.
        let (tls_params, tls_config) = match tls {
            TlsMode::None => (None, None),
            TlsMode::Implicit => (
                None,
                Some(tls::client_config(ca_pem.as_deref(), accept_invalid)?),
            ),
            TlsMode::Starttls => (
                Some(tls::starttls_params(
                    &host,
                    ca_pem.as_deref(),
                    accept_invalid,
                )?),
                None,
            ),
        };
        let auth_on = p.enable_smtp_auth.unwrap_or(true);
        let credentials = match (&p.username, &p.password) {
            (Some(u), Some(pw)) if auth_on && !u.is_empty() => Some((u.clone(), pw.clone())),
            (Some(u), None) if auth_on && !u.is_empty() => {
                return Err(Error::config(
                    "params.password",
                    "a username needs a password",
                ));
            }
            _ => None,
        };
        let from_addr = mailbox("params.from", &p.from)?;
        let from_name = p
            .from_name
            .as_deref()
            .map(message::one_line)
            .filter(|n| !n.is_empty());
        let from = Mailbox::new(from_name.or(from_addr.name.clone()), from_addr.email);
        let parse_all = |field: &str, list: &[String]| -> Result<Vec<Mailbox>> {
            list.iter()
                .enumerate()
                .map(|(i, a)| mailbox(&format!("{field}[{i}]"), a))
                .collect()
        };
        let to = parse_all("params.to", &p.to)?;
        let cc = parse_all("params.cc", &p.cc)?;
        let bcc = parse_all("params.bcc", &p.bcc)?;
        let mut envelope: Vec<Address> = Vec::new();
        for m in to.iter().chain(&cc).chain(&bcc) {
            if !envelope.contains(&m.email) {
                envelope.push(m.email.clone());
            }
        }
        if envelope.is_empty() {
            return Err(Error::config(
                "params.to",
                "no recipient: set `to`, `cc` or `bcc`",
            ));
        }
        let subject = p
            .subject
            .filter(|s| !s.trim().is_empty())
            .map(|s| JsonTemplate::compile(Value::String(s), "params.subject", ctx.templates()))
            .transpose()?;
        let max_connections = match p.max_connections {
            Some(0) => {
                return Err(Error::config(
                    "params.max_connections",
                    "must be at least 1",
                ));
            }
            Some(n) => n,
            None => smtp::MAX_CONNECTIONS,
        };
        let hello = match p.hello_name.filter(|h| !h.is_empty()) {
            Some(h) => ClientId::Domain(h),
            None => ClientId::default(),
        };
        Ok(Email {
            smtp: smtp::Smtp {
                host,
                port,
                tls,
                tls_params,
                tls_config,
                credentials,
                hello,
                timeout: match p.timeout_ms {
                    Some(0) => {
                        return Err(Error::config("params.timeout_ms", "must be at least 1"));
                    }
                    Some(ms) => Duration::from_millis(ms),
                    None => Duration::from_secs(15),
                },
                pool_size: p.pool_size.min(max_connections),
                idle: Mutex::new(Vec::new()),
                sessions: tokio::sync::Semaphore::new(max_connections),
            },
            from,
            to,
            cc,
            envelope,
            subject,
            format: p.format,
            templates: ctx.templates().clone(),
        })
    }

    fn parts(&self, alert: &Alert) -> Result<message::Parts> {
        // A 50 MB alert is cut before rendering: no mail carries that.
        let (alert, _) = crate::text::fit_alert(alert, MAX_TEXT);
        let alert = &*alert;
        let html_format = matches!(self.format, EmailFormat::Html | EmailFormat::Attachment);
        let [title, text, html] = if html_format {
            self.templates
                .render_many([Format::Title, Format::Text, Format::Html], alert, KIND)?
        } else {
            let [title, text] =
                self.templates
                    .render_many([Format::Title, Format::Text], alert, KIND)?;
            [title, text, String::new()]
        };
        let subject = match &self.subject {
            Some(t) => t
                .render(alert, KIND)?
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            None => title,
        };
        let lang = self.templates.lang();
        let html = match self.format {
            EmailFormat::Text => None,
            _ if html_format => Some(html),
            _ => Some(message::html_table(&subject, &message::rows(alert, lang))),
        };
        let xlsx = match self.format {
            EmailFormat::Attachment | EmailFormat::TableAttachment => Some((
                message::file_name(&alert.title),
                message::xlsx(&message::rows(alert, lang), lang)?,
            )),
            _ => None,
        };
        Ok(message::Parts {
            subject,
            text,
            html,
            xlsx,
        })
    }
}

#[async_trait]
impl AlertChannel for Email {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        let key = crate::channel::idempotency_key("");
        let (formatted, id) = message::build(
            &self.from,
            &self.to,
            &self.cc,
            self.parts(alert)?,
            key.as_deref(),
        )?;
        let mut outcome = self
            .smtp
            .send(&self.from.email, &self.envelope, &formatted)
            .await?;
        let mut receipt = Receipt::new().with_requests(1);
        if let Some(id) = id {
            receipt = receipt.with_message_id(id);
        }
        if !outcome.message.is_empty() {
            receipt = receipt.with_note(format!("server: {}", outcome.message));
        }
        // Recipients deferred (4xx) while others took the message are sent
        // again on their own, the same message (same Message-ID); those
        // that took it are never sent twice.
        for wait in DEFERRED_RETRIES {
            let deferred: Vec<Address> = outcome
                .refused
                .iter()
                .filter(|(_, _, temporary)| *temporary)
                .map(|(a, _, _)| a.clone())
                .collect();
            if deferred.is_empty() {
                break;
            }
            tokio::time::sleep(wait).await;
            outcome.refused.retain(|(_, _, temporary)| !temporary);
            receipt.requests += 1;
            match self
                .smtp
                .send(&self.from.email, &deferred, &formatted)
                .await
            {
                Ok(again) => outcome.refused.extend(again.refused),
                Err(e) => {
                    let why = e.to_string();
                    outcome.refused.extend(
                        deferred
                            .into_iter()
                            .map(|a| (a, why.clone(), e.is_retryable())),
                    );
                }
            }
        }
        for (addr, why, temporary) in outcome.refused {
            let note = if temporary {
                format!(
                    "{addr} still deferred after {} tries: {why}",
                    DEFERRED_RETRIES.len() + 1
                )
            } else {
                format!("{addr} refused: {why}")
            };
            receipt = receipt.with_note(note).with_rejected([addr.to_string()]);
        }
        Ok(receipt)
    }

    fn kind(&self) -> &str {
        KIND
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        let parts = self.parts(alert)?;
        let attachment = parts
            .xlsx
            .as_ref()
            .map(|(name, bytes)| json!({"name": name, "bytes": bytes.len()}));
        let rcpts: Vec<String> = self.envelope.iter().map(ToString::to_string).collect();
        Ok(vec![Preview::new(
            format!("smtp://{}:{}", self.smtp.host, self.smtp.port),
            json!({"from": self.from.to_string(), "recipients": rcpts, "subject": parts.subject,
                   "text": parts.text, "html": parts.html, "attachment": attachment}),
        )])
    }
}
