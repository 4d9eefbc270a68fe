//! Shared HTTP plumbing: one `reqwest::Client` for every instance, URL
//! checks, redaction, and reading the platform's answer whatever the status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// Time to establish a connection (TCP + TLS).
///
/// ```
/// use std::time::Duration;
/// use alertkit::http::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
/// assert_eq!(CONNECT_TIMEOUT, Duration::from_secs(5));
/// assert!(CONNECT_TIMEOUT < REQUEST_TIMEOUT); // connecting is part of the request's time
/// ```
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request, answer included.
///
/// ```
/// use std::time::Duration;
/// use alertkit::http::REQUEST_TIMEOUT;
/// assert_eq!(REQUEST_TIMEOUT, Duration::from_secs(15));
/// ```
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client and caches every instance built by one
/// [`Notifier`](crate::Notifier) shares: one connection pool, one client
/// per distinct proxy. Cheap to clone.
///
/// ```
/// let http = alertkit::Http::new();
/// let custom = alertkit::Http::with_client(reqwest::Client::new());
/// # let _ = (http, custom);
/// ```
#[derive(Clone)]
pub struct Http {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    injected: bool,
    proxied: Mutex<HashMap<String, reqwest::Client>>,
    tokens: Mutex<HashMap<String, Arc<TokenCache>>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("injected", &self.inner.injected)
            .finish_non_exhaustive()
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        // Never follow: a redirect would carry secret headers to another
        // host, turn a POST into an empty GET, and skip the URL checks. A
        // 3xx answer is a failure naming where it pointed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("alertkit/", env!("CARGO_PKG_VERSION")))
}

impl Http {
    /// A client with alertkit's timeouts ([`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`]),
    /// rustls and the platform's trusted roots.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::Http;
    /// let http = Http::new();
    /// let clone = http.clone(); // shares the pool and the token caches
    /// assert!(Arc::ptr_eq(&http.token_cache("pager|app-1|ab12"), &clone.token_cache("pager|app-1|ab12")));
    /// ```
    pub fn new() -> Self {
        // Building a client only fails when the TLS backend cannot start; fall
        // back to reqwest's defaults rather than panic inside a host.
        let client = builder().build().unwrap_or_default();
        Http::from_parts(client, false)
    }

    /// Uses the host's own client (its proxies, roots, timeouts). Instances
    /// that set their own `proxy` still get a client of their own.
    ///
    /// ```
    /// use alertkit::Http;
    /// use alertkit::http::ProxyConfig;
    /// let http = Http::with_client(reqwest::Client::builder().user_agent("my-host/1.0").build().unwrap());
    /// assert!(http.client_for(None).is_ok()); // the host's client
    /// let proxy = ProxyConfig::new("http://proxy.corp:3128".parse().unwrap());
    /// assert!(http.client_for(Some(&proxy)).is_ok()); // a client of its own
    /// ```
    pub fn with_client(client: reqwest::Client) -> Self {
        Http::from_parts(client, true)
    }

    fn from_parts(client: reqwest::Client, injected: bool) -> Self {
        Http {
            inner: Arc::new(Inner {
                client,
                injected,
                proxied: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The shared client.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// # struct Ok200;
    /// # impl Platform for Ok200 {
    /// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    /// #     fn is_message(&self, _: &str) -> bool { true }
    /// # }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Ok200).await;
    /// let http = alertkit::Http::new();
    /// let resp = http.client().post(format!("{}/send", fake.uri())).body("{}").send().await.unwrap();
    /// assert_eq!(resp.status(), 200);
    /// # });
    /// ```
    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// The token cache of one app, shared by every instance built with this
    /// `Http` that names the same app. `key` identifies the app and its
    /// secret, e.g. `wecom|corp|<sha256 of secret>`; use [`token_key`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::Http;
    /// use alertkit::toolkit::token_key;
    /// let http = Http::new();
    /// let key = token_key("wecom", "corp-1", &"secret".into());
    /// assert!(Arc::ptr_eq(&http.token_cache(&key), &http.token_cache(&key))); // one per app
    /// let rotated = token_key("wecom", "corp-1", &"new-secret".into());
    /// assert!(!Arc::ptr_eq(&http.token_cache(&key), &http.token_cache(&rotated)));
    /// ```
    pub fn token_cache(&self, key: &str) -> Arc<TokenCache> {
        let mut map = self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_owned()).or_default().clone()
    }

    /// The client for an instance: the shared one, or one per distinct proxy.
    ///
    /// ```
    /// use alertkit::Http;
    /// use alertkit::http::ProxyConfig;
    /// let http = Http::new();
    /// let proxy = ProxyConfig::new("http://proxy.corp:3128".parse().unwrap());
    /// assert!(http.client_for(Some(&proxy)).is_ok()); // built once, then reused
    /// assert!(http.client_for(None).is_ok()); // the shared client
    /// ```
    pub fn client_for(&self, proxy: Option<&ProxyConfig>) -> Result<reqwest::Client> {
        let Some(p) = proxy else {
            return Ok(self.inner.client.clone());
        };
        let key = format!(
            "{}|{}|{}",
            p.url,
            p.username.as_deref().unwrap_or(""),
            p.password.as_ref().map(|s| s.expose_secret()).unwrap_or("")
        );
        let mut cache = self.inner.proxied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let client = builder().proxy(proxy_of(p)?).build().map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                "cannot build a proxied HTTP client",
            )
            .with_source(e)
        })?;
        cache.insert(key, client.clone());
        Ok(client)
    }
}

/// A client of its own that follows redirects only when they keep the
/// method and body (307, 308) and stay on the first URL's scheme, host and
/// port, at most 5 times (a webhook's `follow_redirects = "same_origin"`).
///
/// ```
/// use alertkit::http::{ProxyConfig, same_origin_client};
/// assert!(same_origin_client(None).is_ok());
/// let proxy = ProxyConfig::new("http://proxy.corp:3128".parse().unwrap());
/// assert!(same_origin_client(Some(&proxy)).is_ok());
/// ```
pub fn same_origin_client(proxy: Option<&ProxyConfig>) -> Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if keeps_body && same && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    let mut b = builder().redirect(policy);
    if let Some(p) = proxy {
        b = b.proxy(proxy_of(p)?);
    }
    b.build().map_err(|e| {
        Error::new(ErrorKind::InvalidConfig, "cannot build an HTTP client").with_source(e)
    })
}

