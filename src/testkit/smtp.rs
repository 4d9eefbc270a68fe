//! A small in-process SMTP server on 127.0.0.1 for sandboxes and host tests:
//! EHLO, STARTTLS or implicit TLS with a certificate from a CA generated at
//! start ([`FakeSmtp::ca_file`] for the client to trust), AUTH PLAIN and LOGIN
//! (when credentials are set), per-recipient refusals (550), DATA with
//! dot-unstuffing, RSET, NOOP, QUIT.
//!
//! It is as strict as a server configured for TLS: in [`SmtpTls::StartTls`]
//! mode AUTH is only offered after STARTTLS and MAIL before it is refused
//! (`530 5.7.0 Must issue a STARTTLS command first`), and plaintext sent
//! after STARTTLS but before the handshake (a command injection) drops the
//! connection.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
//! use alertkit::{Alert, Config, InstanceConfig, Notifier};
//!
//! let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await?;
//! smtp.require_auth("alerts", "pw");
//! let notifier = Notifier::from_config(&Config::default().with_instance(
//!     InstanceConfig::new("mail", "email")
//!         .param("host", "127.0.0.1")
//!         .param("port", smtp.port())
//!         .param("tls", "starttls")
//!         .param("ca_file", smtp.ca_file()?.display().to_string())
//!         .param("username", "alerts")
//!         .param("password", "pw")
//!         .param("from", "alerts@example.com")
//!         .param("to", vec!["oncall@example.com"]),
//! ))?;
//! notifier.channel("mail").unwrap().send(&Alert::new("disk full")).await?;
//! let m = &smtp.messages()[0];
//! assert!(m.tls);
//! assert_eq!(m.auth_user.as_deref(), Some("alerts"));
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::Pki;
use super::fake::AbortOnDrop;

/// How the fake server offers TLS.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
/// use alertkit::{Alert, Config, InstanceConfig, Notifier};
/// let smtp = FakeSmtp::start_tls(SmtpTls::Implicit).await.unwrap();
/// let mail = InstanceConfig::new("mail", "email")
///     .param("host", "127.0.0.1").param("port", smtp.port())
///     .param("tls", "implicit") // port 465 style
///     .param("ca_file", smtp.ca_file().unwrap().display().to_string())
///     .param("from", "alerts@example.com").param("to", vec!["ops@example.com"]);
/// let notifier = Notifier::from_config(&Config::default().with_instance(mail)).unwrap();
/// notifier.channel("mail").unwrap().send(&Alert::new("disk full")).await.unwrap();
/// assert!(smtp.messages()[0].tls);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpTls {
    /// Plain TCP, no STARTTLS (what `tls = "none"` talks to).
    None,
    /// Plain greeting, STARTTLS required before AUTH and MAIL (port 587 style).
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

/// One message the server accepted.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::smtp::FakeSmtp;
/// use alertkit::Alert;
/// let smtp = FakeSmtp::start().await.unwrap();
/// # let mail = |to: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
/// #     alertkit::InstanceConfig::new("mail", "email").param("host", "127.0.0.1").param("port", smtp.port())
/// #         .param("tls", "none").param("from", "alerts@example.com").param("to", to.to_vec())
/// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("mail").unwrap();
/// mail(&["ops@example.com", "dba@example.com"]).send(&Alert::new("disk full")).await.unwrap();
/// let m = &smtp.messages()[0];
/// assert_eq!(m.from, "alerts@example.com");
/// assert_eq!(m.rcpts, ["ops@example.com", "dba@example.com"]);
/// assert!(m.data.contains("Subject: [Error] disk full"));
/// assert!(!m.tls && m.auth_user.is_none());
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpMessage {
    /// `MAIL FROM`.
    pub from: String,
    /// Accepted `RCPT TO`s.
    pub rcpts: Vec<String>,
    /// The message as received (dot-unstuffed, CRLF line ends).
    pub data: String,
    /// The user that authenticated, if any.
    pub auth_user: Option<String>,
    /// Whether the message came over TLS.
    pub tls: bool,
}

#[derive(Default)]
struct State {
    messages: Vec<SmtpMessage>,
    refuse: HashSet<String>,
    credentials: Option<(String, String)>,
    connections: u32,
}

