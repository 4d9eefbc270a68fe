//! A fake WeCom on 127.0.0.1, following the mock checklists of
//! platforms.md §3.6 (gettoken, message/send) and §4 (group robot): token
//! checks with expiry and revocation, recipient validation with partial
//! `invaliduser` answers and 81013, `appchat/send` to chats the app
//! created (86001 for a malformed chat id, 86003 for an unknown one),
//! per-type byte limits answering 40058,
//! a per-key 20/min robot window answering 45009, and WeCom's hint suffix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::Request;

use super::Recorded;
pub use super::fake::Fault;
use super::fake::{FakeServer, Platform, RateWindow, TokenState, Tokens};

fn err(code: i64, msg: &str) -> (u16, Value) {
    // Real WeCom errors carry a hint and the caller's IP (§3.3).
    (
        200,
        json!({"errcode": code,
               "errmsg": format!("{msg}, hint: [1700000000_fake], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}")}),
    )
}

#[derive(Debug)]
struct App {
    corp_id: String,
    secret: String,
    agent_id: i64,
}

#[derive(Debug)]
struct State {
    apps: Vec<App>,
    users: HashSet<String>,
    parties: HashSet<String>,
    tags: HashSet<String>,
    bot_keys: HashSet<String>,
    /// chat id → the corp whose app created it.
    chats: HashMap<String, String>,
    tokens: Tokens,
    token_agent: HashMap<String, i64>,
    rate: RateWindow,
    sent: usize,
}

/// A fake WeCom server: register apps, their visible users, parties and
/// tags, and robot keys; point instances at [`uri`](FakeWeCom::uri) with
/// `base_url`, or at [`webhook`](FakeWeCom::webhook).
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use alertkit::testkit::wecom::FakeWeCom;
/// use alertkit::{Alert, Config, InstanceConfig, Notifier};
/// let wecom = FakeWeCom::start().await;
/// wecom.add_bot("k1");
/// let config = Config::default().with_instance(InstanceConfig::new("ops", "wecom")
///     .param("webhook", wecom.webhook("k1")));
/// let ops = Notifier::from_config(&config).unwrap().channel("ops").unwrap();
/// ops.send(&Alert::new("disk full")).await.unwrap();
/// assert_eq!(wecom.accepted()[0].body["msgtype"], "markdown");
/// # });
/// ```
#[derive(Clone)]
pub struct FakeWeCom {
    fake: FakeServer<State>,
}

impl std::fmt::Debug for FakeWeCom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeWeCom")
            .field("uri", &self.uri())
            .finish()
    }
}