fn proxy_of(p: &ProxyConfig) -> Result<reqwest::Proxy> {
    let mut proxy = reqwest::Proxy::all(p.url.as_str()).map_err(|e| {
        Error::config("proxy.url", "not a usable proxy URL").with_source(e.without_url())
    })?;
    if let Some(user) = &p.username {
        let pass = p.password.as_ref().map(|s| s.expose_secret()).unwrap_or("");
        proxy = proxy.basic_auth(user, pass);
    }
    Ok(proxy)
}

/// A token-cache key for `kind`, app id and secret that does not hold the
/// secret itself (its SHA-256 prefix instead): instances of one app share a
/// cache, and a changed secret gets a new one.
///
/// ```
/// use alertkit::toolkit::token_key;
/// let key = token_key("pager", "app-1", &"app-secret".into());
/// assert!(key.starts_with("pager|app-1|") && !key.contains("app-secret"));
/// assert_ne!(key, token_key("pager", "app-1", &"rotated".into()));
/// ```
pub fn token_key(kind: &str, app: &str, secret: &SecretString) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(secret.expose_secret().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}|{app}|{hex}")
}

/// An HTTP proxy for one instance.
///
/// ```
/// use alertkit::http::ProxyConfig;
/// let p: ProxyConfig = serde_json::from_str(r#"{"url": "http://proxy.corp:3128", "username": "svc", "password": "hunter22"}"#).unwrap();
/// assert_eq!(p.username.as_deref(), Some("svc"));
/// let shown = format!("{p:?}");
/// assert!(!shown.contains("hunter22") && shown.contains("[REDACTED]"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// `http://host:port`.
    pub url: Url,
    /// Basic-auth user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password.
    #[serde(default)]
    pub password: Option<SecretString>,
}

impl ProxyConfig {
    /// A proxy without authentication.
    ///
    /// ```
    /// use alertkit::http::ProxyConfig;
    /// let p = ProxyConfig::new("http://proxy.corp:3128".parse().unwrap());
    /// assert_eq!(p.url.port(), Some(3128));
    /// assert!(p.username.is_none() && p.password.is_none());
    /// ```
    pub fn new(url: Url) -> Self {
        ProxyConfig {
            url,
            username: None,
            password: None,
        }
    }

    /// Sets basic authentication.
    ///
    /// ```
    /// use alertkit::http::ProxyConfig;
    /// use alertkit::secrecy::ExposeSecret;
    /// let p = ProxyConfig::new("http://proxy.corp:3128".parse().unwrap()).with_auth("svc", "hunter22".into());
    /// assert_eq!(p.username.as_deref(), Some("svc"));
    /// assert_eq!(p.password.unwrap().expose_secret(), "hunter22");
    /// ```
    pub fn with_auth(mut self, username: impl Into<String>, password: SecretString) -> Self {
        self.username = Some(username.into());
        self.password = Some(password);
        self
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// The proxy of Dinky's params (`isEnableProxy`, `hostname`, `port`,
/// `user`, `password`), if enabled.
///
/// ```
/// use alertkit::http::dinky_proxy;
/// let p = dinky_proxy(true, Some("proxy.corp"), Some(3128), Some("svc"), Some(&"pw".into())).unwrap().unwrap();
/// assert_eq!((p.url.as_str(), p.username.as_deref()), ("http://proxy.corp:3128/", Some("svc")));
/// assert!(dinky_proxy(false, Some("proxy.corp"), None, None, None).unwrap().is_none());
/// let e = dinky_proxy(true, None, None, None, None).unwrap_err();
/// assert_eq!(e.field(), Some("params.hostname"));
/// ```
pub fn dinky_proxy(
    enabled: bool,
    hostname: Option<&str>,
    port: Option<u16>,
    user: Option<&str>,
    password: Option<&SecretString>,
) -> Result<Option<ProxyConfig>> {
    if !enabled {
        return Ok(None);
    }
    let host = hostname
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::config(
                "params.hostname",
                "isEnableProxy is set but no proxy hostname is given",
            )
        })?;
    let url = Url::parse(&format!("http://{host}:{}", port.unwrap_or(80)))
        .map_err(|e| Error::config("params.hostname", format!("not a valid proxy host ({e})")))?;
    let mut proxy = ProxyConfig::new(url);
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        proxy = proxy.with_auth(u, password.cloned().unwrap_or_default());
    }
    Ok(Some(proxy))
}

/// Whether `url`'s host is a loopback address (`localhost`, 127.0.0.0/8, `::1`).
///
/// ```
/// use alertkit::http::is_loopback;
/// let u = |s: &str| s.parse().unwrap();
/// assert!(is_loopback(&u("http://localhost:8080/")) && is_loopback(&u("http://127.0.0.2/")));
/// assert!(is_loopback(&u("http://[::1]/")));
/// assert!(!is_loopback(&u("http://10.0.0.1/")));
/// ```
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses a URL param: must be `https://`, or `http://` to a loopback host or
/// when the instance sets `allow_http`. The error names `field` and never
/// echoes the value (it may hold a token).
///
/// ```
/// use alertkit::http::parse_url;
/// assert!(parse_url("params.webhook", "https://hooks.example/x", false).is_ok());
/// assert!(parse_url("params.webhook", "http://127.0.0.1:8080/x", false).is_ok()); // loopback
/// let e = parse_url("params.webhook", "http://hooks.example/x?token=s3cret", false).unwrap_err();
/// assert_eq!(e.field(), Some("params.webhook"));
/// assert!(!e.to_string().contains("s3cret")); // the value is never echoed
/// assert!(parse_url("params.webhook", "http://hooks.example/x", true).is_ok());
/// ```
pub fn parse_url(field: &str, value: &str, allow_http: bool) -> Result<Url> {
    let url = Url::parse(value.trim())
        .map_err(|e| Error::config(field, format!("not a valid URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(Error::config(
                field,
                "http:// is refused for a non-loopback host (tokens would travel in clear); use https:// or set allow_http",
            ));
        }
        other => {
            return Err(Error::config(
                field,
                format!("unsupported URL scheme {other:?}"),
            ));
        }
    }
    if url.host().is_none() {
        return Err(Error::config(field, "URL has no host"));
    }
    Ok(url)
}

