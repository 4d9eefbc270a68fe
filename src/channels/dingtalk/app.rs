//! An enterprise app's robot on the new API (api.dingtalk.com, §2.1, §2.2):
//! batch sends to users (20 per call) and sends to group conversations.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::{MsgType, Rendered, errors};
use crate::channel::{Fanout, Preview, Receipt};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, TokenCache, join_url, redact_url, send_json, token_header};

/// Users per batchSend call (§2.2).
pub(crate) const BATCH: usize = 20;
/// Largest `msgParam` the group API accepts (§2.2).
pub(crate) const MAX_PARAM: usize = 15_000;
const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";

pub(crate) struct App {
    pub client: reqwest::Client,
    pub base: Url,
    pub app_key: String,
    pub app_secret: SecretString,
    pub robot_code: String,
    pub user_ids: Vec<String>,
    pub conversations: Vec<String>,
    pub tokens: Arc<TokenCache>,
    pub flow_retries: u32,
    pub flow_wait: Duration,
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl App {
    async fn fetch_token(&self) -> Result<(SecretString, Duration)> {
        let url = join_url(&self.base, "v1.0/oauth2/accessToken")?;
        let body = json!({"appKey": self.app_key, "appSecret": self.app_secret.expose_secret()});
        let reply = send_json(
            &self.client,
            Method::POST,
            &url,
            HeaderMap::new(),
            Some(&body),
        )
        .await?;
        if let Some(e) = errors::classify_new_api(&reply) {
            // A refused app key/secret is a config problem, not an expired token.
            return Err(match e.kind() {
                ErrorKind::TokenExpired => Error::new(
                    ErrorKind::Unauthorized,
                    format!("token request refused: {}", e.message()),
                )
                .with_code(e.code().unwrap_or_default())
                .with_retryable(false)
                .with_http_status(reply.status.as_u16()),
                _ => e,
            });
        }
        crate::http::token_from(&reply, "accessToken", "expireIn")
    }

    /// POSTs with the cached token; on InvalidAuthentication drops that token,
    /// fetches a new one and tries once more.
    async fn call(&self, path: &str, body: &Value) -> Result<Reply> {
        let url = join_url(&self.base, path)?;
        let url = &url;
        let stale = |e: &Error| e.kind() == ErrorKind::TokenExpired;
        let attempt = move |token: SecretString| async move {
            let mut headers = HeaderMap::new();
            headers.insert(TOKEN_HEADER, token_header(token.expose_secret())?);
            let reply = send_json(&self.client, Method::POST, url, headers, Some(body)).await?;
            match errors::classify_new_api(&reply) {
                None => Ok(reply),
                Some(e) => Err(e),
            }
        };
        self.tokens
            .with_token(|| self.fetch_token(), stale, attempt)
            .await
    }

    fn message(
        &self,
        r: &Rendered<'_>,
        msg_type: MsgType,
    ) -> Result<(&'static str, String, Vec<String>)> {
        let suffix = r.suffix(false);
        let (key, (bytes, notes)) = match msg_type {
            MsgType::Text => ("sampleText", r.fit(MAX_PARAM, &suffix, |t| json!({"content": t}))?),
            MsgType::ActionCard if !r.links.is_empty() => (
                "sampleActionCard",
                r.fit(MAX_PARAM, &suffix, |t| {
                    json!({"title": r.title, "text": t, "singleTitle": r.links[0].0, "singleURL": r.links[0].1})
                })?,
            ),
            _ => ("sampleMarkdown", r.fit(MAX_PARAM, &suffix, |t| json!({"title": r.title, "text": t}))?),
        };
        // The param is a JSON *string* inside the body (§2.2); fit produced valid JSON text.
        let param = String::from_utf8(bytes)
            .map_err(|e| Error::new(ErrorKind::Internal, "payload is not UTF-8").with_source(e))?;
        Ok((key, param, notes))
    }

    pub async fn send(&self, r: &Rendered<'_>, msg_type: MsgType) -> Result<Receipt> {
        let (key, param, notes) = self.message(r, msg_type)?;
        let mut receipt = notes.into_iter().fold(Receipt::new(), Receipt::with_note);
        if !r.mentions.inline().is_empty() {
            receipt =
                receipt.with_note("app robot messages cannot mention anyone; mentions dropped");
        }
        let mut out = Fanout::new(receipt);
        for chunk in self.user_ids.chunks(BATCH) {
            let mut pending: Vec<String> = chunk.to_vec();
            let mut tries = 0;
            loop {
                let body = json!({"robotCode": self.robot_code, "userIds": pending, "msgKey": key, "msgParam": param});
                out.request();
                match self.call("v1.0/robot/oToMessages/batchSend", &body).await {
                    Ok(reply) => {
                        // Only ids of this batch count, each once: an answer
                        // listing others (or one twice) cannot make a delivery
                        // look partial or the count underflow.
                        let mut invalid = ids(&reply.body, "invalidStaffIdList");
                        invalid.retain(|id| pending.contains(id));
                        invalid.sort_unstable();
                        invalid.dedup();
                        let mut flow = ids(&reply.body, "flowControlledStaffIdList");
                        flow.retain(|id| pending.contains(id) && !invalid.contains(id));
                        flow.sort_unstable();
                        flow.dedup();
                        out.delivered(
                            pending.len().saturating_sub(invalid.len() + flow.len()),
                            None,
                        );
                        let note = (!invalid.is_empty())
                            .then(|| format!("invalid user ids: {}", invalid.join(", ")));
                        out.rejected(invalid, note);
                        pending = flow;
                    }
                    Err(e) => {
                        let who = std::mem::take(&mut pending);
                        out.failed(&format!("a batch of {} users", who.len()), who, e);
                    }
                }
                if pending.is_empty() {
                    break;
                }
                if tries >= self.flow_retries {
                    let note = format!(
                        "still flow-controlled after {tries} retries: {}",
                        pending.join(", ")
                    );
                    out.rejected(pending, Some(note));
                    break;
                }
                tries += 1;
                tokio::time::sleep(self.flow_wait).await;
            }
        }
        for conv in &self.conversations {
            let body = json!({"robotCode": self.robot_code, "openConversationId": conv, "msgKey": key, "msgParam": param});
            out.request();
            match self.call("v1.0/robot/groupMessages/send", &body).await {
                Ok(reply) => {
                    out.delivered(1, reply.body.get("processQueryKey").and_then(Value::as_str))
                }
                Err(e) => out.failed(&format!("conversation {conv}"), vec![conv.clone()], e),
            }
        }
        out.finish()
    }

    pub fn preview(&self, r: &Rendered<'_>, msg_type: MsgType) -> Result<Vec<Preview>> {
        let (key, param, _) = self.message(r, msg_type)?;
        let mut out = Vec::new();
        let users = join_url(&self.base, "v1.0/robot/oToMessages/batchSend")?;
        for chunk in self.user_ids.chunks(BATCH) {
            out.push(Preview::new(
                redact_url(&users),
                json!({"robotCode": self.robot_code, "userIds": chunk, "msgKey": key, "msgParam": param}),
            ));
        }
        let groups = join_url(&self.base, "v1.0/robot/groupMessages/send")?;
        for conv in &self.conversations {
            out.push(Preview::new(
                redact_url(&groups),
                json!({"robotCode": self.robot_code, "openConversationId": conv, "msgKey": key, "msgParam": param}),
            ));
        }
        Ok(out)
    }
}
