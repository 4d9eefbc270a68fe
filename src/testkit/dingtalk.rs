//! A fake DingTalk on 127.0.0.1 as strict as the real one (platforms.md
//! §1.8 and §2.5 checklists): robots with signatures, keywords, size and rate
//! limits; the new-API app robot with tokens; the legacy gettoken/chat flow.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

use super::Recorded;

/// Robot message types DingTalk accepts (§1.8).
const MSG_TYPES: [&str; 5] = ["text", "markdown", "link", "actionCard", "feedCard"];
const MSG_KEYS: [&str; 5] = [
    "sampleText",
    "sampleMarkdown",
    "sampleLink",
    "sampleActionCard",
    "sampleImageMsg",
];

/// One scripted failure, answered instead of the normal reply.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Fault {
    /// HTTP 200 with `{"errcode": code, "errmsg": msg}`.
    Errcode(i64, String),
    /// Any status and JSON body.
    Http(u16, Value),
    /// Answer normally, after a delay.
    Delay(Duration),
}

/// A custom robot's security settings.
#[derive(Debug, Clone, Default)]
pub struct RobotSpec {
    /// Signing secret (`SEC…`), if signing is on.
    pub secret: Option<String>,
    /// Security keywords; empty for none.
    pub keywords: Vec<String>,
}

#[derive(Debug)]
struct Issued {
    app: String,
    expires: Instant,
}

#[derive(Debug)]
struct State {
    robots: HashMap<String, RobotSpec>,
    apps: HashMap<String, String>,
    robot_codes: HashSet<String>,
    invalid_users: HashSet<String>,
    flow_controlled: HashMap<String, u32>,
    tokens: HashMap<String, Issued>,
    token_fetches: u32,
    token_ttl: Duration,
    next_token: u32,
    rate_limit: u32,
    rate_window: Duration,
    throttle: Duration,
    sends: HashMap<String, VecDeque<Instant>>,
    throttled_until: HashMap<String, Instant>,
    faults: VecDeque<Fault>,
    records: Vec<Recorded>,
    legacy_rate_code: bool,
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
    server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeDingTalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDingTalk")
            .field("uri", &self.server.uri())
            .finish()
    }
}

impl FakeDingTalk {
    /// Starts the server on 127.0.0.1 with no robots or apps.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            robots: HashMap::new(),
            apps: HashMap::new(),
            robot_codes: HashSet::new(),
            invalid_users: HashSet::new(),
            flow_controlled: HashMap::new(),
            tokens: HashMap::new(),
            token_fetches: 0,
            token_ttl: Duration::from_secs(7200),
            next_token: 0,
            rate_limit: 20,
            rate_window: Duration::from_secs(60),
            throttle: Duration::from_secs(600),
            sends: HashMap::new(),
            throttled_until: HashMap::new(),
            faults: VecDeque::new(),
            records: Vec::new(),
            legacy_rate_code: false,
        }));
        Mock::given(any())
            .respond_with(Handler {
                state: state.clone(),
            })
            .mount(&server)
            .await;
        FakeDingTalk {
            server: Arc::new(server),
            state,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The robot webhook URL for `token`.
    pub fn webhook(&self, token: &str) -> String {
        format!("{}/robot/send?access_token={token}", self.uri())
    }

    /// Registers a robot.
    pub fn add_robot(&self, token: &str, spec: RobotSpec) {
        self.with(|s| s.robots.insert(token.to_owned(), spec));
    }

    /// Registers an app (new API and legacy gettoken) and a robot code.
    pub fn add_app(&self, app_key: &str, app_secret: &str, robot_code: &str) {
        self.with(|s| {
            s.apps.insert(app_key.to_owned(), app_secret.to_owned());
            s.robot_codes.insert(robot_code.to_owned());
        });
    }

    /// Users batchSend reports in `invalidStaffIdList`.
    pub fn set_invalid_users(&self, users: &[&str]) {
        self.with(|s| s.invalid_users = users.iter().map(|u| (*u).to_owned()).collect());
    }

    /// `user` is reported in `flowControlledStaffIdList` for its next `times` sends.
    pub fn flow_control(&self, user: &str, times: u32) {
        self.with(|s| s.flow_controlled.insert(user.to_owned(), times));
    }

    /// Lifetime of issued access tokens (default 7200 s).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.with(|s| s.token_ttl = ttl);
    }

    /// Expires every issued token now (the next use answers like an expired token).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        self.with(|s| s.tokens.values_mut().for_each(|t| t.expires = now));
    }

    /// Token requests served so far (new API and legacy).
    pub fn token_fetches(&self) -> u32 {
        self.with(|s| s.token_fetches)
    }

    /// The robot rate limit: `limit` messages per `window`, then throttled
    /// for `throttle` (defaults 20, 60 s, 600 s). Shrink it for fast tests.
    pub fn set_rate_limit(&self, limit: u32, window: Duration, throttle: Duration) {
        self.with(|s| {
            s.rate_limit = limit;
            s.rate_window = window;
            s.throttle = throttle;
        });
    }

    /// Answer rate limits with the legacy 130101 instead of 410100.
    pub fn use_legacy_rate_code(&self, legacy: bool) {
        self.with(|s| s.legacy_rate_code = legacy);
    }

    /// Answers the next request with `fault` (queued in order).
    pub fn push_fault(&self, fault: Fault) {
        self.with(|s| s.faults.push_back(fault));
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.records.clone())
    }

    /// The robot messages accepted so far.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.accepted).collect()
    }
}

