//! What every fake platform shares: a wiremock server on 127.0.0.1 whose
//! one responder hands requests to the platform's state machine, records
//! them, and plays scripted faults; rate windows and issued tokens. Clients
//! reach it through a small TCP proxy that frames HTTP/1.1 requests, so a
//! [`Fault::Drop`] can close a connection without an answer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

use super::Recorded;

/// One scripted failure, answered to the next request instead of the
/// platform's normal reply.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::Fault;
/// use alertkit::testkit::wecom::FakeWeCom;
/// use alertkit::{Alert, Config, ErrorKind, InstanceConfig, Notifier, policy::PolicyConfig};
///
/// let wecom = FakeWeCom::start().await;
/// wecom.add_bot("k1");
/// let config = Config::default().with_instance(InstanceConfig::new("ops", "wecom")
///     .param("webhook", wecom.webhook("k1")).policy(PolicyConfig::off()));
/// let ops = Notifier::from_config(&config).unwrap().channel("ops").unwrap();
/// wecom.push_fault(Fault::Reply(502, serde_json::json!({"message": "bad gateway"})));
/// wecom.push_fault(Fault::Drop);
/// assert_eq!(ops.send(&Alert::new("a")).await.unwrap_err().http_status(), Some(502));
/// assert_eq!(ops.send(&Alert::new("b")).await.unwrap_err().kind(), ErrorKind::Transport);
/// assert!(ops.send(&Alert::new("c")).await.is_ok()); // the faults are used up
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Fault {
    /// Any status and JSON body.
    Reply(u16, Value),
    /// Answer normally, after a delay (longer than the client's timeout
    /// makes a timeout).
    Delay(Duration),
    /// Read the request, then close the connection without answering (the
    /// request is recorded with status 0).
    Drop,
    /// Any status, headers and raw body: an HTML error page under 200, an
    /// empty body, a redirect with its `Location` (recorded as not accepted).
    Raw {
        /// HTTP status.
        status: u16,
        /// Headers, e.g. `("location", "https://elsewhere/")`.
        headers: Vec<(String, String)>,
        /// The body as sent.
        body: String,
    },
}

impl Fault {
    /// HTTP 200 with `{"errcode": code, "errmsg": msg}` (DingTalk, WeCom).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::Fault;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// use alertkit::{Alert, Config, ErrorKind, InstanceConfig, Notifier, policy::PolicyConfig};
    ///
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_bot("k1");
    /// let config = Config::default().with_instance(InstanceConfig::new("ops", "wecom")
    ///     .param("webhook", wecom.webhook("k1")).policy(PolicyConfig::off()));
    /// let ops = Notifier::from_config(&config).unwrap().channel("ops").unwrap();
    /// wecom.push_fault(Fault::errcode(45009, "api freq out of limit"));
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::RateLimited, Some("45009")));
    /// # });
    /// ```
    pub fn errcode(code: i64, msg: &str) -> Fault {
        Fault::Reply(200, json!({"errcode": code, "errmsg": msg}))
    }

    /// `{"code": code, "msg": msg}` with `status` (Feishu).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::Fault;
    /// use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
    /// use alertkit::{Alert, Config, ErrorKind, InstanceConfig, Notifier, policy::PolicyConfig};
    ///
    /// let feishu = FakeFeishu::start().await;
    /// feishu.add_bot("t1", BotSpec { secret: None, keywords: vec![] });
    /// let config = Config::default().with_instance(InstanceConfig::new("ops", "feishu")
    ///     .param("webhook", feishu.webhook("t1")).policy(PolicyConfig::off()));
    /// let ops = Notifier::from_config(&config).unwrap().channel("ops").unwrap();
    /// feishu.push_fault(Fault::code(400, 9499, "too many request"));
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code(), e.http_status()), (ErrorKind::RateLimited, Some("9499"), Some(400)));
    /// # });
    /// ```
    pub fn code(status: u16, code: i64, msg: &str) -> Fault {
        Fault::Reply(status, json!({"code": code, "msg": msg}))
    }
}

