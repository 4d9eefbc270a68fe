//! SMTP: connections, TLS modes, a small pool, and a transaction that
//! reports each recipient (platforms.md §6).
//!
//! lettre's own transport stops at the first refused recipient and its pool
//! writes the end-of-data marker as a separate small packet, which stalls
//! every pooled message ~40 ms on delayed ACKs. This module drives lettre's
//! `AsyncSmtpConnection` directly: sockets with TCP_NODELAY, the message
//! and its terminator in one write, one RCPT per recipient with the refused
//! ones collected, and idle connections kept for reuse.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, MailParameter};
use secrecy::{ExposeSecret, SecretString};

use super::config::TlsMode;
use crate::error::{Error, ErrorKind, Result};

/// The longest wait for the answer to QUIT when closing a connection.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// The longest wait for a plaintext server's greeting before suggesting
/// the port speaks implicit TLS.
const GREETING_WAIT: Duration = Duration::from_secs(10);

/// Connections idle longer than this are not reused (servers drop them).
const IDLE_LIMIT: Duration = Duration::from_secs(50);

/// The most a server may send between two of our writes (one reply, or
/// the TLS handshake): RFC 5321 allows 512 octets a line; this is generous.
/// A server answering with an endless line is cut off here instead of
/// growing the client's buffer until the process aborts.
pub(crate) const MAX_READ_PER_REPLY: usize = 256 * 1024;

/// A TCP stream that fails a read once the server has sent more than
/// [`MAX_READ_PER_REPLY`] bytes since the client last wrote. It sits below
/// TLS, so it bounds what a server sends in clear and encrypted alike.
#[derive(Debug)]
struct Budgeted {
    tcp: tokio::net::TcpStream,
    read_since_write: usize,
}

impl tokio::io::AsyncRead for Budgeted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &poll {
            let got = buf.filled().len() - before;
            self.read_since_write = self.read_since_write.saturating_add(got);
            if self.read_since_write > MAX_READ_PER_REPLY {
                return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                    "the server sent more than {MAX_READ_PER_REPLY} bytes in one reply"
                ))));
            }
        }
        poll
    }
}

impl tokio::io::AsyncWrite for Budgeted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &poll
            && *n > 0
        {
            self.read_since_write = 0;
        }
        poll
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for Budgeted {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.peer_addr()
    }
}

pub(crate) struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_params: Option<TlsParameters>,
    /// The rustls config of implicit TLS.
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub credentials: Option<(String, SecretString)>,
    pub hello: ClientId,
    pub timeout: Duration,
    pub pool_size: usize,
    /// Idle sessions: the connection, the `SIZE` it advertised, since when.
    pub idle: Mutex<Vec<(AsyncSmtpConnection, Option<usize>, Instant)>>,
    /// One permit per SMTP session this instance may have open at once
    /// (`max_connections`): a burst waits for a session instead of opening
    /// hundreds the server refuses with 421.
    pub sessions: tokio::sync::Semaphore,
}

/// The default of `max_connections`: few sessions, each reused.
pub(crate) const MAX_CONNECTIONS: usize = 4;

/// What the server said about one transaction.
pub(crate) struct Outcome {
    /// Refused recipients: address, the server's words, and whether the
    /// refusal was temporary (4xx).
    pub refused: Vec<(Address, String, bool)>,
    pub message: String,
}

/// The whole DATA payload in one write: dot-stuffed, CRLF line ends, and the
/// terminator. lettre's `command` writes a `Display` in one call.
struct DataBody<'a>(&'a str);

impl std::fmt::Display for DataBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in self.0.split_inclusive('\n') {
            let line = line.strip_suffix('\n').unwrap_or(line);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

/// The `SIZE` the server advertises (RFC 1870; 0: no fixed limit), read
/// from a second EHLO (lettre keeps only the extensions it uses). `None`
/// when it advertises none, or does not answer the EHLO.
async fn advertised_size(conn: &mut AsyncSmtpConnection, hello: &ClientId) -> Option<usize> {
    let response = conn
        .command(lettre::transport::smtp::commands::Ehlo::new(hello.clone()))
        .await
        .ok()?;
    response.message().find_map(|line| {
        let mut words = line.split_whitespace();
        if !words.next()?.eq_ignore_ascii_case("SIZE") {
            return None;
        }
        Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0))
    })
}

