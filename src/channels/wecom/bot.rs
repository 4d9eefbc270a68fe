//! Group robot: `POST /cgi-bin/webhook/send?key=…` (§4).

use reqwest::Method;
use reqwest::header::HeaderMap;
use url::Url;

use super::errors;
use crate::channel::Receipt;
use crate::error::Result;
use crate::http::{redact_url, send_json};

pub(crate) struct Bot {
    pub client: reqwest::Client,
    pub url: Url,
}

impl Bot {
    pub fn target(&self) -> String {
        redact_url(&self.url)
    }

    /// The robot's budget key: its webhook key, hashed.
    pub fn destination(&self) -> String {
        let key = self
            .url
            .query_pairs()
            .find(|(k, _)| k == "key")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        crate::channel::destination_id("wecom-bot", &key)
    }

    pub async fn send<B: serde::Serialize>(&self, body: &B, receipt: Receipt) -> Result<Receipt> {
        let reply = send_json(
            &self.client,
            Method::POST,
            &self.url,
            HeaderMap::new(),
            Some(body),
        )
        .await?;
        match errors::classify(&reply) {
            None => Ok(receipt.with_requests(1)),
            Some(e) => Err(e),
        }
    }
}
