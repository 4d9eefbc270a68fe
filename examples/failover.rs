//! A group with failover and a repeat interval (`cargo run --example failover`):
//! the DingTalk robot refuses (its token was deleted), so the alert goes to
//! the email fallback; the same alert a second later is suppressed; its
//! resolution goes out.

use alertkit::testkit::Sandbox;
use alertkit::{Alert, GroupConfig, Notifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = Sandbox::start().await?;
    let mut config = sandbox.config();
    // Break the robot: a token the platform does not know.
    if let Some(ding) = config.instances.iter_mut().find(|i| i.name == "dingtalk") {
        ding.params.insert(
            "webhook".into(),
            sandbox.dingtalk.webhook("deleted-token").into(),
        );
    }
    let group = GroupConfig::new("oncall", ["dingtalk"])
        .fallback("dingtalk", ["email"])
        .repeat_interval(std::time::Duration::from_secs(600));
    config = config.with_group(group);
    let notifier = Notifier::from_config(&config)?;

    let alert = Alert::sample();
    for (what, a) in [
        ("first", alert.clone()),
        ("repeat", alert.clone()),
        ("resolution", alert.resolved()),
    ] {
        let report = notifier.dispatch("oncall", &a).await?;
        let d = &report.deliveries[0];
        println!(
            "{what:<10} status={:<10} outcome={:<10} via={:<6} primary error={}",
            report.status.as_str(),
            d.outcome.as_str(),
            d.via.as_deref().unwrap_or("-"),
            d.primary_error
                .as_ref()
                .map_or("-".to_owned(), |e| e.to_string())
        );
        if let Some(note) = &d.note {
            println!("           {note}");
        }
    }
    println!("\nemails received: {}", sandbox.smtp.messages().len());
    Ok(())
}