/// An SMTP error as an alertkit error: 4xx and network errors retryable,
/// 5xx not; 535/530 are authentication failures.
pub(crate) fn smtp_error(e: lettre::transport::smtp::Error, during: &str) -> Error {
    let code = e.status().map(|c| c.to_string());
    let (kind, retryable) = match code.as_deref() {
        Some("535" | "534" | "530" | "538") => (ErrorKind::Unauthorized, false),
        Some("454") => (ErrorKind::Unauthorized, true),
        Some("552") => (ErrorKind::PayloadTooLarge, false),
        Some("550" | "551" | "553") => (ErrorKind::InvalidRecipient, false),
        Some(c) if c.starts_with('4') => (ErrorKind::Platform, true),
        Some(_) => (ErrorKind::Platform, false),
        None if e.is_tls() => (ErrorKind::Transport, false),
        None if e.is_timeout() => (ErrorKind::Timeout, true),
        None if e.is_client() => (ErrorKind::Platform, false),
        None => (ErrorKind::Transport, true),
    };
    let mut err = Error::new(kind, format!("{during}: {e}")).with_retryable(retryable);
    if let Some(c) = code {
        err = err.with_code(c);
    }
    err.with_source(e)
}

impl Smtp {
    /// A ready connection: TLS as configured, authenticated. Bounded by the
    /// timeout as a whole (a TLS listener answering a plaintext client, or
    /// the reverse, would otherwise wait forever for a greeting).
    async fn connect(&self) -> Result<(AsyncSmtpConnection, Option<usize>)> {
        // Each step has `timeout`; the greeting check inside fires first.
        let limit = self.timeout.saturating_mul(2);
        tokio::time::timeout(limit, self.connect_inner())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no SMTP session with {}:{} within {} s (is `tls` right for this port?)",
                        self.host,
                        self.port,
                        limit.as_secs()
                    ),
                )
            })?
    }

    /// A TCP connection to the server, Nagle off, its reads budgeted.
    async fn tcp(&self) -> Result<Budgeted> {
        let tcp = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!("cannot connect to {}:{} in time", self.host, self.port),
            )
        })?
        .map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!("cannot connect to {}:{}", self.host, self.port),
            )
            .with_source(e)
        })?;
        // Requests and answers alternate: never wait for Nagle.
        tcp.set_nodelay(true).map_err(|e| {
            Error::new(ErrorKind::Transport, "cannot set TCP_NODELAY").with_source(e)
        })?;
        Ok(Budgeted {
            tcp,
            read_since_write: 0,
        })
    }

    /// The EHLO name: the configured one, else this host's name when it is
    /// fully qualified, else the connection's own address as a literal
    /// (`[192.0.2.1]`): relays refuse a bare short name.
    fn hello_for(&self, local: Option<std::net::SocketAddr>) -> ClientId {
        match (&self.hello, local) {
            (ClientId::Domain(d), Some(addr)) if !d.contains('.') => match addr.ip() {
                std::net::IpAddr::V4(ip) => ClientId::Ipv4(ip),
                std::net::IpAddr::V6(ip) => ClientId::Ipv6(ip),
            },
            (h, _) => h.clone(),
        }
    }

    async fn connect_inner(&self) -> Result<(AsyncSmtpConnection, Option<usize>)> {
        let tcp = self.tcp().await?;
        let hello = self.hello_for(tcp.tcp.local_addr().ok());
        let mut conn = match self.tls {
            TlsMode::Implicit => {
                let config = self
                    .tls_config
                    .clone()
                    .ok_or_else(|| Error::new(ErrorKind::Internal, "no TLS config"))?;
                let name =
                    rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|_| {
                        Error::config("params.host", "not a host name or address for TLS")
                    })?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| super::tls::handshake_error(&self.host, self.port, &e))?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(super::tls::TlsTransport(tls)),
                    &hello,
                )
                .await
                .map_err(|e| smtp_error(e, "no SMTP greeting"))?
            }
            TlsMode::Starttls | TlsMode::None => {
                // A TLS port waits for our ClientHello and never greets:
                // say so soon rather than time out on every retry.
                let wait = self.timeout.min(GREETING_WAIT);
                tokio::time::timeout(
                    wait,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello),
                )
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Transport,
                        format!(
                            "{}:{} sent no SMTP greeting in {} s: is it an implicit-TLS port (then set tls = \"implicit\")?",
                            self.host,
                            self.port,
                            wait.as_secs()
                        ),
                    )
                    .with_retryable(false)
                })?
                .map_err(|e| smtp_error(e, "no SMTP greeting"))?
            }
        };
        if self.tls == TlsMode::Starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                // Nothing else is sent: no credentials, no message, in clear.
                return Err(Error::new(
                    ErrorKind::Transport,
                    format!(
                        "{}:{} does not offer STARTTLS; refusing to continue in clear",
                        self.host, self.port
                    ),
                )
                .with_retryable(false));
            }
            let params = self
                .tls_params
                .clone()
                .ok_or_else(|| Error::new(ErrorKind::Internal, "no TLS parameters"))?;
            conn.starttls(params, &hello).await.map_err(|e| {
                // A certificate or handshake failure does not fix itself.
                let mut e = smtp_error(e, "STARTTLS failed");
                if e.kind() == ErrorKind::Transport {
                    e = e.with_retryable(false);
                }
                e
            })?;
        }
        let size = advertised_size(&mut conn, &hello).await;
        if let Some((user, password)) = &self.credentials {
            let creds = Credentials::new(user.clone(), password.expose_secret().to_owned());
            if let Err(e) = conn
                .auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
            {
                let plain_without_auth = self.tls == TlsMode::None && !conn.is_encrypted();
                let mut e = smtp_error(e, "authentication failed");
                if plain_without_auth && e.message().contains("No compatible authentication") {
                    e = Error::new(
                        ErrorKind::Unauthorized,
                        format!(
                            "{}:{} offers no AUTH in clear: servers offer it only after STARTTLS; set tls = \"starttls\"",
                            self.host, self.port
                        ),
                    )
                    .with_retryable(false);
                }
                conn.abort().await;
                return Err(e);
            }
        }
        Ok((conn, size))
    }

    /// An idle session to reuse, and the stale connections to close.
    #[allow(clippy::type_complexity)]
    fn checkout(
        &self,
    ) -> (
        Option<(AsyncSmtpConnection, Option<usize>)>,
        Vec<AsyncSmtpConnection>,
    ) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut stale = Vec::new();
        while let Some((conn, size, since)) = idle.pop() {
            if since.elapsed() < IDLE_LIMIT && !conn.has_broken() {
                return (Some((conn, size)), stale);
            }
            stale.push(conn);
        }
        (None, stale)
    }

    /// Keeps a session for reuse, or hands its connection back to be closed.
    fn checkin(
        &self,
        conn: AsyncSmtpConnection,
        size: Option<usize>,
    ) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.pool_size && !conn.has_broken() {
            idle.push((conn, size, Instant::now()));
            return None;
        }
        Some(conn)
    }

    /// Says QUIT (briefly: a server gone silent is not waited for).
    async fn close(&self, mut conn: AsyncSmtpConnection) {
        if !conn.has_broken() {
            let _ = tokio::time::timeout(QUIT_WAIT, conn.quit()).await;
        }
        conn.abort().await;
    }

    /// Sends one message to `rcpts`. A pooled connection the server has
    /// closed fails at MAIL FROM, before anything was accepted, and the
    /// transaction is tried once more on a new connection.
    pub async fn send(&self, from: &Address, rcpts: &[Address], message: &str) -> Result<Outcome> {
        // Wait for a session of our own (bounded by the member's time limit
        // around this call), then run the whole transaction, MAIL FROM
        // included, within its time limit: a tarpit holds this member for
        // `timeout`, never for the group's.
        let _permit =
            self.sessions.acquire().await.map_err(|_| {
                Error::new(ErrorKind::Internal, "the SMTP session limit was closed")
            })?;
        let limit = self.timeout.saturating_mul(3);
        tokio::time::timeout(limit, self.send_inner(from, rcpts, message))
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the SMTP server did not finish the transaction in {} s",
                        limit.as_secs()
                    ),
                ))
            })
    }

    async fn send_inner(
        &self,
        from: &Address,
        rcpts: &[Address],
        message: &str,
    ) -> Result<Outcome> {
        let (reused, stale) = self.checkout();
        for conn in stale {
            self.close(conn).await;
        }
        let was_reused = reused.is_some();
        let (mut conn, mut size) = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        // RFC 1870: a message larger than the server takes is refused here,
        // before MAIL FROM, rather than after its whole body went over.
        if let Some(max) = size.filter(|&m| m > 0 && message.len() > m) {
            if let Some(extra) = self.checkin(conn, size) {
                self.close(extra).await;
            }
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "the message is {} bytes; the server takes at most {max} (SIZE)",
                    message.len()
                ),
            )
            .with_retryable(false));
        }
        let mut options = vec![];
        if size.is_some() {
            options.push(MailParameter::Size(message.len()));
        }
        if rcpts
            .iter()
            .chain(std::iter::once(from))
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii())
        {
            options.push(MailParameter::SmtpUtfEight);
        }
        let mail = Mail::new(Some(from.clone()), options);
        if let Err(e) = conn.command(&mail).await {
            if !was_reused {
                conn.abort().await;
                return Err(smtp_error(e, "MAIL FROM refused"));
            }
            (conn, size) = self.connect().await?;
            if let Err(e) = conn.command(&mail).await {
                conn.abort().await;
                return Err(smtp_error(e, "MAIL FROM refused"));
            }
        }
        let result =
            tokio::time::timeout(self.timeout, self.transaction(&mut conn, rcpts, message))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Timeout,
                        "the SMTP server stopped answering",
                    ))
                });
        match &result {
            Ok(_) => {
                if let Some(extra) = self.checkin(conn, size) {
                    self.close(extra).await;
                }
            }
            Err(_) => conn.abort().await,
        }
        result
    }

    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        rcpts: &[Address],
        message: &str,
    ) -> Result<Outcome> {
        let mut refused = Vec::new();
        let mut transient = None;
        let mut first_code = None;
        for rcpt in rcpts {
            if let Err(e) = conn.command(Rcpt::new(rcpt.clone(), vec![])).await {
                if e.status().is_none() {
                    return Err(smtp_error(e, "RCPT TO failed"));
                }
                let text = e.to_string();
                if first_code.is_none() {
                    first_code = e.status().map(|c| c.to_string());
                }
                let temporary = e.is_transient();
                if temporary && transient.is_none() {
                    transient = Some(smtp_error(e, "recipient deferred"));
                }
                refused.push((rcpt.clone(), text, temporary));
            }
        }
        if refused.len() == rcpts.len() {
            let _ = conn.command(Rset).await;
            return Err(transient.unwrap_or_else(|| {
                let why: Vec<String> = refused
                    .iter()
                    .map(|(a, e, _)| format!("{a}: {e}"))
                    .collect();
                let why = why.join("; ");
                // Postfix defers HELO, client and relay checks to RCPT time:
                // a policy refusal is not a list of bad addresses.
                let lower = why.to_ascii_lowercase();
                let policy = [
                    "helo command rejected",
                    "client host rejected",
                    "relay access denied",
                    "sender address rejected",
                    "authentication required",
                ]
                .iter()
                .find(|p| lower.contains(*p));
                match policy {
                    Some(p) => Error::new(
                        ErrorKind::Unauthorized,
                        format!("the server's policy refused this client or sender ({p}): {why}"),
                    ),
                    None => Error::new(
                        ErrorKind::InvalidRecipient,
                        format!("every recipient was refused ({why})"),
                    ),
                }
                .with_code(first_code.unwrap_or_else(|| "550".to_owned()))
                .with_retryable(false)
            }));
        }
        conn.command(Data)
            .await
            .map_err(|e| smtp_error(e, "DATA refused"))?;
        let response = conn
            .command(DataBody(message))
            .await
            .map_err(|e| smtp_error(e, "message refused"))?;
        Ok(Outcome {
            refused,
            message: response.message().collect::<Vec<_>>().join(" "),
        })
    }
}
