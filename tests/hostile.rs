//! Hostile servers and hostile input (issue 15): nothing a server answers or
//! an alert holds can panic the host, leak a secret or page people the
//! alert did not name.
#![cfg(all(
    feature = "dingtalk",
    feature = "feishu",
    feature = "wecom",
    feature = "email",
    feature = "testkit"
))]

use std::sync::Arc;
use std::time::Duration;

use alertkit::policy::{PolicyConfig, RetryPolicy, Toggle};
use alertkit::testkit::Fault;
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, AlertChannel, Config, ErrorKind, InstanceConfig, Notifier};
use serde_json::{Value, json};

fn channel_with(kind: &str, params: Value, policy: PolicyConfig) -> Arc<dyn AlertChannel> {
    let cfg = params.as_object().unwrap().iter().fold(
        InstanceConfig::new("x", kind).policy(policy),
        |c, (k, v)| c.param(k.clone(), v.clone()),
    );
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("x")
        .unwrap()
}

fn retrying() -> PolicyConfig {
    let mut p = PolicyConfig::off();
    p.retry = Toggle::On(
        serde_json::from_value::<RetryPolicy>(
            json!({"max_attempts": 3, "min_delay_ms": 10, "max_delay_ms": 20, "max_elapsed_ms": 2000}),
        )
        .unwrap(),
    );
    p
}

/// `Retry-After: 18446744073709551615` once panicked ("overflow when adding
/// durations"): now the wait saturates and the retry gives up in time.
#[tokio::test]
async fn an_endless_retry_after_neither_panics_nor_waits() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let ch = channel_with(
        "dingtalk",
        json!({"webhook": fake.webhook("tok")}),
        retrying(),
    );
    fake.push_fault(Fault::Raw {
        status: 429,
        headers: vec![("retry-after".into(), "18446744073709551615".into())],
        body: String::new(),
    });
    let started = std::time::Instant::now();
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.retry_after().unwrap() <= Duration::from_secs(86_400));
}

/// A token "valid for ever" once overflowed the cache's clock.
#[tokio::test]
async fn an_endless_token_lifetime_does_not_panic() {
    let fake = FakeWeCom::start().await;
    fake.add_app("ww-corp", "corp-secret-value", 1000002);
    fake.add_recipients(&["u1"], &[], &[]);
    fake.push_fault_on(
        "gettoken",
        Fault::Reply(
            200,
            json!({"errcode": 0, "errmsg": "ok", "access_token": "forever", "expires_in": u64::MAX}),
        ),
    );
    let ch = channel_with(
        "wecom",
        json!({"mode": "app", "corp_id": "ww-corp", "secret": "corp-secret-value",
               "agent_id": 1000002, "to_users": ["u1"], "base_url": fake.uri()}),
        PolicyConfig::off(),
    );
    // The fake does not know the token "forever": the send refreshes once.
    let _ = ch.send(&Alert::new("t")).await;
}

async fn robot_with_markdown(source: &str) -> (Notifier, FakeDingTalk) {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let config = Config::from_value(json!({"instances": [
        {"name": "r", "type": "dingtalk", "params": {"webhook": fake.webhook("tok")},
         "templates": {"markdown": source}, "policy": {"retry": false, "rate_limit": false}}],
        "groups": [{"name": "g", "instances": ["r"]}]}))
    .unwrap();
    (Notifier::from_config(&config).unwrap(), fake)
}

/// `{{ range(100000)|join('x' * 100000000) }}` (38 characters) once aborted
/// the host on allocation: now that member fails with a template error.
#[tokio::test]
async fn a_huge_join_fails_the_member_not_the_host() {
    let (n, fake) = robot_with_markdown("{{ range(100000)|join('x' * 100000000) }}").await;
    let r = n.dispatch("g", &Alert::new("t")).await.unwrap();
    let e = r.deliveries[0].error.as_ref().expect("failed");
    assert_eq!(e.kind(), ErrorKind::Template, "{e}");
    assert!(e.message().contains("render limit"), "{e}");
    assert!(fake.requests().is_empty());
}

