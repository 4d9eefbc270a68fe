//! What the watcher polls and what alerts: [`WatchConfig`] and [`Rules`].

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::alert::JobStatus;
use crate::error::{Error, Result};
use crate::http::{parse_url, redact_url};

/// The most of one REST answer the watcher reads (64 MiB): a cluster keeps
/// every finished job in `/jobs/overview` until its JobManager restarts, and
/// 15,000 jobs are about 10 MB. Change it with [`WatchConfig::max_reply`].
///
/// ```
/// use alertkit::flink::{DEFAULT_MAX_REPLY, WatchConfig};
/// let c = WatchConfig::new("http://jobmanager:8081", "prod")?;
/// assert_eq!(c.max_reply, DEFAULT_MAX_REPLY);
/// # Ok::<(), alertkit::Error>(())
/// ```
pub const DEFAULT_MAX_REPLY: usize = 64 << 20;

/// Which transitions alert. Build from [`Rules::default`] and change what
/// you need.
///
/// ```
/// use std::time::Duration;
/// use alertkit::flink::Rules;
/// let rules = Rules::default()
///     .ignore("adhoc-*")
///     .alert_after_restarts(3, Duration::from_secs(600));
/// assert!(rules.is_ignored("adhoc-report"));
/// assert!(!rules.is_ignored("orders-etl"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rules {
    /// States that fire an alert when a job enters them. Default: FAILED,
    /// CANCELED, SUSPENDED, RESTARTING and UNKNOWN. FAILING is left out: in
    /// Flink 2.x it is the ~250 ms prelude of FAILED, which alerts.
    pub alert_states: Vec<JobStatus>,
    /// Alert on states the watcher cannot parse (as UNKNOWN).
    pub unknown_states: bool,
    /// Resolve when a RESTARTING or FAILING job runs again.
    pub resolve_on_running: bool,
    /// Alert when a running job has a new failed checkpoint (one with a
    /// failure message, not a trigger refused while tasks deploy): once,
    /// until a checkpoint completes again (resolved).
    pub checkpoint_failures: bool,
    /// Alert on a failure the job recovered from between two polls
    /// (a restart never seen as RESTARTING), with its cause.
    pub new_exceptions: bool,
    /// Job name patterns never watched (`*` any run of characters, `?` one).
    pub ignore: Vec<String>,
    /// Restarts alert only from the `n`-th one within the window (default:
    /// every restart, `n` = 1).
    pub restarts_to_alert: u32,
    /// The window [`restarts_to_alert`](Rules::restarts_to_alert) counts in.
    pub restart_window: Duration,
    /// Alert when a job the watcher saw running is no longer listed (a
    /// JobManager restarted without HA loses its jobs).
    pub vanished_jobs: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            alert_states: vec![
                JobStatus::Failed,
                JobStatus::Canceled,
                JobStatus::Suspended,
                JobStatus::Restarting,
                JobStatus::Unknown,
            ],
            unknown_states: true,
            resolve_on_running: true,
            checkpoint_failures: true,
            new_exceptions: true,
            ignore: Vec::new(),
            restarts_to_alert: 1,
            restart_window: Duration::from_secs(600),
            vanished_jobs: true,
        }
    }
}

impl Rules {
    /// Never watches jobs whose name matches `pattern` (`*`, `?`).
    ///
    /// ```
    /// use alertkit::flink::Rules;
    /// let rules = Rules::default().ignore("scratch-*").ignore("tmp-?");
    /// assert!(rules.is_ignored("scratch-orders") && rules.is_ignored("tmp-1"));
    /// assert!(!rules.is_ignored("tmp-12"));
    /// ```
    pub fn ignore(mut self, pattern: impl Into<String>) -> Self {
        self.ignore.push(pattern.into());
        self
    }

    /// Alerts a restart only when it is at least the `n`-th within `window`
    /// (`n` 0 or 1: every restart).
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::Rules;
    /// // a job that restarts now and then is fine; the third restart in 10 min alerts
    /// let rules = Rules::default().alert_after_restarts(3, Duration::from_secs(600));
    /// assert_eq!((rules.restarts_to_alert, rules.restart_window), (3, Duration::from_secs(600)));
    /// assert_eq!(Rules::default().alert_after_restarts(0, Duration::ZERO).restarts_to_alert, 1);
    /// ```
    pub fn alert_after_restarts(mut self, n: u32, window: Duration) -> Self {
        self.restarts_to_alert = n.max(1);
        self.restart_window = window;
        self
    }

