//! The README's first command: `cargo run --example quickstart`.
//!
//! No network, no credentials: starts alertkit's sandbox on 127.0.0.1 (a
//! DingTalk robot and a Feishu bot that check signatures and keywords, a
//! WeCom robot, an SMTP server), builds a group of four instances from
//! config, dispatches a Flink job failure, and prints the dispatch report
//! and what each platform received.

use alertkit::testkit::Sandbox;
use alertkit::{Alert, Notifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Fake platforms, as strict as the real ones.
    let sandbox = Sandbox::start().await?;

    // 2. Instances and a group, as a control plane would store them (JSON or TOML).
    let config = sandbox.config();
    println!("== Config ==");
    for i in &config.instances {
        println!(
            "  {:<9} type={:<9} params={}",
            i.name,
            i.kind,
            param_names(i)
        );
    }
    let notifier = Notifier::from_config(&config)?;

    // 3. One alert to the group: every member concurrently.
    let alert = Alert::sample();
    let report = notifier.dispatch(Sandbox::GROUP, &alert).await?;

    println!("\n== Dispatch report: {} ==", report.status.as_str());
    for d in &report.deliveries {
        let detail = match (&d.receipt, &d.error) {
            (_, Some(e)) => e.to_string(),
            (Some(r), None) => r.message_id.clone().unwrap_or_default(),
            _ => String::new(),
        };
        println!(
            "  {:<9} {:<9} {:<10} attempts={} {:>4} ms  {detail}",
            d.instance,
            d.kind,
            d.outcome.as_str(),
            d.attempts,
            d.elapsed_ms
        );
    }

    println!("\n== DingTalk received (signed, keyword checked) ==");
    for r in sandbox.dingtalk.accepted() {
        println!(
            "{}",
            r.body["markdown"]["text"].as_str().unwrap_or_default()
        );
    }
    println!("\n== WeCom received ==");
    for r in sandbox.wecom.accepted() {
        println!(
            "{}",
            r.body["markdown"]["content"].as_str().unwrap_or_default()
        );
    }
    println!("\n== Feishu received: a card ==");
    for r in sandbox.feishu.accepted() {
        let card = &r.body["card"];
        println!(
            "[{}] {}",
            card["header"]["template"].as_str().unwrap_or(""),
            card["header"]["title"]["content"].as_str().unwrap_or("")
        );
        for e in card["elements"].as_array().into_iter().flatten() {
            if let Some(t) = e["text"]["content"].as_str() {
                println!("{t}");
            }
            for f in e["fields"].as_array().into_iter().flatten() {
                println!(
                    "  {}",
                    f["text"]["content"]
                        .as_str()
                        .unwrap_or("")
                        .replace('\n', ": ")
                        .replace("**", "")
                );
            }
            for b in e["actions"].as_array().into_iter().flatten() {
                println!(
                    "  [button] {} -> {}",
                    b["text"]["content"].as_str().unwrap_or(""),
                    b["url"].as_str().unwrap_or("")
                );
            }
        }
    }
    println!("\n== Email received ==");
    for m in sandbox.smtp.messages() {
        let headers: Vec<&str> = m
            .data
            .lines()
            .take_while(|l| !l.is_empty())
            .filter(|l| l.starts_with("Subject") || l.starts_with("From") || l.starts_with("To"))
            .collect();
        println!(
            "envelope: {} -> {:?} (authenticated as {:?}, {})",
            m.from,
            m.rcpts,
            m.auth_user,
            if m.tls { "over STARTTLS" } else { "in clear" }
        );
        for h in headers {
            println!("{h}");
        }
        println!(
            "(multipart: plain text + HTML table, {} bytes)",
            m.data.len()
        );
    }

    println!("\n== The report as JSON (what a host stores) ==");
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn param_names(i: &alertkit::InstanceConfig) -> String {
    let keys: Vec<&str> = i.params.keys().map(String::as_str).collect();
    keys.join(",")
}