/// A loop printing a large body is stopped at the render limit, while
/// rendering (it would write gigabytes).
#[tokio::test]
async fn output_is_capped_while_rendering() {
    let (n, _fake) =
        robot_with_markdown("{% for i in range(100000) %}{{ body }}{% endfor %}").await;
    let started = std::time::Instant::now();
    let r = n
        .dispatch("g", &Alert::new("t").body("b".repeat(30_000)))
        .await
        .unwrap();
    let e = r.deliveries[0].error.as_ref().expect("failed");
    assert_eq!(e.kind(), ErrorKind::Template, "{e}");
    assert!(e.message().contains("render limit"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for source in [
        "{{ ('x' * 1000000)|replace('x', 'yyyyyyyyyy') }}",
        "{{ ('x\n' * 1000000)|indent(100) }}",
    ] {
        let (n, _fake) = robot_with_markdown(source).await;
        let e = n.preview("r", &Alert::new("t")).unwrap_err();
        assert!(e.message().contains("render limit"), "{source}: {e}");
    }
    // Within the limit, the filters work as minijinja's.
    let (n, fake) =
        robot_with_markdown("{{ ['a', 'b']|join('-') }} {{ 'ab'|replace('b', 'c') }}").await;
    let r = n.dispatch("g", &Alert::new("t")).await.unwrap();
    assert_eq!(r.deliveries[0].outcome, alertkit::Outcome::Delivered);
    assert_eq!(fake.accepted()[0].body["markdown"]["text"], "a-b ac");
}

/// A Slack-style webhook with its token in the path: never shown whole in
/// `Debug`, errors or previews.
#[tokio::test]
async fn path_tokens_are_redacted_everywhere() {
    let secret = "XyZ0123456789abcdefGHIJKL";
    let url = format!("http://127.0.0.1:9/services/T0001/B0001/{secret}");
    let cfg = InstanceConfig::new("slack", "webhook")
        .param("url", url.as_str())
        .policy(PolicyConfig::off());
    assert!(!format!("{cfg:?}").contains(secret), "{cfg:?}");
    let n = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap();
    let previews = n.preview("slack", &Alert::new("t")).unwrap();
    assert!(
        !previews[0].target.contains(secret),
        "{}",
        previews[0].target
    );
    let e = n
        .channel("slack")
        .unwrap()
        .send(&Alert::new("t"))
        .await
        .unwrap_err();
    assert!(!e.to_string().contains(secret), "{e}");
    assert!(!format!("{e:?}").contains(secret), "{e:?}");
}

/// A platform that echoes the request's credentials in its error message.
#[tokio::test]
async fn platform_messages_lose_echoed_credentials() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok0123456789abcdef",
        RobotSpec {
            secret: Some("SECabcdef0123456789".into()),
            keywords: vec![],
        },
    );
    let ch = channel_with(
        "dingtalk",
        json!({"webhook": fake.webhook("tok0123456789abcdef"), "secret": "SECabcdef0123456789"}),
        PolicyConfig::off(),
    );
    fake.push_fault(Fault::errcode(
        310000,
        &format!(
            "sign not match, access_token=tok0123456789abcdef, secret SECabcdef0123456789, sign: dGhpcyBpcyBhIHNpZ25hdHVyZSBvZiB0aGUgcmVxdWVzdA== {}",
            "x".repeat(5000)
        ),
    ));
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    let text = e.to_string();
    for leaked in ["tok0123456789abcdef", "SECabcdef0123456789", "dGhpcyBpcyBh"] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
    assert!(e.message().len() <= 1100, "capped: {}", e.message().len());
    assert!(
        text.contains("sign not match"),
        "the message is kept: {text}"
    );
}

