//! A fake DingTalk on 127.0.0.1 as strict as the real one (platforms.md
//! §1.8 and §2.5 checklists): robots with signatures, keywords, size and rate
//! limits; the new-API app robot with tokens; the legacy gettoken/chat flow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::Request;

use super::Recorded;
pub use super::fake::Fault;
use super::fake::{FakeServer, Platform, RateWindow, TokenState, Tokens, strings};

/// Robot message types DingTalk accepts (§1.8).
const MSG_TYPES: [&str; 5] = ["text", "markdown", "link", "actionCard", "feedCard"];
const MSG_KEYS: [&str; 5] = [
    "sampleText",
    "sampleMarkdown",
    "sampleLink",
    "sampleActionCard",
    "sampleImageMsg",
];

/// A custom robot's security settings.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
/// use alertkit::{Alert, Config, ErrorKind, InstanceConfig, Notifier};
///
/// let ding = FakeDingTalk::start().await;
/// ding.add_robot("tok", RobotSpec { secret: Some("SECx".into()), keywords: vec!["告警".into()] });
/// let config = Config::default().with_instance(InstanceConfig::new("ops", "dingtalk")
///     .param("webhook", ding.webhook("tok"))
///     .param("secret", "SECy")); // the wrong secret
/// let ops = Notifier::from_config(&config).unwrap().channel("ops").unwrap();
/// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::SignatureMismatch);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct RobotSpec {
    /// Signing secret (`SEC…`), if signing is on.
    pub secret: Option<String>,
    /// Security keywords; empty for none.
    pub keywords: Vec<String>,
}

#[derive(Debug)]
struct State {
    robots: HashMap<String, RobotSpec>,
    apps: HashMap<String, String>,
    robot_codes: HashSet<String>,
    invalid_users: HashSet<String>,
    flow_controlled: HashMap<String, u32>,
    tokens: Tokens,
    rate: RateWindow,
    legacy_rate_code: bool,
    sent: usize,
}

/// A fake DingTalk server. Point instances at [`uri`](FakeDingTalk::uri)
/// with the `base_url` param (or a robot `webhook` from
/// [`webhook`](FakeDingTalk::webhook)).
///
/// ```
/// use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let fake = FakeDingTalk::start().await;
/// fake.add_robot("tok", RobotSpec { secret: Some("SECabc".into()), keywords: vec!["alert".into()] });
/// assert!(fake.webhook("tok").starts_with("http://127.0.0.1:"));
/// # });
/// ```
#[derive(Clone)]
pub struct FakeDingTalk {
    fake: FakeServer<State>,
}

impl std::fmt::Debug for FakeDingTalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDingTalk")
            .field("uri", &self.uri())
            .finish()
    }
}