/// A fake SMTP server; see the module docs.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::smtp::FakeSmtp;
/// use alertkit::{Alert, Config, InstanceConfig, Notifier};
/// let smtp = FakeSmtp::start().await.unwrap();
/// let mail = InstanceConfig::new("mail", "email")
///     .param("host", "127.0.0.1").param("port", smtp.port()).param("tls", "none")
///     .param("from", "alerts@example.com").param("to", vec!["ops@example.com"]);
/// let notifier = Notifier::from_config(&Config::default().with_instance(mail)).unwrap();
/// notifier.channel("mail").unwrap().send(&Alert::new("disk full")).await.unwrap();
/// assert_eq!(smtp.messages().len(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct FakeSmtp {
    port: u16,
    mode: SmtpTls,
    ca_pem: Arc<str>,
    state: Arc<Mutex<State>>,
    /// The accept loop: it stops with the last clone.
    _task: Arc<AbortOnDrop<()>>,
    /// The CA file [`FakeSmtp::ca_file`] wrote, removed with the last clone.
    ca_file: Arc<Mutex<Option<RemoveOnDrop>>>,
}

/// A file removed when dropped.
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl std::fmt::Debug for FakeSmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSmtp")
            .field("port", &self.port)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl FakeSmtp {
    /// Starts a plain-TCP server on 127.0.0.1 (no TLS, no authentication
    /// required).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::FakeSmtp;
    /// let smtp = FakeSmtp::start().await.unwrap();
    /// assert_ne!(smtp.port(), 0);
    /// assert_eq!(smtp.connections(), 0);
    /// # });
    /// ```
    pub async fn start() -> std::io::Result<Self> {
        FakeSmtp::start_tls(SmtpTls::None).await
    }

    /// Starts a server on 127.0.0.1 offering TLS as `mode`, with a
    /// certificate for `localhost` and `127.0.0.1` issued by a CA generated
    /// now (see [`ca_pem`](FakeSmtp::ca_pem), [`ca_file`](FakeSmtp::ca_file)).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
    /// use alertkit::{Alert, Config, InstanceConfig, Notifier, policy::PolicyConfig};
    /// let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
    /// // a client that does not trust the fake's CA gives up before sending anything
    /// let mail = InstanceConfig::new("mail", "email").param("host", "127.0.0.1").param("port", smtp.port())
    ///     .param("tls", "starttls").param("from", "alerts@example.com").param("to", vec!["ops@example.com"])
    ///     .policy(PolicyConfig::off());
    /// let notifier = Notifier::from_config(&Config::default().with_instance(mail)).unwrap();
    /// assert!(notifier.channel("mail").unwrap().send(&Alert::new("disk full")).await.is_err());
    /// assert!(smtp.messages().is_empty());
    /// # });
    /// ```
    pub async fn start_tls(mode: SmtpTls) -> std::io::Result<Self> {
        let (acceptor, ca_pem) = tls_setup()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _ = session(sock, s, mode, acceptor).await;
                });
            }
        });
        Ok(FakeSmtp {
            port,
            mode,
            ca_pem: ca_pem.into(),
            state,
            _task: Arc::new(AbortOnDrop(task)),
            ca_file: Arc::default(),
        })
    }

    /// The PEM certificate of the CA that issued the server's certificate.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
    /// let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
    /// assert!(smtp.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # });
    /// ```
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`ca_pem`](FakeSmtp::ca_pem) to a file in the system's temporary
    /// directory (once per server) and returns its path: the email channel's
    /// `ca_file`. The file is removed when the last clone of the server is
    /// dropped.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
    /// let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
    /// let path = smtp.ca_file().unwrap();
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), smtp.ca_pem());
    /// assert_eq!(smtp.ca_file().unwrap(), path); // written once
    /// drop(smtp);
    /// assert!(!path.exists()); // and removed with the server
    /// # });
    /// ```
    pub fn ca_file(&self) -> std::io::Result<PathBuf> {
        let mut slot = self.ca_file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = slot.as_ref() {
            return Ok(f.0.clone());
        }
        let path = std::env::temp_dir().join(format!(
            "alertkit-fake-smtp-{}-{}-ca.pem",
            std::process::id(),
            self.port
        ));
        std::fs::write(&path, self.ca_pem.as_bytes())?;
        *slot = Some(RemoveOnDrop(path.clone()));
        Ok(path)
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The port on 127.0.0.1.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::InstanceConfig;
    /// use alertkit::testkit::smtp::FakeSmtp;
    /// let smtp = FakeSmtp::start().await.unwrap();
    /// let mail = InstanceConfig::new("mail", "email").param("host", "127.0.0.1").param("port", smtp.port());
    /// assert_eq!(mail.params["port"], smtp.port());
    /// # });
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requires AUTH with these credentials.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::FakeSmtp;
    /// use alertkit::{Alert, ErrorKind};
    /// let smtp = FakeSmtp::start().await.unwrap();
    /// smtp.require_auth("alerts", "pw");
    /// # let mail = |to: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("mail", "email").param("host", "127.0.0.1").param("port", smtp.port())
    /// #         .param("tls", "none").param("from", "alerts@example.com").param("to", to.to_vec())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("mail").unwrap();
    /// // the instance has no username and password
    /// let e = mail(&["ops@example.com"]).send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::Unauthorized);
    /// assert!(smtp.messages().is_empty());
    /// # });
    /// ```
    pub fn require_auth(&self, user: &str, password: &str) {
        self.with(|s| s.credentials = Some((user.to_owned(), password.to_owned())));
    }

    /// Refuses `address` with 550.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::FakeSmtp;
    /// use alertkit::Alert;
    /// let smtp = FakeSmtp::start().await.unwrap();
    /// smtp.refuse("gone@example.com");
    /// # let mail = |to: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("mail", "email").param("host", "127.0.0.1").param("port", smtp.port())
    /// #         .param("tls", "none").param("from", "alerts@example.com").param("to", to.to_vec())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("mail").unwrap();
    /// let receipt = mail(&["ops@example.com", "gone@example.com"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert_eq!(receipt.rejected_recipients, ["gone@example.com"]);
    /// assert_eq!(smtp.messages()[0].rcpts, ["ops@example.com"]);
    /// # });
    /// ```
    pub fn refuse(&self, address: &str) {
        self.with(|s| s.refuse.insert(address.to_owned()));
    }

    /// Messages accepted so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::FakeSmtp;
    /// use alertkit::Alert;
    /// let smtp = FakeSmtp::start().await.unwrap();
    /// # let mail = |to: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("mail", "email").param("host", "127.0.0.1").param("port", smtp.port())
    /// #         .param("tls", "none").param("from", "alerts@example.com").param("to", to.to_vec())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("mail").unwrap();
    /// let ops = mail(&["ops@example.com"]);
    /// ops.send(&Alert::new("disk full")).await.unwrap();
    /// ops.send(&Alert::new("disk full").resolved()).await.unwrap();
    /// assert_eq!(smtp.messages().len(), 2);
    /// assert!(smtp.messages()[1].data.contains("[Resolved]"));
    /// # });
    /// ```
    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.with(|s| s.messages.clone())
    }

    /// Connections opened so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::smtp::FakeSmtp;
    /// use alertkit::Alert;
    /// let smtp = FakeSmtp::start().await.unwrap();
    /// # let mail = |to: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("mail", "email").param("host", "127.0.0.1").param("port", smtp.port())
    /// #         .param("tls", "none").param("from", "alerts@example.com").param("to", to.to_vec())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("mail").unwrap();
    /// mail(&["ops@example.com"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert!(smtp.connections() >= 1);
    /// assert_eq!(smtp.messages().len(), 1);
    /// # });
    /// ```
    pub fn connections(&self) -> u32 {
        self.with(|s| s.connections)
    }
}

