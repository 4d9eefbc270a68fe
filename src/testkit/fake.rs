//! What every fake platform shares: a wiremock server on 127.0.0.1 whose
//! one responder hands requests to the platform's state machine, records
//! them, and plays scripted faults; rate windows and issued tokens.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

use super::Recorded;

/// One scripted failure, answered to the next request instead of the
/// platform's normal reply.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Fault {
    /// Any status and JSON body.
    Reply(u16, Value),
    /// Answer normally, after a delay (longer than the client's timeout
    /// makes a timeout).
    Delay(Duration),
}

impl Fault {
    /// HTTP 200 with `{"errcode": code, "errmsg": msg}` (DingTalk, WeCom).
    pub fn errcode(code: i64, msg: &str) -> Fault {
        Fault::Reply(200, json!({"errcode": code, "errmsg": msg}))
    }

    /// `{"code": code, "msg": msg}` with `status` (Feishu).
    pub fn code(status: u16, code: i64, msg: &str) -> Fault {
        Fault::Reply(status, json!({"code": code, "msg": msg}))
    }
}

/// A platform's request handling.
pub(crate) trait Platform: Send + 'static {
    /// The status and JSON body for one request.
    fn handle(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value);
    /// Whether a successful answer on `path` delivered a message (not a token call).
    fn is_message(&self, path: &str) -> bool;
}

struct Shared<P> {
    platform: P,
    /// Scripted faults, each for any path or for paths ending in the given suffix.
    faults: VecDeque<(Option<String>, Fault)>,
    records: Vec<Recorded>,
}

pub(crate) struct Fake<P> {
    server: Arc<MockServer>,
    state: Arc<Mutex<Shared<P>>>,
}

impl<P> Clone for Fake<P> {
    fn clone(&self) -> Self {
        Fake {
            server: self.server.clone(),
            state: self.state.clone(),
        }
    }
}

impl<P: Platform> Fake<P> {
    pub async fn start(platform: P) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(Shared {
            platform,
            faults: VecDeque::new(),
            records: Vec::new(),
        }));
        Mock::given(any())
            .respond_with(Handler {
                state: state.clone(),
            })
            .mount(&server)
            .await;
        Fake {
            server: Arc::new(server),
            state,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared<P>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        f(&mut self.lock().platform)
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back((None, fault));
    }

    pub fn push_fault_on(&self, path_suffix: &str, fault: Fault) {
        self.lock()
            .faults
            .push_back((Some(path_suffix.to_owned()), fault));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().records.clone()
    }

    pub fn accepted(&self) -> Vec<Recorded> {
        self.lock()
            .records
            .iter()
            .filter(|r| r.accepted)
            .cloned()
            .collect()
    }
}

struct Handler<P> {
    state: Arc<Mutex<Shared<P>>>,
}

/// A business error code in the answer: `errcode` or `code`, non-zero.
fn failed(answer: &Value) -> bool {
    ["errcode", "code", "StatusCode"]
        .iter()
        .any(|k| match answer.get(*k) {
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            Some(Value::String(s)) => !s.is_empty() && s != "0",
            _ => false,
        })
}

impl<P: Platform> Respond for Handler<P> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let query: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        let path = req.url.path().to_owned();
        let mut delay = None;
        let pos = s
            .faults
            .iter()
            .position(|(on, _)| on.as_deref().is_none_or(|suffix| path.ends_with(suffix)));
        let fault = pos.and_then(|i| s.faults.remove(i)).map(|(_, f)| f);
        let (status, answer) = match fault {
            Some(Fault::Reply(status, body)) => (status, body),
            Some(Fault::Delay(d)) => {
                delay = Some(d);
                s.platform.handle(req, &query)
            }
            None => s.platform.handle(req, &query),
        };
        let accepted =
            (200..300).contains(&status) && !failed(&answer) && s.platform.is_message(&path);
        s.records.push(Recorded {
            query,
            headers: req
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
            body_len: req.body.len(),
            path,
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

/// A per-key sliding window: `limit` per `window`, then refused for `throttle`.
#[derive(Debug)]
pub(crate) struct RateWindow {
    pub limit: u32,
    pub window: Duration,
    pub throttle: Duration,
    sends: HashMap<String, VecDeque<Instant>>,
    throttled_until: HashMap<String, Instant>,
}

impl RateWindow {
    pub fn new(limit: u32, window: Duration, throttle: Duration) -> Self {
        RateWindow {
            limit,
            window,
            throttle,
            sends: HashMap::new(),
            throttled_until: HashMap::new(),
        }
    }

    /// Counts a send for `key`; true when it must be refused.
    pub fn limited(&mut self, key: &str) -> bool {
        let now = Instant::now();
        if self.throttled_until.get(key).is_some_and(|t| *t > now) {
            return true;
        }
        let window = self.window;
        let q = self.sends.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() as u32 >= self.limit {
            self.throttled_until
                .insert(key.to_owned(), now + self.throttle);
            return true;
        }
        q.push_back(now);
        false
    }
}

/// Whether a presented token is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    Valid,
    Expired,
    Unknown,
}

/// Access tokens a fake issued, per app.
#[derive(Debug)]
pub(crate) struct Tokens {
    pub ttl: Duration,
    pub fetches: u32,
    next: u32,
    issued: HashMap<String, (String, Instant)>,
}

impl Tokens {
    pub fn new() -> Self {
        Tokens {
            ttl: Duration::from_secs(7200),
            fetches: 0,
            next: 0,
            issued: HashMap::new(),
        }
    }

    pub fn issue(&mut self, app: &str) -> String {
        self.fetches += 1;
        self.next += 1;
        let token = format!("fake-token-{}", self.next);
        self.issued
            .insert(token.clone(), (app.to_owned(), Instant::now() + self.ttl));
        token
    }

    pub fn check(&self, token: &str) -> TokenState {
        match self.issued.get(token) {
            Some((_, exp)) if *exp > Instant::now() => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }

    pub fn expire_all(&mut self) {
        let now = Instant::now();
        self.issued.values_mut().for_each(|(_, e)| *e = now);
    }
}

/// Every string leaf of a value (what keyword checks scan).
pub(crate) fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}