/// A platform's request handling: what a [`FakeServer`] answers. The fake
/// DingTalk, WeCom and Feishu are `Platform`s; a third-party channel's
/// tests implement one for their own platform and get the same machinery
/// (scripted [`Fault`]s, dropped connections, [`Recorded`] requests, the
/// platform's de-dup keys honoured).
///
/// ```
/// use std::collections::BTreeMap;
/// use alertkit::testkit::{Fault, FakeServer, Platform, wiremock::Request};
/// use serde_json::{json, Value};
///
/// /// A paging service: `POST /v1/page` with a bearer token.
/// struct Pager { pages: u32 }
///
/// impl Platform for Pager {
///     fn handle(&mut self, req: &Request, _query: &BTreeMap<String, String>) -> (u16, Value) {
///         if req.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer t0k") {
///             return (401, json!({"code": 401, "msg": "bad token"}));
///         }
///         self.pages += 1;
///         (200, json!({"code": 0, "id": self.pages}))
///     }
///     fn is_message(&self, path: &str) -> bool { path == "/v1/page" }
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let fake = FakeServer::start(Pager { pages: 0 }).await;
/// fake.push_fault(Fault::Reply(503, json!({"code": 503, "msg": "busy"})));
/// let client = reqwest::Client::new();
/// let post = || client.post(format!("{}/v1/page", fake.uri())).bearer_auth("t0k").body("{}").send();
/// assert_eq!(post().await.unwrap().status(), 503); // the scripted fault
/// assert_eq!(post().await.unwrap().status(), 200);
/// assert_eq!(fake.accepted().len(), 1);
/// assert_eq!(fake.with(|p| p.pages), 1);
/// # });
/// ```
pub trait Platform: Send + 'static {
    /// The status and JSON body for one request.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use alertkit::testkit::{Platform, wiremock::Request};
    /// use serde_json::{json, Value};
    /// struct Robot;
    /// impl Platform for Robot {
    ///     fn handle(&mut self, _: &Request, query: &BTreeMap<String, String>) -> (u16, Value) {
    ///         match query.get("access_token").map(String::as_str) {
    ///             Some("good") => (200, json!({"errcode": 0})),
    ///             _ => (200, json!({"errcode": 300001, "errmsg": "token is not exist"})),
    ///         }
    ///     }
    ///     fn is_message(&self, path: &str) -> bool { path == "/robot/send" }
    /// }
    /// assert!(Robot.is_message("/robot/send") && !Robot.is_message("/gettoken"));
    /// ```
    fn handle(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value);
    /// Whether a successful answer on `path` delivered a message (not a token call).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use alertkit::testkit::{Platform, wiremock::Request};
    /// struct Bot;
    /// impl Platform for Bot {
    ///     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    ///     // Token calls succeed too, but deliver nothing: not counted in `accepted()`.
    ///     fn is_message(&self, path: &str) -> bool { path.ends_with("/message") }
    /// }
    /// assert!(Bot.is_message("/open-apis/im/v1/message") && !Bot.is_message("/auth/token"));
    /// ```
    fn is_message(&self, path: &str) -> bool;
    /// The platform's de-dup key of a message request and how long the
    /// platform remembers it (DingTalk `msgUuid`, Feishu `uuid`, WeCom's
    /// duplicate check): a request whose key was accepted within that time
    /// gets the first answer again and posts nothing.
    ///
    /// ```
    /// use std::{collections::BTreeMap, time::Duration};
    /// use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// struct Bot;
    /// impl Platform for Bot {
    ///     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    ///     fn is_message(&self, _: &str) -> bool { true }
    ///     fn dedup_key(&self, req: &Request, _: &BTreeMap<String, String>) -> Option<(String, Duration)> {
    ///         let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
    ///         Some((body["uuid"].as_str()?.to_owned(), Duration::from_secs(3600)))
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Bot).await;
    /// for _ in 0..2 { reqwest::Client::new().post(fake.uri()).body(r#"{"uuid": "u-1"}"#).send().await.unwrap(); }
    /// assert_eq!((fake.requests().len(), fake.accepted().len()), (2, 1)); // the second is a duplicate
    /// # });
    /// ```
    fn dedup_key(
        &self,
        req: &Request,
        query: &BTreeMap<String, String>,
    ) -> Option<(String, Duration)> {
        let _ = (req, query);
        None
    }
}

struct Shared<P> {
    platform: P,
    /// Scripted faults, each for any path or for paths ending in the given suffix.
    faults: VecDeque<(Option<String>, Fault)>,
    records: Vec<Recorded>,
    /// Accepted de-dup keys: when, and the answer given.
    seen: HashMap<String, (Instant, Duration, u16, Value)>,
}

