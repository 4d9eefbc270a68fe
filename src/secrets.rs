//! Secrets an instance is configured with, and a channel wrapper that takes
//! them out of everything a platform says back (errors and receipt notes),
//! so a platform that echoes the request cannot put a token, a signature
//! or a password into a report or a log.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;

use crate::alert::Alert;
use crate::channel::{AlertChannel, Limits, Preview, Receipt};
use crate::config::InstanceConfig;
use crate::error::Result;

/// The secret values in an instance's params: values of secret-named params
/// (`secret`, `password`, `token`, `key`, ...), URL passwords, query values
/// and token-like path segments, and the base64 forms SMTP `AUTH` sends.
pub(crate) fn secrets_of(config: &InstanceConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in &config.params {
        collect(k, v, false, &mut out);
    }
    let user = ["username", "user", "User"]
        .iter()
        .find_map(|k| config.params.get(*k)?.as_str());
    let pass = ["password", "Password", "pass"]
        .iter()
        .find_map(|k| config.params.get(*k)?.as_str());
    if let (Some(u), Some(p)) = (user, pass) {
        let b64 = base64::engine::general_purpose::STANDARD;
        out.push(b64.encode(format!("\0{u}\0{p}")));
        out.push(b64.encode(p));
    }
    out.retain(|s| s.len() >= 4);
    out.sort_unstable_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn collect(key: &str, v: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
    // A robot's keyword is a word the message must hold, not a secret.
    let secret = secret
        || (crate::config::is_secret_name(key) && !key.to_ascii_lowercase().starts_with("keyword"));
    match v {
        serde_json::Value::String(s) if secret => out.push(s.clone()),
        serde_json::Value::String(s) => {
            if let Ok(u) = url::Url::parse(s)
                && u.has_host()
            {
                if let Some(p) = u.password() {
                    out.push(p.to_owned());
                }
                out.extend(u.query_pairs().map(|(_, v)| v.into_owned()));
                let mut after_hook = false;
                for seg in u.path_segments().into_iter().flatten() {
                    if after_hook || crate::http::looks_like_token(seg) {
                        out.push(seg.to_owned());
                    }
                    after_hook |= seg == "hook";
                }
            }
        }
        serde_json::Value::Number(n) if secret => out.push(n.to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|x| collect(key, x, secret, out)),
        serde_json::Value::Object(map) => map.iter().for_each(|(k, x)| collect(k, x, secret, out)),
        _ => {}
    }
}

/// Sends through `inner`, taking `secrets` (and anything credential-like,
/// see [`crate::http::scrub`]) out of its errors and receipt notes.
pub(crate) struct Scrubbed {
    inner: Arc<dyn AlertChannel>,
    secrets: Box<[String]>,
}

impl std::fmt::Debug for Scrubbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets themselves never: only how many there are.
        f.debug_struct("Scrubbed")
            .field("inner", &self.inner)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Scrubbed {
    pub(crate) fn wrap(
        inner: Arc<dyn AlertChannel>,
        secrets: Vec<String>,
    ) -> Arc<dyn AlertChannel> {
        if secrets.is_empty() {
            return inner;
        }
        Arc::new(Scrubbed {
            inner,
            secrets: secrets.into_boxed_slice(),
        })
    }

    fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        crate::http::scrub(text, &secrets)
    }
}

#[async_trait]
impl AlertChannel for Scrubbed {
    async fn send(&self, alert: &Alert) -> Result<Receipt> {
        match self.inner.send(alert).await {
            Ok(mut r) => {
                if !r.notes.is_empty() {
                    r.notes = r.notes.iter().map(|n| self.scrub(n)).collect();
                }
                Ok(r)
            }
            Err(e) => Err(e.map_message(|m| self.scrub(m))),
        }
    }

    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }

    fn preview(&self, alert: &Alert) -> Result<Vec<Preview>> {
        self.inner
            .preview(alert)
            .map_err(|e| e.map_message(|m| self.scrub(m)))
    }
}
