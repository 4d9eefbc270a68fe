//! The durable outbox (issue 20): idempotency keys on the wire, the
//! journal's guarantees in process, and kill tests with real processes: a
//! child enqueues 1,000 alerts behind a tight rate limit and is SIGKILLed
//! mid-way, a second child on the same journal finishes, and every alert
//! reaches every member exactly once (counted at the fakes, which honour
//! the platforms' de-dup keys).
#![cfg(all(
    feature = "dingtalk",
    feature = "feishu",
    feature = "wecom",
    feature = "email",
    feature = "outbox",
    feature = "testkit"
))]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertkit::outbox::{Journal, OutboxOptions};
use alertkit::testkit::Fault;
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::feishu::{FakeFeishu, RateLimitAnswer};
use alertkit::testkit::smtp::FakeSmtp;
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, Config, ErrorKind, GroupStatus, Http, Notifier};
use serde_json::{Value, json};

/// The four platforms with a de-dup key, with limits far above the test's.
struct Fakes {
    ding: FakeDingTalk,
    wecom: FakeWeCom,
    feishu: FakeFeishu,
    smtp: FakeSmtp,
}

impl Fakes {
    async fn start() -> Fakes {
        let ding = FakeDingTalk::start().await;
        ding.add_robot("tok", RobotSpec::default());
        ding.set_rate_limit(100_000, Duration::from_secs(60), Duration::from_secs(1));
        let wecom = FakeWeCom::start().await;
        wecom.add_app("ww1", "wecom-secret-1", 1);
        wecom.add_recipients(&["u1"], &[], &[]);
        wecom.set_rate_limit(100_000, Duration::from_secs(60));
        let feishu = FakeFeishu::start().await;
        feishu.add_app("cli_1", "feishu-secret-1");
        feishu.add_receiver("chat_id", "oc1");
        feishu.set_rate_limit(100_000, 1_000_000, RateLimitAnswer::Code11232);
        let smtp = FakeSmtp::start().await.unwrap();
        Fakes {
            ding,
            wecom,
            feishu,
            smtp,
        }
    }

    /// Instances `ding`, `wecom`, `feishu`, `email` in group `g`; `policy`
    /// for each.
    fn config(&self, policy: &Value) -> Value {
        let inst = |name: &str, kind: &str, params: Value| json!({"name": name, "type": kind, "policy": policy, "params": params});
        json!({
            "instances": [
                inst("ding", "dingtalk", json!({"webhook": self.ding.webhook("tok")})),
                inst("wecom", "wecom", json!({"mode": "app", "corp_id": "ww1", "secret": "wecom-secret-1",
                                              "agent_id": 1, "to_users": ["u1"], "base_url": self.wecom.uri()})),
                inst("feishu", "feishu", json!({"mode": "app", "app_id": "cli_1", "app_secret": "feishu-secret-1",
                                                "receive_ids": ["oc1"], "base_url": self.feishu.uri()})),
                inst("email", "email", json!({"host": "127.0.0.1", "port": self.smtp.port(), "tls": "none",
                                              "from": "alerts@example.test", "to": ["ops@example.test"],
                                              "format": "text"})),
            ],
            "groups": [{"name": "g", "instances": ["ding", "wecom", "feishu", "email"]}]
        })
    }

    /// Per member: how many distinct messages carry each alert tag
    /// (`outbox-0042`), duplicates dropped as the platform drops them (for
    /// email: by Message-ID, as mail readers and archives do), and how many
    /// raw copies were dropped that way.
    fn counts(&self) -> BTreeMap<&'static str, (BTreeMap<String, usize>, usize)> {
        let mut out = BTreeMap::new();
        for (name, recs) in [
            ("ding", self.ding.requests()),
            ("wecom", self.wecom.requests()),
            ("feishu", self.feishu.requests()),
        ] {
            let mut per = BTreeMap::new();
            let mut dups = 0;
            for r in recs {
                if r.duplicate {
                    dups += 1;
                }
                if !r.accepted {
                    continue;
                }
                for tag in tags(&r.body.to_string()) {
                    *per.entry(tag).or_insert(0) += 1;
                }
            }
            out.insert(name, (per, dups));
        }
        let mut per = BTreeMap::new();
        let mut ids = BTreeSet::new();
        let mut dups = 0;
        for m in self.smtp.messages() {
            let id = m
                .data
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap_or_default()
                .to_owned();
            if !ids.insert(id) {
                dups += 1;
                continue;
            }
            for tag in tags(&m.data) {
                *per.entry(tag).or_insert(0) += 1;
            }
        }
        out.insert("email", (per, dups));
        out
    }
}