/// `base` with `path` appended (`base_url` params may or may not end in `/`).
///
/// ```
/// use alertkit::http::join_url;
/// let j = |b: &str| join_url(&b.parse().unwrap(), "v1/send").unwrap().to_string();
/// assert_eq!(j("https://api.example"), "https://api.example/v1/send");
/// assert_eq!(j("https://api.example/base/"), "https://api.example/base/v1/send");
/// assert_eq!(j("https://api.example/base"), "https://api.example/base/v1/send");
/// ```
pub fn join_url(base: &Url, path: &str) -> Result<Url> {
    let mut u = base.clone();
    {
        let mut segs = u
            .path_segments_mut()
            .map_err(|_| Error::config("params.base_url", "the base URL cannot take a path"))?;
        segs.pop_if_empty();
        segs.extend(path.split('/'));
    }
    Ok(u)
}

/// `base` with an API `path` appended, where `base` may already end in the
/// path's first segment (the prefix the platform's API lives under):
/// `https://proxy/cgi-bin` + `cgi-bin/gettoken` is `https://proxy/cgi-bin/gettoken`,
/// not `.../cgi-bin/cgi-bin/gettoken` (Dinky's `sendUrl` ends in `/cgi-bin`).
///
/// ```
/// let j = |b: &str| alertkit::http::join_api(&url::Url::parse(b).unwrap(), "cgi-bin/gettoken").unwrap().to_string();
/// assert_eq!(j("https://qyapi.weixin.qq.com"), "https://qyapi.weixin.qq.com/cgi-bin/gettoken");
/// assert_eq!(j("https://qyapi.weixin.qq.com/cgi-bin"), "https://qyapi.weixin.qq.com/cgi-bin/gettoken");
/// assert_eq!(j("http://127.0.0.1:8080/wecom/cgi-bin/"), "http://127.0.0.1:8080/wecom/cgi-bin/gettoken");
/// ```
pub fn join_api(base: &Url, path: &str) -> Result<Url> {
    let last = base
        .path_segments()
        .and_then(|mut s| s.rfind(|x| !x.is_empty()))
        .unwrap_or("");
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((first, rest)) if !last.is_empty() && first == last => join_url(base, rest),
        _ => join_url(base, path),
    }
}

/// The URL with every query value and every path segment after `hook`
/// replaced by `REDACTED`: what errors, logs and previews show.
///
/// ```
/// let u = url::Url::parse("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1").unwrap();
/// assert_eq!(alertkit::http::redact_url(&u),
///            "https://oapi.dingtalk.com/robot/send?access_token=REDACTED&timestamp=REDACTED");
/// let f = url::Url::parse("https://open.feishu.cn/open-apis/bot/v2/hook/xyz").unwrap();
/// assert_eq!(alertkit::http::redact_url(&f), "https://open.feishu.cn/open-apis/bot/v2/hook/REDACTED");
/// ```
pub fn redact_url(url: &Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let mut after_hook = false;
    if let Some(segments) = url.path_segments() {
        for seg in segments {
            out.push('/');
            out.push_str(if after_hook || looks_like_token(seg) {
                "REDACTED"
            } else {
                seg
            });
            after_hook |= seg == "hook";
        }
    }
    let mut first = true;
    for (k, _) in url.query_pairs() {
        out.push(if first { '?' } else { '&' });
        first = false;
        out.push_str(&k);
        out.push_str("=REDACTED");
    }
    out
}

/// Whether a path segment looks like a credential rather than a name:
/// Slack's `/services/T000/B000/<24 random characters>`, Telegram's
/// `bot123456:AAH…`, a key in the path. Long (20+) runs of letters and
/// digits that mix digits with letters or cases, or hold a `:`.
///
/// ```
/// use alertkit::http::looks_like_token;
/// assert!(looks_like_token("bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")); // Telegram
/// assert!(looks_like_token("a8Kx2pQ9rT4vW7yZ1bC3dE5f")); // 24 random characters
/// assert!(!looks_like_token("send") && !looks_like_token("open-apis"));
/// ```
pub fn looks_like_token(seg: &str) -> bool {
    let s = seg.trim();
    if s.len() < 16 {
        return false;
    }
    let charset = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:%=+".contains(&b));
    if !charset {
        return false;
    }
    let digits = s.bytes().any(|b| b.is_ascii_digit());
    let upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let separators = s.bytes().filter(|b| b"-_.".contains(b)).count();
    // Words joined by separators (`send-alert-to-ops-team`) are names.
    let wordy = separators * 8 >= s.len();
    (s.contains(':') && digits)
        || (s.len() >= 20 && !wordy && (digits && (upper || lower) || upper && lower))
}

/// The most of a platform's message kept in an error (1 KiB).
///
/// ```
/// use alertkit::http::{MAX_MESSAGE, scrub};
/// let s = scrub(&"keyword missing ".repeat(200), &[]);
/// assert!(s.ends_with('…'));
/// assert_eq!(s.len(), MAX_MESSAGE + '…'.len_utf8());
/// ```
pub const MAX_MESSAGE: usize = 1024;

