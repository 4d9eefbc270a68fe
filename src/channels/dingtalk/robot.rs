//! Custom group robot: `POST /robot/send?access_token=…[&timestamp&sign]` (§1).

use reqwest::header::HeaderMap;
use secrecy::SecretString;
use url::Url;

use super::{errors, sign};
use crate::channel::Receipt;
use crate::error::Result;
use crate::http::{post_bytes, redact_url};

pub(crate) struct Robot {
    client: reqwest::Client,
    url: Url,
    secret: Option<SecretString>,
}

impl Robot {
    pub fn new(client: reqwest::Client, url: Url, secret: Option<SecretString>) -> Self {
        Robot {
            client,
            url,
            secret,
        }
    }

    /// The robot URL, redacted.
    pub fn target(&self) -> String {
        redact_url(&self.url)
    }

    /// The robot's budget key: its token, hashed.
    pub fn destination(&self) -> String {
        let token = self
            .url
            .query_pairs()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        crate::channel::destination_id("dingtalk-robot", &token)
    }

    /// Sends a fitted body, signing it now: the timestamp is taken per
    /// attempt, so a queued or retried alert never carries a stale signature.
    pub async fn send(&self, body: Vec<u8>) -> Result<Receipt> {
        let mut url = self.url.clone();
        if let Some(secret) = &self.secret {
            sign::sign_url(&mut url, secret, chrono::Utc::now().timestamp_millis());
        }
        let reply = post_bytes(&self.client, &url, HeaderMap::new(), body).await?;
        match errors::classify_errcode(&reply) {
            None => Ok(Receipt::new().with_requests(1)),
            Some(e) => Err(e),
        }
    }
}
