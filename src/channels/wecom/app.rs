//! Application messages: `GET /cgi-bin/gettoken` + `POST /cgi-bin/message/send` (§3),
//! and `POST /cgi-bin/appchat/send` to group chats the app created
//! (DolphinScheduler's "GROUP CHAT").

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use url::Url;

use super::errors;
use crate::channel::{Fanout, Preview, Receipt};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, TokenCache, join_api, redact_url, send_json};

/// Recipients per request (§3.2).
pub(crate) const MAX_USERS: usize = 1000;
pub(crate) const MAX_PARTIES: usize = 100;
pub(crate) const MAX_TAGS: usize = 100;

pub(crate) struct App {
    pub client: reqwest::Client,
    pub base: Url,
    pub corp_id: String,
    pub secret: SecretString,
    /// Required when there are users, parties or tags.
    pub agent_id: Option<i64>,
    pub users: Vec<String>,
    pub parties: Vec<String>,
    pub tags: Vec<String>,
    /// Group chats created by the app (`appchat/create`), one request each.
    pub chats: Vec<String>,
    pub tokens: Arc<TokenCache>,
}

const MESSAGE_SEND: &str = "cgi-bin/message/send";
/// How long WeCom drops an identical message (the platform's default,
/// 30 minutes): it covers retries and a host's restart; two different
/// alerts render differently (their times differ), so they are not merged.
const DUPLICATE_CHECK_INTERVAL_S: u32 = 1800;
const APPCHAT_SEND: &str = "cgi-bin/appchat/send";

fn chunk(list: &[String], size: usize, i: usize) -> String {
    list.chunks(size)
        .nth(i)
        .map(|c| c.join("|"))
        .unwrap_or_default()
}

fn split_ids(v: &Value, key: &str) -> Vec<String> {
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

impl App {
    /// `(touser, toparty, totag)` per request: at most 1,000 users and 100
    /// parties and tags each; `@all` is one request.
    pub fn batches(&self) -> Vec<(String, String, String)> {
        if self.users.is_empty() && self.parties.is_empty() && self.tags.is_empty() {
            return Vec::new();
        }
        if self.users.iter().any(|u| u == "@all") {
            return vec![("@all".to_owned(), String::new(), String::new())];
        }
        let n = [
            self.users.len().div_ceil(MAX_USERS),
            self.parties.len().div_ceil(MAX_PARTIES),
            self.tags.len().div_ceil(MAX_TAGS),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        (0..n)
            .map(|i| {
                (
                    chunk(&self.users, MAX_USERS, i),
                    chunk(&self.parties, MAX_PARTIES, i),
                    chunk(&self.tags, MAX_TAGS, i),
                )
            })
            .collect()
    }

    async fn fetch_token(&self) -> Result<(SecretString, Duration)> {
        let mut url = join_api(&self.base, "cgi-bin/gettoken")?;
        url.query_pairs_mut()
            .append_pair("corpid", &self.corp_id)
            .append_pair("corpsecret", self.secret.expose_secret());
        let reply =
            send_json::<Value>(&self.client, Method::GET, &url, HeaderMap::new(), None).await?;
        if let Some(e) = errors::classify(&reply) {
            // On gettoken, 40001 means a wrong secret: a config error (§3.3).
            return Err(if e.kind() == ErrorKind::TokenExpired {
                Error::new(ErrorKind::Unauthorized, e.message().to_owned())
                    .with_code(e.code().unwrap_or_default())
                    .with_retryable(false)
                    .with_http_status(reply.status.as_u16())
            } else {
                e
            });
        }
        crate::http::token_from(&reply, "access_token", "expires_in")
    }

    /// Sends one request; on a token error drops exactly the token it used
    /// (from the cache of this corp and secret), fetches a new one and
    /// resends once.
    async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        let stale = |e: &Error| e.code().is_some_and(|c| errors::TOKEN_CODES.contains(&c));
        let attempt = move |token: SecretString| async move {
            let mut url = join_api(&self.base, path)?;
            url.query_pairs_mut()
                .append_pair("access_token", token.expose_secret());
            let reply = send_json(
                &self.client,
                Method::POST,
                &url,
                HeaderMap::new(),
                Some(body),
            )
            .await?;
            match errors::classify(&reply) {
                None => Ok(reply),
                Some(e) => Err(e),
            }
        };
        self.tokens
            .with_token(|| self.fetch_token(), stale, attempt)
            .await
    }

    /// `(path, body)` of every request: recipient batches, then one per chat.
    fn bodies(&self, msg: &Map<String, Value>) -> Vec<(&'static str, Value)> {
        // Inside a dispatch, a retried or redelivered message is the same
        // JSON: the platform's duplicate check drops the copy (§3.2).
        let dedup = crate::channel::idempotency_key("").is_some();
        let mut out: Vec<(&'static str, Value)> = self
            .batches()
            .into_iter()
            .map(|(touser, toparty, totag)| {
                let mut b = msg.clone();
                b.insert("touser".into(), touser.into());
                b.insert("toparty".into(), toparty.into());
                b.insert("totag".into(), totag.into());
                b.insert("agentid".into(), self.agent_id.unwrap_or_default().into());
                if dedup {
                    b.insert("enable_duplicate_check".into(), 1.into());
                    b.insert(
                        "duplicate_check_interval".into(),
                        DUPLICATE_CHECK_INTERVAL_S.into(),
                    );
                }
                (MESSAGE_SEND, Value::Object(b))
            })
            .collect();
        for chat in &self.chats {
            // appchat/send takes no agentid and no duplicate check (§3, appchat).
            let mut b = msg.clone();
            b.retain(|k, _| k == "msgtype" || k == "text" || k == "markdown" || k == "textcard");
            b.insert("chatid".into(), chat.clone().into());
            b.insert("safe".into(), 0.into());
            out.push((APPCHAT_SEND, Value::Object(b)));
        }
        out
    }

    pub async fn send(&self, msg: &Map<String, Value>, receipt: Receipt) -> Result<Receipt> {
        let mut out = Fanout::new(receipt);
        for (path, body) in self.bodies(msg) {
            out.request();
            if path == APPCHAT_SEND {
                let chat = body["chatid"].as_str().unwrap_or_default().to_owned();
                match self.post(path, &body).await {
                    Ok(_) => out.delivered(1, None),
                    Err(e) => out.failed(&format!("a send to chat {chat}"), vec![chat], e),
                }
                continue;
            }
            match self.post(path, &body).await {
                Ok(reply) => {
                    out.delivered(1, reply.body.get("msgid").and_then(Value::as_str));
                    let mut rejected = split_ids(&reply.body, "invaliduser");
                    rejected.extend(
                        split_ids(&reply.body, "invalidparty")
                            .into_iter()
                            .map(|p| format!("party:{p}")),
                    );
                    rejected.extend(
                        split_ids(&reply.body, "invalidtag")
                            .into_iter()
                            .map(|t| format!("tag:{t}")),
                    );
                    rejected.extend(split_ids(&reply.body, "unlicenseduser"));
                    out.rejected(rejected, None);
                }
                Err(e) => {
                    let who: Vec<String> = ["touser", "toparty", "totag"]
                        .iter()
                        .flat_map(|k| split_ids(&body, k))
                        .collect();
                    out.failed(&format!("a send to {} recipients", who.len()), who, e);
                }
            }
        }
        out.finish()
    }

    pub fn preview(&self, msg: &Map<String, Value>) -> Result<Vec<Preview>> {
        self.bodies(msg)
            .into_iter()
            .map(|(path, b)| Ok(Preview::new(redact_url(&join_api(&self.base, path)?), b)))
            .collect()
    }
}
