//! A fake Feishu/Lark on 127.0.0.1 following platforms.md §5.8 and §11:
//! custom bot hooks with body signatures (timestamp as string or number),
//! keywords over text leaves, the 20,000-byte limit answering 9499
//! "Bad Request", 5/s and 100/min windows answering 11232 or 9499
//! "too many request"; tenant tokens and im/v1/messages. Every route is
//! also served under `/lark`, standing in for open.larksuite.com.

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

/// A custom bot's security settings.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
/// use alertkit::{Alert, ErrorKind};
/// let feishu = FakeFeishu::start().await;
/// feishu.add_bot("t1", BotSpec { secret: None, keywords: vec!["告警".into()] });
/// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
/// #     alertkit::InstanceConfig::new("ops", "feishu").param("webhook", feishu.webhook("t1"))
/// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
/// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::KeywordMissing);
/// assert!(ops.send(&Alert::new("告警: disk full")).await.is_ok());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct BotSpec {
    /// Signing secret, if signing is on.
    pub secret: Option<String>,
    /// Security keywords; empty for none.
    pub keywords: Vec<String>,
}

/// How the fake answers a rate-limited bot.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::feishu::{BotSpec, FakeFeishu, RateLimitAnswer};
/// use alertkit::{Alert, ErrorKind};
/// let feishu = FakeFeishu::start().await;
/// feishu.add_bot("t1", BotSpec::default());
/// feishu.set_rate_limit(1, 100, RateLimitAnswer::TooManyRequest9499);
/// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
/// #     alertkit::InstanceConfig::new("ops", "feishu").param("webhook", feishu.webhook("t1"))
/// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
/// ops.send(&Alert::new("disk full")).await.unwrap();
/// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
/// assert_eq!((e.kind(), e.code(), e.http_status()), (ErrorKind::RateLimited, Some("9499"), Some(400)));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitAnswer {
    /// HTTP 200 `{"code": 11232, "msg": "frequency limited ..."}`.
    Code11232,
    /// HTTP 400 `{"code": 9499, "msg": "too many request"}`.
    TooManyRequest9499,
}

#[derive(Debug)]
struct State {
    bots: HashMap<String, BotSpec>,
    apps: HashMap<String, String>,
    receivers: HashSet<(String, String)>,
    tokens: Tokens,
    per_second: RateWindow,
    per_minute: RateWindow,
    rate_answer: RateLimitAnswer,
    sent: usize,
}

/// A fake Feishu/Lark server.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
/// use alertkit::{Alert, Config, InstanceConfig, Notifier};
/// let feishu = FakeFeishu::start().await;
/// feishu.add_bot("t1", BotSpec { secret: Some("sign-secret".into()), keywords: vec![] });
/// let config = Config::default().with_instance(InstanceConfig::new("ops", "feishu")
///     .param("webhook", feishu.webhook("t1"))
///     .param("secret", "sign-secret"));
/// let ops = Notifier::from_config(&config).unwrap().channel("ops").unwrap();
/// ops.send(&Alert::new("disk full")).await.unwrap();
/// assert_eq!(feishu.accepted()[0].body["msg_type"], "interactive");
/// # });
/// ```
#[derive(Clone)]
pub struct FakeFeishu {
    fake: FakeServer<State>,
}

impl std::fmt::Debug for FakeFeishu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFeishu")
            .field("uri", &self.uri())
            .finish()
    }
}

