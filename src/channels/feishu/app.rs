//! App bot: tenant token + `POST /open-apis/im/v1/messages` per receiver (§11).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::{ReceiveIdType, errors};
use crate::channel::{Fanout, Preview, Receipt};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, TokenCache, join_api, redact_url, send_json, token_header};

pub(crate) struct App {
    pub client: reqwest::Client,
    pub base: Url,
    pub app_id: String,
    pub app_secret: SecretString,
    pub receive_id_type: ReceiveIdType,
    pub receive_ids: Vec<String>,
    pub tokens: Arc<TokenCache>,
}

impl App {
    async fn fetch_token(&self) -> Result<(SecretString, Duration)> {
        let url = join_api(&self.base, "open-apis/auth/v3/tenant_access_token/internal")?;
        let body = json!({"app_id": self.app_id, "app_secret": self.app_secret.expose_secret()});
        let reply = send_json(
            &self.client,
            Method::POST,
            &url,
            HeaderMap::new(),
            Some(&body),
        )
        .await?;
        if let Some(e) = errors::classify(&reply) {
            let retryable = e.is_retryable() && e.kind() != ErrorKind::TokenExpired;
            return Err(if retryable {
                e
            } else {
                Error::new(
                    ErrorKind::Unauthorized,
                    format!("tenant token refused: {}", e.message()),
                )
                .with_code(e.code().unwrap_or_default())
                .with_retryable(false)
                .with_http_status(reply.status.as_u16())
            });
        }
        crate::http::token_from(&reply, "tenant_access_token", "expire")
    }

    fn url(&self) -> Result<Url> {
        let mut url = join_api(&self.base, "open-apis/im/v1/messages")?;
        url.query_pairs_mut()
            .append_pair("receive_id_type", self.receive_id_type.as_str());
        Ok(url)
    }

    /// One message; on 99991663/99991668 drops the token used, fetches a new
    /// one and resends once.
    async fn post(&self, url: &Url, body: &Value) -> Result<Reply> {
        let stale = |e: &Error| e.kind() == ErrorKind::TokenExpired;
        let attempt = move |token: SecretString| async move {
            let mut headers = HeaderMap::new();
            headers.insert(
                AUTHORIZATION,
                token_header(&format!("Bearer {}", token.expose_secret()))?,
            );
            let reply = send_json(&self.client, Method::POST, url, headers, Some(body)).await?;
            match errors::classify(&reply) {
                None => Ok(reply),
                Some(e) => Err(e),
            }
        };
        self.tokens
            .with_token(|| self.fetch_token(), stale, attempt)
            .await
    }

    pub async fn send(&self, msg_type: &str, content: &str, receipt: Receipt) -> Result<Receipt> {
        let url = self.url()?;
        let mut out = Fanout::new(receipt);
        for id in &self.receive_ids {
            out.request();
            let mut body = json!({"receive_id": id, "msg_type": msg_type, "content": content});
            // One key per recipient: the platform sends one message per
            // `uuid` within an hour, so a retry or redelivery is not a copy.
            if let Some(uuid) = crate::channel::idempotency_key(id) {
                body["uuid"] = uuid.into();
            }
            match self.post(&url, &body).await {
                Ok(reply) => out.delivered(
                    1,
                    reply
                        .body
                        .pointer("/data/message_id")
                        .and_then(Value::as_str),
                ),
                Err(e) => out.failed(id, vec![id.clone()], e),
            }
        }
        out.finish()
    }

    pub fn preview(&self, msg_type: &str, content: &str) -> Result<Vec<Preview>> {
        let url = self.url()?;
        Ok(self
            .receive_ids
            .iter()
            .map(|id| {
                Preview::new(
                    redact_url(&url),
                    json!({"receive_id": id, "msg_type": msg_type, "content": content}),
                )
            })
            .collect())
    }
}
