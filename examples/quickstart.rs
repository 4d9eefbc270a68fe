//! The README's first command: `cargo run --example quickstart`.
//!
//! No network, no credentials: starts alertkit's fake DingTalk on 127.0.0.1
//! (as strict as the real one: it checks signatures, keywords, sizes and
//! rate limits), builds a group from config, dispatches a Flink job failure,
//! and prints the dispatch report and what each destination received.

use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::recording_registry;
use alertkit::{Alert, Config, Http, Notifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A sandbox platform: one signed robot with a security keyword, one app.
    let ding = FakeDingTalk::start().await;
    ding.add_robot(
        "robot-token",
        RobotSpec {
            secret: Some("SEC0123456789abcdef".into()),
            keywords: vec!["告警".into()],
        },
    );
    ding.add_app("dingapp", "app-secret", "dingrobot");

    // 2. Instances and a group, as a control plane would store them.
    let config = Config::from_json(&format!(
        r#"{{
          "instances": [
            {{"name": "ops-robot", "type": "dingtalk",
              "params": {{"webhook": "{webhook}", "secret": "SEC0123456789abcdef", "keywords": ["告警"],
                         "at_mobiles": ["13800000000"]}},
              "templates": {{"lang": "zh"}}}},
            {{"name": "oncall-app", "type": "dingtalk",
              "params": {{"mode": "app", "app_key": "dingapp", "app_secret": "app-secret",
                         "robot_code": "dingrobot", "user_ids": ["zhangsan", "lisi"], "base_url": "{base}"}}}},
            {{"name": "broken-robot", "type": "dingtalk",
              "params": {{"webhook": "{broken}"}}}},
            {{"name": "audit-log", "type": "recording"}}
          ],
          "groups": [{{"name": "flink-prod", "instances": ["ops-robot", "oncall-app", "broken-robot", "audit-log"]}}]
        }}"#,
        webhook = ding.webhook("robot-token"),
        base = ding.uri(),
        broken = ding.webhook("deleted-robot"),
    ))?;
    let notifier = Notifier::from_config_with(&config, recording_registry(), Http::new())?;

    // 3. Dispatch one alert to the group.
    let report = notifier.dispatch("flink-prod", &Alert::sample()).await?;

    println!("== Dispatch report ==");
    println!("group {:?}: {:?}", report.group, report.status);
    for d in &report.deliveries {
        let detail = match (&d.receipt, &d.error) {
            (_, Some(e)) => format!("{e}"),
            (Some(r), None) if !r.notes.is_empty() => r.notes.join("; "),
            _ => String::new(),
        };
        println!(
            "  {:<13} {:<9} {:<10} {:>4} ms  {detail}",
            d.instance,
            d.kind,
            d.outcome.as_str(),
            d.elapsed_ms
        );
    }

    println!("\n== What DingTalk received ==");
    for r in ding.accepted() {
        let text = match r.path.as_str() {
            "/robot/send" => r.body["markdown"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            _ => {
                let param: serde_json::Value =
                    serde_json::from_str(r.body["msgParam"].as_str().unwrap_or("{}"))
                        .unwrap_or_default();
                format!(
                    "to {}:\n{}",
                    r.body["userIds"],
                    param["text"].as_str().unwrap_or_default()
                )
            }
        };
        println!(
            "--- {} (signed: {}) ---\n{text}\n",
            r.path,
            r.query.contains_key("sign")
        );
    }

    println!("== The report as JSON (what a host stores) ==");
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