/// `text` with credentials taken out: values of `key=`/`token=`/`sign=`
/// style pairs, long random-looking runs (tokens, signatures, base64 of
/// `AUTH PLAIN`), and every one of `secrets` (at least 4 bytes long), then
/// cut to [`MAX_MESSAGE`]. For messages a platform echoes back.
///
/// ```
/// let s = alertkit::http::scrub("invalid access_token=abc123, sign: Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA==", &["hunter22"]);
/// assert_eq!(s, "invalid access_token=REDACTED, sign: REDACTED");
/// ```
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut s = text.to_owned();
    for secret in secrets.iter().filter(|x| x.len() >= 4) {
        if s.contains(secret) {
            s = s.replace(secret, "REDACTED");
        }
    }
    let word_char = |c: char| c.is_ascii_alphanumeric() || "+/_-.%".contains(c);
    let mut out = String::with_capacity(s.len());
    // Set after `token=` / `sign:`: the next word is its value.
    let mut redact_next = false;
    for word in s.split_inclusive(|c: char| !word_char(c)) {
        let (body, delim) = match word.char_indices().last() {
            Some((j, c)) if !word_char(c) => (&word[..j], &word[j..]),
            _ => (word, ""),
        };
        if body.is_empty() {
            // Base64 padding of a redacted value goes with it; any other
            // lone delimiter (the space in `sign: value`) keeps the flag.
            if !(delim == "=" && out.ends_with("REDACTED")) {
                out.push_str(delim);
            }
            continue;
        }
        let random = body.len() >= 24
            && body.bytes().any(|b| b.is_ascii_digit() || b == b'+')
            && body.bytes().any(|b| b.is_ascii_alphabetic());
        let redact = redact_next || random;
        out.push_str(if redact { "REDACTED" } else { body });
        if !(redact && delim == "=") {
            out.push_str(delim);
        }
        let lower = body.to_ascii_lowercase();
        redact_next = (delim == "=" || delim == ":")
            && [
                "token", "key", "sign", "secret", "password", "passwd", "auth", "ticket",
            ]
            .iter()
            .any(|w| lower.ends_with(w));
    }
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// What a platform answered: status, the `Retry-After` it asked for, and
/// the body parsed as JSON (`Null` when it was not JSON).
///
/// ```
/// use alertkit::http::Reply;
/// let reply = Reply::new(reqwest::StatusCode::OK, serde_json::json!({"errcode": 310000, "errmsg": "keywords not in content"}));
/// assert_eq!(reply.code().as_deref(), Some("310000"));
/// assert!(!reply.code_is_zero());
/// assert_eq!(reply.message(), "keywords not in content");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Retry-After`, in seconds form.
    pub retry_after: Option<Duration>,
    /// The body as JSON.
    pub body: serde_json::Value,
    /// The `Location` of a redirect, redacted like every URL alertkit shows.
    pub location: Option<String>,
}

impl Reply {
    /// An answer with `status` and `body` (for channels' tests and fakes).
    ///
    /// ```
    /// use alertkit::http::Reply;
    /// let reply = Reply::new(reqwest::StatusCode::TOO_MANY_REQUESTS, serde_json::Value::Null);
    /// assert_eq!(reply.status, 429);
    /// assert!(reply.retry_after.is_none() && reply.location.is_none());
    /// ```
    pub fn new(status: StatusCode, body: serde_json::Value) -> Self {
        Reply {
            status,
            retry_after: None,
            body,
            location: None,
        }
    }

    /// The body's `errcode`/`code`/`StatusCode`, as a string (numbers and
    /// strings alike), the first one present.
    ///
    /// ```
    /// use alertkit::http::Reply;
    /// let r = |body| Reply::new(reqwest::StatusCode::OK, body);
    /// assert_eq!(r(serde_json::json!({"errcode": 0})).code().as_deref(), Some("0"));
    /// assert_eq!(r(serde_json::json!({"code": "9499"})).code().as_deref(), Some("9499")); // strings too
    /// assert_eq!(r(serde_json::json!({"ok": true})).code(), None);
    /// ```
    pub fn code(&self) -> Option<String> {
        self.code_value().map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Whether [`code`](Reply::code) is `"0"` (success on every platform
    /// here), without building the string.
    ///
    /// ```
    /// use alertkit::http::Reply;
    /// let r = |body| Reply::new(reqwest::StatusCode::OK, body);
    /// assert!(r(serde_json::json!({"errcode": 0})).code_is_zero());
    /// assert!(r(serde_json::json!({"StatusCode": "0"})).code_is_zero());
    /// assert!(!r(serde_json::json!({"code": 19021})).code_is_zero());
    /// assert!(!r(serde_json::Value::Null).code_is_zero());
    /// ```
    pub fn code_is_zero(&self) -> bool {
        match self.code_value() {
            Some(serde_json::Value::Number(n)) => n.as_u64() == Some(0) || n.as_i64() == Some(0),
            Some(serde_json::Value::String(s)) => s == "0",
            _ => false,
        }
    }

    /// The first of `errcode`/`code`/`StatusCode` that is a number or a string.
    fn code_value(&self) -> Option<&serde_json::Value> {
        ["errcode", "code", "StatusCode"]
            .iter()
            .find_map(|k| match self.body.get(*k)? {
                v @ (serde_json::Value::Number(_) | serde_json::Value::String(_)) => Some(v),
                _ => None,
            })
    }

    /// The body's `errmsg`/`msg`/`message`/`StatusMessage`, with anything
    /// that looks like a credential taken out and cut to [`MAX_MESSAGE`]
    /// (see [`scrub`]): platforms echo parts of the request in errors.
    ///
    /// ```
    /// use alertkit::http::Reply;
    /// let reply = Reply::new(reqwest::StatusCode::OK, serde_json::json!({"errcode": 40014, "errmsg": "invalid access_token=abc123"}));
    /// assert_eq!(reply.message(), "invalid access_token=REDACTED");
    /// ```
    pub fn message(&self) -> String {
        let raw = ["errmsg", "msg", "message", "StatusMessage"]
            .iter()
            .find_map(|k| self.body.get(*k)?.as_str())
            .unwrap_or("");
        scrub(raw, &[])
    }
}

/// Sends `body` as JSON and reads the answer whatever the status. Transport
/// failures become [`ErrorKind::Transport`]/[`ErrorKind::Timeout`] errors
/// with the URL stripped.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
/// # struct Ok0;
/// # impl Platform for Ok0 {
/// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
/// #     fn is_message(&self, _: &str) -> bool { true }
/// # }
/// use alertkit::http::send_json;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let fake = FakeServer::start(Ok0).await;
/// let url = format!("{}/v1/send", fake.uri()).parse().unwrap();
/// let body = serde_json::json!({"text": "disk full"});
/// let reply = send_json(alertkit::Http::new().client(), reqwest::Method::POST, &url, Default::default(), Some(&body)).await.unwrap();
/// assert!(reply.code_is_zero());
/// assert_eq!(fake.accepted()[0].body["text"], "disk full");
/// # });
/// ```
pub async fn send_json<B: Serialize + ?Sized>(
    client: &reqwest::Client,
    method: Method,
    url: &Url,
    headers: HeaderMap,
    body: Option<&B>,
) -> Result<Reply> {
    let mut req = client.request(method, url.clone()).headers(headers);
    if let Some(b) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json_bytes(b, 1024)?);
    }
    let resp = req.send().await.map_err(|e| transport_error(e, url))?;
    read_reply(resp, url).await
}