    /// Whether a job named `name` is ignored.
    ///
    /// ```
    /// use alertkit::flink::Rules;
    /// let rules = Rules::default().ignore("*-adhoc");
    /// assert!(rules.is_ignored("report-adhoc"));
    /// assert!(!rules.is_ignored("report-adhoc-2"));
    /// assert!(!Rules::default().is_ignored("anything"));
    /// ```
    pub fn is_ignored(&self, name: &str) -> bool {
        self.ignore.iter().any(|p| glob(p, name))
    }
}

/// `*` and `?` matching without backtracking blow-up (greedy with one
/// restart point).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == '*')
}

/// Where and how to poll.
///
/// The REST address may carry `user:password@` for a JobManager behind Basic
/// auth: the credentials are taken out of the URL at once, sent only as an
/// `Authorization` header, and never appear in `Debug`, alerts, links or
/// errors.
///
/// ```
/// use alertkit::flink::WatchConfig;
/// let c = WatchConfig::new("http://ops:s3cret@jobmanager:8081", "prod")?;
/// assert_eq!(c.base_url.as_str(), "http://jobmanager:8081/");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WatchConfig {
    /// The JobManager's REST address (`http://jobmanager:8081`), without
    /// credentials.
    pub base_url: Url,
    /// The cluster name shown in alerts.
    pub cluster: String,
    /// Time between polls (default 10 s).
    pub interval: Duration,
    /// The rules.
    pub rules: Rules,
    /// The most of one REST answer read (default [`DEFAULT_MAX_REPLY`]).
    pub max_reply: usize,
    /// Deadline of one REST request, answer included (default 30 s).
    pub request_timeout: Duration,
    /// REST requests in flight at once (default 8).
    pub concurrency: usize,
    /// How long a failure alert waits for its exception to appear in
    /// `/jobs/:jid/exceptions`, which lags `/jobs/overview` by up to Flink's
    /// `web.refresh-interval`. Default (`None`): that interval as `/config`
    /// reports it plus 2 s (5 s when unknown), at most 30 s.
    pub cause_wait: Option<Duration>,
    /// The web UI's address when it differs from the REST one (a proxy);
    /// default: the REST address.
    pub ui_url: Option<Url>,
    /// How many reports the [`WatchHandle`](super::WatchHandle) keeps for
    /// the taker (default 256); when it is full, new reports are dropped
    /// and counted (the alerts themselves are sent).
    pub report_buffer: usize,
    pub(crate) auth: Option<(String, SecretString)>,
}

impl std::fmt::Debug for WatchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("auth", &self.auth.as_ref().map(|(u, _)| (u, "REDACTED")))
            .field("cluster", &self.cluster)
            .field("interval", &self.interval)
            .field("rules", &self.rules)
            .field("max_reply", &self.max_reply)
            .field("request_timeout", &self.request_timeout)
            .field("concurrency", &self.concurrency)
            .field("cause_wait", &self.cause_wait)
            .field("ui_url", &self.ui_url.as_ref().map(redact_url))
            .field("report_buffer", &self.report_buffer)
            .finish()
    }
}