impl FakeFeishu {
    /// Starts the server on 127.0.0.1.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::feishu::FakeFeishu;
    /// let feishu = FakeFeishu::start().await;
    /// assert!(feishu.uri().starts_with("http://127.0.0.1:"));
    /// assert_eq!(feishu.token_fetches(), 0);
    /// # });
    /// ```
    pub async fn start() -> Self {
        let state = State {
            bots: HashMap::new(),
            apps: HashMap::new(),
            receivers: HashSet::new(),
            tokens: Tokens::new(),
            per_second: RateWindow::new(5, Duration::from_secs(1), Duration::from_secs(1)),
            per_minute: RateWindow::new(100, Duration::from_secs(60), Duration::from_secs(60)),
            rate_answer: RateLimitAnswer::Code11232,
            sent: 0,
        };
        FakeFeishu {
            fake: FakeServer::start(state).await,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.fake.with(f)
    }

    /// `http://127.0.0.1:PORT` (Feishu); append `/lark` for the Lark stand-in.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::feishu::FakeFeishu;
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_app("cli_app", "app-secret");
    /// feishu.add_receiver("chat_id", "oc_ops");
    /// # let lark = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("mode", "app").param("app_id", "cli_app")
    /// #         .param("app_secret", "app-secret").param("receive_ids", vec!["oc_ops"])
    /// #         .param("base_url", format!("{}/lark", feishu.uri())))).unwrap().channel("ops").unwrap();
    /// // an app instance with `"base_url": format!("{}/lark", feishu.uri())` talks to the Lark stand-in
    /// lark.send(&Alert::new("disk full")).await.unwrap();
    /// assert!(feishu.accepted()[0].path.starts_with("/lark/open-apis/"));
    /// # });
    /// ```
    pub fn uri(&self) -> String {
        self.fake.uri()
    }

    /// The hook URL of bot `token`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::feishu::FakeFeishu;
    /// let feishu = FakeFeishu::start().await;
    /// assert_eq!(feishu.webhook("t1"), format!("{}/open-apis/bot/v2/hook/t1", feishu.uri()));
    /// # });
    /// ```
    pub fn webhook(&self, token: &str) -> String {
        format!("{}/open-apis/bot/v2/hook/{token}", self.uri())
    }

    /// Registers a custom bot.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
    /// use alertkit::{Alert, ErrorKind};
    /// let feishu = FakeFeishu::start().await;
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("webhook", feishu.webhook("t1"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err(); // no such bot yet
    /// assert_eq!(e.kind(), ErrorKind::Unauthorized);
    /// feishu.add_bot("t1", BotSpec::default());
    /// assert!(ops.send(&Alert::new("disk full")).await.is_ok());
    /// # });
    /// ```
    pub fn add_bot(&self, token: &str, spec: BotSpec) {
        self.with(|s| s.bots.insert(token.to_owned(), spec));
    }

    /// Registers an app.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::feishu::FakeFeishu;
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_app("cli_app", "app-secret");
    /// feishu.add_receiver("chat_id", "oc_ops");
    /// # let app = |ids: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("mode", "app").param("app_id", "cli_app")
    /// #         .param("app_secret", "app-secret").param("receive_ids", ids.to_vec()).param("base_url", feishu.uri())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let receipt = app(&["oc_ops"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert!(receipt.message_id.is_some());
    /// assert!(feishu.accepted()[0].headers["authorization"].starts_with("Bearer "));
    /// # });
    /// ```
    pub fn add_app(&self, app_id: &str, app_secret: &str) {
        self.with(|s| s.apps.insert(app_id.to_owned(), app_secret.to_owned()));
    }

    /// A receiver apps may send to: `id_type` (`chat_id`, `open_id`, ...) and id.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::feishu::FakeFeishu;
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_app("cli_app", "app-secret");
    /// feishu.add_receiver("chat_id", "oc_ops");
    /// # let app = |ids: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("mode", "app").param("app_id", "cli_app")
    /// #         .param("app_secret", "app-secret").param("receive_ids", ids.to_vec()).param("base_url", feishu.uri())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let receipt = app(&["oc_ops", "oc_gone"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert_eq!(receipt.rejected_recipients, ["oc_gone"]);
    /// # });
    /// ```
    pub fn add_receiver(&self, id_type: &str, id: &str) {
        self.with(|s| s.receivers.insert((id_type.to_owned(), id.to_owned())));
    }

    /// Expires every tenant token now.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::feishu::FakeFeishu;
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_app("cli_app", "app-secret");
    /// feishu.add_receiver("chat_id", "oc_ops");
    /// # let app = |ids: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("mode", "app").param("app_id", "cli_app")
    /// #         .param("app_secret", "app-secret").param("receive_ids", ids.to_vec()).param("base_url", feishu.uri())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let ops = app(&["oc_ops"]);
    /// ops.send(&Alert::new("one")).await.unwrap();
    /// feishu.expire_tokens();
    /// ops.send(&Alert::new("two")).await.unwrap(); // refreshed once, sent again
    /// assert_eq!(feishu.token_fetches(), 2);
    /// # });
    /// ```
    pub fn expire_tokens(&self) {
        self.with(|s| s.tokens.expire_all());
    }

    /// Tenant token requests served so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::feishu::FakeFeishu;
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_app("cli_app", "app-secret");
    /// feishu.add_receiver("chat_id", "oc_ops");
    /// # let app = |ids: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("mode", "app").param("app_id", "cli_app")
    /// #         .param("app_secret", "app-secret").param("receive_ids", ids.to_vec()).param("base_url", feishu.uri())
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let ops = app(&["oc_ops"]);
    /// ops.send(&Alert::new("one")).await.unwrap();
    /// ops.send(&Alert::new("two")).await.unwrap();
    /// assert_eq!(feishu.token_fetches(), 1);
    /// # });
    /// ```
    pub fn token_fetches(&self) -> u32 {
        self.with(|s| s.tokens.fetches)
    }

    /// Per-bot limits (default 5 per second and 100 per minute) and how
    /// they are answered.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::feishu::{BotSpec, FakeFeishu, RateLimitAnswer};
    /// use alertkit::{Alert, ErrorKind};
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_bot("t1", BotSpec::default());
    /// feishu.set_rate_limit(100, 2, RateLimitAnswer::Code11232);
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("webhook", feishu.webhook("t1"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// for _ in 0..2 {
    ///     ops.send(&Alert::new("disk full")).await.unwrap();
    /// }
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::RateLimited, Some("11232")));
    /// # });
    /// ```
    pub fn set_rate_limit(&self, per_second: u32, per_minute: u32, answer: RateLimitAnswer) {
        self.with(|s| {
            s.per_second =
                RateWindow::new(per_second, Duration::from_secs(1), Duration::from_secs(1));
            s.per_minute =
                RateWindow::new(per_minute, Duration::from_secs(60), Duration::from_secs(60));
            s.rate_answer = answer;
        });
    }

    /// Answers the next request with `fault`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::feishu::{BotSpec, FakeFeishu, Fault};
    /// use alertkit::{Alert, ErrorKind};
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_bot("t1", BotSpec::default());
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("webhook", feishu.webhook("t1"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// feishu.push_fault(Fault::Raw { status: 200, headers: vec![], body: "<html>gateway</html>".into() });
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::Platform); // not JSON: not a Feishu answer
    /// assert_eq!(e.http_status(), Some(200));
    /// # });
    /// ```
    pub fn push_fault(&self, fault: Fault) {
        self.fake.push_fault(fault);
    }

    /// Every request so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
    /// use alertkit::Alert;
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_bot("t1", BotSpec { secret: Some("right".into()), keywords: vec![] });
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("webhook", feishu.webhook("t1"))
    /// #         .param("secret", "wrong").policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// ops.send(&Alert::new("disk full")).await.unwrap_err(); // signed with the wrong secret
    /// let r = &feishu.requests()[0];
    /// assert!(!r.accepted);
    /// assert!(r.body["sign"].is_string() && r.body["timestamp"].is_string());
    /// # });
    /// ```
    pub fn requests(&self) -> Vec<Recorded> {
        self.fake.requests()
    }

    /// Messages accepted so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
    /// use alertkit::Alert;
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_bot("t1", BotSpec::default());
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "feishu").param("webhook", feishu.webhook("t1"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// ops.send(&Alert::new("disk full").link("Runbook", "https://wiki.example/disk")).await.unwrap();
    /// let card = &feishu.accepted()[0].body["card"];
    /// assert_eq!(card["header"]["title"]["content"], "[Error] disk full");
    /// # });
    /// ```
    pub fn accepted(&self) -> Vec<Recorded> {
        self.fake.accepted()
    }
}

fn code(status: u16, code: i64, msg: &str) -> (u16, Value) {
    (status, json!({"code": code, "msg": msg, "data": {}}))
}

fn expected_sign(secret: &str, ts: i64) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{ts}\n{secret}").as_bytes())
        .unwrap_or_else(|_| unreachable!());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The text-like leaves the keyword check reads: not URLs, tags or signing fields.
fn text_leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if !matches!(
                    k.as_str(),
                    "href"
                        | "url"
                        | "sign"
                        | "timestamp"
                        | "msg_type"
                        | "tag"
                        | "template"
                        | "type"
                        | "user_id"
                        | "id"
                ) {
                    text_leaves(x, out);
                }
            }
        }
        other => strings(other, out),
    }
}

impl State {
    fn hook(&mut self, req: &Request, token: &str) -> (u16, Value) {
        let Some(spec) = self.bots.get(token).cloned() else {
            return code(
                200,
                19001,
                "param invalid: incoming webhook access token invalid",
            );
        };
        if req.body.len() > 20_000 {
            return code(400, 9499, "Bad Request");
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return code(400, 9499, "Bad Request: fail to parse content");
        };
        let msg_type = body.get("msg_type").and_then(Value::as_str).unwrap_or("");
        let payload_key = if msg_type == "interactive" {
            "card"
        } else {
            "content"
        };
        if !matches!(
            msg_type,
            "text" | "post" | "interactive" | "image" | "share_chat"
        ) || body.get(payload_key).is_none()
        {
            return code(200, 19002, "params error, msg_type need");
        }
        if let Some(secret) = &spec.secret {
            // The timestamp may arrive as a string (the doc) or a number (real clients).
            let ts = match body.get("timestamp") {
                Some(Value::String(s)) => s.parse::<i64>().ok(),
                Some(Value::Number(n)) => n.as_i64(),
                _ => None,
            };
            let sign = body.get("sign").and_then(Value::as_str).unwrap_or("");
            let fresh = ts.is_some_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 3600);
            if !fresh || ts.is_none_or(|t| expected_sign(secret, t) != sign) {
                return code(
                    200,
                    19021,
                    "sign match fail or timestamp is not within one hour from current time",
                );
            }
        }
        if !spec.keywords.is_empty() {
            let mut leaves = Vec::new();
            text_leaves(&body[payload_key], &mut leaves);
            if !spec
                .keywords
                .iter()
                .any(|k| leaves.iter().any(|l| l.contains(k.as_str())))
            {
                return code(200, 19024, "Key Words Not Found");
            }
        }
        if self.per_second.limited(token) || self.per_minute.limited(token) {
            return match self.rate_answer {
                RateLimitAnswer::Code11232 => code(
                    200,
                    11232,
                    "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]",
                ),
                RateLimitAnswer::TooManyRequest9499 => code(400, 9499, "too many request"),
            };
        }
        (
            200,
            json!({"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}),
        )
    }

    fn tenant_token(&mut self, req: &Request) -> (u16, Value) {
        let b: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let id = b.get("app_id").and_then(Value::as_str).unwrap_or("");
        let secret = b.get("app_secret").and_then(Value::as_str).unwrap_or("");
        if self.apps.get(id).is_none_or(|s| s != secret) {
            return code(400, 10014, "app secret invalid");
        }
        let token = self.tokens.issue(id);
        (
            200,
            json!({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.tokens.ttl.as_secs()}),
        )
    }

    fn im_send(&mut self, req: &Request, q: &BTreeMap<String, String>) -> (u16, Value) {
        let bearer = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if self.tokens.check(bearer) != TokenState::Valid {
            return code(
                400,
                99991663,
                "Invalid access token for authorization. Please make a request with token attached.",
            );
        }
        let id_type = q.get("receive_id_type").map(String::as_str).unwrap_or("");
        if !matches!(
            id_type,
            "chat_id" | "open_id" | "user_id" | "union_id" | "email"
        ) {
            return code(400, 99992402, "field validation failed: receive_id_type");
        }
        let b: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let id = b.get("receive_id").and_then(Value::as_str).unwrap_or("");
        if !self
            .receivers
            .contains(&(id_type.to_owned(), id.to_owned()))
        {
            return code(400, 230001, "invalid receive_id");
        }
        let msg_type = b.get("msg_type").and_then(Value::as_str).unwrap_or("");
        let Some(content) = b.get("content").and_then(Value::as_str) else {
            return code(400, 230001, "content must be a JSON string");
        };
        if !serde_json::from_str::<Value>(content).is_ok_and(|c| c.is_object()) {
            return code(400, 230001, "content is not valid json");
        }
        let limit = match msg_type {
            "text" => 150 * 1024,
            "post" | "interactive" => 30 * 1024,
            _ => return code(400, 230001, "invalid msg_type"),
        };
        if content.len() > limit {
            return code(400, 230025, "message content exceeds the length limit");
        }
        self.sent += 1;
        (
            200,
            json!({"code": 0, "msg": "success", "data": {"message_id": format!("om_{}", self.sent)}}),
        )
    }
}

impl Platform for State {
    fn handle(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value) {
        let path = req.url.path();
        let path = path.strip_prefix("/lark").unwrap_or(path);
        if req.method.as_str() != "POST" {
            return code(404, 404, "not found");
        }
        if let Some(token) = path.strip_prefix("/open-apis/bot/v2/hook/") {
            return self.hook(req, token);
        }
        match path {
            "/open-apis/auth/v3/tenant_access_token/internal" => self.tenant_token(req),
            "/open-apis/im/v1/messages" => self.im_send(req, query),
            _ => code(404, 404, "not found"),
        }
    }

    fn is_message(&self, path: &str) -> bool {
        !path.ends_with("tenant_access_token/internal")
    }

    /// An app's message send posts one message per `uuid` within an hour.
    fn dedup_key(
        &self,
        req: &Request,
        _query: &BTreeMap<String, String>,
    ) -> Option<(String, Duration)> {
        if !req.url.path().ends_with("/im/v1/messages") {
            return None;
        }
        let body: Value = serde_json::from_slice(&req.body).ok()?;
        let uuid = body.get("uuid")?.as_str()?;
        let token = req
            .headers
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        let app = self.tokens.owner(token)?;
        Some((format!("app:{app}:{uuid}"), Duration::from_secs(3600)))
    }
}
