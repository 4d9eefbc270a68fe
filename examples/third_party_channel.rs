//! A third-party channel written outside alertkit (issue 19's third program):
//! [ntfy](https://ntfy.sh) push notifications, as a channel crate would
//! ship it: an [`AlertChannel`], built from an instance's params by
//! [`FromParams`], registered by type, configured as JSON like the built-in
//! ones, and tested with alertkit's testkit.
//!
//! `cargo run --example third_party_channel`: no network (a stand-in ntfy
//! server on 127.0.0.1). `cargo test --example third_party_channel` runs
//! the channel's own tests.

use std::time::Duration;

use alertkit::channel::{Limits, Rate, destination_id};
use alertkit::http::{Reply, parse_url, send_json, token_header};
use alertkit::secrecy::{ExposeSecret, SecretString};
use alertkit::template::{Format, Templates};
use alertkit::{
    Alert, AlertChannel, BuildContext, Error, ErrorKind, FromParams, Preview, Receipt, Registry,
    Severity, async_trait,
};
use serde::Deserialize;

// ---- the channel crate ----------------------------------------------------

/// An `ntfy` instance's params.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NtfyParams {
    /// The server (`https://ntfy.sh`, or your own).
    server: String,
    /// The topic to publish to.
    topic: String,
    /// An access token (`tk_...`), for protected topics.
    #[serde(default)]
    token: Option<SecretString>,
    /// `http://` only for a server on this machine unless this is set.
    #[serde(default)]
    allow_http: bool,
}

/// Publishes each alert to an ntfy topic (ntfy's JSON publishing API).
#[derive(Debug)]
pub struct Ntfy {
    client: reqwest::Client,
    server: url::Url,
    topic: String,
    token: Option<SecretString>,
    templates: Templates,
}

/// ntfy takes 4,096 bytes of message (more becomes an attachment).
const MAX_MESSAGE: usize = 4096;

impl FromParams for Ntfy {
    fn from_params(ctx: &BuildContext<'_>) -> alertkit::Result<Self> {
        let p: NtfyParams = ctx.params()?;
        if p.topic.trim().is_empty() {
            return Err(Error::config("params.topic", "topic is empty"));
        }
        Ok(Ntfy {
            client: ctx.http().client().clone(),
            server: parse_url("params.server", &p.server, p.allow_http)?,
            topic: p.topic,
            token: p.token,
            templates: ctx.templates().clone(),
        })
    }
}

impl Ntfy {
    fn body(&self, alert: &Alert) -> alertkit::Result<serde_json::Value> {
        let mut message = self.templates.render(Format::Text, alert, "ntfy")?;
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE - 3;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let priority = match alert.severity {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            _ => 2,
        };
        let mut body = serde_json::json!({
            "topic": self.topic,
            "title": self.templates.render(Format::Title, alert, "ntfy")?,
            "message": message,
            "priority": priority,
            "tags": [alert.severity.as_str()],
        });
        if let Some(link) = alert.links.first() {
            body["click"] = link.url.clone().into();
        }
        Ok(body)
    }
}

/// ntfy's answers: `{"id": ...}` on success, `{"code": 42901, "http": 429,
/// "error": "limit reached"}` otherwise.
fn classify(reply: &Reply) -> alertkit::Result<Receipt> {
    let status = reply.status.as_u16();
    if reply.status.is_success()
        && let Some(id) = reply.body["id"].as_str()
    {
        return Ok(Receipt::new().with_message_id(id));
    }
    let Some(code) = reply.body["code"].as_u64() else {
        // Not ntfy's JSON (a proxy's page): by the status alone.
        return Err(alertkit::http::unexpected_reply(reply));
    };
    let (kind, retryable) = match status {
        429 => (ErrorKind::RateLimited, true),
        401 | 403 => (ErrorKind::Unauthorized, false),
        413 => (ErrorKind::PayloadTooLarge, false),
        500..=599 => (ErrorKind::Platform, true),
        _ => (ErrorKind::Platform, false),
    };
    let message = reply.body["error"].as_str().unwrap_or("ntfy refused it");
    let mut e = Error::new(kind, message)
        .with_code(code.to_string())
        .with_retryable(retryable)
        .with_http_status(status);
    if kind == ErrorKind::RateLimited {
        e = e.with_retry_after(reply.retry_after.unwrap_or(Duration::from_secs(5)));
    }
    Err(e)
}