/// `value` as JSON, written into a buffer of `capacity` bytes to start with
/// (sized for the message rather than grown from serde_json's 128 bytes).
pub(crate) fn json_bytes<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, value).map_err(|e| {
        Error::new(ErrorKind::Internal, "cannot serialize the payload").with_source(e)
    })?;
    Ok(out)
}

/// Posts raw bytes (an already serialized, size-checked payload) as JSON.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
/// # struct Ok0;
/// # impl Platform for Ok0 {
/// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
/// #     fn is_message(&self, _: &str) -> bool { true }
/// # }
/// use alertkit::http::post_bytes;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let fake = FakeServer::start(Ok0).await;
/// let url = format!("{}/v1/send", fake.uri()).parse().unwrap();
/// let body = br#"{"text":"disk full"}"#.to_vec(); // serialized and size-checked already
/// let reply = post_bytes(alertkit::Http::new().client(), &url, Default::default(), body).await.unwrap();
/// assert_eq!(reply.status, 200);
/// assert_eq!(fake.accepted()[0].body["text"], "disk full");
/// # });
/// ```
pub async fn post_bytes(
    client: &reqwest::Client,
    url: &Url,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Reply> {
    let resp = client
        .post(url.clone())
        .headers(headers)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| transport_error(e, url))?;
    read_reply(resp, url).await
}

/// The most of an answer read: platform answers are a few hundred bytes;
/// past this the rest is left unread and the answer is not JSON.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
/// # struct Ok0;
/// # impl Platform for Ok0 {
/// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
/// #     fn is_message(&self, _: &str) -> bool { true }
/// # }
/// use alertkit::http::{MAX_REPLY, post_bytes};
/// use alertkit::testkit::Fault;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let fake = FakeServer::start(Ok0).await;
/// let huge = format!(r#"{{"code": 0, "pad": "{}"}}"#, "x".repeat(MAX_REPLY));
/// fake.push_fault(Fault::Raw { status: 200, headers: vec![], body: huge });
/// let url = fake.uri().parse().unwrap();
/// let reply = post_bytes(alertkit::Http::new().client(), &url, Default::default(), b"{}".to_vec()).await.unwrap();
/// assert!(reply.body.is_null()); // too big to read: not taken as JSON
/// # });
/// ```
pub const MAX_REPLY: usize = 1 << 20;

async fn read_reply(mut resp: reqwest::Response, url: &Url) -> Result<Reply> {
    let status = resp.status();
    let retry_after = parse_retry_after(resp.headers());
    let location = status
        .is_redirection()
        .then(|| redacted_location(resp.headers(), url));
    // Chunk by chunk rather than `bytes()`: its future, held in every
    // send's, is several times larger, and this one stops at MAX_REPLY.
    // Platform answers mostly come in one chunk, parsed where it lies.
    let read_err = |e| transport_error(e, url);
    let first = resp.chunk().await.map_err(read_err)?.unwrap_or_default();
    let (mut rest, mut too_big) = (Vec::new(), first.len() > MAX_REPLY);
    while !too_big && let Some(chunk) = resp.chunk().await.map_err(read_err)? {
        too_big = first.len() + rest.len() + chunk.len() > MAX_REPLY;
        if rest.is_empty() {
            rest.extend_from_slice(&first);
        }
        rest.extend_from_slice(&chunk);
    }
    let bytes: &[u8] = match (too_big, rest.is_empty()) {
        (true, _) => b"",
        (false, true) => &first,
        (false, false) => &rest,
    };
    let body = serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
    Ok(Reply {
        status,
        retry_after,
        body,
        location,
    })
}

/// A redirect's `Location`, resolved against the request URL and redacted.
fn redacted_location(headers: &HeaderMap, url: &Url) -> String {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url.join(v).ok())
        .map_or_else(|| "(no usable Location)".to_owned(), |u| redact_url(&u))
}

/// `Retry-After: <seconds>` (HTTP dates are rare on these APIs and ignored).
/// A server's word is capped at [`MAX_SERVER_WAIT`].
///
/// ```
/// use std::time::Duration;
/// use alertkit::http::{MAX_SERVER_WAIT, parse_retry_after};
/// use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
/// let h = |v: &'static str| HeaderMap::from_iter([(RETRY_AFTER, HeaderValue::from_static(v))]);
/// assert_eq!(parse_retry_after(&h("30")), Some(Duration::from_secs(30)));
/// assert_eq!(parse_retry_after(&h("Wed, 21 Oct 2026 07:28:00 GMT")), None); // dates are ignored
/// assert_eq!(parse_retry_after(&h("99999999")), Some(MAX_SERVER_WAIT)); // capped
/// assert_eq!(parse_retry_after(&HeaderMap::new()), None);
/// ```
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_SERVER_WAIT))
}

