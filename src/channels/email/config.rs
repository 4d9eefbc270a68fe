//! Email instance params, with Dinky's `Email` names as aliases where they
//! mean the same (§10; `sender` and `user` do not: see `crate::import`).

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

/// How the connection is secured.
///
/// ```
/// use alertkit::channels::email::TlsMode;
/// // 465 style accounts (QQ, 163) say `ssl`.
/// let t: TlsMode = serde_json::from_value(serde_json::json!("ssl")).unwrap();
/// assert_eq!(t, TlsMode::Implicit);
/// assert_eq!(serde_json::to_value(TlsMode::Starttls).unwrap(), "starttls");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS, port 465): the default on port 465.
    #[serde(alias = "ssl", alias = "smtps")]
    Implicit,
    /// Plain greeting, then STARTTLS, required: fails rather than sending
    /// anything in clear if the server does not offer it. The default otherwise.
    #[serde(alias = "start_tls")]
    Starttls,
    /// No TLS: refused unless the host is loopback or `allow_plaintext` is set.
    #[serde(alias = "plain", alias = "plaintext")]
    None,
}

/// What the message holds.
///
/// ```
/// use alertkit::channels::email::EmailFormat;
/// assert_eq!(EmailFormat::default(), EmailFormat::Html);
/// let f: EmailFormat = serde_json::from_value(serde_json::json!("table+attachment")).unwrap();
/// assert_eq!(f, EmailFormat::TableAttachment);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmailFormat {
    /// Plain text and the HTML template (default).
    #[default]
    Html,
    /// Plain text only.
    Text,
    /// Plain text and an HTML table of every fact.
    Table,
    /// Plain text, the HTML template and an .xlsx of the facts.
    Attachment,
    /// Plain text, the HTML table and an .xlsx of the facts.
    #[serde(alias = "attachment_table", alias = "table+attachment")]
    TableAttachment,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    #[serde(alias = "serverHost", alias = "smtp_host")]
    pub host: String,
    #[serde(
        default,
        alias = "serverPort",
        deserialize_with = "crate::params::port"
    )]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Option<TlsMode>,
    // Not Dinky's `user`: there it is the From address as well as the login
    // (`Config::from_dinky` maps it).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    // Not `sender`: Dinky's is the display name, DolphinScheduler's the
    // address (`Config::from_dinky`, `Config::from_dolphinscheduler` map it).
    pub from: String,
    #[serde(default, alias = "fromName", alias = "sender_name")]
    pub from_name: Option<String>,
    #[serde(default, alias = "receivers", deserialize_with = "addresses")]
    pub to: Vec<String>,
    #[serde(default, alias = "receiverCcs", deserialize_with = "addresses")]
    pub cc: Vec<String>,
    #[serde(default, deserialize_with = "addresses")]
    pub bcc: Vec<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default, alias = "msgType", alias = "msgtype")]
    pub format: EmailFormat,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub accept_invalid_certs: bool,
    #[serde(default)]
    pub allow_plaintext: bool,
    /// The name sent in EHLO (default: this machine's host name).
    #[serde(default)]
    pub hello_name: Option<String>,
    /// The time limit of each SMTP step (connect, TLS, AUTH, a command), in
    /// milliseconds (default 15,000); a whole transaction gets twice this.
    #[serde(default, deserialize_with = "crate::params::opt_num")]
    pub timeout_ms: Option<u64>,
    /// SMTP sessions this instance may have open at once (default 4); a
    /// burst waits for one of them.
    #[serde(default, deserialize_with = "crate::params::opt_num")]
    pub max_connections: Option<usize>,
    /// Idle connections kept per instance (default 4).
    #[serde(default = "four", deserialize_with = "crate::params::num")]
    pub pool_size: usize,

    // Dinky
    #[serde(default, alias = "enableSmtpAuth")]
    pub enable_smtp_auth: Option<bool>,
    #[serde(default, alias = "starttlsEnable")]
    pub starttls_enable: Option<bool>,
    #[serde(default, alias = "sslEnable")]
    pub ssl_enable: Option<bool>,
    #[serde(default, alias = "smtpSslTrust")]
    pub smtp_ssl_trust: Option<String>,
    #[serde(default, alias = "mailProtocol")]
    pub mail_protocol: Option<String>,
}

fn four() -> usize {
    4
}

/// A list, or one string of addresses separated by `,` or `;`.
fn addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Addrs {
        One(String),
        Many(Vec<String>),
    }
    let v = match Option::<Addrs>::deserialize(d)? {
        None => Vec::new(),
        Some(Addrs::One(s)) => s.split([',', ';']).map(str::to_owned).collect(),
        Some(Addrs::Many(v)) => v,
    };
    Ok(v.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}