/// A channel that echoes its credentials, as an SMTP server echoing
/// `AUTH PLAIN` would: the core takes them out of whatever any channel says.
#[tokio::test]
async fn any_channel_error_loses_its_instance_secrets() {
    use alertkit::{BuildContext, Error, Receipt, Registry, async_trait};
    use base64::Engine as _;
    #[derive(Debug)]
    struct Echo(String, String);
    #[async_trait]
    impl AlertChannel for Echo {
        async fn send(&self, _: &Alert) -> alertkit::Result<Receipt> {
            let blob = base64::engine::general_purpose::STANDARD
                .encode(format!("\0{}\0{}", self.0, self.1));
            Err(Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "535 5.7.8 authentication failed for AUTH PLAIN {blob} (password {})",
                    self.1
                ),
            ))
        }
    }
    let mut registry = Registry::default();
    registry
        .register("echo", |ctx: &BuildContext<'_>| {
            let p = ctx.raw_params();
            let s = |k: &str| p[k].as_str().unwrap().to_owned();
            Ok(Arc::new(Echo(s("username"), s("password"))) as Arc<dyn AlertChannel>)
        })
        .unwrap();
    let config = Config::from_value(json!({"instances": [{"name": "e", "type": "echo",
        "params": {"username": "alerts", "password": "hunter2-pw"},
        "policy": {"retry": false, "rate_limit": false}}]}))
    .unwrap();
    let n = Notifier::from_config_with(&config, registry, alertkit::Http::new()).unwrap();
    let e = n
        .channel("e")
        .unwrap()
        .send(&Alert::new("t"))
        .await
        .unwrap_err();
    let blob = base64::engine::general_purpose::STANDARD.encode("\0alerts\0hunter2-pw");
    assert!(
        !e.message().contains("hunter2-pw") && !e.message().contains(&blob),
        "{e}"
    );
    assert!(e.message().starts_with("535 5.7.8"), "{e}");
}

/// A loopback SMTP server that greets, answers EHLO, then misbehaves at
/// MAIL FROM: an endless reply line, or no answer at all. With `tls`, it
/// speaks implicit TLS.
async fn bad_smtp_on(
    endless: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(config).accept(sock).await {
                            misbehave(s, endless).await;
                        }
                    }
                    None => misbehave(sock, endless).await,
                }
            });
        }
    });
    (port, task)
}

async fn bad_smtp(endless: bool) -> (u16, tokio::task::JoinHandle<()>) {
    bad_smtp_on(endless, None).await
}

async fn misbehave<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    sock: S,
    endless: bool,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    {
        {
            {
                let (r, mut w) = tokio::io::split(sock);
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 bad.example ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        let _ = w.write_all(b"250 bad.example\r\n").await;
                    } else if upper.starts_with("MAIL FROM") {
                        if endless {
                            // One line that never ends, as fast as the client reads.
                            let chunk = vec![b'x'; 64 * 1024];
                            let _ = w.write_all(b"250-").await;
                            for _ in 0..100_000 {
                                if w.write_all(&chunk).await.is_err() {
                                    return;
                                }
                            }
                        } else {
                            // A tarpit: never answer.
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                    } else {
                        let _ = w.write_all(b"250 ok\r\n").await;
                    }
                }
            }
        }
    }
}

fn mail_channel(port: u16) -> Arc<dyn AlertChannel> {
    channel_with(
        "email",
        json!({"host": "127.0.0.1", "port": port, "tls": "none", "from": "a@example.test",
               "to": ["b@example.test"], "timeout_ms": 1000}),
        PolicyConfig::off(),
    )
}

/// An endless reply line is cut off at a size limit, not read until the
/// process runs out of memory (6.4 GB offered here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_smtp_reply_is_cut_off() {
    let (port, server) = bad_smtp(true).await;
    let started = std::time::Instant::now();
    let e = mail_channel(port).send(&Alert::new("t")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!e.to_string().contains("xxxxxxxx"), "{e}");
    assert!(e.to_string().contains("in one reply"), "{e}");
    server.abort();
}