/// The longest wait or lifetime a server's answer can set (a `Retry-After`,
/// a token's `expires_in`): a day. Larger values are taken as this.
///
/// ```
/// use alertkit::http::{MAX_SERVER_WAIT, Reply};
/// use alertkit::toolkit::token_from;
/// let reply = Reply::new(reqwest::StatusCode::OK, serde_json::json!({"access_token": "t", "expires_in": 31_536_000}));
/// let (_, ttl) = token_from(&reply, "access_token", "expires_in").unwrap();
/// assert_eq!(ttl, MAX_SERVER_WAIT); // a year is taken as a day
/// ```
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(86_400);

/// A reqwest error as an alertkit error, without the URL (it may hold a token).
///
/// ```
/// use alertkit::ErrorKind;
/// use alertkit::http::transport_error;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let url: url::Url = "http://127.0.0.1:1/robot/send?access_token=s3cret".parse().unwrap();
/// let e = reqwest::Client::new().post(url.clone()).send().await.unwrap_err(); // nothing listens
/// let e = transport_error(e, &url);
/// assert_eq!(e.kind(), ErrorKind::Transport);
/// assert!(e.is_retryable() && !e.to_string().contains("s3cret"));
/// # });
/// ```
pub fn transport_error(e: reqwest::Error, url: &Url) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transport
    };
    let what = if e.is_connect() {
        "cannot connect to"
    } else if e.is_timeout() {
        "no answer in time from"
    } else if e.is_body() || e.is_decode() {
        "cannot read the answer of"
    } else {
        "request failed to"
    };
    Error::new(kind, format!("{what} {}", redact_url(url))).with_source(e.without_url())
}

/// An error for an answer that is not what the platform documents (not
/// JSON, or no code): retryable for 5xx, 408 and 429, permanent otherwise;
/// its [`http_status`](Error::http_status) is the answer's.
///
/// ```
/// use alertkit::ErrorKind;
/// use alertkit::http::{Reply, unexpected_reply};
/// let e = unexpected_reply(&Reply::new(reqwest::StatusCode::BAD_GATEWAY, serde_json::Value::Null));
/// assert_eq!((e.kind(), e.is_retryable(), e.http_status()), (ErrorKind::Platform, true, Some(502)));
/// let e = unexpected_reply(&Reply::new(reqwest::StatusCode::FORBIDDEN, serde_json::Value::Null));
/// assert_eq!((e.kind(), e.is_retryable()), (ErrorKind::Unauthorized, false));
/// ```
pub fn unexpected_reply(reply: &Reply) -> Error {
    let s = reply.status.as_u16();
    if reply.status.is_redirection() {
        let to = reply.location.as_deref().unwrap_or("(no Location)");
        return Error::new(
            ErrorKind::Platform,
            format!("redirected (HTTP {s}) to {to}; redirects are not followed"),
        )
        .with_code(format!("HTTP {s}"))
        .with_retryable(false)
        .with_http_status(s);
    }
    let (kind, retryable) = match s {
        429 => (ErrorKind::RateLimited, true),
        408 => (ErrorKind::Timeout, true),
        500..=599 => (ErrorKind::Platform, true),
        401 | 403 => (ErrorKind::Unauthorized, false),
        _ => (ErrorKind::Platform, false),
    };
    let mut e = Error::new(kind, format!("unexpected answer (HTTP {s})"))
        .with_code(format!("HTTP {s}"))
        .with_retryable(retryable)
        .with_http_status(s);
    if let Some(wait) = reply.retry_after {
        e = e.with_retry_after(wait);
    }
    e
}

/// Shared state of one app's access token: the cached value and a lock so
/// that concurrent sends fetch it once (single flight). A channel gets the
/// cache of its app from [`Http::token_cache`] with a [`token_key`], so
/// every instance of that app on one [`Http`] shares it; the token is
/// refreshed [`TOKEN_MARGIN`] (at most a tenth of its lifetime) before it
/// expires.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use alertkit::secrecy::{ExposeSecret, SecretString};
/// use alertkit::toolkit::{TokenCache, token_key};
/// use alertkit::{Error, ErrorKind, Http};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let http = Http::new();
/// let cache = http.token_cache(&token_key("pager", "app-1", &"app-secret".into()));
/// let fetches = AtomicU32::new(0);
/// let fetch = || async {
///     let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
///     Ok((SecretString::from(format!("token-{n}")), Duration::from_secs(7200)))
/// };
/// assert_eq!(cache.get(fetch).await?.expose_secret(), "token-1");
/// assert_eq!(cache.get(fetch).await?.expose_secret(), "token-1");   // cached
///
/// // The platform says the token expired: dropped, fetched again, the send retried once.
/// let stale = |e: &Error| e.kind() == ErrorKind::Unauthorized;
/// let sent = cache
///     .with_token(fetch, stale, |token| async move {
///         if token.expose_secret() == "token-1" {
///             Err(Error::new(ErrorKind::Unauthorized, "access_token expired"))
///         } else {
///             Ok(token.expose_secret().to_owned())
///         }
///     })
///     .await?;
/// assert_eq!((sent.as_str(), fetches.load(Ordering::SeqCst)), ("token-2", 2));
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: SecretString,
    refresh_at: tokio::time::Instant,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache { .. }")
    }
}