impl FakeWeCom {
    /// Starts the server on 127.0.0.1.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// assert!(wecom.uri().starts_with("http://127.0.0.1:"));
    /// assert!(wecom.requests().is_empty());
    /// # });
    /// ```
    pub async fn start() -> Self {
        let state = State {
            apps: Vec::new(),
            users: HashSet::new(),
            parties: HashSet::new(),
            tags: HashSet::new(),
            bot_keys: HashSet::new(),
            chats: HashMap::new(),
            tokens: Tokens::new(),
            token_agent: HashMap::new(),
            rate: RateWindow::new(20, Duration::from_secs(60), Duration::from_secs(60)),
            sent: 0,
        };
        FakeWeCom {
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
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// use alertkit::{Config, InstanceConfig, Notifier};
    /// let wecom = FakeWeCom::start().await;
    /// // app instances take the API's address as `base_url`
    /// let app = InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    ///     .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", vec!["zhangsan"])
    ///     .param("base_url", wecom.uri());
    /// assert!(Notifier::from_config(&Config::default().with_instance(app)).is_ok());
    /// # });
    /// ```
    pub fn uri(&self) -> String {
        self.fake.uri()
    }

    /// The robot webhook URL for `key`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// assert_eq!(wecom.webhook("k1"), format!("{}/cgi-bin/webhook/send?key=k1", wecom.uri()));
    /// # });
    /// ```
    pub fn webhook(&self, key: &str) -> String {
        format!("{}/cgi-bin/webhook/send?key={key}", self.uri())
    }

    /// Registers an application.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_recipients(&["zhangsan"], &[], &[]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    /// #         .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", users.to_vec())
    /// #         .param("base_url", wecom.uri()).policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// app(&["zhangsan"]).send(&Alert::new("disk full")).await.unwrap();
    /// let msg = &wecom.accepted()[0].body;
    /// assert_eq!((msg["touser"].as_str(), msg["agentid"].as_i64()), (Some("zhangsan"), Some(1000002)));
    /// # });
    /// ```
    pub fn add_app(&self, corp_id: &str, secret: &str, agent_id: i64) {
        self.with(|s| {
            s.apps.push(App {
                corp_id: corp_id.into(),
                secret: secret.into(),
                agent_id,
            })
        });
    }

    /// Users, parties and tags in the apps' visible range; others are invalid.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_recipients(&["zhangsan", "lisi"], &["2"], &[]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    /// #         .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", users.to_vec())
    /// #         .param("base_url", wecom.uri()).policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let receipt = app(&["zhangsan", "ghost"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert_eq!(receipt.rejected_recipients, ["ghost"]);
    /// # });
    /// ```
    pub fn add_recipients(&self, users: &[&str], parties: &[&str], tags: &[&str]) {
        self.with(|s| {
            s.users.extend(users.iter().map(|u| u.to_string()));
            s.parties.extend(parties.iter().map(|u| u.to_string()));
            s.tags.extend(tags.iter().map(|u| u.to_string()));
        });
    }

    /// A group chat created by an app of `corp_id` (`appchat/create`):
    /// `appchat/send` reaches it with a token of that corp.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// use alertkit::{Alert, Config, ErrorKind, InstanceConfig, Notifier};
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_chat("ww-corp", "wrOpsChat01");
    /// let chat = |id: &str| Notifier::from_config(&Config::default().with_instance(
    ///     InstanceConfig::new("chat", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    ///         .param("secret", "corp-secret").param("chat_ids", vec![id]).param("base_url", wecom.uri()),
    /// )).unwrap().channel("chat").unwrap();
    /// assert!(chat("wrOpsChat01").send(&Alert::new("disk full")).await.is_ok());
    /// let e = chat("wrOtherChat1").send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::InvalidRecipient, Some("86003")));
    /// # });
    /// ```
    pub fn add_chat(&self, corp_id: &str, chat_id: &str) {
        self.with(|s| s.chats.insert(chat_id.to_owned(), corp_id.to_owned()));
    }

    /// Registers a robot key.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// use alertkit::{Alert, ErrorKind};
    /// let wecom = FakeWeCom::start().await;
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("webhook", wecom.webhook("k1"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err(); // unknown key
    /// assert_eq!(e.kind(), ErrorKind::Unauthorized);
    /// wecom.add_bot("k1");
    /// assert!(ops.send(&Alert::new("disk full")).await.is_ok());
    /// # });
    /// ```
    pub fn add_bot(&self, key: &str) {
        self.with(|s| s.bot_keys.insert(key.to_owned()));
    }

    /// Expires every issued token now.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_recipients(&["zhangsan"], &[], &[]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    /// #         .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", users.to_vec())
    /// #         .param("base_url", wecom.uri()).policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let ops = app(&["zhangsan"]);
    /// ops.send(&Alert::new("one")).await.unwrap();
    /// wecom.expire_tokens(); // the next send gets 42001 and must refresh
    /// ops.send(&Alert::new("two")).await.unwrap();
    /// assert_eq!(wecom.token_fetches(), 2);
    /// # });
    /// ```
    pub fn expire_tokens(&self) {
        self.with(|s| s.tokens.expire_all());
    }

    /// gettoken calls served so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_recipients(&["zhangsan"], &[], &[]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    /// #         .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", users.to_vec())
    /// #         .param("base_url", wecom.uri()).policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// let ops = app(&["zhangsan"]);
    /// ops.send(&Alert::new("one")).await.unwrap();
    /// ops.send(&Alert::new("two")).await.unwrap();
    /// assert_eq!(wecom.token_fetches(), 1);
    /// # });
    /// ```
    pub fn token_fetches(&self) -> u32 {
        self.with(|s| s.tokens.fetches)
    }

    /// Robot rate limit per key (default 20 per 60 s).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// use alertkit::{Alert, ErrorKind};
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_bot("k1");
    /// wecom.set_rate_limit(1, Duration::from_secs(60));
    /// # let ops = alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("webhook", wecom.webhook("k1"))
    /// #         .policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// ops.send(&Alert::new("disk full")).await.unwrap();
    /// let e = ops.send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::RateLimited, Some("45009")));
    /// assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    /// # });
    /// ```
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        self.with(|s| s.rate = RateWindow::new(limit, window, window));
    }

    /// Answers the next request with `fault`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use alertkit::testkit::wecom::{FakeWeCom, Fault};
    /// use alertkit::{Alert, Config, ErrorKind, InstanceConfig, Notifier, policy::PolicyConfig};
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_bot("k1");
    /// let mut ops = InstanceConfig::new("ops", "wecom").param("webhook", wecom.webhook("k1")).policy(PolicyConfig::off());
    /// ops.timeout_ms = Some(100);
    /// let group = alertkit::GroupConfig::new("g", ["ops"]);
    /// let notifier = Notifier::from_config(&Config::default().with_instance(ops).with_group(group)).unwrap();
    /// wecom.push_fault(Fault::Delay(Duration::from_secs(5)));
    /// let report = notifier.dispatch("g", &Alert::new("disk full")).await.unwrap();
    /// assert_eq!(report.deliveries[0].error.as_ref().unwrap().kind(), ErrorKind::Timeout);
    /// # });
    /// ```
    pub fn push_fault(&self, fault: Fault) {
        self.fake.push_fault(fault);
    }

    /// Answers the next request whose path ends with `path_suffix` with `fault`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::wecom::{FakeWeCom, Fault};
    /// use alertkit::{Alert, ErrorKind};
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_recipients(&["zhangsan"], &[], &[]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    /// #         .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", users.to_vec())
    /// #         .param("base_url", wecom.uri()).policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// wecom.push_fault_on("gettoken", Fault::errcode(40001, "invalid credential"));
    /// let e = app(&["zhangsan"]).send(&Alert::new("disk full")).await.unwrap_err();
    /// assert_eq!((e.kind(), e.code()), (ErrorKind::Unauthorized, Some("40001")));
    /// # });
    /// ```
    pub fn push_fault_on(&self, path_suffix: &str, fault: Fault) {
        self.fake.push_fault_on(path_suffix, fault);
    }

    /// Every request so far.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_recipients(&["zhangsan"], &[], &[]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    /// #         .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", users.to_vec())
    /// #         .param("base_url", wecom.uri()).policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// app(&["zhangsan"]).send(&Alert::new("disk full")).await.unwrap();
    /// let paths: Vec<String> = wecom.requests().into_iter().map(|r| r.path).collect();
    /// assert_eq!(paths, ["/cgi-bin/gettoken", "/cgi-bin/message/send"]);
    /// # });
    /// ```
    pub fn requests(&self) -> Vec<Recorded> {
        self.fake.requests()
    }

    /// Messages accepted so far (app sends and robot messages).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::Alert;
    /// use alertkit::testkit::wecom::FakeWeCom;
    /// let wecom = FakeWeCom::start().await;
    /// wecom.add_app("ww-corp", "corp-secret", 1000002);
    /// wecom.add_recipients(&["zhangsan"], &[], &[]);
    /// # let app = |users: &[&str]| alertkit::Notifier::from_config(&alertkit::Config::default().with_instance(
    /// #     alertkit::InstanceConfig::new("ops", "wecom").param("mode", "app").param("corp_id", "ww-corp")
    /// #         .param("secret", "corp-secret").param("agent_id", 1000002).param("to_users", users.to_vec())
    /// #         .param("base_url", wecom.uri()).policy(alertkit::policy::PolicyConfig::off()))).unwrap().channel("ops").unwrap();
    /// app(&["zhangsan"]).send(&Alert::new("disk full")).await.unwrap();
    /// assert_eq!(wecom.accepted().len(), 1); // the token request is not a message
    /// assert_eq!(wecom.accepted()[0].path, "/cgi-bin/message/send");
    /// # });
    /// ```
    pub fn accepted(&self) -> Vec<Recorded> {
        self.fake.accepted()
    }
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| {
            s.split('|')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The WeCom error for a message body of an unknown type, an empty or
/// too long content or a bad text card (message/send and appchat/send).
fn check_content(body: &Value) -> Option<(u16, Value)> {
    let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
    match msgtype {
        "text" | "markdown" => match content_len(body, msgtype) {
            None | Some(0) => Some(err(44004, "empty content")),
            Some(n) if n > 2048 => Some(err(
                40058,
                &format!("{msgtype}.content exceed max length 2048"),
            )),
            _ => None,
        },
        "textcard" => {
            let card = &body["textcard"];
            let bad = card["title"]
                .as_str()
                .is_none_or(|t| t.chars().count() > 128)
                || card["description"]
                    .as_str()
                    .is_none_or(|d| d.chars().count() > 512)
                || card["url"].as_str().is_none_or(str::is_empty);
            bad.then(|| err(40058, "invalid textcard"))
        }
        _ => Some(err(40008, "invalid message type")),
    }
}

/// Bytes of `body[msgtype].content`, if any.
fn content_len(body: &Value, msgtype: &str) -> Option<usize> {
    body.get(msgtype)?.get("content")?.as_str().map(str::len)
}

impl State {
    fn gettoken(&mut self, q: &BTreeMap<String, String>) -> (u16, Value) {
        let corp = q.get("corpid").map(String::as_str).unwrap_or("");
        let secret = q.get("corpsecret").map(String::as_str).unwrap_or("");
        let Some(app) = self.apps.iter().find(|a| a.corp_id == corp) else {
            return err(40013, "invalid corpid");
        };
        if app.secret != secret {
            return err(40001, "invalid credential");
        }
        let agent = app.agent_id;
        let token = self.tokens.issue(corp);
        self.token_agent.insert(token.clone(), agent);
        (
            200,
            json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.tokens.ttl.as_secs()}),
        )
    }

    /// The request's `access_token`, or WeCom's answer when it is missing,
    /// expired or unknown.
    fn token_of<'q>(&self, q: &'q BTreeMap<String, String>) -> Result<&'q String, (u16, Value)> {
        let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
            return Err(err(41001, "access_token missing"));
        };
        match self.tokens.check(token) {
            TokenState::Valid => Ok(token),
            TokenState::Expired => Err(err(42001, "access_token expired")),
            TokenState::Unknown => Err(err(40014, "invalid access_token")),
        }
    }

    fn message_send(&mut self, req: &Request, q: &BTreeMap<String, String>) -> (u16, Value) {
        let token = match self.token_of(q) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return err(40035, "invalid json");
        };
        if body.get("agentid").and_then(Value::as_i64) != self.token_agent.get(token).copied() {
            return err(40056, "invalid agentid");
        }
        if let Some(e) = check_content(&body) {
            return e;
        }
        let (users, parties, tags) = (
            ids(&body, "touser"),
            ids(&body, "toparty"),
            ids(&body, "totag"),
        );
        if users.len() > 1000 || parties.len() > 100 || tags.len() > 100 {
            return err(40058, "too many recipients");
        }
        if users == ["@all"] {
            self.sent += 1;
            return (
                200,
                json!({"errcode": 0, "errmsg": "ok", "msgid": format!("msg-{}", self.sent)}),
            );
        }
        let bad = |list: &[String], known: &HashSet<String>| -> Vec<String> {
            list.iter()
                .filter(|x| !known.contains(*x))
                .map(|x| x.to_lowercase())
                .collect()
        };
        let (bu, bp, bt) = (
            bad(&users, &self.users),
            bad(&parties, &self.parties),
            bad(&tags, &self.tags),
        );
        if bu.len() + bp.len() + bt.len() == users.len() + parties.len() + tags.len() {
            return err(81013, "user & party & tag all invalid");
        }
        self.sent += 1;
        let mut answer =
            json!({"errcode": 0, "errmsg": "ok", "msgid": format!("msg-{}", self.sent)});
        for (key, list) in [
            ("invaliduser", bu),
            ("invalidparty", bp),
            ("invalidtag", bt),
        ] {
            if !list.is_empty() {
                answer[key] = json!(list.join("|"));
            }
        }
        (200, answer)
    }

