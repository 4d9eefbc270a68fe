//! A job scheduler embedding alertkit (issue 19's first host program): the
//! config lives in the scheduler's own store and is edited live from its
//! admin UI, which has a "Test" button per instance, and every report goes
//! to an audit log the UI reads back.
//!
//! `cargo run --example scheduler_host`: no network, no credentials (a
//! strict fake DingTalk robot and WeCom robot on 127.0.0.1).

use std::sync::{Arc, Mutex};

use alertkit::testkit::dingtalk::{FakeDingTalk, Fault, RobotSpec};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{
    Alert, Config, DispatchReport, ErrorKind, GroupConfig, GroupStatus, InstanceConfig, JobInfo,
    JobStatus, Notifier, Outcome, Severity,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ding = FakeDingTalk::start().await;
    ding.add_robot(
        "ops-token",
        RobotSpec {
            secret: Some("SECops".into()),
            keywords: vec!["alert".into()],
        },
    );
    let wecom = FakeWeCom::start().await;
    wecom.add_bot("wecom-key");

    // 1. The config as the scheduler stores it (here a TOML document; a
    //    settings table read with `Config::from_value` works the same).
    let stored = format!(
        r#"
        [[instances]]
        name = "ops-ding"
        type = "dingtalk"
        params = {{ webhook = "{}", secret = "SECops", keywords = ["alert"] }}
        policy = {{ retry = {{ max_attempts = 2, min_delay_ms = 50 }} }}

        [[groups]]
        name = "etl-owners"
        instances = ["ops-ding"]
        "#,
        ding.webhook("ops-token")
    );
    let notifier = Notifier::from_config(&Config::from_toml(&stored)?)?;

    // 2. The audit log: every report (dispatches and test sends) as a JSON
    //    row, written by an observer that never blocks dispatch for long.
    let audit: Arc<Mutex<Vec<String>>> = Arc::default();
    let rows = audit.clone();
    notifier.on_dispatch(move |_alert, report| {
        let row = serde_json::to_string(report).expect("a report serializes");
        rows.lock().unwrap().push(row);
    });

    // 3. The admin adds a WeCom robot and puts it in the group: live, for
    //    the next dispatch, no restart.
    notifier.upsert_instance(
        InstanceConfig::new("ops-wecom", "wecom").param("webhook", wecom.webhook("wecom-key")),
    )?;
    notifier.upsert_group(GroupConfig::new("etl-owners", ["ops-ding", "ops-wecom"]))?;

    // 4. The "Test" button: one sample alert to one instance, its delivery
    //    shown as it is.
    let ok = notifier.test_send("ops-wecom").await?;
    assert_eq!(ok.outcome, Outcome::Delivered);
    println!("Test ops-wecom: {}", ok.outcome.as_str());

    // The robot's keyword was changed on the DingTalk side: the button
    // says what the platform said, its code and the HTTP status apart.
    ding.push_fault(Fault::errcode(310000, "keywords not in content"));
    let failed = notifier.test_send("ops-ding").await?;
    let e = failed.error.as_ref().expect("the test send failed");
    assert_eq!(failed.outcome, Outcome::Failed);
    assert_eq!(
        (e.kind(), e.code(), e.http_status(), e.is_retryable()),
        (ErrorKind::KeywordMissing, Some("310000"), Some(200), false)
    );
    println!("Test ops-ding: {} ({e})", failed.outcome.as_str());

    // 5. A job fails: one dispatch, both robots.
    let alert = Alert::new("Job orders-etl FAILED")
        .severity(Severity::Critical)
        .job(JobInfo::new("orders-etl").status(JobStatus::Failed))
        .field("Owner", "data-team");
    let report = notifier.dispatch("etl-owners", &alert).await?;
    assert_eq!(report.status, GroupStatus::Delivered);
    assert_eq!(ding.accepted().len(), 1);
    assert_eq!(wecom.accepted().len(), 2); // the test, then the alert

    // 6. The admin switches DingTalk off; the next alert skips it.
    notifier.set_instance_enabled("ops-ding", false)?;
    let report = notifier
        .dispatch("etl-owners", &Alert::new("Job orders-etl FAILED again"))
        .await?;
    assert_eq!(
        report.delivery("ops-ding").map(|d| d.outcome),
        Some(Outcome::Skipped)
    );
    assert_eq!(ding.accepted().len(), 1);

    // 7. Save the live config back to the store and load it: the same,
    //    the edits and the retry policy included.
    let saved = serde_json::to_string_pretty(&notifier.config())?;
    let reloaded = Config::from_json(&saved)?;
    assert_eq!(reloaded, notifier.config());
    assert_eq!(reloaded.instances.len(), 2);
    assert!(
        !reloaded
            .instances
            .iter()
            .any(|i| i.name == "ops-ding" && i.enabled)
    );
    assert!(saved.contains("\"max_attempts\": 2"), "{saved}");

    // 8. The UI's audit page reads the rows back with serde.
    let rows = audit.lock().unwrap().clone();
    let reports: Vec<DispatchReport> = rows
        .iter()
        .map(|r| serde_json::from_str(r))
        .collect::<Result<_, _>>()?;
    let groups: Vec<&str> = reports.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(
        groups,
        [
            "test:ops-wecom",
            "test:ops-ding",
            "etl-owners",
            "etl-owners"
        ]
    );
    let stored_error = reports[1].deliveries[0].error.as_ref().unwrap();
    assert_eq!(stored_error.code(), Some("310000"));
    assert_eq!(stored_error.http_status(), Some(200));
    for (row, report) in rows.iter().zip(&reports) {
        // What was read back writes the same row again.
        assert_eq!(
            serde_json::to_value(report)?,
            serde_json::from_str::<serde_json::Value>(row)?
        );
    }
    println!("\nAudit log:");
    for r in &reports {
        let members: Vec<String> = r
            .deliveries
            .iter()
            .map(|d| format!("{}={}", d.instance, d.outcome.as_str()))
            .collect();
        println!(
            "  {:<15} {:<10} {:<28} {}",
            r.group,
            r.status.as_str(),
            r.title,
            members.join(" ")
        );
    }
    Ok(())
}
