//! Generic webhook channel against wiremock.
#![cfg(feature = "webhook")]

use std::sync::Arc;
use std::time::Duration;

use alertkit::policy::PolicyConfig;
use alertkit::{Alert, AlertChannel, Config, ErrorKind, InstanceConfig, Notifier};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn channel(params: Value) -> Arc<dyn AlertChannel> {
    let mut cfg = InstanceConfig::new("hook", "webhook").policy(PolicyConfig::off());
    cfg.params = params.as_object().unwrap().clone();
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("hook")
        .unwrap()
}

async fn received(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap()
}

#[tokio::test]
async fn default_body_is_the_alert() {
    let server = MockServer::start().await;
    let alert = Alert::new("disk full").body("95%").label("host", "a");
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(body_json(serde_json::to_value(&alert).unwrap()))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    channel(json!({"url": format!("{}/hook", server.uri())}))
        .send(&alert)
        .await
        .unwrap();
}

#[tokio::test]
async fn templated_leaves_cannot_break_out_of_their_strings() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let ch = channel(json!({
        "url": server.uri(), "method": "put",
        "body": {"msg": "{{ title }}", "detail": {"lines": ["{{ body }}", "static {x}"]}, "sev": "{{ severity | upper }}",
                 "n": 3}
    }));
    let tricky = Alert::new(r#"he said "hi", {{ 7*7 }} \ done"#).body("line1\nline2\t\"q\"}");
    ch.send(&tricky).await.unwrap();
    let req = &received(&server).await[0];
    let got: Value = serde_json::from_slice(&req.body).expect("valid JSON");
    assert_eq!(
        got,
        json!({"msg": r#"he said "hi", {{ 7*7 }} \ done"#, "detail": {"lines": ["line1\nline2\t\"q\"}", "static {x}"]},
               "sev": "ERROR", "n": 3})
    );
}

#[tokio::test]
async fn headers_and_auth_are_sent_and_never_shown() {
    let server = MockServer::start().await;
    Mock::given(header("x-api-key", "key-secret-1"))
        .and(header("authorization", "Bearer bearer-secret-2"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let ch = channel(
        json!({"url": server.uri(), "headers": {"X-Api-Key": "key-secret-1"},
                            "bearer_token": "bearer-secret-2"}),
    );
    ch.send(&Alert::new("t")).await.unwrap();
    let shown = format!("{ch:?}");
    assert!(shown.contains("x-api-key"));
    assert!(
        !shown.contains("key-secret-1") && !shown.contains("bearer-secret-2"),
        "{shown}"
    );

    let basic = MockServer::start().await;
    // base64("ops:pw-secret-3")
    Mock::given(header("authorization", "Basic b3BzOnB3LXNlY3JldC0z"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&basic)
        .await;
    channel(
        json!({"url": basic.uri(), "basic_auth": {"username": "ops", "password": "pw-secret-3"}}),
    )
    .send(&Alert::new("t"))
    .await
    .unwrap();
}

#[tokio::test]
async fn status_classes_and_retry_after() {
    let server = MockServer::start().await;
    let ch = channel(json!({"url": server.uri()}));
    let cases: &[(u16, ErrorKind, bool)] = &[
        (500, ErrorKind::Platform, true),
        (503, ErrorKind::Platform, true),
        (408, ErrorKind::Timeout, true),
        (429, ErrorKind::RateLimited, true),
        (400, ErrorKind::Platform, false),
        (401, ErrorKind::Unauthorized, false),
        (404, ErrorKind::Platform, false),
    ];
    for (status, kind, retryable) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(*status).insert_header("retry-after", "7"))
            .mount(&server)
            .await;
        let e = ch.send(&Alert::new("t")).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (*kind, *retryable),
            "{status}"
        );
        assert_eq!(e.code(), Some(format!("HTTP {status}").as_str()));
        if *status == 429 {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        }
    }
}

#[tokio::test]
async fn success_rules_read_the_body() {
    let server = MockServer::start().await;
    let ch =
        channel(json!({"url": server.uri(), "success": {"json_pointer": "/errcode", "equals": 0}}));
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode": 310000, "errmsg": "keywords not in content"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"errcode": 0})))
        .mount(&server)
        .await;
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message(), e.is_retryable()),
        (Some("310000"), "keywords not in content", false)
    );
    ch.send(&Alert::new("t"))
        .await
        .expect("errcode 0 is success");

    let only_202 = channel(json!({"url": server.uri(), "success": {"status": [202]}}));
    assert!(
        only_202.send(&Alert::new("t")).await.is_err(),
        "200 is not in the list"
    );
}

#[test]
fn dinky_http_params_load_as_is() {
    let config = Config::from_json(
        r#"{"instances": [{"name": "h", "type": "Http", "params": {
            "url": "https://ops.example/api/alerts", "method": "POST",
            "headers": [{"key": "X-Token", "value": "dinky-secret"}],
            "body": "{\"source\": \"dinky\"}", "titleFiled": "title", "contentFiled": "content"}}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config(&config).unwrap();
    let p = n
        .preview("h", &Alert::new("orders-etl FAILED").body("boom"))
        .unwrap();
    assert_eq!(p[0].body["source"], "dinky");
    assert_eq!(p[0].body["title"], "orders-etl FAILED");
    assert!(p[0].body["content"].as_str().unwrap().contains("boom"));
    assert!(!format!("{n:?} {config:?} {:?}", n.channel("h")).contains("dinky-secret"));
}

#[test]
fn misconfigurations_name_the_field() {
    for (params, field) in [
        (json!({}), "params.url"),
        (json!({"url": "http://ops.example/x"}), "params.url"),
        (
            json!({"url": "https://x/", "method": "DELETE"}),
            "params.method",
        ),
        (
            json!({"url": "https://x/", "headers": {"bad header": "v"}}),
            "params.headers.bad header",
        ),
        (
            json!({"url": "https://x/", "body": "{not json"}),
            "params.body",
        ),
        (
            json!({"url": "https://x/", "body": {"a": ["{{ title }"]}}),
            "params.body/a/0",
        ),
        (
            json!({"url": "https://x/", "success": {"json_pointer": "/errcode"}}),
            "params.success.equals",
        ),
    ] {
        let mut cfg = InstanceConfig::new("hook", "webhook");
        cfg.params = params.as_object().unwrap().clone();
        let e = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap_err();
        assert_eq!(e.field(), Some(field), "{params}: {e}");
    }
}
