//! The live set of instances and groups: config loading, every config error,
//! runtime edits, test sends, and a third-party channel mixed with built-ins.

use std::sync::Arc;
use std::time::Duration;

use alertkit::testkit::{RecordingChannel, recording_registry};
use alertkit::{
    Alert, AlertChannel, BuildContext, Config, ErrorKind, GroupConfig, GroupStatus, Http,
    InstanceConfig, Notifier, Outcome, Receipt, Registry, async_trait,
};
use serde_json::json;

fn notifier(json: &str) -> Notifier {
    let config = Config::from_json(json).unwrap();
    Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap()
}

fn build_err(json: &str) -> alertkit::Error {
    match Config::from_json(json) {
        Ok(config) => {
            Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap_err()
        }
        Err(e) => e,
    }
}

#[test]
fn every_config_error_names_instance_and_field() {
    // (config, instance, field, words in the message)
    let cases: &[(&str, Option<&str>, &str, &str)] = &[
        (
            r#"{"instances": [{"name": "a", "type": "pagerduty"}]}"#,
            Some("a"),
            "type",
            "unknown channel type",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "recording", "params": {"colour": 1}}]}"#,
            Some("a"),
            "params.colour",
            "unknown field",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "recording", "params": {"fail": "yes"}}]}"#,
            Some("a"),
            "params.fail",
            "invalid type",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "recording"}, {"name": "a", "type": "recording"}]}"#,
            Some("a"),
            "name",
            "used twice",
        ),
        (
            r#"{"instances": [{"name": " ", "type": "recording"}]}"#,
            None,
            "name",
            "empty",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "recording"}], "groups": [{"name": "g", "instances": ["a", "b"]}]}"#,
            None,
            "groups[\"g\"].instances[1]",
            "unknown instance \"b\"",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "recording"}], "groups": [{"name": "g", "instances": ["a", "a"]}]}"#,
            None,
            "groups[\"g\"].instances[1]",
            "twice",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "recording", "templates": {"text": "{% if %}"}}]}"#,
            Some("a"),
            "templates.text",
            "line 1",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "recording", "templates": {"txt": "x"}}]}"#,
            None,
            "instances[0].templates.txt",
            "unknown field",
        ),
        (
            r#"{"instances": [{"type": "recording"}]}"#,
            None,
            "instances[0].name",
            "missing field",
        ),
        (
            r#"{"instances": [{"name": "a", "type": "dingtalk", "params": {"webhook": "https://x/robot/send?access_token=t", "bad": 1}}]}"#,
            Some("a"),
            "params.bad",
            "unknown field",
        ),
    ];
    for (json, instance, field, words) in cases {
        let e = build_err(json);
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig | ErrorKind::Template),
            "{json}: {e}"
        );
        assert_eq!(e.instance(), *instance, "{json}: {e}");
        assert_eq!(e.field(), Some(*field), "{json}: {e}");
        assert!(e.to_string().contains(words), "{json}: {e}");
        assert!(!e.is_retryable());
    }
}

#[test]
fn toml_and_json_load_the_same_config() {
    let toml_text = r#"
        [[instances]]
        name = "ops-ding"
        type = "DingTalk"
        params = { webhook = "https://oapi.dingtalk.com/robot/send?access_token=abc", keyword = "alert" }

        [[instances]]
        name = "mem"
        type = "recording"
        enabled = false

        [[groups]]
        name = "flink-prod"
        instances = ["ops-ding", "mem"]
        timeout_ms = 5000
    "#;
    let from_toml: Config = toml::from_str(toml_text).unwrap();
    let from_json = Config::from_json(
        r#"{"instances": [
            {"name": "ops-ding", "type": "DingTalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=abc", "keyword": "alert"}},
            {"name": "mem", "type": "recording", "enabled": false}],
           "groups": [{"name": "flink-prod", "instances": ["ops-ding", "mem"], "timeout_ms": 5000}]}"#,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&from_toml).unwrap(),
        serde_json::to_value(&from_json).unwrap()
    );
    let n = Notifier::from_config_with(&from_toml, recording_registry(), Http::new()).unwrap();
    let infos = n.instances();
    assert_eq!(infos.len(), 2);
    assert!(!infos.iter().find(|i| i.name == "mem").unwrap().enabled);
    assert_eq!(n.groups()[0].instances, ["ops-ding", "mem"]);
}