fn addr(arg: &str) -> String {
    let a = arg.split_once(':').map_or(arg, |(_, v)| v).trim();
    a.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .to_owned()
}

fn decode(b64: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default()
}

/// A connection, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The acceptor for a fresh [`Pki`] and the CA's PEM.
fn tls_setup() -> std::io::Result<(TlsAcceptor, String)> {
    let pki = Pki::generate()?;
    let config = pki.server_config()?;
    Ok((TlsAcceptor::from(Arc::new(config)), pki.ca_pem))
}

async fn session(
    sock: TcpStream,
    state: Arc<Mutex<State>>,
    mode: SmtpTls,
    acceptor: TlsAcceptor,
) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut tls = mode == SmtpTls::Implicit;
    let stream: Box<dyn Stream> = if tls {
        Box::new(acceptor.accept(sock).await?)
    } else {
        Box::new(sock)
    };
    let mut r = BufReader::new(stream);
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let creds = {
        let mut s = lock();
        s.connections += 1;
        s.credentials.clone()
    };
    r.write_all(b"220 alertkit fake SMTP ready\r\n").await?;
    let (mut from, mut rcpts, mut user): (Option<String>, Vec<String>, Option<String>) =
        (None, vec![], None);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end();
        let upper = cmd.to_ascii_uppercase();
        // STARTTLS mode: nothing but EHLO, STARTTLS, NOOP, RSET and QUIT in clear.
        let needs_tls = mode == SmtpTls::StartTls && !tls;
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let starttls = if needs_tls { "250-STARTTLS\r\n" } else { "" };
            let auth = if creds.is_some() && !needs_tls {
                "250-AUTH PLAIN LOGIN\r\n"
            } else {
                ""
            };
            format!(
                "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n{starttls}{auth}250 SIZE 33554432\r\n"
            )
        } else if upper == "STARTTLS" {
            if !needs_tls {
                "503 5.5.1 TLS already active or not offered\r\n".to_owned()
            } else {
                r.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                if !r.buffer().is_empty() {
                    // Plaintext pipelined behind STARTTLS: an injection attempt.
                    return Ok(());
                }
                let plain = r.into_inner();
                r = BufReader::new(Box::new(acceptor.accept(plain).await?));
                tls = true;
                // RFC 3207: forget everything learned before the handshake.
                (from, user) = (None, None);
                rcpts.clear();
                continue;
            }
        } else if needs_tls && !matches!(upper.as_str(), "NOOP" | "RSET" | "QUIT") {
            "530 5.7.0 Must issue a STARTTLS command first\r\n".to_owned()
        } else if upper.starts_with("AUTH PLAIN") {
            let payload = match cmd.split_whitespace().nth(2) {
                Some(p) => p.to_owned(),
                None => {
                    r.write_all(b"334 \r\n").await?;
                    line.clear();
                    r.read_line(&mut line).await?;
                    line.trim().to_owned()
                }
            };
            let parts: Vec<String> = decode(&payload).split('\0').map(str::to_owned).collect();
            check(&creds, parts.get(1), parts.get(2), &mut user)
        } else if upper.starts_with("AUTH LOGIN") {
            r.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            line.clear();
            r.read_line(&mut line).await?;
            let u = decode(&line);
            r.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            line.clear();
            r.read_line(&mut line).await?;
            let p = decode(&line);
            check(&creds, Some(&u), Some(&p), &mut user)
        } else if upper.starts_with("MAIL FROM") {
            if creds.is_some() && user.is_none() {
                "530 5.7.0 Authentication required\r\n".to_owned()
            } else {
                from = Some(addr(cmd));
                rcpts.clear();
                "250 2.1.0 OK\r\n".to_owned()
            }
        } else if upper.starts_with("RCPT TO") {
            let a = addr(cmd);
            if lock().refuse.contains(&a) {
                format!("550 5.1.1 <{a}>: Recipient address rejected\r\n")
            } else {
                rcpts.push(a);
                "250 2.1.5 OK\r\n".to_owned()
            }
        } else if upper == "DATA" {
            if from.is_none() || rcpts.is_empty() {
                "503 5.5.1 Bad sequence of commands\r\n".to_owned()
            } else {
                r.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    let l = line.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(l));
                    data.push_str("\r\n");
                }
                let msg = SmtpMessage {
                    from: from.take().unwrap_or_default(),
                    rcpts: std::mem::take(&mut rcpts),
                    data,
                    auth_user: user.clone(),
                    tls,
                };
                let n = {
                    let mut s = lock();
                    s.messages.push(msg);
                    s.messages.len()
                };
                format!("250 2.0.0 Ok: queued as M{n}\r\n")
            }
        } else if upper == "RSET" {
            from = None;
            rcpts.clear();
            "250 2.0.0 OK\r\n".to_owned()
        } else if upper == "NOOP" {
            "250 2.0.0 OK\r\n".to_owned()
        } else if upper == "QUIT" {
            r.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognized\r\n".to_owned()
        };
        r.write_all(reply.as_bytes()).await?;
    }
}

fn check(
    creds: &Option<(String, String)>,
    u: Option<&String>,
    p: Option<&String>,
    user: &mut Option<String>,
) -> String {
    match creds {
        Some((cu, cp)) if Some(cu) == u && Some(cp) == p => {
            *user = u.cloned();
            "235 2.7.0 Authentication successful\r\n".to_owned()
        }
        Some(_) => "535 5.7.8 Authentication credentials invalid\r\n".to_owned(),
        None => "503 5.5.1 AUTH not available\r\n".to_owned(),
    }
}