impl FakeDingTalk {
    /// Starts the server on 127.0.0.1 with no robots or apps.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await; // its own port: tests run in parallel
    /// let other = FakeDingTalk::start().await;
    /// assert_ne!(ding.uri(), other.uri());
    /// assert!(ding.requests().is_empty());
    /// # });
    /// ```
    pub async fn start() -> Self {
        let state = State {
            robots: HashMap::new(),
            apps: HashMap::new(),
            robot_codes: HashSet::new(),
            invalid_users: HashSet::new(),
            flow_controlled: HashMap::new(),
            tokens: Tokens::new(),
            rate: RateWindow::new(20, Duration::from_secs(60), Duration::from_secs(600)),
            legacy_rate_code: false,
            sent: 0,
        };
        FakeDingTalk {
            fake: FakeServer::start(state).await,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.fake.with(f)
    }

    /// `http://127.0.0.1:PORT`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::InstanceConfig;
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// // app and conversation modes take the API's address as `base_url`
    /// let app = InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("base_url", ding.uri());
    /// assert!(app.params["base_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    /// # });
    /// ```
    pub fn uri(&self) -> String {
        self.fake.uri()
    }

    /// The robot webhook URL for `token`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// assert_eq!(ding.webhook("tok"), format!("{}/robot/send?access_token=tok", ding.uri()));
    /// # });
    /// ```
    pub fn webhook(&self, token: &str) -> String {
        format!("{}/robot/send?access_token={token}", self.uri())
    }

    /// Registers a robot.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
    /// use alertkit::{Alert, ErrorKind};
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_robot("tok", RobotSpec { secret: None, keywords: vec!["alert".into()] });
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("webhook", ding.webhook("tok"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err(); // no keyword in it
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::KeywordMissing, Some("310000")));
    /// assert!(ops.send(&Alert::new("alert: disk full")).await.is_ok());
    /// # });
    /// ```
    pub fn add_robot(&self, token: &str, spec: RobotSpec) {
        self.with(|s| s.robots.insert(token.to_owned(), spec));
    }

    /// Registers an app (new API and legacy gettoken) and a robot code.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_app("dingapp", "app-secret", "dingrobot");
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("client_id", "dingapp")
    /// #         .param("client_secret", "app-secret").param("robot_code", "dingrobot").param("user_ids", users.to_vec())
    /// #         .param("base_url", ding.uri()).param("flow_control_wait_ms", 10)
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// app(&["u1", "u2"]).send(&Alert::new("disk full")).await.unwrap();
    /// let sent = ding.accepted();
    /// assert!(sent[0].path.ends_with("batchSend"));
    /// assert_eq!(sent[0].body["userIds"], serde_json::json!(["u1", "u2"]));
    /// # });
    /// ```
    pub fn add_app(&self, app_key: &str, app_secret: &str, robot_code: &str) {
        self.with(|s| {
            s.apps.insert(app_key.to_owned(), app_secret.to_owned());
            s.robot_codes.insert(robot_code.to_owned());
        });
    }

    /// Users batchSend reports in `invalidStaffIdList`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_app("dingapp", "app-secret", "dingrobot");
    /// ding.set_invalid_users(&["ghost"]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("client_id", "dingapp")
    /// #         .param("client_secret", "app-secret").param("robot_code", "dingrobot").param("user_ids", users.to_vec())
    /// #         .param("base_url", ding.uri()).param("flow_control_wait_ms", 10)
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let receipt = app(&["u1", "ghost"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert!(receipt.is_partial());
    /// assert_eq!(receipt.rejected_recipients, ["ghost"]);
    /// # });
    /// ```
    pub fn set_invalid_users(&self, users: &[&str]) {
        self.with(|s| s.invalid_users = users.iter().map(|u| (*u).to_owned()).collect());
    }

    /// `user` is reported in `flowControlledStaffIdList` for its next `times` sends.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_app("dingapp", "app-secret", "dingrobot");
    /// ding.flow_control("busy", 1);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("client_id", "dingapp")
    /// #         .param("client_secret", "app-secret").param("robot_code", "dingrobot").param("user_ids", users.to_vec())
    /// #         .param("base_url", ding.uri()).param("flow_control_wait_ms", 10)
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let receipt = app(&["u1", "busy"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert!(!receipt.is_partial()); // the channel sent to `busy` again
    /// assert_eq!(ding.accepted()[1].body["userIds"], serde_json::json!(["busy"]));
    /// # });
    /// ```
    pub fn flow_control(&self, user: &str, times: u32) {
        self.with(|s| s.flow_controlled.insert(user.to_owned(), times));
    }

    /// Lifetime of tokens issued from now on (default 7200 s).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use alertkit::Alert;
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_app("dingapp", "app-secret", "dingrobot");
    /// ding.set_token_ttl(Duration::from_secs(1));
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("client_id", "dingapp")
    /// #         .param("client_secret", "app-secret").param("robot_code", "dingrobot").param("user_ids", users.to_vec())
    /// #         .param("base_url", ding.uri()).param("flow_control_wait_ms", 10)
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let ops = app(&["u1"]);
    /// ops.send(&Alert::new("one")).await.unwrap();
    /// tokio::time::sleep(Duration::from_millis(1100)).await;
    /// ops.send(&Alert::new("two")).await.unwrap();
    /// assert_eq!(ding.token_fetches(), 2); // the cached token ran out
    /// # });
    /// ```
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.with(|s| s.tokens.ttl = ttl);
    }

    /// Expires every issued token now (the next use answers like an expired token).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_app("dingapp", "app-secret", "dingrobot");
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("client_id", "dingapp")
    /// #         .param("client_secret", "app-secret").param("robot_code", "dingrobot").param("user_ids", users.to_vec())
    /// #         .param("base_url", ding.uri()).param("flow_control_wait_ms", 10)
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let ops = app(&["u1"]);
    /// ops.send(&Alert::new("one")).await.unwrap();
    /// ding.expire_tokens(); // revoked before its time: the channel must refresh and resend
    /// ops.send(&Alert::new("two")).await.unwrap();
    /// assert_eq!(ding.token_fetches(), 2);
    /// # });
    /// ```
    pub fn expire_tokens(&self) {
        self.with(|s| s.tokens.expire_all());
    }

    /// Token requests served so far (new API and legacy).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::dingtalk::FakeDingTalk;
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_app("dingapp", "app-secret", "dingrobot");
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("client_id", "dingapp")
    /// #         .param("client_secret", "app-secret").param("robot_code", "dingrobot").param("user_ids", users.to_vec())
    /// #         .param("base_url", ding.uri()).param("flow_control_wait_ms", 10)
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let ops = app(&["u1"]);
    /// for title in ["one", "two", "three"] {
    ///     ops.send(&Alert::new(title)).await.unwrap();
    /// }
    /// assert_eq!(ding.token_fetches(), 1); // cached
    /// # });
    /// ```
    pub fn token_fetches(&self) -> u32 {
        self.with(|s| s.tokens.fetches)
    }

    /// The robot rate limit: `limit` messages per `window`, then throttled
    /// for `throttle` (defaults 20, 60 s, 600 s). Shrink it for fast tests.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
    /// use alertkit::{Alert, ErrorKind};
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_robot("tok", RobotSpec::default());
    /// ding.set_rate_limit(2, Duration::from_secs(60), Duration::from_secs(600));
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("webhook", ding.webhook("tok"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// for _ in 0..2 {
    ///     ops.send(&Alert::new("disk full")).await.unwrap();
    /// }
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::RateLimited, Some("410100")));
    /// assert!(e.is_retryable() && e.retry_after().is_some());
    /// # });
    /// ```
    pub fn set_rate_limit(&self, limit: u32, window: Duration, throttle: Duration) {
        self.with(|s| s.rate = RateWindow::new(limit, window, throttle));
    }

    /// Answer rate limits with the legacy 130101 instead of 410100.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
    /// use alertkit::{Alert, ErrorKind};
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_robot("tok", RobotSpec::default());
    /// ding.set_rate_limit(1, Duration::from_secs(60), Duration::from_secs(60));
    /// ding.use_legacy_rate_code(true);
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("webhook", ding.webhook("tok"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// ops.send(&Alert::new("disk full")).await.unwrap();
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::RateLimited, Some("130101")));
    /// # });
    /// ```
    pub fn use_legacy_rate_code(&self, legacy: bool) {
        self.with(|s| s.legacy_rate_code = legacy);
    }

    /// Answers the next request with `fault` (queued in order).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
    /// use alertkit::{Alert, ErrorKind};
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_robot("tok", RobotSpec::default());
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("webhook", ding.webhook("tok"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// ding.push_fault(Fault::errcode(310000, "ip 10.0.0.1 not in whitelist"));
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::IpNotAllowed);
    /// assert!(ops.send(&Alert::new("disk full")).await.is_ok()); // one fault, one answer
    /// # });
    /// ```
    pub fn push_fault(&self, fault: Fault) {
        self.fake.push_fault(fault);
    }

    /// Answers the next request whose path ends with `path_suffix` with `fault`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::dingtalk::{FakeDingTalk, Fault};
    /// use alertkit::{Alert, ErrorKind};
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_app("dingapp", "app-secret", "dingrobot");
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("mode", "app").param("client_id", "dingapp")
    /// #         .param("client_secret", "app-secret").param("robot_code", "dingrobot").param("user_ids", users.to_vec())
    /// #         .param("base_url", ding.uri()).param("flow_control_wait_ms", 10)
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// // the token request succeeds, the send itself is refused
    /// ding.push_fault_on("batchSend", Fault::Reply(403, serde_json::json!({"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "message": "no permission"})));
    /// let e = app(&["u1"]).send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.http_status(), Some(403));
    /// assert_eq!(ding.token_fetches(), 1);
    /// # });
    /// ```
    pub fn push_fault_on(&self, path_suffix: &str, fault: Fault) {
        self.fake.push_fault_on(path_suffix, fault);
    }

    /// Every request so far, in arrival order.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
    /// use alertkit::Alert;
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_robot("tok", RobotSpec { secret: Some("SECx".into()), keywords: vec![] });
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("webhook", ding.webhook("tok"))
    /// #         .param("secret", "SECy").policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// ops.send(&Alert::new("disk full")).await.unwrap_err(); // signed with the wrong secret
    /// let r = &ding.requests()[0];
    /// assert!(!r.accepted);
    /// assert!(r.query.contains_key("sign") && r.query.contains_key("timestamp"));
    /// assert!(ding.accepted().is_empty());
    /// # });
    /// ```
    pub fn requests(&self) -> Vec<Recorded> {
        self.fake.requests()
    }

    /// The messages accepted so far (robot, batch, group and chat sends).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
    /// use alertkit::{Alert, Mention};
    /// let ding = FakeDingTalk::start().await;
    /// ding.add_robot("tok", RobotSpec::default());
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "dingtalk").param("webhook", ding.webhook("tok"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// ops.send(&Alert::new("disk full").mention(Mention::Mobile("13800000000".into()))).await.unwrap();
    /// let msg = &ding.accepted()[0].body;
    /// assert_eq!(msg["msgtype"], "markdown");
    /// assert_eq!(msg["at"]["atMobiles"], serde_json::json!(["13800000000"]));
    /// # });
    /// ```
    pub fn accepted(&self) -> Vec<Recorded> {
        self.fake.accepted()
    }
}

fn errcode(code: i64, msg: &str) -> (u16, Value) {
    (200, json!({"errcode": code, "errmsg": msg}))
}

fn new_api_error(status: u16, code: &str, msg: &str) -> (u16, Value) {
    (
        status,
        json!({"code": code, "message": msg, "requestid": "fake-req"}),
    )
}

fn expected_sign(secret: &str, ts: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{ts}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl State {
    fn next_id(&mut self) -> usize {
        self.sent += 1;
        self.sent
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn rate_limited(&mut self, key: &str) -> Option<(u16, Value)> {
        if !self.rate.limited(key) {
            return None;
        }
        Some(if self.legacy_rate_code {
            errcode(130101, "send too fast, exceed 20 times per minute")
        } else {
            errcode(410100, "发送速度太快而限流")
        })
    }

    fn robot(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value) {
        let Some(token) = query.get("access_token").filter(|t| !t.is_empty()) else {
            return errcode(40035, "缺少参数 access_token");
        };
        let Some(spec) = self.robots.get(token).cloned() else {
            return errcode(300005, "token is not exist");
        };
        if let Some(secret) = &spec.secret {
            let (Some(ts), Some(sign)) = (query.get("timestamp"), query.get("sign")) else {
                return errcode(310000, "sign not match");
            };
            let fresh = ts.len() == 13
                && ts
                    .parse::<i64>()
                    .is_ok_and(|t| (State::now_ms() - t).abs() <= 3_600_000);
            if !fresh {
                return errcode(310000, "invalid timestamp");
            }
            if *sign != expected_sign(secret, ts) {
                return errcode(
                    310000,
                    "错误描述:机器人发送签名不匹配;解决方案:请确认签名和生成签名的时间戳必须都放在调用的网址中，请确认机器人的密钥加密和填写正确;",
                );
            }
        }
        if req.body.len() > 20_000 {
            return errcode(460101, "message too long, exceed 20000 bytes");
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return errcode(40035, "缺少参数 json");
        };
        let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
        if !MSG_TYPES.contains(&msgtype) {
            return errcode(400105, "不支持的消息类型");
        }
        if !spec.keywords.is_empty() {
            let mut leaves = Vec::new();
            strings(body.get(msgtype).unwrap_or(&Value::Null), &mut leaves);
            if !spec
                .keywords
                .iter()
                .any(|k| leaves.iter().any(|l| l.contains(k.as_str())))
            {
                return errcode(310000, "keywords not in content");
            }
        }
        if let Some(limited) = self.rate_limited(token) {
            return limited;
        }
        errcode(0, "ok")
    }

    fn body_json(req: &Request) -> Value {
        serde_json::from_slice(&req.body).unwrap_or(Value::Null)
    }

    fn new_api_token(&mut self, req: &Request) -> (u16, Value) {
        let b = State::body_json(req);
        let key = b.get("appKey").and_then(Value::as_str).unwrap_or("");
        let secret = b.get("appSecret").and_then(Value::as_str).unwrap_or("");
        if self.apps.get(key).is_none_or(|s| s != secret) {
            return new_api_error(
                400,
                "InvalidAuthentication",
                "appKey or appSecret is invalid",
            );
        }
        let token = self.tokens.issue(key);
        (
            200,
            json!({"accessToken": token, "expireIn": self.tokens.ttl.as_secs()}),
        )
    }

    fn new_api_send(&mut self, req: &Request, batch: bool) -> (u16, Value) {
        let token = req
            .headers
            .get("x-acs-dingtalk-access-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if self.tokens.check(token) != TokenState::Valid {
            return new_api_error(400, "InvalidAuthentication", "不合法的access_token");
        }
        let b = State::body_json(req);
        if !b
            .get("robotCode")
            .and_then(Value::as_str)
            .is_some_and(|c| self.robot_codes.contains(c))
        {
            return new_api_error(
                400,
                "invalidParameter.robotCode.notExsit",
                "robotCode不存在",
            );
        }
        if !b
            .get("msgKey")
            .and_then(Value::as_str)
            .is_some_and(|k| MSG_KEYS.contains(&k))
        {
            return new_api_error(400, "invalidParameter.msgKey.invalid", "msgKey无效");
        }
        let param = b.get("msgParam").and_then(Value::as_str).unwrap_or("");
        if serde_json::from_str::<Value>(param)
            .map(|v| !v.is_object())
            .unwrap_or(true)
        {
            return new_api_error(
                400,
                "invalidParameter.msgParam.invalid",
                "msgParam must be JSON",
            );
        }
        if !batch {
            if b.get("openConversationId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                return new_api_error(
                    400,
                    "invalidParameter.openConversationId.empty",
                    "openConversationId为空",
                );
            }
            if param.len() > 15_000 {
                return new_api_error(
                    400,
                    "invalidParameter.msgParam.invalid",
                    "msgParam too long",
                );
            }
            return (
                200,
                json!({"processQueryKey": format!("pqk-{}", self.next_id())}),
            );
        }
        let users: Vec<String> = b
            .get("userIds")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if users.is_empty() {
            return new_api_error(400, "invalidParameter.userIds.empty", "userIds为空");
        }
        if users.len() > 20 {
            return new_api_error(
                400,
                "invalidParameter.userIds.overMax",
                "userIds超过最大值20",
            );
        }
        let invalid: Vec<&String> = users
            .iter()
            .filter(|u| self.invalid_users.contains(*u))
            .collect();
        let mut flow = Vec::new();
        for u in &users {
            if let Some(n) = self.flow_controlled.get_mut(u)
                && *n > 0
            {
                *n -= 1;
                flow.push(u.clone());
            }
        }
        self.sent += 1;
        (
            200,
            json!({"processQueryKey": format!("pqk-{}", self.sent),
                   "invalidStaffIdList": invalid, "flowControlledStaffIdList": flow}),
        )
    }

    fn legacy_token(&mut self, query: &BTreeMap<String, String>) -> (u16, Value) {
        let key = query.get("appkey").map(String::as_str).unwrap_or("");
        let secret = query.get("appsecret").map(String::as_str).unwrap_or("");
        if self.apps.get(key).is_none_or(|s| s != secret) {
            return errcode(40089, "不合法的appkey或appsecret");
        }
        let token = self.tokens.issue(key);
        (
            200,
            json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.tokens.ttl.as_secs()}),
        )
    }

    fn chat_send(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value) {
        match self
            .tokens
            .check(query.get("access_token").map(String::as_str).unwrap_or(""))
        {
            TokenState::Expired => return errcode(42001, "access_token expired"),
            TokenState::Unknown => return errcode(40014, "不合法的access_token"),
            TokenState::Valid => {}
        }
        let b = State::body_json(req);
        if b.get("chatid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            return errcode(40035, "缺少参数 chatid");
        }
        let msgtype = b
            .pointer("/msg/msgtype")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !MSG_TYPES.contains(&msgtype) {
            return errcode(400105, "不支持的消息类型");
        }
        (
            200,
            json!({"errcode": 0, "errmsg": "ok", "messageId": format!("msg-{}", self.next_id())}),
        )
    }
}

impl Platform for State {
    fn handle(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value) {
        match (req.method.as_str(), req.url.path()) {
            ("POST", "/robot/send") => self.robot(req, query),
            ("POST", "/v1.0/oauth2/accessToken") => self.new_api_token(req),
            ("POST", "/v1.0/robot/oToMessages/batchSend") => self.new_api_send(req, true),
            ("POST", "/v1.0/robot/groupMessages/send") => self.new_api_send(req, false),
            ("GET", "/gettoken") => self.legacy_token(query),
            ("POST", "/chat/send") => self.chat_send(req, query),
            _ => (404, json!({"errcode": 404, "errmsg": "not found"})),
        }
    }

    fn is_message(&self, path: &str) -> bool {
        !matches!(path, "/v1.0/oauth2/accessToken" | "/gettoken")
    }

    /// §1.1: a robot posts one message per `msgUuid` (its window is not
    /// documented; an hour here, as Feishu's).
    fn dedup_key(
        &self,
        req: &Request,
        query: &BTreeMap<String, String>,
    ) -> Option<(String, Duration)> {
        if req.url.path() != "/robot/send" {
            return None;
        }
        let body: Value = serde_json::from_slice(&req.body).ok()?;
        let uuid = body.get("msgUuid")?.as_str()?;
        let token = query.get("access_token")?;
        Some((format!("robot:{token}:{uuid}"), Duration::from_secs(3600)))
    }
}