/// The token and its lifetime from a token answer: `body[token_key]` and
/// `body[ttl_key]` seconds (7,200 when absent). An answer without a token is
/// a retryable platform error.
///
/// ```
/// use alertkit::http::Reply;
/// use alertkit::secrecy::ExposeSecret;
/// use alertkit::toolkit::token_from;
///
/// let reply = Reply::new(reqwest::StatusCode::OK, serde_json::json!({"access_token": "t-1", "expires_in": 7200}));
/// let (token, ttl) = token_from(&reply, "access_token", "expires_in")?;
/// assert_eq!((token.expose_secret(), ttl.as_secs()), ("t-1", 7200));
///
/// let empty = Reply::new(reqwest::StatusCode::OK, serde_json::json!({"errcode": 0}));
/// assert!(token_from(&empty, "access_token", "expires_in").unwrap_err().is_retryable());
/// # Ok::<(), alertkit::Error>(())
/// ```
pub fn token_from(
    reply: &Reply,
    token_key: &str,
    ttl_key: &str,
) -> Result<(SecretString, Duration)> {
    let token = reply
        .body
        .get(token_key)
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if token.is_empty() {
        return Err(Error::new(
            ErrorKind::Platform,
            format!("token answer without {token_key}"),
        )
        .with_retryable(true)
        .with_http_status(reply.status.as_u16()));
    }
    let ttl = reply
        .body
        .get(ttl_key)
        .and_then(|v| v.as_u64())
        .unwrap_or(7200);
    Ok((
        SecretString::from(token.to_owned()),
        Duration::from_secs(ttl).min(MAX_SERVER_WAIT),
    ))
}