/// A tarpit at MAIL FROM holds the member for its own time limit only.
#[tokio::test]
async fn an_smtp_tarpit_is_bounded_by_the_channel_timeout() {
    let (port, server) = bad_smtp(false).await;
    let started = std::time::Instant::now();
    let e = mail_channel(port).send(&Alert::new("t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    server.abort();
}

/// Redirects: never followed by default (a secret header would reach the
/// target, and a 302 would turn the POST into an empty GET); a webhook may
/// opt in to same-origin 307/308 only.
#[tokio::test]
async fn webhook_redirects_are_refused_or_same_origin_only() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/moved"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/new"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/found"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/new"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/away"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", format!("{}/steal", other.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/new"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&other)
        .await;
    let hook = |p: &str, follow: Option<&str>| {
        let mut params =
            json!({"url": format!("{}{p}", server.uri()), "headers": {"X-Api-Key": "k-secret"}});
        if let Some(f) = follow {
            params["follow_redirects"] = json!(f);
        }
        channel_with("webhook", params, PolicyConfig::off())
    };
    // Default: a 3xx is a failure naming where it pointed.
    let e = hook("/moved", None)
        .send(&Alert::new("t"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("redirect"), "{e}");
    // Opted in: a same-origin 307 keeps the POST and its body.
    hook("/moved", Some("same_origin"))
        .send(&Alert::new("t"))
        .await
        .unwrap();
    let at_new: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/new")
        .collect();
    assert_eq!(at_new.len(), 1);
    assert_eq!(at_new[0].method.as_str(), "POST");
    assert!(!at_new[0].body.is_empty(), "the body was kept");
    // Never a 302 (it would become a GET), never another origin.
    assert!(
        hook("/found", Some("same_origin"))
            .send(&Alert::new("t"))
            .await
            .is_err()
    );
    assert!(
        hook("/away", Some("same_origin"))
            .send(&Alert::new("t"))
            .await
            .is_err()
    );
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "the key never left"
    );
}

/// The same endless line inside implicit TLS: the budget sits below TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_smtp_reply_inside_tls_is_cut_off() {
    let pki = alertkit::testkit::Pki::generate().unwrap();
    let dir = std::env::temp_dir().join(format!("alertkit-bad-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = pki.write_to(&dir).unwrap();
    let (port, server) = bad_smtp_on(true, Some(Arc::new(pki.server_config().unwrap()))).await;
    let ch = channel_with(
        "email",
        json!({"host": "localhost", "port": port, "tls": "implicit", "from": "a@example.test",
               "to": ["b@example.test"], "timeout_ms": 1000, "ca_file": files.ca}),
        PolicyConfig::off(),
    );
    let started = std::time::Instant::now();
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !e.to_string().contains("handshake"),
        "TLS itself worked: {e}"
    );
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server advertising `SIZE 2000`: a larger message is refused before
/// MAIL FROM (nothing sent); a smaller one goes with `SIZE=` in MAIL FROM.
#[tokio::test]
async fn smtp_size_is_honoured_before_data() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let server = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sized.example ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            let _ = w.write_all(b"250 queued\r\n").await;
                        }
                        continue;
                    }
                    log.lock().unwrap().push(line.clone());
                    let upper = line.to_ascii_uppercase();
                    let answer: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sized.example\r\n250 SIZE 2000\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go\r\n"
                    } else if upper.starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(answer).await;
                }
            });
        }
    });
    let ch = mail_channel(port);
    let e = ch
        .send(&Alert::new("big").body("x".repeat(5000)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PayloadTooLarge, "{e}");
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("MAIL FROM")),
        "nothing sent: {:?}",
        seen.lock().unwrap()
    );
    ch.send(&Alert::new("small")).await.unwrap();
    let mail = seen
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.starts_with("MAIL FROM"))
        .cloned()
        .unwrap();
    assert!(mail.contains(" SIZE="), "{mail}");
    server.abort();
}