    fn appchat_send(&mut self, req: &Request, q: &BTreeMap<String, String>) -> (u16, Value) {
        let token = match self.token_of(q) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return err(40035, "invalid json");
        };
        let chat = body.get("chatid").and_then(Value::as_str).unwrap_or("");
        if chat.is_empty() || chat.len() > 32 || !chat.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return err(86001, "invalid chatid");
        }
        // A token is issued per corp (`Tokens::issue(corp)`); the chat must
        // belong to an app of the token's corp.
        let corp_of_token = self.tokens.owner(token);
        match self.chats.get(chat) {
            Some(corp) if Some(corp.as_str()) == corp_of_token.as_deref() => {}
            _ => return err(86003, "chatid not exist"),
        }
        if let Some(e) = check_content(&body) {
            return e;
        }
        self.sent += 1;
        (200, json!({"errcode": 0, "errmsg": "ok"}))
    }

    fn webhook(&mut self, req: &Request, q: &BTreeMap<String, String>) -> (u16, Value) {
        let key = q.get("key").map(String::as_str).unwrap_or("");
        if !self.bot_keys.contains(key) {
            return err(93000, "invalid webhook url");
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return err(40035, "invalid json");
        };
        let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
        let limit = match msgtype {
            "text" => 2048,
            "markdown" | "markdown_v2" => 4096,
            _ => return err(40008, "invalid message type"),
        };
        match content_len(&body, msgtype) {
            None | Some(0) => return err(44004, "empty content"),
            Some(n) if n > limit => {
                return err(
                    40058,
                    &format!(
                        "{msgtype}.content exceed max length {limit}. invalid Request Parameter"
                    ),
                );
            }
            _ => {}
        }
        if self.rate.limited(key) {
            return err(45009, "api freq out of limit");
        }
        (200, json!({"errcode": 0, "errmsg": "ok"}))
    }
}

