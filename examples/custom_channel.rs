//! A third-party channel: an in-house incident API, written outside alertkit.
//!
//! `cargo run --example custom_channel` starts a stand-in incident API on
//! 127.0.0.1, registers the `incident` type, builds a group from config and
//! dispatches to it.

use alertkit::http::{Reply, parse_url, send_json};
use alertkit::{
    Alert, AlertChannel, BuildContext, Config, Error, ErrorKind, FromParams, Http, Notifier,
    Receipt, Registry, async_trait,
};
use serde::Deserialize;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The params of an `incident` instance.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentParams {
    url: String,
    service: String,
}

#[derive(Debug)]
struct Incident {
    client: reqwest::Client,
    url: url::Url,
    service: String,
}

#[async_trait]
impl AlertChannel for Incident {
    async fn send(&self, alert: &Alert) -> alertkit::Result<Receipt> {
        let body = serde_json::json!({"service": self.service, "summary": alert.title,
                                      "severity": alert.severity.as_str(), "details": alert});
        let reply: Reply = send_json(
            &self.client,
            reqwest::Method::POST,
            &self.url,
            Default::default(),
            Some(&body),
        )
        .await?;
        if reply.status.is_success() {
            let id = reply.body["id"].as_str().unwrap_or_default().to_owned();
            return Ok(Receipt::new().with_message_id(id));
        }
        let retryable = reply.status.is_server_error() || reply.status.as_u16() == 429;
        Err(Error::new(ErrorKind::Platform, reply.message())
            .with_code(reply.status.as_u16().to_string())
            .with_retryable(retryable))
    }

    fn kind(&self) -> &str {
        "incident"
    }
}

/// How a `Registry` builds an `incident` instance from its params.
impl FromParams for Incident {
    fn from_params(ctx: &BuildContext<'_>) -> alertkit::Result<Self> {
        let p: IncidentParams = ctx.params()?;
        Ok(Incident {
            client: ctx.http().client().clone(),
            url: parse_url("params.url", &p.url, false)?,
            service: p.service,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/incidents"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": "INC-1042"})),
        )
        .mount(&api)
        .await;

    let mut registry = Registry::default();
    registry.register_channel::<Incident>("incident")?;

    let config = Config::from_json(&format!(
        r#"{{"instances": [{{"name": "incidents", "type": "incident",
                             "params": {{"url": "{}/incidents", "service": "flink"}}}}],
             "groups": [{{"name": "flink-prod", "instances": ["incidents"]}}]}}"#,
        api.uri()
    ))?;
    let notifier = Notifier::from_config_with(&config, registry, Http::new())?;
    let report = notifier.dispatch("flink-prod", &Alert::sample()).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    assert_eq!(
        report.deliveries[0]
            .receipt
            .as_ref()
            .and_then(|r| r.message_id.as_deref()),
        Some("INC-1042")
    );
    Ok(())
}
