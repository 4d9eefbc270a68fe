//! Throughput, CPU, memory and token economy, measured in one run:
//!
//! ```text
//! cargo run --release --example load -- [--n 20000] [--rounds 5]
//! ```
//!
//! - Deliveries/s of an `AlertGroup` of 4 HTTP channels (DingTalk robot,
//!   WeCom robot, Feishu bot, webhook; policies off) to a local HTTP sink
//!   answering `{"errcode":0,"code":0}`, at concurrency 1 and 32, against a
//!   baseline of bare reqwest POSTs of the same bodies to the same sink, in
//!   the same run: `n` alerts per side, in rounds that alternate between the
//!   sides (so a change in the machine's load hits both), medians compared.
//!   The sink is a child process (one thread), so the CPU time read from
//!   /proc/self/stat is the client's alone.
//! - 3,000 WeCom app sends against the fake WeCom: gettoken calls.
//! - Pooled SMTP deliveries/s at concurrency 1 to an in-process SMTP sink.
//! - Peak RSS while dispatching `n` alerts; time to build 10,000 instances.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertkit::policy::PolicyConfig;
use alertkit::testkit::smtp::FakeSmtp;
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, AlertGroup, Config, InstanceConfig, Notifier};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"errcode\":0,\"code\":0}";

/// The sink: HTTP/1.1 keep-alive, one thread.
fn sink() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        loop {
            let (sock, _) = listener.accept().await?;
            sock.set_nodelay(true)?;
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                loop {
                    let mut len = 0usize;
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() || w.write_all(REPLY).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// The baseline's request: a bare reqwest POST of a prepared body.
async fn bare_post(client: &reqwest::Client, url: &str, body: &[u8]) {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("post");
    let _ = r.bytes().await;
}

/// CPU seconds (user + system) of this process so far.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

async fn run_concurrent<F, Fut>(n: usize, concurrency: usize, f: F) -> (Duration, f64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (c0, t0) = (cpu(), Instant::now());
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    f(i).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    (t0.elapsed(), cpu() - c0)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `n` dispatches of `alert` to `group`: (deliveries/s, CPU µs per delivery).
async fn alertkit_round(
    group: &Arc<AlertGroup>,
    alert: &Alert,
    n: usize,
    concurrency: usize,
) -> (f64, f64) {
    // The alert is shared, not cloned per dispatch: the harness's own
    // allocations are not alertkit's.
    let (g, a) = (group.clone(), Arc::new(alert.clone()));
    let (t, c) = run_concurrent(n, concurrency, move |_| {
        let (g, a) = (g.clone(), a.clone());
        async move {
            let r = g.dispatch(&a).await;
            assert_eq!(r.status, alertkit::GroupStatus::Delivered, "{r:?}");
        }
    })
    .await;
    let d = (n * group.members().len()) as f64;
    (d / t.as_secs_f64(), c * 1e6 / d)
}

/// The baseline: the bodies of `n` alerts posted with bare reqwest, one
/// POST at a time per worker, or with `fanout` an alert's POSTs together
/// (the group's shape). Returns (POSTs/s, CPU µs per POST).
async fn bare_round(
    client: &reqwest::Client,
    bodies: &Arc<Vec<(String, Vec<u8>)>>,
    n: usize,
    concurrency: usize,
    fanout: bool,
) -> (f64, f64) {
    let (b, cl) = (bodies.clone(), client.clone());
    let per_alert = bodies.len();
    let (t, c) = if fanout {
        run_concurrent(n, concurrency, move |_| {
            let (b, cl) = (b.clone(), cl.clone());
            async move {
                let posts = b.iter().map(|(url, body)| bare_post(&cl, url, body));
                futures_util::future::join_all(posts).await;
            }
        })
        .await
    } else {
        run_concurrent(n * per_alert, concurrency, move |i| {
            let (b, cl) = (b.clone(), cl.clone());
            async move {
                let (url, body) = &b[i % b.len()];
                bare_post(&cl, url, body).await;
            }
        })
        .await
    };
    let d = (n * per_alert) as f64;
    (d / t.as_secs_f64(), c * 1e6 / d)
}

/// The durable path: `n` alerts enqueued by 32 tasks to a notifier with an
/// embedded journal (fsync per commit) and delivered by its worker to the
/// same 4 members, timed from the first enqueue to the last delivery.
async fn durable(
    config: &Config,
    n: usize,
    dispatch_rate: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let names = ["dingtalk", "wecom", "feishu", "webhook"].map(String::from);
    let config = config
        .clone()
        .with_group(alertkit::GroupConfig::new("load", names.to_vec()));
    let notifier = Arc::new(Notifier::from_config(&config)?);
    let dir = std::env::temp_dir().join(format!("alertkit-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    notifier.start_outbox(
        Arc::new(alertkit::outbox::Journal::open(&dir)?),
        alertkit::outbox::OutboxOptions::default(),
    )?;
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (d, dn) = (delivered.clone(), done.clone());
    notifier.on_dispatch(move |_, r| {
        let k = r.deliveries.iter().filter(|x| x.is_delivered()).count();
        if d.fetch_add(k, std::sync::atomic::Ordering::SeqCst) + k >= n * 4 {
            dn.notify_one();
        }
    });
    let alert = Arc::new(Alert::sample());
    let (c0, t0) = (cpu(), Instant::now());
    let nn = notifier.clone();
    let (enqueue_time, _) = run_concurrent(n, 32, move |_| {
        let (nn, a) = (nn.clone(), alert.clone());
        async move {
            nn.enqueue("load", &a).await.expect("enqueue");
        }
    })
    .await;
    if delivered.load(std::sync::atomic::Ordering::SeqCst) < n * 4 {
        done.notified().await;
    }
    let (t, c) = (t0.elapsed(), cpu() - c0);
    let rate = (n * 4) as f64 / t.as_secs_f64();
    println!(
        "
durable path (enqueue to an embedded journal + background delivery): {n} alerts x 4 in {:.2} s          (enqueue alone {:.0}/s): {rate:.0} deliveries/s, {:.2}x dispatch's {dispatch_rate:.0}; CPU {:.1} µs/delivery",
        t.as_secs_f64(),
        n as f64 / enqueue_time.as_secs_f64(),
        rate / dispatch_rate.max(1e-9),
        c * 1e6 / (n * 4) as f64,
    );
    notifier.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--sink") {
        return Ok(sink()?);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    // The value after `--name`, if given.
    let arg = |name: &str| {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1).map(String::as_str)
    };
    let n: usize = arg("--n").and_then(|v| v.parse().ok()).unwrap_or(20_000);
    // For profiling: `--conc 32` runs one concurrency level; `--only
    // alertkit|bare|fanout|durable` one side; `--member wecom` a group of that one.
    let levels: Vec<usize> = match arg("--conc") {
        Some(c) => vec![c.parse().unwrap_or(32)],
        None => vec![1, 32],
    };
    let only = arg("--only");
    let rounds: usize = arg("--rounds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let member = arg("--member");

    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--sink")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?),
        &mut port,
    )?;
    let base = format!("http://127.0.0.1:{}", port.trim());

    let off = PolicyConfig::off();
    let config = Config::default()
        .with_instance(
            InstanceConfig::new("dingtalk", "dingtalk")
                .param("webhook", format!("{base}/robot/send?access_token=t"))
                .policy(off.clone()),
        )
        .with_instance(
            InstanceConfig::new("wecom", "wecom")
                .param("webhook", format!("{base}/cgi-bin/webhook/send?key=k"))
                .policy(off.clone()),
        )
        .with_instance(
            InstanceConfig::new("feishu", "feishu")
                .param("webhook", format!("{base}/open-apis/bot/v2/hook/t"))
                .policy(off.clone()),
        )
        .with_instance(
            InstanceConfig::new("webhook", "webhook")
                .param("url", format!("{base}/hook"))
                .param(
                    "success",
                    serde_json::json!({"json_pointer": "/errcode", "equals": 0}),
                )
                .policy(off.clone()),
        );
    let notifier = Notifier::from_config(&config)?;
    let mut group = AlertGroup::new("load");
    for name in ["dingtalk", "wecom", "feishu", "webhook"] {
        if member.is_some_and(|m| m != name) {
            continue;
        }
        group = group.with_member(name, notifier.channel(name).ok_or("missing")?);
    }
    // Deliveries per dispatch: 4 unless `--member`.
    let per_alert = group.members().len();
    let group = Arc::new(group);
    let alert = Alert::sample();
    // The baseline posts the very bodies the members would send.
    let bodies: Vec<(String, Vec<u8>)> = ["dingtalk", "wecom", "feishu", "webhook"]
        .iter()
        .zip([
            "/robot/send?access_token=t",
            "/cgi-bin/webhook/send?key=k",
            "/open-apis/bot/v2/hook/t",
            "/hook",
        ])
        .filter(|(name, _)| member.is_none_or(|m| m == **name))
        .map(|(name, path)| {
            let p = notifier.preview(name, &alert).expect("preview");
            (
                format!("{base}{path}"),
                serde_json::to_vec(&p[0].body).expect("json"),
            )
        })
        .collect();
    let bodies = Arc::new(bodies);
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;

    println!(
        "alertkit load: {n} alerts x {per_alert} channel(s) per side, in {rounds} alternating rounds; \
         sink in a child process\n"
    );
    println!(
        "| concurrency | alertkit deliveries/s | bare reqwest POSTs/s | ratio (rounds' range) | CPU µs/delivery (alertkit / bare) |"
    );
    println!("|---|---|---|---|---|");
    let mut dispatch_rate = 0.0;
    if only == Some("durable") {
        // Profiling the durable path alone.
        durable(&config, n, dispatch_rate).await?;
        let _ = child.kill();
        let _ = child.wait();
        return Ok(());
    }
    for &concurrency in &levels {
        // Warm up connections.
        let _ = group.dispatch(&alert).await;
        if let Some(side @ ("alertkit" | "bare" | "fanout")) = only {
            let (rate, cpu) = match side {
                "alertkit" => alertkit_round(&group, &alert, n, concurrency).await,
                "bare" => bare_round(&client, &bodies, n, concurrency, false).await,
                _ => bare_round(&client, &bodies, n, concurrency, true).await,
            };
            println!(
                "| {concurrency} ({side} only) | {rate:.0} deliveries/s | {cpu:.1} µs CPU/delivery |"
            );
            continue;
        }
        // Rounds alternate between the two sides, so that a change in the
        // machine's load hits both; the medians are compared.
        let per_round = n.div_ceil(rounds);
        let (mut ak, mut bare) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ak.push(alertkit_round(&group, &alert, per_round, concurrency).await);
            bare.push(bare_round(&client, &bodies, per_round, concurrency, false).await);
        }
        let ratios: Vec<f64> = ak.iter().zip(&bare).map(|(a, b)| a.0 / b.0).collect();
        let (r_ak, r_bare) = (
            median(ak.iter().map(|r| r.0)),
            median(bare.iter().map(|r| r.0)),
        );
        let (cpu_ak, cpu_bare) = (
            median(ak.iter().map(|r| r.1)),
            median(bare.iter().map(|r| r.1)),
        );
        dispatch_rate = r_ak;
        println!(
            "| {concurrency} | {r_ak:.0} | {r_bare:.0} | {:.2} ({:.2}–{:.2}) | {cpu_ak:.1} / {cpu_bare:.1} ({:.2}x) |",
            r_ak / r_bare,
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
            cpu_ak / cpu_bare.max(1e-9)
        );
    }
    if only.is_none() && member.is_none() {
        durable(&config, n, dispatch_rate).await?;
    }
    let _ = child.kill();
    let _ = child.wait();
    if only.is_some() {
        // Profiling one side: nothing else.
        return Ok(());
    }
    println!(
        "\npeak RSS after {} group dispatches ({} deliveries): {:.1} MB",
        n * levels.len() + levels.len(),
        (n * levels.len() + levels.len()) * per_alert,
        peak_rss_mb()
    );

    // Token economy: 3,000 WeCom app sends, one gettoken.
    let wecom = FakeWeCom::start().await;
    wecom.add_app("ww1", "s", 1);
    wecom.add_recipients(&["u1"], &[], &[]);
    let app = Notifier::from_config(
        &Config::default().with_instance(
            InstanceConfig::new("app", "wecom")
                .param("mode", "app")
                .param("corp_id", "ww1")
                .param("secret", "s")
                .param("agent_id", 1)
                .param("to_users", vec!["u1"])
                .param("base_url", wecom.uri())
                .policy(off.clone()),
        ),
    )?;
    let ch = app.channel("app").ok_or("missing")?;
    let a = alert.clone();
    run_concurrent(3000, 32, move |_| {
        let (ch, a) = (ch.clone(), a.clone());
        async move {
            ch.send(&a).await.expect("wecom app send");
        }
    })
    .await;
    println!(
        "\nWeCom app: 3000 sends, {} gettoken call(s)",
        wecom.token_fetches()
    );

    // Pooled SMTP at concurrency 1.
    let smtp = FakeSmtp::start().await?;
    let mail = Notifier::from_config(
        &Config::default().with_instance(
            InstanceConfig::new("mail", "email")
                .param("host", "127.0.0.1")
                .param("port", smtp.port())
                .param("tls", "none")
                .param("from", "a@load.example")
                .param("to", vec!["b@load.example"])
                .param("format", "text")
                .policy(off.clone()),
        ),
    )?;
    let ch = mail.channel("mail").ok_or("missing")?;
    let m = 3000;
    let t0 = Instant::now();
    for _ in 0..m {
        ch.send(&alert).await?;
    }
    println!(
        "SMTP: {m} pooled deliveries at concurrency 1: {:.0}/s over {} connection(s)",
        m as f64 / t0.elapsed().as_secs_f64(),
        smtp.connections()
    );

    // Building many instances.
    let mut big = Config::default();
    for i in 0..10_000 {
        big = big.with_instance(InstanceConfig::new(format!("ding-{i}"), "dingtalk").param(
            "webhook",
            format!("https://oapi.dingtalk.com/robot/send?access_token=t{i}"),
        ));
    }
    let t0 = Instant::now();
    let built = Notifier::from_config(&big)?;
    println!(
        "10,000 instances built in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    drop(built);
    Ok(())
}