/// A fake platform server on 127.0.0.1: one [`Platform`] behind a
/// wiremock server and a small proxy (so a [`Fault::Drop`] can close a
/// connection without an answer), recording every request. Clones share
/// the server; it stops with the last one. See [`Platform`] for an example.
///
/// ```
/// # use std::collections::BTreeMap;
/// use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
/// struct Ok0;
/// impl Platform for Ok0 {
///     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
///     fn is_message(&self, _: &str) -> bool { true }
/// }
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let fake = FakeServer::start(Ok0).await;
/// let other = fake.clone(); // the same server
/// reqwest::Client::new().post(format!("{}/send", fake.uri())).body("{}").send().await.unwrap();
/// assert_eq!(other.accepted()[0].path, "/send");
/// # });
/// ```
pub struct FakeServer<P> {
    server: Arc<MockServer>,
    /// The proxy's address (clients' way in) and its accept loop, if it
    /// could be started; the loop stops with the last clone.
    proxy: Option<(SocketAddr, Arc<AbortOnDrop<()>>)>,
    state: Arc<Mutex<Shared<P>>>,
}

impl<P: Platform> std::fmt::Debug for FakeServer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("uri", &self.uri())
            .finish_non_exhaustive()
    }
}

impl<P> Clone for FakeServer<P> {
    fn clone(&self) -> Self {
        FakeServer {
            server: self.server.clone(),
            proxy: self.proxy.clone(),
            state: self.state.clone(),
        }
    }
}

impl<P: Platform> FakeServer<P> {
    /// Starts the server on 127.0.0.1.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// struct Teapot;
    /// impl Platform for Teapot {
    ///     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (418, serde_json::json!({"code": 418})) }
    ///     fn is_message(&self, _: &str) -> bool { true }
    /// }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Teapot).await;
    /// let resp = reqwest::Client::new().get(fake.uri()).send().await.unwrap();
    /// assert_eq!(resp.status(), 418);
    /// # });
    /// ```
    pub async fn start(platform: P) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(Shared {
            platform,
            faults: VecDeque::new(),
            records: Vec::new(),
            seen: HashMap::new(),
        }));
        Mock::given(any())
            .respond_with(Handler {
                state: state.clone(),
            })
            .mount(&server)
            .await;
        let proxy = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener.local_addr().ok().map(|addr| {
                let (target, state) = (*server.address(), state.clone());
                let task = tokio::spawn(async move {
                    while let Ok((client, _)) = listener.accept().await {
                        tokio::spawn(proxy(client, target, state.clone()));
                    }
                });
                (addr, Arc::new(AbortOnDrop(task)))
            }),
            // Without the proxy, Drop faults become hour-long delays.
            Err(_) => None,
        };
        FakeServer {
            server: Arc::new(server),
            proxy,
            state,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared<P>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads or changes the platform's state.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// struct Switch { up: bool }
    /// impl Platform for Switch {
    ///     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) {
    ///         if self.up { (200, serde_json::json!({})) } else { (503, serde_json::json!({})) }
    ///     }
    ///     fn is_message(&self, _: &str) -> bool { true }
    /// }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Switch { up: true }).await;
    /// fake.with(|p| p.up = false); // the platform goes down
    /// assert_eq!(reqwest::get(fake.uri()).await.unwrap().status(), 503);
    /// # });
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        f(&mut self.lock().platform)
    }

    /// `http://127.0.0.1:PORT`.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// # struct Ok0;
    /// # impl Platform for Ok0 {
    /// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    /// #     fn is_message(&self, _: &str) -> bool { true }
    /// # }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Ok0).await;
    /// assert!(fake.uri().starts_with("http://127.0.0.1:"));
    /// // An instance's base URL points here: `http://` is allowed for a loopback host.
    /// assert!(alertkit::http::parse_url("params.base_url", &fake.uri(), false).is_ok());
    /// # });
    /// ```
    pub fn uri(&self) -> String {
        match &self.proxy {
            Some((addr, _)) => format!("http://{addr}"),
            None => self.server.uri(),
        }
    }

    /// The next request gets `fault` instead of the platform's answer.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// # struct Ok0;
    /// # impl Platform for Ok0 {
    /// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    /// #     fn is_message(&self, _: &str) -> bool { true }
    /// # }
    /// use alertkit::testkit::Fault;
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Ok0).await;
    /// fake.push_fault(Fault::Reply(500, serde_json::json!({"code": 500})));
    /// assert_eq!(reqwest::get(fake.uri()).await.unwrap().status(), 500); // the fault
    /// assert_eq!(reqwest::get(fake.uri()).await.unwrap().status(), 200); // used up
    /// # });
    /// ```
    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back((None, fault));
    }

    /// The next request whose path ends with `path_suffix` gets `fault`.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// # struct Ok0;
    /// # impl Platform for Ok0 {
    /// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    /// #     fn is_message(&self, _: &str) -> bool { true }
    /// # }
    /// use alertkit::testkit::Fault;
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Ok0).await;
    /// fake.push_fault_on("/gettoken", Fault::errcode(40001, "invalid credential"));
    /// let get = |p: &str| reqwest::get(format!("{}{p}", fake.uri()));
    /// assert_eq!(get("/send").await.unwrap().json::<serde_json::Value>().await.unwrap()["code"], 0); // not this path
    /// assert_eq!(get("/gettoken").await.unwrap().json::<serde_json::Value>().await.unwrap()["errcode"], 40001);
    /// # });
    /// ```
    pub fn push_fault_on(&self, path_suffix: &str, fault: Fault) {
        self.lock()
            .faults
            .push_back((Some(path_suffix.to_owned()), fault));
    }

    /// Every request so far, with what was answered.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// # struct Ok0;
    /// # impl Platform for Ok0 {
    /// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    /// #     fn is_message(&self, _: &str) -> bool { true }
    /// # }
    /// use alertkit::testkit::Fault;
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Ok0).await;
    /// fake.push_fault(Fault::Reply(429, serde_json::json!({"code": 429})));
    /// reqwest::get(format!("{}/send?key=k1", fake.uri())).await.unwrap();
    /// let r = &fake.requests()[0];
    /// assert_eq!((r.path.as_str(), r.query["key"].as_str(), r.status, r.accepted), ("/send", "k1", 429, false));
    /// # });
    /// ```
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().records.clone()
    }

    /// The requests the platform accepted as messages (not token calls,
    /// faults, refusals or duplicates).
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use alertkit::testkit::{FakeServer, Platform, wiremock::Request};
    /// # struct Ok0;
    /// # impl Platform for Ok0 {
    /// #     fn handle(&mut self, _: &Request, _: &BTreeMap<String, String>) -> (u16, serde_json::Value) { (200, serde_json::json!({"code": 0})) }
    /// #     fn is_message(&self, path: &str) -> bool { path == "/send" }
    /// # }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let fake = FakeServer::start(Ok0).await; // `/send` delivers, other paths do not
    /// reqwest::get(format!("{}/gettoken", fake.uri())).await.unwrap();
    /// reqwest::get(format!("{}/send", fake.uri())).await.unwrap();
    /// assert_eq!(fake.requests().len(), 2);
    /// assert_eq!(fake.accepted().len(), 1);
    /// # });
    /// ```
    pub fn accepted(&self) -> Vec<Recorded> {
        self.lock()
            .records
            .iter()
            .filter(|r| r.accepted)
            .cloned()
            .collect()
    }
}