/// `url` without userinfo, and the userinfo taken out.
fn split_auth(mut url: Url) -> (Url, Option<(String, SecretString)>) {
    let user = url.username().to_owned();
    let pass = url.password().map(str::to_owned);
    if user.is_empty() && pass.is_none() {
        return (url, None);
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let auth = (
        decode(&user.replace('+', "%2B")),
        SecretString::from(decode(&pass.unwrap_or_default().replace('+', "%2B"))),
    );
    // Both setters only fail on URLs that cannot have userinfo, which a
    // parsed http(s) URL with a host always can.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    (url, Some(auth))
}

impl WatchConfig {
    /// Polls `base_url` every 10 s with the default rules. Plain `http://`
    /// is accepted: JobManager endpoints are internal.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::ErrorKind;
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod-yarn")?;
    /// assert_eq!((c.cluster.as_str(), c.interval), ("prod-yarn", Duration::from_secs(10)));
    /// let e = WatchConfig::new("jobmanager:8081", "prod-yarn").unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn new(base_url: &str, cluster: impl Into<String>) -> Result<Self> {
        let (base_url, auth) = split_auth(parse_url("flink", base_url, true)?);
        Ok(WatchConfig {
            base_url,
            cluster: cluster.into(),
            interval: Duration::from_secs(10),
            rules: Rules::default(),
            max_reply: DEFAULT_MAX_REPLY,
            request_timeout: Duration::from_secs(30),
            concurrency: 8,
            cause_wait: None,
            ui_url: None,
            report_buffer: 256,
            auth,
        })
    }

    /// Sets the poll interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?.interval(Duration::from_secs(30));
    /// assert_eq!(c.interval, Duration::from_secs(30));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the rules.
    ///
    /// ```
    /// use alertkit::JobStatus;
    /// use alertkit::flink::{Rules, WatchConfig};
    /// let mut rules = Rules::default().ignore("scratch-*");
    /// rules.alert_states.retain(|s| *s != JobStatus::Canceled); // cancels are planned here
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?.rules(rules);
    /// assert!(!c.rules.alert_states.contains(&JobStatus::Canceled));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Sets the most of one REST answer read (at least 1 KiB).
    ///
    /// ```
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?.max_reply(256 << 20);
    /// assert_eq!(c.max_reply, 256 << 20);
    /// assert_eq!(c.max_reply(10).max_reply, 1024);
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes.max(1024);
        self
    }

    /// Sets how long a failure alert waits for its cause.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?;
    /// assert_eq!(c.cause_wait, None); // from the cluster's web.refresh-interval
    /// let c = c.cause_wait(Duration::from_secs(8));
    /// assert_eq!(c.cause_wait, Some(Duration::from_secs(8)));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn cause_wait(mut self, wait: Duration) -> Self {
        self.cause_wait = Some(wait);
        self
    }

    /// Sets the REST requests in flight at once (at least 1).
    ///
    /// ```
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?.concurrency(2);
    /// assert_eq!(c.concurrency, 2);
    /// assert_eq!(c.concurrency(0).concurrency, 1);
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the deadline of one REST request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?.request_timeout(Duration::from_secs(5));
    /// assert_eq!(c.request_timeout, Duration::from_secs(5));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Links point to this web UI address instead of the REST one
    /// (credentials in it are dropped: links are shown to people).
    ///
    /// ```
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?
    ///     .ui_url("https://admin:pw@flink.example/prod/")?;
    /// assert_eq!(c.ui_url.unwrap().as_str(), "https://flink.example/prod/"); // links are shown to people
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn ui_url(mut self, url: &str) -> Result<Self> {
        self.ui_url = Some(split_auth(parse_url("flink_ui", url, true)?).0);
        Ok(self)
    }

    /// Sets how many reports the handle keeps for the taker (at least 1).
    ///
    /// ```
    /// use alertkit::flink::WatchConfig;
    /// let c = WatchConfig::new("http://jobmanager:8081", "prod")?.report_buffer(16);
    /// assert_eq!(c.report_buffer, 16);
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn report_buffer(mut self, n: usize) -> Self {
        self.report_buffer = n.max(1);
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.interval.is_zero() {
            return Err(Error::config("interval", "must be more than 0"));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::config("request_timeout", "must be more than 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn globs() {
        assert!(glob("adhoc-*", "adhoc-"));
        assert!(glob("*-tmp-?", "a-tmp-1"));
        assert!(!glob("*-tmp-?", "a-tmp-12"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
        assert!(glob(&"*a".repeat(20), &"a".repeat(40)));
    }

    #[test]
    fn credentials_leave_the_url() {
        let c = WatchConfig::new("https://ops%40corp:p%2Bw+d@jm.example:8081/flink/", "c").unwrap();
        assert_eq!(c.base_url.as_str(), "https://jm.example:8081/flink/");
        let (user, pass) = c.auth.clone().unwrap();
        assert_eq!(user, "ops@corp");
        assert_eq!(pass.expose_secret(), "p+w+d");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p+w") && !dbg.contains("p%2B"), "{dbg}");
        assert!(
            WatchConfig::new("http://jm:8081", "c")
                .unwrap()
                .auth
                .is_none()
        );
    }
}
