//! Watch a Flink cluster and alert a group:
//!
//! ```text
//! cargo run --example flink_watch --features flink -- \
//!     --flink http://jobmanager:8081 --config alerts.toml --group flink-prod [--interval SECS] [--cluster NAME]
//! ```
//!
//! Polls every `--interval` seconds (default 10), prints each report as a
//! JSON line (the alert's title, fingerprint, job, job state, group and what
//! each member did), logs through `tracing` (`RUST_LOG=alertkit=debug` for
//! more), and on SIGINT or SIGTERM exits 0 once the poll in progress and
//! its dispatches have finished. A misspelt `--group` exits 3.

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
    // RUST_LOG as `target=level` pairs (`info`, `alertkit=debug,info`).
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| "info".parse().expect("a valid filter"));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
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
    let config = if config_path.ends_with(".toml") {
        Config::from_toml(&text)?
    } else {
        Config::from_json(&text)?
    };
    let notifier = Arc::new(Notifier::from_config(&config)?);
    let mut watch = WatchConfig::new(&flink, "")?.interval(Duration::from_secs(interval.max(1)));
    // The cluster's name in alerts: --cluster, or the address without
    // credentials (`--flink` may carry `user:password@`).
    watch.cluster = arg(&args, "--cluster").unwrap_or_else(|| {
        let u = &watch.base_url;
        format!(
            "{}:{}",
            u.host_str().unwrap_or("flink"),
            u.port_or_known_default().unwrap_or(8081)
        )
    });
    let watcher = match FlinkWatcher::new(watch, notifier, group) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
    };
    let mut handle = watcher.start();

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
    for r in handle.stop().await.reports {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