impl<P> Shared<P> {
    /// The index of the fault the next request on `path` gets.
    fn next_fault(&self, path: &str) -> Option<usize> {
        self.faults
            .iter()
            .position(|(on, _)| on.as_deref().is_none_or(|suffix| path.ends_with(suffix)))
    }
}

/// One client connection: requests are framed (head, then `Content-Length`
/// bytes of body) and forwarded to the wiremock server, unless the next
/// fault for the request's path is [`Fault::Drop`]: then the connection is
/// closed unanswered. A chunked request turns the rest of the connection
/// into a plain byte pipe.
async fn proxy<P: Send + 'static>(
    client: TcpStream,
    target: SocketAddr,
    state: Arc<Mutex<Shared<P>>>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(target).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let back = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
    let _abort_back = AbortOnDrop(back);
    let mut cr = BufReader::new(cr);
    loop {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if cr.read_until(b'\n', &mut head).await? == 0 {
                return Ok(());
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let target_path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut headers = BTreeMap::new();
        for line in text.lines().skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        if headers
            .get("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            sw.write_all(&head).await?;
            tokio::io::copy(&mut cr, &mut sw).await?;
            return Ok(());
        }
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        cr.read_exact(&mut body).await?;
        let (path, query) = target_path
            .split_once('?')
            .unwrap_or((target_path.as_str(), ""));
        let dropped = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            match s.next_fault(path) {
                Some(i) if matches!(s.faults[i].1, Fault::Drop) => {
                    s.faults.remove(i);
                    s.records.push(Recorded {
                        path: path.to_owned(),
                        query: url::form_urlencoded::parse(query.as_bytes())
                            .into_owned()
                            .collect(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        body_len: body.len(),
                        status: 0,
                        answer: Value::Null,
                        accepted: false,
                        duplicate: false,
                    });
                    true
                }
                _ => false,
            }
        };
        if dropped {
            // Both directions close when this returns.
            return Ok(());
        }
        sw.write_all(&head).await?;
        sw.write_all(&body).await?;
    }
}

