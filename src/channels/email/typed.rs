//! The typed email config (the convention is in [`channels`](crate::channels)).

use std::time::Duration;

use secrecy::SecretString;

use super::{EmailFormat, TlsMode};

typed_config! {
    /// An SMTP account and the addresses it sends to. (`EmailConfig`, not
    /// `Email`: that is the channel.)
    ///
    /// ```
    /// use alertkit::channels::email::{EmailConfig, EmailFormat, TlsMode};
    ///
    /// let mail = EmailConfig::builder()
    ///     .host("smtp.example.com")
    ///     .port(465)
    ///     .tls(TlsMode::Implicit)
    ///     .username("alerts")
    ///     .password("app-password")
    ///     .from("alerts@example.com")
    ///     .to(["ops@example.com"])
    ///     .format(EmailFormat::Table)
    ///     .build()?;
    /// assert!(!format!("{mail:?}").contains("app-password"));
    ///
    /// let e = EmailConfig::builder().host("smtp.example.com").tls(TlsMode::None)
    ///     .from("alerts@example.com").build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.tls"));   // plain SMTP off loopback
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    EmailConfig, EmailConfigBuilder, kind = super::KIND
}

impl EmailConfigBuilder {
    /// The SMTP server's host name.
    pub fn host(self, host: impl Into<String>) -> Self {
        self.put("host", host.into())
    }

    /// The port (default 465 with implicit TLS, 587 with STARTTLS, 25 without).
    pub fn port(self, port: u16) -> Self {
        self.put("port", port)
    }

    /// How the connection is secured (default: implicit on port 465, STARTTLS otherwise).
    pub fn tls(self, tls: TlsMode) -> Self {
        self.put_json("tls", tls)
    }

    /// The login (no AUTH without one).
    pub fn username(self, username: impl Into<String>) -> Self {
        self.put("username", username.into())
    }

    /// The password of [`username`](Self::username).
    pub fn password(self, password: impl Into<SecretString>) -> Self {
        self.put_secret("password", password)
    }

    /// The From address.
    pub fn from(self, address: impl Into<String>) -> Self {
        self.put("from", address.into())
    }

    /// The From display name.
    pub fn from_name(self, name: impl Into<String>) -> Self {
        self.put("from_name", name.into())
    }

    /// To addresses.
    pub fn to<S: Into<String>>(self, addresses: impl IntoIterator<Item = S>) -> Self {
        self.put_list("to", addresses)
    }

    /// Cc addresses.
    pub fn cc<S: Into<String>>(self, addresses: impl IntoIterator<Item = S>) -> Self {
        self.put_list("cc", addresses)
    }

    /// Bcc addresses.
    pub fn bcc<S: Into<String>>(self, addresses: impl IntoIterator<Item = S>) -> Self {
        self.put_list("bcc", addresses)
    }

    /// A subject template instead of the alert's title.
    pub fn subject(self, subject: impl Into<String>) -> Self {
        self.put("subject", subject.into())
    }

    /// What the message holds (HTML by default).
    pub fn format(self, format: EmailFormat) -> Self {
        self.put_json("format", format)
    }

    /// A PEM file of the CA to trust instead of the platform's roots.
    pub fn ca_file(self, path: impl AsRef<std::path::Path>) -> Self {
        self.put("ca_file", path.as_ref().to_string_lossy().into_owned())
    }

    /// Accepts any certificate (a test server only).
    pub fn accept_invalid_certs(self, accept: bool) -> Self {
        self.put("accept_invalid_certs", accept)
    }

    /// Allows [`TlsMode::None`] to a host that is not loopback.
    pub fn allow_plaintext(self, allow: bool) -> Self {
        self.put("allow_plaintext", allow)
    }

    /// The name sent in EHLO (default: this machine's host name).
    pub fn hello_name(self, name: impl Into<String>) -> Self {
        self.put("hello_name", name.into())
    }

    /// The time limit of each SMTP step (default 15 s); a whole
    /// transaction gets twice this.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.put(
            "timeout_ms",
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        )
    }

    /// SMTP sessions open at once (default 4).
    pub fn max_connections(self, n: usize) -> Self {
        self.put("max_connections", n)
    }

    /// Idle connections kept (default 4).
    pub fn pool_size(self, n: usize) -> Self {
        self.put("pool_size", n)
    }
}