impl Platform for State {
    fn handle(&mut self, req: &Request, query: &BTreeMap<String, String>) -> (u16, Value) {
        match (req.method.as_str(), req.url.path()) {
            ("GET", "/cgi-bin/gettoken") => self.gettoken(query),
            ("POST", "/cgi-bin/message/send") => self.message_send(req, query),
            ("POST", "/cgi-bin/appchat/send") => self.appchat_send(req, query),
            ("POST", "/cgi-bin/webhook/send") => self.webhook(req, query),
            _ => (404, json!({"errcode": 404, "errmsg": "not found"})),
        }
    }

    fn is_message(&self, path: &str) -> bool {
        path != "/cgi-bin/gettoken"
    }

    /// §3.2: with `enable_duplicate_check`, an app drops a message whose
    /// JSON is identical to one it sent within `duplicate_check_interval`
    /// (default 1,800 s, at most 4 h).
    fn dedup_key(
        &self,
        req: &Request,
        query: &BTreeMap<String, String>,
    ) -> Option<(String, Duration)> {
        if req.url.path() != "/cgi-bin/message/send" {
            return None;
        }
        let body: Value = serde_json::from_slice(&req.body).ok()?;
        if body.get("enable_duplicate_check").and_then(Value::as_i64) != Some(1) {
            return None;
        }
        let keep = body
            .get("duplicate_check_interval")
            .and_then(Value::as_u64)
            .unwrap_or(1800)
            .min(4 * 3600);
        let corp = self.tokens.owner(query.get("access_token")?)?;
        Some((format!("app:{corp}:{body}"), Duration::from_secs(keep)))
    }
}