/// Every `outbox-NNNN` in a text, once each.
fn tags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("outbox-") {
        let tail = &rest[i + 7..];
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if digits.len() == 4 {
            out.insert(format!("outbox-{digits}"));
        }
        rest = tail;
    }
    out
}

fn notifier(config: &Value, http: Http) -> Arc<Notifier> {
    let config = Config::from_value(config.clone()).unwrap();
    Arc::new(Notifier::from_config_with(&config, alertkit::Registry::default(), http).unwrap())
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("alertkit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn drained(n: &Notifier, within: Duration) {
    let started = Instant::now();
    loop {
        let pending = n.pending().await.unwrap();
        if pending.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{} entries still pending: {:?}",
            pending.len(),
            pending.first().map(|e| &e.members)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 20: "a timeout followed by a retry does not post twice (today a
/// cut-off answer gives 4–5 copies)". Each platform posts the message but
/// answers after the client gave up; the retry carries the same key and the
/// platform drops the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_cut_off_answer_does_not_post_twice() {
    let f = Fakes::start().await;
    let policy = json!({"retry": {"max_attempts": 4, "min_delay_ms": 10, "max_delay_ms": 20}, "rate_limit": false});
    let http = Http::with_client(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(400))
            .build()
            .unwrap(),
    );
    let n = notifier(&f.config(&policy), http);
    // Token calls first, so the delays hit the message sends.
    n.dispatch("g", &Alert::new("warm-up")).await.unwrap();
    f.ding.push_fault(Fault::Delay(Duration::from_millis(900)));
    f.wecom
        .push_fault_on("message/send", Fault::Delay(Duration::from_millis(900)));
    f.feishu
        .push_fault(Fault::Delay(Duration::from_millis(900)));
    let report = n.dispatch("g", &Alert::new("outbox-0001")).await.unwrap();
    for name in ["ding", "wecom", "feishu"] {
        let d = report.delivery(name).unwrap();
        assert!(d.is_delivered(), "{name}: {d:?}");
        assert!(d.attempts >= 2, "{name} was retried: {d:?}");
    }
    let counts = f.counts();
    for name in ["ding", "wecom", "feishu"] {
        let (per, dups) = &counts[name];
        assert_eq!(per.get("outbox-0001"), Some(&1), "{name}: {per:?}");
        assert!(
            *dups >= 1,
            "{name}: the retry reached the platform as a copy"
        );
    }
    // Every retry of one delivery carried one key; another alert gets another.
    let keys: BTreeSet<String> = f
        .ding
        .requests()
        .iter()
        .filter(|r| tags(&r.body.to_string()).contains("outbox-0001"))
        .map(|r| r.body["msgUuid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let warm = f.ding.requests()[0].body["msgUuid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!keys.contains(&warm));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_alerts_are_delivered_and_pruned() {
    let f = Fakes::start().await;
    let n = notifier(&f.config(&json!({})), Http::new());
    let dir = temp_dir("outbox-basic");
    n.start_outbox(
        Arc::new(Journal::open(&dir).unwrap()),
        OutboxOptions::default(),
    )
    .unwrap();
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = reports.clone();
    n.on_dispatch(move |_, r| seen.lock().unwrap().push(r.status));
    for i in 0..20 {
        let t = n
            .enqueue("g", &Alert::new(format!("outbox-{i:04}")))
            .await
            .unwrap();
        assert_eq!(t.id.len(), 32);
        assert!(t.suppressed.is_none());
    }
    drained(&n, Duration::from_secs(20)).await;
    for (name, (per, _)) in f.counts() {
        assert_eq!(per.len(), 20, "{name}: {per:?}");
        assert!(per.values().all(|&c| c == 1), "{name}: {per:?}");
    }
    assert_eq!(
        *reports.lock().unwrap(),
        vec![GroupStatus::Delivered; 20],
        "one report per delivery, to the hooks"
    );
    assert!(n.dead_letters().await.unwrap().is_empty());
    let e = n.enqueue("nope", &Alert::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    n.shutdown(Duration::from_secs(5)).await;
    let e = n.enqueue("g", &Alert::new("late")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ShutDown);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A platform down past shutdown: the entry stays in the journal, with the
/// members already delivered recorded; the next process sends only the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_sends_only_the_members_not_yet_delivered() {
    let f = Fakes::start().await;
    let policy = json!({"retry": false, "rate_limit": false});
    let dir = temp_dir("outbox-restart");
    {
        let n = notifier(&f.config(&policy), Http::new());
        n.start_outbox(
            Arc::new(Journal::open(&dir).unwrap()),
            OutboxOptions::default().backoff(Duration::from_secs(2), Duration::from_secs(2)),
        )
        .unwrap();
        for _ in 0..3 {
            f.feishu.push_fault(Fault::code(503, 99991400, "busy"));
        }
        n.enqueue("g", &Alert::new("outbox-0007")).await.unwrap();
        let started = Instant::now();
        loop {
            let p = n.pending().await.unwrap();
            if p.len() == 1 && p[0].members.len() == 4 {
                let m = &p[0].members;
                assert!(
                    m["ding"].is_delivered()
                        && m["wecom"].is_delivered()
                        && m["email"].is_delivered(),
                    "{m:?}"
                );
                assert!(!m["feishu"].is_final(), "{m:?}");
                assert_eq!(p[0].attempts, 1);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{p:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n.shutdown(Duration::from_secs(5)).await;
    }
    // The journal's lock is free once the first notifier is gone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = notifier(&f.config(&policy), Http::new());
    n.start_outbox(
        Arc::new(Journal::open(&dir).unwrap()),
        OutboxOptions::default(),
    )
    .unwrap();
    assert_eq!(f.counts()["feishu"].0.get("outbox-0007"), None);
    drained(&n, Duration::from_secs(15)).await;
    let counts = f.counts();
    for name in ["ding", "wecom", "feishu", "email"] {
        assert_eq!(
            counts[name].0.get("outbox-0007"),
            Some(&1),
            "{name}: {counts:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_become_dead_letters_that_can_be_retried_or_dropped() {
    let f = Fakes::start().await;
    let policy = json!({"retry": false, "rate_limit": false});
    let n = notifier(&f.config(&policy), Http::new());
    let dir = temp_dir("outbox-dead");
    n.start_outbox(
        Arc::new(Journal::open(&dir).unwrap()),
        OutboxOptions::default(),
    )
    .unwrap();
    // DingTalk: a keyword missing is permanent (310000).
    f.ding
        .push_fault(Fault::errcode(310000, "keywords not in content"));
    f.ding
        .push_fault(Fault::errcode(310000, "keywords not in content"));
    n.enqueue("g", &Alert::new("outbox-0001")).await.unwrap();
    n.enqueue("g", &Alert::new("outbox-0002")).await.unwrap();
    drained(&n, Duration::from_secs(10)).await;
    let dead = n.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].dead_reason.as_deref().unwrap().contains("ding"));
    assert!(dead[0].members["email"].is_delivered());
    assert_eq!(
        dead[0].members["ding"].error.as_ref().unwrap().kind(),
        ErrorKind::KeywordMissing
    );
    // Retried: only DingTalk is sent again.
    assert!(n.retry_dead_letter(&dead[0].id).await.unwrap());
    assert!(!n.retry_dead_letter("no-such-id").await.unwrap());
    drained(&n, Duration::from_secs(10)).await;
    let counts = f.counts();
    let tag = tags(&dead[0].alert.title).into_iter().next().unwrap();
    for name in ["ding", "wecom", "feishu", "email"] {
        assert_eq!(counts[name].0.get(&tag), Some(&1), "{name}: {counts:?}");
    }
    assert!(n.drop_dead_letter(&dead[1].id).await.unwrap());
    assert!(n.dead_letters().await.unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_unusable_journal_refuses_loudly() {
    let f = Fakes::start().await;
    let n = notifier(&f.config(&json!({})), Http::new());
    let dir = temp_dir("outbox-full");
    // Entries stay pending: the worker never starts them within the test.
    n.start_outbox(
        Arc::new(Journal::open(&dir).unwrap().max_entries(3)),
        OutboxOptions::default()
            .concurrency(1)
            .backoff(Duration::from_secs(60), Duration::from_secs(60)),
    )
    .unwrap();
    for _ in 0..10 {
        f.ding.push_fault(Fault::Delay(Duration::from_secs(5)));
    }
    let mut refused = 0;
    for i in 0..5 {
        match n.enqueue("g", &Alert::new(format!("outbox-{i:04}"))).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
                assert!(e.to_string().contains("full"), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 2);
    // A second process (or notifier) cannot take a journal in use.
    let e = Journal::open(&dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage);
    // A path that cannot be a journal directory.
    let file = dir.join("outbox.redb");
    let e = Journal::open(&file).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    // Without an outbox, enqueue says so.
    let plain = notifier(&f.config(&json!({})), Http::new());
    let e = plain.enqueue("g", &Alert::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
}

/// The group's `repeat_interval` applies at enqueue time: a second
/// identical alert is suppressed and nothing is stored for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_interval_suppresses_at_enqueue() {
    let f = Fakes::start().await;
    let mut config = f.config(&json!({}));
    config["groups"][0]["repeat_interval_secs"] = json!(600);
    let n = notifier(&config, Http::new());
    let dir = temp_dir("outbox-dedup");
    n.start_outbox(
        Arc::new(Journal::open(&dir).unwrap()),
        OutboxOptions::default(),
    )
    .unwrap();
    let first = n.enqueue("g", &Alert::new("outbox-0001")).await.unwrap();
    let second = n.enqueue("g", &Alert::new("outbox-0001")).await.unwrap();
    assert!(first.suppressed.is_none());
    assert!(
        second
            .suppressed
            .as_deref()
            .unwrap()
            .contains("repeat_interval")
    );
    drained(&n, Duration::from_secs(10)).await;
    assert_eq!(f.counts()["ding"].0.get("outbox-0001"), Some(&1));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Kill tests: the test binary runs itself as the child.

const CHILD_ENV: &str = "ALERTKIT_OUTBOX_CHILD";

/// The child: not a test of its own (returns at once without its variable).
/// With it: builds the notifier from `config`, opens `journal`, enqueues
/// `enqueue` alerts (printing `enqueued`), and exits once nothing is pending
/// (printing `drained`).
#[test]
fn outbox_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n = notifier(&spec["config"], Http::new());
        let store: Arc<dyn alertkit::outbox::OutboxStore> = match spec["redis"].as_str() {
            #[cfg(feature = "redis")]
            Some(url) => Arc::new(
                alertkit::outbox::RedisStreams::connect(url, "kill")
                    .await
                    .unwrap()
                    .claim_after(Duration::from_secs(2)),
            ),
            _ => match Journal::open(spec["journal"].as_str().unwrap()) {
                Ok(j) => Arc::new(j),
                Err(e) => {
                    println!("open-failed {}", e.kind());
                    return;
                }
            },
        };
        n.start_outbox(
            store,
            OutboxOptions::default()
                .backoff(Duration::from_millis(100), Duration::from_secs(1))
                .poll(Duration::from_millis(200)),
        )
        .unwrap();
        let count = spec["enqueue"].as_u64().unwrap_or(0);
        for i in 0..count {
            if let Err(e) = n.enqueue("g", &Alert::new(format!("outbox-{i:04}"))).await {
                println!("enqueue-failed {} {}", i, e.kind());
                return;
            }
        }
        println!("enqueued");
        loop {
            if n.pending().await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("drained");
    });
}

fn child(spec: &Value, shell_prefix: Option<&str>) -> tokio::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match shell_prefix {
        Some(prefix) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(format!(
                "{prefix}; exec \"$0\" --exact outbox_child_process --nocapture --test-threads 1"
            ));
            c.arg(&exe);
            c
        }
        None => {
            let mut c = tokio::process::Command::new(&exe);
            c.args([
                "--exact",
                "outbox_child_process",
                "--nocapture",
                "--test-threads",
                "1",
            ]);
            c
        }
    };
    cmd.env(CHILD_ENV, spec.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    cmd.spawn().unwrap()
}

/// The child's stdout lines, read until `want` (or the end).
async fn read_until(c: &mut tokio::process::Child, want: &str, within: Duration) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let out = c.stdout.as_mut().unwrap();
    let mut lines = tokio::io::BufReader::new(out).lines();
    let mut seen = Vec::new();
    let read = async {
        while let Ok(Some(l)) = lines.next_line().await {
            let done = l.ends_with(want);
            seen.push(l);
            if done {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    seen
}

fn delivered_messages(f: &Fakes) -> usize {
    f.counts()
        .values()
        .map(|(per, _)| per.values().sum::<usize>())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_delivery_the_next_process_delivers_every_alert_exactly_once() {
    let f = Fakes::start().await;
    const N: usize = 1000;
    // Tight: 100 a second per member, one at a time (no digests), so the
    // 4,000 deliveries take 10 s and the kill lands in the middle.
    let policy = json!({"retry": {"max_attempts": 3, "min_delay_ms": 20},
                        "rate_limit": {"digest": false, "rates": [{"count": 100, "per_ms": 1000}]}});
    let dir = temp_dir("outbox-kill");
    let spec = json!({"config": f.config(&policy), "journal": dir, "enqueue": N});
    let mut first = child(&spec, None);
    let lines = read_until(&mut first, "enqueued", Duration::from_secs(60)).await;
    assert!(lines.iter().any(|l| l.ends_with("enqueued")), "{lines:?}");
    // Let part of the backlog go out, then SIGKILL.
    let started = Instant::now();
    while f.ding.requests().len() < 300 {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await.unwrap();
    let before = delivered_messages(&f);
    assert!(before < 4 * N, "killed before the end ({before} messages)");

    let mut second = child(&json!({"config": f.config(&policy), "journal": dir}), None);
    let lines = read_until(&mut second, "drained", Duration::from_secs(120)).await;
    assert!(lines.iter().any(|l| l.ends_with("drained")), "{lines:?}");
    let _ = second.wait().await;

    assert_each_once(&f, N);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk: the child's file size limit (`ulimit -f`, SIGXFSZ ignored)
/// makes the journal's writes fail; every `enqueue` from then on fails
/// loudly and nothing it refused is ever delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_enqueue_fail_loudly() {
    let f = Fakes::start().await;
    // Slow delivery, so entries pile up in the journal.
    let policy = json!({"retry": false, "rate_limit": {"digest": false, "rates": [{"count": 10, "per_ms": 1000}]}});
    let dir = temp_dir("outbox-disk");
    // 2 MiB (ulimit -f counts 1 KiB blocks): room for the journal's first pages only.
    let spec = json!({"config": f.config(&policy), "journal": dir, "enqueue": 20_000});
    let mut c = child(&spec, Some("trap '' XFSZ; ulimit -f 2048"));
    let lines = read_until(&mut c, "drained", Duration::from_secs(120)).await;
    let _ = c.wait().await;
    let failed = lines
        .iter()
        .find(|l| l.contains("enqueue-failed") || l.contains("open-failed"))
        .unwrap_or_else(|| panic!("no enqueue failed: {lines:?}"));
    assert!(failed.ends_with("storage"), "{failed}");
    if let Some(i) = failed
        .strip_prefix("enqueue-failed ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
    {
        assert!(i > 0, "some alerts fit before the disk filled");
        // Give the child's worker no chance: it is gone. What it delivered
        // were accepted alerts only.
        let refused = format!("outbox-{i:04}");
        assert!(
            f.counts()
                .values()
                .all(|(per, _)| !per.contains_key(&refused))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;

/// Every alert once per member, and how many copies the platforms dropped.
fn assert_each_once(f: &Fakes, n: usize) -> BTreeMap<&'static str, usize> {
    let mut dropped = BTreeMap::new();
    for (name, (per, dups)) in f.counts() {
        let missing: Vec<usize> = (0..n)
            .filter(|i| !per.contains_key(&format!("outbox-{i:04}")))
            .collect();
        let twice: Vec<(&String, &usize)> = per.iter().filter(|(_, c)| **c != 1).collect();
        assert!(
            missing.is_empty(),
            "{name}: {} alerts lost: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert!(
            twice.is_empty(),
            "{name}: delivered more than once: {twice:?}"
        );
        println!(
            "{name}: {} alerts once each; {dups} copies dropped by the platform's de-dup key",
            per.len()
        );
        dropped.insert(name, dups);
    }
    dropped
}

/// A redis-server, the fakes, and two replica processes on one stream
/// behind a tight rate limit (100/s per member, no digests): the first has
/// enqueued `n` alerts, the second has just started.
#[cfg(feature = "redis")]
async fn two_replicas(
    n: usize,
) -> (
    redis_server::Redis,
    Fakes,
    tokio::process::Child,
    tokio::process::Child,
) {
    let r = redis_server::redis().await;
    let f = Fakes::start().await;
    let policy = json!({"retry": {"max_attempts": 3, "min_delay_ms": 20},
                        "rate_limit": {"digest": false, "rates": [{"count": 100, "per_ms": 1000}]}});
    let mut a = child(
        &json!({"config": f.config(&policy), "redis": r.url, "enqueue": n}),
        None,
    );
    let lines = read_until(&mut a, "enqueued", Duration::from_secs(60)).await;
    assert!(lines.iter().any(|l| l.ends_with("enqueued")), "{lines:?}");
    let b = child(&json!({"config": f.config(&policy), "redis": r.url}), None);
    (r, f, a, b)
}

/// Two live replicas on one Redis stream share the work and never send the
/// same entry twice: not even a copy for the platforms to drop.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_replicas_on_redis_streams_send_each_entry_once() {
    const N: usize = 400;
    let (_r, f, mut a, mut b) = two_replicas(N).await;
    for c in [&mut a, &mut b] {
        let lines = read_until(c, "drained", Duration::from_secs(120)).await;
        assert!(lines.iter().any(|l| l.ends_with("drained")), "{lines:?}");
        let _ = c.wait().await;
    }
    let dropped = assert_each_once(&f, N);
    assert!(
        dropped.values().all(|&d| d == 0),
        "a live replica sent a copy: {dropped:?}"
    );
}

/// One of two replicas is SIGKILLed mid-delivery: the other takes over its
/// entries after `claim_after` and sends only what it had not.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_on_redis_streams_loses_nothing_and_sends_once() {
    const N: usize = 1000;
    let (_r, f, mut a, mut b) = two_replicas(N).await;
    let started = Instant::now();
    while f.ding.requests().len() < 300 {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().await.unwrap();
    assert!(delivered_messages(&f) < 4 * N, "killed before the end");
    let lines = read_until(&mut b, "drained", Duration::from_secs(120)).await;
    assert!(lines.iter().any(|l| l.ends_with("drained")), "{lines:?}");
    let _ = b.wait().await;
    assert_each_once(&f, N);
}

/// The host's lifecycle: the runtime the worker ran on shuts down with a
/// delivery in flight (a sync host's `block_on`, a test runtime); the next
/// enqueue on another runtime starts the worker again, and the entry that
/// was in flight is delivered too, once (its key makes the copy a duplicate).
#[test]
fn the_worker_starts_again_when_its_runtime_is_gone() {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let f = servers.block_on(Fakes::start());
    let policy = json!({"retry": false, "rate_limit": false});
    let mut config = f.config(&policy);
    config["groups"][0]["instances"] = json!(["ding"]);
    let n = notifier(&config, Http::new());
    let dir = temp_dir("outbox-runtime");
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        n.start_outbox(
            Arc::new(Journal::open(&dir).unwrap()),
            OutboxOptions::default().poll(Duration::from_millis(50)),
        )
        .unwrap();
        // Posted, but the answer comes after the runtime is gone.
        f.ding.push_fault(Fault::Delay(Duration::from_secs(3)));
        n.enqueue("g", &Alert::new("outbox-0001")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        n.enqueue("g", &Alert::new("outbox-0002")).await.unwrap();
        drained(&n, Duration::from_secs(10)).await;
    });
    let (per, dups) = &f.counts()["ding"];
    assert_eq!(per.get("outbox-0001"), Some(&1), "{per:?}");
    assert_eq!(per.get("outbox-0002"), Some(&1), "{per:?}");
    assert_eq!(*dups, 1, "the redelivery reached the robot as a copy");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Redis Streams: dead letters (bounded, oldest dropped), retried and
/// dropped; a full stream refuses `enqueue`.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams_dead_letters_and_bounds() {
    use alertkit::outbox::RedisStreams;
    let r = redis_server::redis().await;
    let f = Fakes::start().await;
    let policy = json!({"retry": false, "rate_limit": false});
    let n = notifier(&f.config(&policy), Http::new());
    let store = RedisStreams::connect(&r.url, "dl")
        .await
        .unwrap()
        .max_dead(1);
    n.start_outbox(Arc::new(store), OutboxOptions::default())
        .unwrap();
    for _ in 0..2 {
        f.ding
            .push_fault(Fault::errcode(310000, "keywords not in content"));
    }
    n.enqueue("g", &Alert::new("outbox-0001")).await.unwrap();
    drained(&n, Duration::from_secs(10)).await;
    n.enqueue("g", &Alert::new("outbox-0002")).await.unwrap();
    drained(&n, Duration::from_secs(10)).await;
    let dead = n.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "bounded to 1, the oldest went: {dead:?}");
    assert_eq!(dead[0].alert.title, "outbox-0002");
    assert!(dead[0].members["feishu"].is_delivered());
    assert!(n.retry_dead_letter(&dead[0].id).await.unwrap());
    drained(&n, Duration::from_secs(10)).await;
    assert!(n.dead_letters().await.unwrap().is_empty());
    let counts = f.counts();
    for name in ["ding", "wecom", "feishu", "email"] {
        assert_eq!(
            counts[name].0.get("outbox-0002"),
            Some(&1),
            "{name}: {counts:?}"
        );
    }
    assert_eq!(counts["ding"].0.get("outbox-0001"), None);

    // A full stream: the first entry hangs on the robot, the second waits.
    let mut config = f.config(&policy);
    config["groups"][0]["instances"] = json!(["ding"]);
    let slow = notifier(&config, Http::new());
    let store = RedisStreams::connect(&r.url, "full")
        .await
        .unwrap()
        .max_entries(2);
    slow.start_outbox(Arc::new(store), OutboxOptions::default().concurrency(1))
        .unwrap();
    for _ in 0..3 {
        f.ding.push_fault(Fault::Delay(Duration::from_secs(2)));
    }
    slow.enqueue("g", &Alert::new("outbox-0010")).await.unwrap();
    slow.enqueue("g", &Alert::new("outbox-0011")).await.unwrap();
    let e = slow
        .enqueue("g", &Alert::new("outbox-0012"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("full"), "{e}");
}