#[tokio::test]
async fn live_edits_apply_to_later_dispatches_and_in_flight_ones_keep_their_version() {
    let n = Arc::new(notifier(
        r#"{"instances": [{"name": "a", "type": "recording", "params": {"delay_ms": 300}}],
            "groups": [{"name": "g", "instances": ["a"]}]}"#,
    ));
    let before = n.instances()[0].updated_at;
    let in_flight = {
        let n = n.clone();
        tokio::spawn(async move { n.dispatch("g", &Alert::new("t")).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    n.upsert_instance(InstanceConfig::new("a", "recording").param("fail", true))
        .unwrap();
    assert!(n.instances()[0].updated_at >= before);

    let report = in_flight.await.unwrap();
    assert_eq!(
        report.status,
        GroupStatus::Delivered,
        "the dispatch started with the old version"
    );
    let report = n.dispatch("g", &Alert::new("t")).await.unwrap();
    assert_eq!(
        report.status,
        GroupStatus::Failed,
        "later dispatches see the new version"
    );

    n.upsert_instance(InstanceConfig::new("b", "recording"))
        .unwrap();
    n.upsert_group(GroupConfig::new("g", ["a", "b"])).unwrap();
    let report = n.dispatch("g", &Alert::new("t")).await.unwrap();
    assert_eq!(report.status, GroupStatus::Partial);

    n.set_instance_enabled("a", false).unwrap();
    let report = n.dispatch("g", &Alert::new("t")).await.unwrap();
    assert_eq!(report.status, GroupStatus::Delivered);
    assert_eq!(report.delivery("a").unwrap().outcome, Outcome::Skipped);

    n.set_group_enabled("g", false).unwrap();
    assert_eq!(
        n.dispatch("g", &Alert::new("t")).await.unwrap().status,
        GroupStatus::Empty
    );
    n.set_group_enabled("g", true).unwrap();

    // An instance still in a group cannot be removed; a bad edit changes nothing.
    let e = n.remove_instance("b").unwrap_err();
    assert!(e.to_string().contains("group(s) g"), "{e}");
    let e = n
        .upsert_group(GroupConfig::new("g", ["a", "zzz"]))
        .unwrap_err();
    assert!(e.to_string().contains("zzz"));
    assert_eq!(n.groups()[0].instances, ["a", "b"]);
    let e = n
        .upsert_instance(InstanceConfig::new("b", "nope"))
        .unwrap_err();
    assert_eq!(e.field(), Some("type"));
    assert_eq!(
        n.instances().iter().find(|i| i.name == "b").unwrap().kind,
        "recording"
    );

    n.remove_group("g").unwrap();
    n.remove_instance("b").unwrap();
    assert_eq!(n.instances().len(), 1);
    let e = n.dispatch("g", &Alert::new("t")).await.unwrap_err();
    assert!(e.to_string().contains("no group named \"g\""));
    assert!(n.remove_instance("b").is_err());
}

#[tokio::test]
async fn apply_is_atomic() {
    let n = notifier(
        r#"{"instances": [{"name": "a", "type": "recording"}], "groups": [{"name": "g", "instances": ["a"]}]}"#,
    );
    let bad = Config::from_json(
        r#"{"instances": [{"name": "x", "type": "recording"}, {"name": "y", "type": "bogus"}]}"#,
    )
    .unwrap();
    assert!(n.apply(&bad).is_err());
    assert_eq!(n.instances()[0].name, "a");
    assert_eq!(
        n.dispatch("g", &Alert::new("t")).await.unwrap().status,
        GroupStatus::Delivered
    );
}

#[tokio::test]
async fn test_send_delivers_the_sample_even_when_disabled() {
    let n = notifier(
        r#"{"instances": [{"name": "a", "type": "recording", "enabled": false},
                                       {"name": "b", "type": "recording", "params": {"fail": true}}]}"#,
    );
    let d = n.test_send("a").await.unwrap();
    assert_eq!(d.outcome, Outcome::Delivered);
    let d = n.test_send("b").await.unwrap();
    assert_eq!(d.outcome, Outcome::Failed);
    assert_eq!(d.error.unwrap().code(), Some("310000"));
    assert!(n.test_send("zzz").await.is_err());
}