/// A task that is aborted when its handle is dropped: shared in an `Arc`
/// by a fake's clones, it stops with the last one.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
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
        let mut raw = None;
        let fault = s
            .next_fault(&path)
            .and_then(|i| s.faults.remove(i))
            .map(|(_, f)| f);
        let key = match fault {
            Some(Fault::Reply(..) | Fault::Raw { .. }) => None,
            _ => s.platform.dedup_key(req, &query),
        };
        let now = Instant::now();
        let earlier = key.as_ref().and_then(|(k, _)| {
            s.seen
                .get(k)
                .filter(|(at, keep, ..)| now.duration_since(*at) < *keep)
                .map(|(_, _, status, answer)| (*status, answer.clone()))
        });
        let duplicate = earlier.is_some();
        let (status, answer) = match fault {
            _ if duplicate => {
                if let Some(Fault::Delay(d)) = fault {
                    delay = Some(d);
                }
                earlier.unwrap_or_default()
            }
            Some(Fault::Reply(status, body)) => (status, body),
            Some(Fault::Delay(d)) => {
                delay = Some(d);
                s.platform.handle(req, &query)
            }
            Some(Fault::Drop) => {
                delay = Some(Duration::from_secs(3600));
                s.platform.handle(req, &query)
            }
            Some(Fault::Raw {
                status,
                headers,
                body,
            }) => {
                raw = Some((headers, body));
                (status, Value::Null)
            }
            None => s.platform.handle(req, &query),
        };
        let accepted = !duplicate
            && raw.is_none()
            && (200..300).contains(&status)
            && !failed(&answer)
            && s.platform.is_message(&path);
        if accepted && let Some((k, keep)) = key {
            s.seen.insert(k, (now, keep, status, answer.clone()));
        }
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
            duplicate,
        });
        let mut t = match raw {
            Some((headers, body)) => {
                let mut t = ResponseTemplate::new(status).set_body_raw(body, "text/html");
                for (k, v) in headers {
                    t = t.insert_header(k.as_str(), v.as_str());
                }
                t
            }
            None => ResponseTemplate::new(status).set_body_json(answer),
        };
        if let Some(d) = delay {
            t = t.set_delay(d);
        }
        t
    }
}

/// A per-key sliding window for a fake's rate limit: `limit` per `window`,
/// then refused for `throttle`.
///
/// ```
/// use std::time::Duration;
/// use alertkit::testkit::RateWindow;
/// let mut w = RateWindow::new(2, Duration::from_secs(60), Duration::from_secs(600));
/// assert!(!w.limited("robot-1") && !w.limited("robot-1"));
/// assert!(w.limited("robot-1"), "the third in a minute is refused");
/// assert!(!w.limited("robot-2"), "per key");
/// ```
#[derive(Debug)]
pub struct RateWindow {
    pub(crate) limit: u32,
    pub(crate) window: Duration,
    pub(crate) throttle: Duration,
    sends: HashMap<String, VecDeque<Instant>>,
    throttled_until: HashMap<String, Instant>,
}

impl RateWindow {
    /// `limit` sends per `window` per key, then refused for `throttle`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::testkit::RateWindow;
    /// let mut w = RateWindow::new(1, Duration::from_secs(60), Duration::from_secs(600));
    /// assert!(!w.limited("k"));
    /// assert!(w.limited("k"));
    /// ```
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::testkit::RateWindow;
    /// let mut w = RateWindow::new(1, Duration::from_millis(20), Duration::ZERO);
    /// assert!(!w.limited("k") && w.limited("k"));
    /// std::thread::sleep(Duration::from_millis(30));
    /// assert!(!w.limited("k")); // the window slid past
    /// ```
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
///
/// ```
/// use std::time::Duration;
/// use alertkit::testkit::{TokenState, Tokens};
/// let mut tokens = Tokens::new();
/// tokens.set_ttl(Duration::ZERO);
/// let t = tokens.issue("app-1");
/// assert_eq!(tokens.check(&t), TokenState::Expired);
/// assert_eq!(tokens.check("never-issued"), TokenState::Unknown);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenState {
    /// Issued and not expired.
    Valid,
    /// Issued, expired.
    Expired,
    /// Never issued.
    Unknown,
}

