//! Watch a Flink cluster and alert a group:
//!
//! ```text
//! cargo run --example flink_watch --features flink -- \
//!     --flink http://jobmanager:8081 --config alerts.toml --group flink-prod [--interval SECS] [--cluster NAME]
//! ```
//!
//! Polls every `--interval` seconds (default 10), prints each dispatch
//! report as a JSON line, and on SIGINT or SIGTERM exits 0 once the poll in
//! progress and its dispatches have finished.

use std::sync::Arc;
use std::time::Duration;

use alertkit::flink::{FlinkWatcher, WatchConfig};
use alertkit::{Config, Notifier};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: flink_watch --flink URL --config FILE --group NAME [--interval SECS] [--cluster NAME]";
    let (Some(flink), Some(config_path), Some(group)) = (
        arg(&args, "--flink"),
        arg(&args, "--config"),
        arg(&args, "--group"),
    ) else {
        eprintln!("{usage}");
        std::process::exit(3);
    };
    let interval: u64 = arg(&args, "--interval")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let text = std::fs::read_to_string(&config_path)?;
    let config: Config = if config_path.ends_with(".toml") {
        toml::from_str(&text)?
    } else {
        Config::from_json(&text)?
    };
    let notifier = Arc::new(Notifier::from_config(&config)?);
    if notifier.group(&group).is_none() {
        eprintln!("no group named {group:?}");
        std::process::exit(3);
    }
    let cluster = arg(&args, "--cluster").unwrap_or_else(|| flink.clone());
    let watch = WatchConfig::new(&flink, cluster)?.interval(Duration::from_secs(interval.max(1)));
    let mut handle = FlinkWatcher::new(watch, notifier, group).start();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            report = handle.next_report() => match report {
                Some(r) => println!("{}", serde_json::to_string(&r)?),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    for r in handle.stop().await {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