#[async_trait]
impl AlertChannel for Ntfy {
    async fn send(&self, alert: &Alert) -> alertkit::Result<Receipt> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.token {
            let value = format!("Bearer {}", t.expose_secret());
            headers.insert(reqwest::header::AUTHORIZATION, token_header(&value)?);
        }
        let body = self.body(alert)?;
        let reply = send_json(
            &self.client,
            reqwest::Method::POST,
            &self.server,
            headers,
            Some(&body),
        )
        .await?;
        classify(&reply)
    }

    fn kind(&self) -> &str {
        "ntfy"
    }

    /// ntfy.sh allows a burst of 60, then one message every 5 seconds.
    fn limits(&self) -> Limits {
        let topic = format!("{}{}", self.server, self.topic);
        Limits::new(
            destination_id("ntfy", &topic),
            vec![Rate::per_minute(12)],
            MAX_MESSAGE,
        )
    }

    fn preview(&self, alert: &Alert) -> alertkit::Result<Vec<Preview>> {
        Ok(vec![Preview::new(
            alertkit::http::redact_url(&self.server),
            self.body(alert)?,
        )])
    }
}

/// What the crate offers its users: the type, registered under its name.
pub fn register(registry: &mut Registry) -> alertkit::Result<()> {
    registry.register_channel::<Ntfy>("ntfy")?;
    Ok(())
}

// ---- a host using it ------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use alertkit::{Config, GroupStatus, Http, Notifier};
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // A stand-in ntfy server that wants the token.
    let ntfy = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("authorization", "Bearer tk_example"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": "sJuZKi2S", "event": "message"})),
        )
        .mount(&ntfy)
        .await;

    let mut registry = Registry::default();
    register(&mut registry)?;
    let config = Config::from_json(&format!(
        r#"{{"instances": [{{"name": "phones", "type": "ntfy",
                             "params": {{"server": "{}", "topic": "flink-prod", "token": "tk_example"}}}}],
             "groups": [{{"name": "flink-prod", "instances": ["phones"]}}]}}"#,
        ntfy.uri()
    ))?;
    let notifier = Notifier::from_config_with(&config, registry, Http::new())?;
    println!(
        "{:#}",
        notifier.preview("phones", &Alert::sample())?[0].body
    );

    let report = notifier.dispatch("flink-prod", &Alert::sample()).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    assert_eq!(report.status, GroupStatus::Delivered);
    let receipt = report.deliveries[0].receipt.as_ref().unwrap();
    assert_eq!(receipt.message_id.as_deref(), Some("sJuZKi2S"));
    let sent: serde_json::Value = ntfy.received_requests().await.unwrap()[0].body_json()?;
    assert_eq!(sent["topic"], "flink-prod");
    assert_eq!(sent["priority"], 5);
    // The token is in the header, never in a report or a Debug.
    assert!(!format!("{report:?}{notifier:?}").contains("tk_example"));
    Ok(())
}

// ---- the channel's own tests, with alertkit's testkit --------------------