#[test]
fn group_templates_apply_to_members_and_instance_templates_win() {
    let n = notifier(
        r#"{"instances": [{"name": "a", "type": "recording"},
                          {"name": "b", "type": "recording", "templates": {"text": "B: {{ title }}"}}],
            "groups": [{"name": "g", "instances": ["a", "b"], "templates": {"text": "G: {{ title }}"}}]}"#,
    );
    let g = n.group("g").unwrap();
    let text = |i: usize| {
        g.members()[i].channel().preview(&Alert::new("t")).unwrap()[0].body["text"].clone()
    };
    assert_eq!(text(0), json!("G: t"));
    assert_eq!(text(1), json!("B: t"));
    // Outside the group, the instance renders with its own (or default) templates.
    assert_eq!(
        n.preview("a", &Alert::new("t")).unwrap()[0].body["text"],
        json!("[Error] t")
    );
    // Replacing an instance rebuilds the group's copy too.
    n.upsert_instance(InstanceConfig::new("a", "recording").param("fail", true))
        .unwrap();
    let g = n.group("g").unwrap();
    assert_eq!(
        g.members()[0].channel().preview(&Alert::new("x")).unwrap()[0].body["text"],
        json!("G: x")
    );
}

/// A third-party channel: what a crate outside alertkit writes.
#[derive(Debug)]
struct Pager {
    service: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait]
impl AlertChannel for Pager {
    async fn send(&self, alert: &Alert) -> alertkit::Result<Receipt> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}: {}", self.service, alert.title));
        Ok(Receipt::new().with_message_id("page-1"))
    }

    fn kind(&self) -> &str {
        "pager"
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PagerParams {
    service: String,
}

#[tokio::test]
async fn third_party_channel_mixes_with_built_ins() {
    use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok",
        RobotSpec {
            secret: Some("SECx".into()),
            keywords: vec![],
        },
    );

    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut registry = Registry::default();
    let l = log.clone();
    registry
        .register("pager", move |ctx: &BuildContext<'_>| {
            let p: PagerParams = ctx.params()?;
            Ok(Arc::new(Pager {
                service: p.service,
                log: l.clone(),
            }) as Arc<dyn AlertChannel>)
        })
        .unwrap();
    let config = Config::from_json(&format!(
        r#"{{"instances": [{{"name": "ding", "type": "dingtalk", "params": {{"webhook": "{}", "secret": "SECx"}}}},
                          {{"name": "pager", "type": "Pager", "params": {{"service": "ops"}}}}],
            "groups": [{{"name": "g", "instances": ["ding", "pager"]}}]}}"#,
        fake.webhook("tok")
    ))
    .unwrap();
    let n = Notifier::from_config_with(&config, registry, Http::new()).unwrap();
    let report = n
        .dispatch("g", &Alert::new("orders-etl FAILED"))
        .await
        .unwrap();
    assert_eq!(report.status, GroupStatus::Delivered, "{report:?}");
    assert_eq!(report.deliveries[0].kind, "dingtalk");
    assert_eq!(report.deliveries[1].kind, "pager");
    assert_eq!(
        report.deliveries[1]
            .receipt
            .as_ref()
            .unwrap()
            .message_id
            .as_deref(),
        Some("page-1")
    );
    assert_eq!(*log.lock().unwrap(), ["ops: orders-etl FAILED"]);
    assert_eq!(fake.accepted().len(), 1);

    // And a channel handed in directly, without config.
    let group = n
        .group("g")
        .unwrap()
        .with_member("extra", Arc::new(RecordingChannel::new()));
    assert_eq!(group.dispatch(&Alert::new("x")).await.deliveries.len(), 3);
}

#[test]
fn ten_thousand_instances_share_one_client() {
    let mut config = Config::default();
    for i in 0..10_000 {
        config = config.with_instance(InstanceConfig::new(format!("ding-{i}"), "dingtalk").param(
            "webhook",
            format!("https://oapi.dingtalk.com/robot/send?access_token=t{i}"),
        ));
    }
    let n = Notifier::from_config(&config).unwrap();
    assert_eq!(n.instances().len(), 10_000);
}
