//! The legacy flow: `GET /gettoken` then `POST /chat/send` per chat (§2.3).

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
use crate::http::{Reply, TokenCache, join_url, redact_url, send_json};

/// Legacy content limit (§2.3).
pub(crate) const MAX_CONTENT: usize = 5_000;

pub(crate) struct Conversation {
    pub client: reqwest::Client,
    pub base: Url,
    pub app_key: String,
    pub app_secret: SecretString,
    pub chat_ids: Vec<String>,
    pub tokens: Arc<TokenCache>,
}

impl Conversation {
    async fn fetch_token(&self) -> Result<(SecretString, Duration)> {
        let mut url = join_url(&self.base, "gettoken")?;
        url.query_pairs_mut()
            .append_pair("appkey", &self.app_key)
            .append_pair("appsecret", self.app_secret.expose_secret());
        let reply =
            send_json::<Value>(&self.client, Method::GET, &url, HeaderMap::new(), None).await?;
        if let Some(e) = errors::classify_errcode(&reply) {
            return Err(if e.kind() == ErrorKind::TokenExpired {
                e.with_retryable(false)
            } else {
                e
            });
        }
        crate::http::token_from(&reply, "access_token", "expires_in")
    }

    fn message(&self, r: &Rendered<'_>, msg_type: MsgType) -> Result<(Value, Vec<String>)> {
        let suffix = r.suffix(true);
        // Fit the text alone: the legacy limits apply to the content field.
        let (bytes, mut notes) = r.fit(MAX_CONTENT, &suffix, |t| Value::String(t.to_owned()))?;
        let text: String = serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorKind::Internal, "payload is not JSON").with_source(e))?;
        let msg = match msg_type {
            MsgType::Text => json!({"msgtype": "text", "text": {"content": text}}),
            MsgType::Markdown => {
                json!({"msgtype": "markdown", "markdown": {"title": r.title, "text": text}})
            }
            MsgType::ActionCard => {
                notes.push("action_card is sent as markdown to legacy chats".to_owned());
                json!({"msgtype": "markdown", "markdown": {"title": r.title, "text": text}})
            }
        };
        Ok((msg, notes))
    }

    /// One `chat/send`; on a token error drops the token used, fetches a new
    /// one and resends once.
    async fn post(&self, body: &Value) -> Result<Reply> {
        let stale = |e: &Error| matches!(e.code(), Some("40014" | "42001" | "40001"));
        let attempt = move |token: SecretString| async move {
            let mut url = join_url(&self.base, "chat/send")?;
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
            match errors::classify_errcode(&reply) {
                None => Ok(reply),
                Some(e) => Err(e),
            }
        };
        self.tokens
            .with_token(|| self.fetch_token(), stale, attempt)
            .await
    }

    pub async fn send(&self, r: &Rendered<'_>, msg_type: MsgType) -> Result<Receipt> {
        let (msg, notes) = self.message(r, msg_type)?;
        let mut out = Fanout::new(notes.into_iter().fold(Receipt::new(), Receipt::with_note));
        for chat in &self.chat_ids {
            out.request();
            match self.post(&json!({"chatid": chat, "msg": msg})).await {
                Ok(reply) => out.delivered(1, reply.body.get("messageId").and_then(Value::as_str)),
                Err(e) => out.failed(&format!("chat {chat}"), vec![chat.clone()], e),
            }
        }
        out.finish()
    }

    pub fn preview(&self, r: &Rendered<'_>, msg_type: MsgType) -> Result<Vec<Preview>> {
        let (msg, _) = self.message(r, msg_type)?;
        let url = join_url(&self.base, "chat/send")?;
        Ok(self
            .chat_ids
            .iter()
            .map(|c| {
                Preview::new(
                    redact_url(&url),
                    json!({"chatid": c, "msgtype": msg["msgtype"], "msg": msg}),
                )
            })
            .collect())
    }
}