#[cfg(test)]
mod tests {
    use super::*;
    use alertkit::testkit::recording_registry;
    use alertkit::{Config, GroupStatus, Http, Notifier, Outcome};
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};

    /// The recording registry (the in-memory `recording` type) plus ntfy.
    fn notifier(config: serde_json::Value) -> alertkit::Result<Notifier> {
        let mut registry = recording_registry();
        register(&mut registry)?;
        Notifier::from_config_with(&Config::from_value(config)?, registry, Http::new())
    }

    #[test]
    fn bad_params_name_the_field() {
        let e = notifier(
            serde_json::json!({"instances": [{"name": "n", "type": "ntfy",
            "params": {"server": "https://ntfy.sh", "topik": "x"}}]}),
        )
        .unwrap_err();
        assert_eq!((e.instance(), e.field()), (Some("n"), Some("params.topik")));
        let e = notifier(
            serde_json::json!({"instances": [{"name": "n", "type": "ntfy",
            "params": {"server": "http://ntfy.example.com", "topic": "x"}}]}),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("params.server"), "{e}");
        // The name is taken once.
        let mut registry = Registry::default();
        register(&mut registry).unwrap();
        assert_eq!(
            register(&mut registry).unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
    }

    /// A refused publish fails the member with ntfy's code and the HTTP
    /// status, and the group's other member still gets the alert.
    #[tokio::test]
    async fn a_refusal_is_classified_and_the_others_still_deliver() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30").set_body_json(
                serde_json::json!({"code": 42901, "http": 429, "error": "limit reached: too many requests"}),
            ))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(403).set_body_json(
                serde_json::json!({"code": 40301, "http": 403, "error": "forbidden"}),
            ))
            .mount(&server)
            .await;
        let n = notifier(serde_json::json!({
            "instances": [
                {"name": "phones", "type": "ntfy",
                 "params": {"server": server.uri(), "topic": "ops", "token": "tk_secret"},
                 "policy": {"retry": false, "rate_limit": false}},
                {"name": "mem", "type": "recording"}],
            "groups": [{"name": "g", "instances": ["phones", "mem"]}]}))
        .unwrap();

        let e = n
            .channel("phones")
            .unwrap()
            .send(&Alert::new("x"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.code(), e.http_status(), e.retry_after()),
            (
                ErrorKind::RateLimited,
                Some("42901"),
                Some(429),
                Some(Duration::from_secs(30))
            )
        );

        let report = n
            .dispatch("g", &Alert::new("orders-etl FAILED"))
            .await
            .unwrap();
        assert_eq!(report.status, GroupStatus::Partial);
        let phones = report.delivery("phones").unwrap();
        let e = phones.error.as_ref().unwrap();
        assert_eq!(
            (phones.outcome, e.kind(), e.code(), e.http_status()),
            (
                Outcome::Failed,
                ErrorKind::Unauthorized,
                Some("40301"),
                Some(403)
            )
        );
        assert_eq!(report.delivery("mem").unwrap().outcome, Outcome::Delivered);
        assert!(
            !serde_json::to_string(&report)
                .unwrap()
                .contains("tk_secret")
        );
    }

    /// A strict fake ntfy on alertkit's own fake-server machinery: scripted
    /// faults, dropped connections and recorded requests, as the built-in
    /// channels are tested.
    struct FakeNtfy;

    impl alertkit::testkit::Platform for FakeNtfy {
        fn handle(
            &mut self,
            req: &alertkit::testkit::wiremock::Request,
            _query: &std::collections::BTreeMap<String, String>,
        ) -> (u16, serde_json::Value) {
            let token = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if token != Some("Bearer tk_secret") {
                return (
                    403,
                    serde_json::json!({"code": 40301, "http": 403, "error": "forbidden"}),
                );
            }
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if body["topic"] != "ops" {
                return (
                    404,
                    serde_json::json!({"code": 40401, "http": 404, "error": "topic not found"}),
                );
            }
            (200, serde_json::json!({"id": "m1", "event": "message"}))
        }

        fn is_message(&self, _path: &str) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_dropped_connection_is_a_retryable_failure_and_nothing_is_counted_twice() {
        use alertkit::testkit::{FakeServer, Fault};
        let fake = FakeServer::start(FakeNtfy).await;
        fake.push_fault(Fault::Drop);
        let n = notifier(serde_json::json!({
            "instances": [{"name": "phones", "type": "ntfy",
                           "params": {"server": fake.uri(), "topic": "ops", "token": "tk_secret"},
                           "policy": {"retry": false, "rate_limit": false}}]}))
        .unwrap();
        let phones = n.channel("phones").unwrap();
        let e = phones.send(&Alert::new("x")).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        let receipt = phones.send(&Alert::new("x")).await.unwrap();
        assert_eq!(receipt.message_id.as_deref(), Some("m1"));
        assert_eq!(fake.requests().len(), 2);
        assert_eq!(fake.accepted().len(), 1);
    }

    #[test]
    fn messages_fit_ntfy_limit() {
        let n = notifier(
            serde_json::json!({"instances": [{"name": "n", "type": "ntfy",
            "params": {"server": "https://ntfy.sh", "topic": "ops"}}]}),
        )
        .unwrap();
        let alert = Alert::new("big").body("告警".repeat(5000));
        let body = &n.preview("n", &alert).unwrap()[0].body;
        let message = body["message"].as_str().unwrap();
        assert!(message.len() <= MAX_MESSAGE && message.ends_with('…'));
    }
}