struct Handler {
    state: Arc<Mutex<State>>,
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

/// Every string leaf of a value (what the keyword check scans).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn expected_sign(secret: &str, ts: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{ts}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl State {
    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn issue_token(&mut self, app: &str) -> String {
        self.token_fetches += 1;
        self.next_token += 1;
        let token = format!("fake-token-{}", self.next_token);
        self.tokens.insert(
            token.clone(),
            Issued {
                app: app.to_owned(),
                expires: Instant::now() + self.token_ttl,
            },
        );
        token
    }

    /// None when valid; Some(expired?) otherwise.
    fn check_token(&self, token: &str) -> Option<bool> {
        match self.tokens.get(token) {
            Some(t) if t.expires > Instant::now() && self.apps.contains_key(&t.app) => None,
            Some(_) => Some(true),
            None => Some(false),
        }
    }

    fn rate(&mut self, key: &str) -> Option<(u16, Value)> {
        let now = Instant::now();
        let code = if self.legacy_rate_code {
            errcode(130101, "send too fast, exceed 20 times per minute")
        } else {
            errcode(410100, "发送速度太快而限流")
        };
        if self.throttled_until.get(key).is_some_and(|t| *t > now) {
            return Some(code);
        }
        let window = self.rate_window;
        let q = self.sends.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() as u32 >= self.rate_limit {
            self.throttled_until
                .insert(key.to_owned(), now + self.throttle);
            return Some(code);
        }
        q.push_back(now);
        None
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
        if let Some(limited) = self.rate(token) {
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
        let token = self.issue_token(key);
        (
            200,
            json!({"accessToken": token, "expireIn": self.token_ttl.as_secs()}),
        )
    }

    fn new_api_send(&mut self, req: &Request, batch: bool) -> (u16, Value) {
        let token = req
            .headers
            .get("x-acs-dingtalk-access-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if self.check_token(token).is_some() {
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
                json!({"processQueryKey": format!("pqk-{}", self.records.len())}),
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
        (
            200,
            json!({"processQueryKey": format!("pqk-{}", self.records.len()),
                   "invalidStaffIdList": invalid, "flowControlledStaffIdList": flow}),
        )
    }

    fn legacy_token(&mut self, query: &BTreeMap<String, String>) -> (u16, Value) {
        let key = query.get("appkey").map(String::as_str).unwrap_or("");
        let secret = query.get("appsecret").map(String::as_str).unwrap_or("");
        if self.apps.get(key).is_none_or(|s| s != secret) {
            return errcode(40089, "不合法的appkey或appsecret");
        }
        let token = self.issue_token(key);
        (
            200,
            json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.token_ttl.as_secs()}),
        )
    }

    fn chat_send(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value) {
        match self.check_token(query.get("access_token").map(String::as_str).unwrap_or("")) {
            Some(true) => return errcode(42001, "access_token expired"),
            Some(false) => return errcode(40014, "不合法的access_token"),
            None => {}
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
            json!({"errcode": 0, "errmsg": "ok", "messageId": format!("msg-{}", self.records.len())}),
        )
    }
}

impl Respond for Handler {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let query: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        let path = req.url.path().to_owned();
        let mut delay = None;
        let fault = s.faults.pop_front();
        let (status, answer) = match fault {
            Some(Fault::Errcode(code, msg)) => errcode(code, &msg),
            Some(Fault::Http(status, body)) => (status, body),
            other => {
                if let Some(Fault::Delay(d)) = other {
                    delay = Some(d);
                }
                match (req.method.as_str(), path.as_str()) {
                    ("POST", "/robot/send") => s.robot(req, &query),
                    ("POST", "/v1.0/oauth2/accessToken") => s.new_api_token(req),
                    ("POST", "/v1.0/robot/oToMessages/batchSend") => s.new_api_send(req, true),
                    ("POST", "/v1.0/robot/groupMessages/send") => s.new_api_send(req, false),
                    ("GET", "/gettoken") => s.legacy_token(&query),
                    ("POST", "/chat/send") => s.chat_send(req, &query),
                    _ => (404, json!({"errcode": 404, "errmsg": "not found"})),
                }
            }
        };
        let accepted = (200..300).contains(&status)
            && answer.get("errcode").is_none_or(|c| c == 0)
            && !path.ends_with("accessToken")
            && path != "/gettoken";
        s.records.push(Recorded {
            path,
            query,
            headers: req
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: State::body_json(req),
            body_len: req.body.len(),
            status,
            answer: answer.clone(),
            accepted,
        });
        let mut t = ResponseTemplate::new(status).set_body_json(answer);
        if let Some(d) = delay {
            t = t.set_delay(d);
        }
        t
    }
}
