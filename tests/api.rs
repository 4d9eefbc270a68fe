//! The 1.0 API pieces hosts rely on (issue 19, in part): reports a host can
//! store and load, config read back and saved as it was, not-found as its
//! own kind, several dispatch observers.
#![cfg(all(feature = "dingtalk", feature = "testkit"))]

use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
use alertkit::testkit::recording_registry;
use alertkit::{Alert, Config, DispatchReport, ErrorKind, GroupStatus, Http, Notifier, Outcome};

#[tokio::test]
async fn a_real_report_round_trips_through_json() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    fake.push_fault(Fault::errcode(310000, "keywords not in content"));
    let config = Config::from_value(serde_json::json!({
        "instances": [
            {"name": "bad", "type": "dingtalk", "params": {"webhook": fake.webhook("tok")},
             "policy": {"retry": false, "rate_limit": false}},
            {"name": "ok", "type": "recording"}],
        "groups": [{"name": "g", "instances": ["bad", "ok"], "repeat_interval_secs": 60}]}))
    .unwrap();
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    let alert = Alert::new("orders-etl FAILED");
    let report = n.dispatch("g", &alert).await.unwrap();
    assert_eq!(report.status, GroupStatus::Partial);
    assert_eq!(report.title, "orders-etl FAILED");
    assert_eq!(report.fingerprint, alert.fingerprint());
    assert!(report.dispatched_at.is_some());
    let json = serde_json::to_value(&report).unwrap();
    let back: DispatchReport = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
    let e = back.deliveries[0].error.as_ref().unwrap();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::KeywordMissing, Some("310000"))
    );
    // A suppressed repeat reads back too.
    let again = n.dispatch("g", &alert).await.unwrap();
    let back: DispatchReport =
        serde_json::from_value(serde_json::to_value(&again).unwrap()).unwrap();
    assert!(
        back.deliveries
            .iter()
            .any(|d| d.outcome == Outcome::Suppressed),
        "{back:?}"
    );
}

#[test]
fn every_error_kind_parses_back() {
    for name in [
        "rate_limited",
        "token_expired",
        "unauthorized",
        "ip_not_allowed",
        "keyword_missing",
        "signature_mismatch",
        "payload_too_large",
        "invalid_recipient",
        "invalid_content",
        "invalid_config",
        "template",
        "timeout",
        "transport",
        "platform",
        "unsupported",
        "internal",
        "shut_down",
        "not_found",
    ] {
        let k: ErrorKind = name.parse().unwrap();
        assert_eq!(k.as_str(), name);
    }
}

#[tokio::test]
async fn unknown_names_are_not_found_not_invalid_config() {
    let config = Config::from_json(
        r#"{"instances": [{"name": "ops", "type": "recording"}], "groups": [{"name": "g", "instances": ["ops"]}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    let e = n.dispatch("nope", &Alert::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = n.test_send("nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        n.remove_group("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// A configured retry or rate policy is written back with its settings
/// (it once came back as `true`, the defaults).
#[test]
fn the_live_config_saves_and_loads_as_it_was() {
    let config = Config::from_json(
        r#"{"instances": [{"name": "ops", "type": "recording", "timeout_ms": 5000,
              "policy": {"retry": {"max_attempts": 2, "min_delay_ms": 100},
                         "rate_limit": {"queue_bound": 50, "rates": [{"count": 3, "per_ms": 1000}]}}},
            {"name": "plain", "type": "recording", "policy": {"retry": false}}],
            "groups": [{"name": "g", "instances": ["ops", "plain"], "repeat_interval_secs": 600}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    let saved = serde_json::to_string(&n.config()).unwrap();
    let loaded = Config::from_json(&saved).unwrap();
    assert_eq!(loaded, config, "{saved}");
}