/// Access tokens a fake issued, per app.
///
/// ```
/// use alertkit::testkit::{TokenState, Tokens};
/// let mut tokens = Tokens::new();
/// let t = tokens.issue("app-1");
/// assert_eq!(tokens.check(&t), TokenState::Valid);
/// assert_eq!(tokens.owner(&t).as_deref(), Some("app-1"));
/// tokens.expire_all();
/// assert_eq!(tokens.check(&t), TokenState::Expired);
/// assert_eq!(tokens.check("forged"), TokenState::Unknown);
/// assert_eq!(tokens.fetches(), 1);
/// ```
#[derive(Debug)]
pub struct Tokens {
    pub(crate) ttl: Duration,
    pub(crate) fetches: u32,
    next: u32,
    issued: HashMap<String, (String, Instant)>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens::new()
    }
}

impl Tokens {
    /// None issued yet; tokens live 7,200 s.
    ///
    /// ```
    /// use alertkit::testkit::{TokenState, Tokens};
    /// let mut tokens = Tokens::new();
    /// assert_eq!(tokens.fetches(), 0);
    /// let t = tokens.issue("app-1");
    /// assert_eq!(tokens.check(&t), TokenState::Valid); // lives 7,200 s
    /// ```
    pub fn new() -> Self {
        Tokens {
            ttl: Duration::from_secs(7200),
            fetches: 0,
            next: 0,
            issued: HashMap::new(),
        }
    }

    /// Sets how long new tokens live.
    ///
    /// ```
    /// use std::time::Duration;
    /// use alertkit::testkit::{TokenState, Tokens};
    /// let mut tokens = Tokens::new();
    /// tokens.set_ttl(Duration::from_millis(20));
    /// let t = tokens.issue("app-1");
    /// std::thread::sleep(Duration::from_millis(30));
    /// assert_eq!(tokens.check(&t), TokenState::Expired);
    /// ```
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// How many tokens were issued.
    ///
    /// ```
    /// use alertkit::testkit::Tokens;
    /// let mut tokens = Tokens::new();
    /// tokens.issue("app-1");
    /// tokens.issue("app-2");
    /// assert_eq!(tokens.fetches(), 2);
    /// ```
    pub fn fetches(&self) -> u32 {
        self.fetches
    }

    /// Issues a new token to `app`.
    ///
    /// ```
    /// use alertkit::testkit::Tokens;
    /// let mut tokens = Tokens::new();
    /// let (a, b) = (tokens.issue("app-1"), tokens.issue("app-1"));
    /// assert_ne!(a, b); // a new token each time
    /// ```
    pub fn issue(&mut self, app: &str) -> String {
        self.fetches += 1;
        self.next += 1;
        let token = format!("fake-token-{}", self.next);
        self.issued
            .insert(token.clone(), (app.to_owned(), Instant::now() + self.ttl));
        token
    }

    /// Whether `token` is good.
    ///
    /// ```
    /// use alertkit::testkit::{TokenState, Tokens};
    /// let mut tokens = Tokens::new();
    /// let t = tokens.issue("app-1");
    /// assert_eq!(tokens.check(&t), TokenState::Valid);
    /// assert_eq!(tokens.check("forged"), TokenState::Unknown);
    /// ```
    pub fn check(&self, token: &str) -> TokenState {
        match self.issued.get(token) {
            Some((_, exp)) if *exp > Instant::now() => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }

    /// The app a token was issued to.
    ///
    /// ```
    /// use alertkit::testkit::Tokens;
    /// let mut tokens = Tokens::new();
    /// let t = tokens.issue("app-1");
    /// assert_eq!(tokens.owner(&t).as_deref(), Some("app-1"));
    /// assert_eq!(tokens.owner("forged"), None);
    /// ```
    pub fn owner(&self, token: &str) -> Option<String> {
        self.issued.get(token).map(|(app, _)| app.clone())
    }

    /// Expires every token issued so far.
    ///
    /// ```
    /// use alertkit::testkit::{TokenState, Tokens};
    /// let mut tokens = Tokens::new();
    /// let t = tokens.issue("app-1");
    /// tokens.expire_all();
    /// assert_eq!(tokens.check(&t), TokenState::Expired);
    /// let fresh = tokens.issue("app-1"); // issued after: valid
    /// assert_eq!(tokens.check(&fresh), TokenState::Valid);
    /// ```
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