/// A header value holding a token, marked sensitive (never logged by the client).
///
/// ```
/// use alertkit::http::token_header;
/// let v = token_header("Bearer t-1").unwrap();
/// assert!(v.is_sensitive()); // never logged by the client
/// assert!(token_header("t-1\nInjected: yes").is_err());
/// ```
pub fn token_header(value: &str) -> Result<reqwest::header::HeaderValue> {
    let mut v = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        Error::new(
            ErrorKind::Platform,
            "the platform issued a token that is not a valid header value",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Refresh this long before the platform's stated expiry.
///
/// ```
/// use std::time::Duration;
/// use alertkit::http::TOKEN_MARGIN;
/// // A 2-hour token is refreshed 5 minutes early (a short one, a tenth of its life early).
/// assert_eq!(TOKEN_MARGIN, Duration::from_secs(300));
/// assert!(TOKEN_MARGIN <= Duration::from_secs(7200) / 10);
/// ```
pub const TOKEN_MARGIN: Duration = Duration::from_secs(300);

impl TokenCache {
    /// The cached token, or one fetched with `fetch` (which returns the token
    /// and its lifetime). Only one fetch runs at a time; waiters reuse it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::secrecy::{ExposeSecret, SecretString};
    /// use alertkit::toolkit::TokenCache;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache = TokenCache::default();
    /// let t = cache.get(|| async { Ok((SecretString::from("t-1"), Duration::from_secs(7200))) }).await.unwrap();
    /// assert_eq!(t.expose_secret(), "t-1");
    /// let t = cache.get(|| async { Ok((SecretString::from("t-2"), Duration::from_secs(7200))) }).await.unwrap();
    /// assert_eq!(t.expose_secret(), "t-1"); // cached: the second fetch did not run
    /// # });
    /// ```
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<SecretString>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(SecretString, Duration)>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref()
            && tokio::time::Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let (value, ttl) = fetch().await?;
        let keep = ttl
            .min(MAX_SERVER_WAIT)
            .saturating_sub(TOKEN_MARGIN.min(ttl / 10));
        let now = tokio::time::Instant::now();
        *slot = Some(CachedToken {
            value: value.clone(),
            refresh_at: now.checked_add(keep).unwrap_or(now),
        });
        Ok(value)
    }

    /// Runs `attempt` with the cached token (fetched with `fetch` when
    /// needed). If it fails with an error `stale` recognises as a bad or
    /// expired token, drops exactly that token, fetches a new one and runs
    /// `attempt` once more: the one refresh every platform's contract asks for.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::secrecy::{ExposeSecret, SecretString};
    /// use alertkit::toolkit::TokenCache;
    /// use alertkit::{Error, ErrorKind};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache = TokenCache::default();
    /// let fetch = || async { Ok((SecretString::from("t-1"), Duration::from_secs(7200))) };
    /// let stale = |e: &Error| e.kind() == ErrorKind::Unauthorized;
    /// // A refusal that is not about the token is not retried.
    /// let e = cache.with_token(fetch, stale, |_t| async { Err::<(), _>(Error::new(ErrorKind::RateLimited, "slow down")) }).await;
    /// assert_eq!(e.unwrap_err().kind(), ErrorKind::RateLimited);
    /// let ok = cache.with_token(fetch, stale, |t| async move { Ok(t.expose_secret().len()) }).await.unwrap();
    /// assert_eq!(ok, 3);
    /// # });
    /// ```
    pub async fn with_token<F, Fut, A, AFut, T>(
        &self,
        fetch: F,
        stale: impl Fn(&Error) -> bool,
        attempt: A,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(SecretString, Duration)>>,
        A: Fn(SecretString) -> AFut,
        AFut: std::future::Future<Output = Result<T>>,
    {
        let token = self.get(&fetch).await?;
        match attempt(token.clone()).await {
            Err(e) if stale(&e) => {
                self.invalidate(&token).await;
                attempt(self.get(&fetch).await?).await
            }
            other => other,
        }
    }

    /// Drops `used` if it is still the cached token (a concurrent refresh is kept).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::secrecy::{ExposeSecret, SecretString};
    /// use alertkit::toolkit::TokenCache;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache = TokenCache::default();
    /// let t1 = cache.get(|| async { Ok((SecretString::from("t-1"), Duration::from_secs(7200))) }).await.unwrap();
    /// cache.invalidate(&SecretString::from("other")).await; // not the cached one: kept
    /// cache.invalidate(&t1).await;
    /// let t2 = cache.get(|| async { Ok((SecretString::from("t-2"), Duration::from_secs(7200))) }).await.unwrap();
    /// assert_eq!(t2.expose_secret(), "t-2");
    /// # });
    /// ```
    pub async fn invalidate(&self, used: &SecretString) {
        let mut slot = self.slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == used.expose_secret())
        {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn http_is_refused_unless_loopback_or_allowed() {
        assert!(parse_url("webhook", "http://127.0.0.1:8080/x", false).is_ok());
        assert!(parse_url("webhook", "http://localhost/x", false).is_ok());
        assert!(parse_url("webhook", "http://[::1]:9/x", false).is_ok());
        let e = parse_url(
            "webhook",
            "http://example.com/robot?access_token=s3cr3t",
            false,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert_eq!(e.field(), Some("webhook"));
        assert!(!e.to_string().contains("s3cr3t"));
        assert!(parse_url("webhook", "http://example.com/", true).is_ok());
        assert!(parse_url("webhook", "ftp://example.com/", true).is_err());
        let e = parse_url("webhook", "not a url ?access_token=s3cr3t", false).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("s3cr3t"));
    }

    #[test]
    fn join_url_keeps_the_base_path() {
        let j = |b: &str, p: &str| join_url(&Url::parse(b).unwrap(), p).unwrap().to_string();
        assert_eq!(
            j("https://oapi.dingtalk.com", "robot/send"),
            "https://oapi.dingtalk.com/robot/send"
        );
        assert_eq!(
            j("http://127.0.0.1:9/", "gettoken"),
            "http://127.0.0.1:9/gettoken"
        );
        assert_eq!(
            j("https://proxy.corp/wecom/", "cgi-bin/gettoken"),
            "https://proxy.corp/wecom/cgi-bin/gettoken"
        );
        assert_eq!(
            j("https://proxy.corp/wecom", "cgi-bin/gettoken"),
            "https://proxy.corp/wecom/cgi-bin/gettoken"
        );
    }

    #[test]
    fn reply_code_reads_numbers_and_strings() {
        let r = |body| Reply {
            status: StatusCode::OK,
            retry_after: None,
            location: None,
            body,
        };
        assert_eq!(
            r(serde_json::json!({"errcode": 310000, "errmsg": "x"}))
                .code()
                .as_deref(),
            Some("310000")
        );
        assert_eq!(
            r(serde_json::json!({"code": "InvalidAuthentication"}))
                .code()
                .as_deref(),
            Some("InvalidAuthentication")
        );
        assert_eq!(
            r(serde_json::json!({"StatusCode": 0})).code().as_deref(),
            Some("0")
        );
        assert_eq!(r(serde_json::json!({"msg": "m"})).message(), "m");
        assert_eq!(r(serde_json::Value::Null).code(), None);
    }

    #[tokio::test]
    async fn token_cache_single_flight_and_invalidate() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async {
                        let n = fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok((
                            SecretString::from(format!("tok{n}")),
                            Duration::from_secs(7200),
                        ))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().expose_secret(), "tok0");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Invalidating a token that is no longer cached keeps the current one.
        cache.invalidate(&SecretString::from("old")).await;
        let t = cache
            .get(|| async { unreachable!("cached") })
            .await
            .unwrap();
        assert_eq!(t.expose_secret(), "tok0");
        cache.invalidate(&t).await;
        let t = cache
            .get(|| async { Ok((SecretString::from("tok1"), Duration::from_secs(7200))) })
            .await
            .unwrap();
        assert_eq!(t.expose_secret(), "tok1");
    }

    #[tokio::test(start_paused = true)]
    async fn token_cache_refreshes_before_expiry() {
        let cache = TokenCache::default();
        let get = |v: &'static str| {
            cache.get(move || async move { Ok((SecretString::from(v), Duration::from_secs(7200))) })
        };
        assert_eq!(get("a").await.unwrap().expose_secret(), "a");
        tokio::time::advance(Duration::from_secs(6800)).await;
        assert_eq!(get("b").await.unwrap().expose_secret(), "a");
        tokio::time::advance(Duration::from_secs(150)).await; // 6950 s: within 300 s of expiry
        assert_eq!(get("c").await.unwrap().expose_secret(), "c");
    }

    /// An answer served by a one-shot HTTP server on 127.0.0.1, as read.
    async fn reply_to(body: Vec<u8>, chunked: bool) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4096];
            let _ = sock.read(&mut req).await;
            let head = if chunked {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
            };
            let _ = sock.write_all(head.as_bytes()).await;
            if chunked {
                // The body in 3 chunks, or cut where a NUL byte marks it.
                let parts: Vec<&[u8]> = if body.contains(&0) {
                    body.split(|b| *b == 0).collect()
                } else {
                    body.chunks(body.len().div_ceil(3).max(1)).collect()
                };
                for part in parts {
                    let _ = sock
                        .write_all(format!("{:x}\r\n", part.len()).as_bytes())
                        .await;
                    let _ = sock.write_all(part).await;
                    let _ = sock.write_all(b"\r\n").await;
                }
                let _ = sock.write_all(b"0\r\n\r\n").await;
            } else {
                let _ = sock.write_all(&body).await;
            }
        });
        let client = reqwest::Client::new();
        post_bytes(&client, &url, HeaderMap::new(), b"{}".to_vec())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn answers_are_read_whole_and_at_most_max_reply() {
        let r = reply_to(br#"{"errcode":0,"errmsg":"ok"}"#.to_vec(), false).await;
        assert_eq!(r.code().as_deref(), Some("0"));
        // Several chunks are joined.
        let big =
            serde_json::to_vec(&serde_json::json!({"errcode": 7, "pad": "x".repeat(100_000)}))
                .unwrap();
        let r = reply_to(big, true).await;
        assert_eq!(r.code().as_deref(), Some("7"));
        // Past MAX_REPLY the answer is not taken for JSON.
        let huge =
            serde_json::to_vec(&serde_json::json!({"errcode": 0, "pad": "x".repeat(MAX_REPLY)}))
                .unwrap();
        let r = reply_to(huge, false).await;
        assert_eq!(r.body, serde_json::Value::Null);
        assert_eq!(r.code(), None);
        // Even when its first chunk alone would be valid JSON.
        let mut split = br#"{"errcode":0}"#.to_vec();
        split.push(0);
        split.extend(std::iter::repeat_n(b' ', MAX_REPLY));
        let r = reply_to(split, true).await;
        assert_eq!(r.body, serde_json::Value::Null);
    }
}
