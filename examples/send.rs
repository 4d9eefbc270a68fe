//! Dispatch alerts from files, as a scheduler's hook script would:
//!
//! ```text
//! cargo run --example send -- --config alerts.toml --alert alert.json [--group NAME]
//! cargo run --example send -- --dinky-instances instances.json --dinky-groups groups.json --alert alert.json --group flink-prod
//! cargo run --example send -- --ds-instances instances.json --ds-groups groups.json [--ds-plugins defines.json] --alert alert.json --group oncall
//! ```
//!
//! `--dinky-*` and `--ds-*` take the tools' own exports as they are (JSON
//! arrays of rows from the REST API or a database dump; see
//! `alertkit::import`); what was mapped with a change of meaning, dropped
//! or not imported is printed to stderr, one note a line.
//!
//! The config is JSON or TOML (by extension); the alert file holds one alert
//! or a JSON array of alerts (dispatched concurrently from one process, as
//! during an alert storm). Prints the report (or an array of reports, in
//! order) as JSON. Exit code: 0 all delivered, 1 partial, 2 all failed,
//! 3 bad config or input.

use std::process::ExitCode;

use alertkit::{Alert, Config, DispatchReport, Notifier};

/// Where the config comes from.
enum Source {
    /// alertkit's own JSON or TOML.
    Config(String),
    /// Dinky rows: instances, groups.
    Dinky(String, Option<String>),
    /// DolphinScheduler rows: instances, groups, plugin defines.
    Ds(String, Option<String>, Option<String>),
}

struct Args {
    source: Source,
    alert: String,
    group: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut config, mut alert, mut group) = (None, None, None);
    let (mut dinky_i, mut dinky_g, mut ds_i, mut ds_g, mut ds_p) = (None, None, None, None, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config = it.next(),
            "--alert" => alert = it.next(),
            "--group" => group = it.next(),
            "--dinky-instances" => dinky_i = it.next(),
            "--dinky-groups" => dinky_g = it.next(),
            "--ds-instances" => ds_i = it.next(),
            "--ds-groups" => ds_g = it.next(),
            "--ds-plugins" => ds_p = it.next(),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let source = match (config, dinky_i, ds_i) {
        (Some(c), None, None) => Source::Config(c),
        (None, Some(i), None) => Source::Dinky(i, dinky_g),
        (None, None, Some(i)) => Source::Ds(i, ds_g, ds_p),
        (None, None, None) => {
            return Err(
                "--config FILE (or --dinky-instances / --ds-instances FILE) is required".into(),
            );
        }
        _ => return Err("give one of --config, --dinky-instances, --ds-instances".into()),
    };
    Ok(Args {
        source,
        alert: alert.ok_or("--alert FILE is required")?,
        group,
    })
}

fn read_json(path: Option<&str>) -> Result<serde_json::Value, String> {
    let Some(path) = path else {
        return Ok(serde_json::Value::Null);
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // serde_json's message names a line and column, never the text.
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// Loads the config from its source; the notes of an import go to stderr.
fn load(source: &Source) -> Result<Config, String> {
    let imported = match source {
        Source::Config(path) => return load_config(path),
        Source::Dinky(i, g) => Config::from_dinky(&read_json(Some(i))?, &read_json(g.as_deref())?),
        Source::Ds(i, g, p) => Config::from_dolphinscheduler_with_plugins(
            &read_json(Some(i))?,
            &read_json(g.as_deref())?,
            &read_json(p.as_deref())?,
        ),
    }
    .map_err(|e| e.to_string())?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    Ok(imported.config)
}

fn load_config(path: &str) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if path.ends_with(".toml") {
        // Errors name the field or the line, never the value (it may be a secret).
        Config::from_toml(&text).map_err(|e| format!("{path}: {e}"))
    } else {
        Config::from_json(&text).map_err(|e| format!("{path}: {e}"))
    }
}

fn load_alerts(path: &str) -> Result<(Vec<Alert>, bool), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let many = value.is_array();
    let items = if many {
        value.as_array().cloned().unwrap_or_default()
    } else {
        vec![value]
    };
    let alerts = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| serde_json::from_value(v).map_err(|e| format!("{path}: alert {i}: {e}")))
        .collect::<Result<Vec<Alert>, String>>()?;
    Ok((alerts, many))
}

async fn run() -> Result<(Vec<DispatchReport>, bool), String> {
    let args = parse_args()?;
    let config = load(&args.source)?;
    let (alerts, many) = load_alerts(&args.alert)?;
    let notifier = Notifier::from_config(&config).map_err(|e| e.to_string())?;
    let group = match args.group {
        Some(g) => g,
        None if config.groups.len() == 1 => config.groups[0].name.clone(),
        None => {
            return Err(format!(
                "the config has {} groups: name one with --group",
                config.groups.len()
            ));
        }
    };
    if notifier.group(&group).is_none() {
        return Err(format!("no group named {group:?}"));
    }
    let reports = futures_join(&notifier, &group, &alerts).await;
    Ok((reports, many))
}

async fn futures_join(notifier: &Notifier, group: &str, alerts: &[Alert]) -> Vec<DispatchReport> {
    let group = notifier.group(group).expect("checked above");
    let mut set = tokio::task::JoinSet::new();
    for (i, alert) in alerts.iter().cloned().enumerate() {
        let group = group.clone();
        set.spawn(async move { (i, group.dispatch(&alert).await) });
    }
    let mut out: Vec<Option<DispatchReport>> = vec![None; alerts.len()];
    while let Some(Ok((i, r))) = set.join_next().await {
        out[i] = Some(r);
    }
    out.into_iter().flatten().collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    // Warnings (an `accept_invalid_certs`, a shared state falling back) go
    // to stderr; RUST_LOG=debug shows every delivery.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(
            std::env::var("RUST_LOG")
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(tracing::Level::WARN),
        )
        .init();
    match run().await {
        Ok((reports, many)) => {
            let json = if many {
                serde_json::to_string_pretty(&reports)
            } else {
                serde_json::to_string_pretty(&reports[0])
            };
            println!("{}", json.unwrap_or_default());
            let worst = reports
                .iter()
                .map(|r| r.status.exit_code())
                .max()
                .unwrap_or(0);
            ExitCode::from(worst as u8)
        }
        Err(msg) => {
            if msg.is_empty() {
                eprintln!(
                    "usage: send (--config FILE | --dinky-instances FILE [--dinky-groups FILE] | --ds-instances FILE [--ds-groups FILE] [--ds-plugins FILE]) --alert FILE [--group NAME]"
                );
            } else {
                eprintln!("error: {msg}");
            }
            ExitCode::from(3)
        }
    }
}
