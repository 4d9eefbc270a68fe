//! Email channel against a real SMTP server (aiosmtpd, started by each test
//! on 127.0.0.1; `scripts/test.sh` installs it). TLS uses a CA and a leaf
//! made at test time (`testkit::Pki`). No mock of lettre. At the end, the
//! testkit's own SMTP server with STARTTLS and implicit TLS.
#![cfg(feature = "email")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use alertkit::policy::PolicyConfig;
use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
use alertkit::testkit::{Pki, PkiFiles};
use alertkit::{
    Alert, AlertChannel, AlertGroup, Config, ErrorKind, InstanceConfig, JobInfo, JobStatus,
    Notifier, Outcome,
};
use mail_parser::MimeHeaders;
use serde_json::{Value, json};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "alertkit-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A test CA and a leaf for localhost / 127.0.0.1 signed by it, as files
/// in a directory removed when the value is dropped.
struct TestPki {
    files: PkiFiles,
    dir: PathBuf,
}

impl std::ops::Deref for TestPki {
    type Target = PkiFiles;
    fn deref(&self) -> &PkiFiles {
        &self.files
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki() -> TestPki {
    let dir = temp_dir("pki");
    TestPki {
        files: Pki::generate().unwrap().write_to(&dir).unwrap(),
        dir,
    }
}

/// One aiosmtpd process.
struct Server {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Server {
    fn start(mode: &str, pki: Option<&PkiFiles>, extra: &[&str]) -> Server {
        let out = temp_dir("smtp");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--mode", mode, "--out"])
            .arg(&out)
            .args(extra);
        if let Some(p) = pki {
            cmd.arg("--cert").arg(&p.cert).arg("--key").arg(&p.key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 is required for the email tests (scripts/test.sh installs aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP test server did not start (is aiosmtpd installed? run scripts/test.sh): {line:?}"));
        Server { child, port, out }
    }

    /// Accepted messages: (envelope and session facts, raw message).
    fn messages(&self) -> Vec<(Value, Vec<u8>)> {
        (1..)
            .map_while(|n| {
                let meta = std::fs::read_to_string(self.out.join(format!("{n}.json"))).ok()?;
                let eml = std::fs::read(self.out.join(format!("{n}.eml"))).ok()?;
                Some((serde_json::from_str(&meta).unwrap(), eml))
            })
            .collect()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

fn channel(params: Value) -> Arc<dyn AlertChannel> {
    let mut cfg = InstanceConfig::new("mail", "email").policy(PolicyConfig::off());
    cfg.params = params.as_object().unwrap().clone();
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("mail")
        .unwrap()
}

fn build_err(params: Value) -> alertkit::Error {
    let mut cfg = InstanceConfig::new("mail", "email").policy(PolicyConfig::off());
    cfg.params = params.as_object().unwrap().clone();
    Notifier::from_config(&Config::default().with_instance(cfg)).unwrap_err()
}

fn alert() -> Alert {
    Alert::new("Flink job orders-etl FAILED")
        .body("Checkpoint 42 failed 3 times.")
        .job(
            JobInfo::new("orders-etl")
                .status(JobStatus::Failed)
                .cluster("prod-yarn")
                .error("java.lang.RuntimeException: <boom> & more"),
        )
        .field("Owner", "data-team")
}

fn parse(eml: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(eml)
        .expect("a parsable message")
}

#[tokio::test]
async fn starttls_with_auth_login_delivers_a_complete_message() {
    let pki = pki();
    let server = Server::start(
        "starttls",
        Some(&*pki),
        &[
            "--user",
            "alerts",
            "--password",
            "pw-secret",
            "--only-mech",
            "LOGIN",
        ],
    );
    let ch = channel(json!({
        "host": "localhost", "port": server.port, "tls": "starttls", "ca_file": pki.ca,
        "username": "alerts", "password": "pw-secret",
        "from": "alerts@corp.example", "from_name": "告警中心",
        "to": ["ops@corp.example", "Dev Team <dev@corp.example>"], "cc": ["lead@corp.example"],
        "bcc": ["audit@corp.example"], "format": "table_attachment"
    }));
    let receipt = ch.send(&alert()).await.expect("delivered");
    assert!(receipt.message_id.is_some());
    assert!(receipt.rejected_recipients.is_empty());

    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    let (meta, eml) = &msgs[0];
    assert_eq!(meta["tls"], true);
    assert_eq!(meta["mail_from"], "alerts@corp.example");
    assert_eq!(
        meta["rcpt_tos"],
        json!([
            "ops@corp.example",
            "dev@corp.example",
            "lead@corp.example",
            "audit@corp.example"
        ])
    );
    assert!(
        server
            .log("auth.log")
            .starts_with("LOGIN alerts tls=True ok=True"),
        "{}",
        server.log("auth.log")
    );

    let raw = String::from_utf8_lossy(eml);
    assert!(
        !raw.to_ascii_lowercase().contains("\nbcc:"),
        "no Bcc header"
    );
    assert!(
        !raw.contains("audit@corp.example"),
        "the Bcc address appears nowhere in the message"
    );
    let m = parse(eml);
    let from = m.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("告警中心"));
    assert_eq!(from.address(), Some("alerts@corp.example"));
    let to: Vec<_> = m
        .to()
        .unwrap()
        .iter()
        .map(|a| a.address().unwrap().to_owned())
        .collect();
    assert_eq!(to, ["ops@corp.example", "dev@corp.example"]);
    assert_eq!(
        m.cc().unwrap().first().unwrap().address(),
        Some("lead@corp.example")
    );
    assert_eq!(m.subject(), Some("[Error] Flink job orders-etl FAILED"));
    let text = m.body_text(0).unwrap();
    assert!(text.contains("Checkpoint 42 failed 3 times."), "{text}");
    let html = m.body_html(0).unwrap();
    assert!(html.contains("<tr><th align=\"left\">Cluster</th><td style=\"white-space:pre-wrap\">prod-yarn</td></tr>"), "{html}");
    assert!(
        html.contains("java.lang.RuntimeException: &lt;boom&gt; &amp; more"),
        "escaped: {html}"
    );

    let att = m.attachments().next().expect("an attachment");
    assert_eq!(
        att.attachment_name(),
        Some("Flink job orders-etl FAILED.xlsx")
    );
    use calamine::{Reader, Xlsx};
    let mut wb: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(att.contents().to_vec())).unwrap();
    let range = wb.worksheet_range("Alert").unwrap();
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0], ["Field", "Value"]);
    assert!(
        rows.contains(&vec!["Cluster".to_string(), "prod-yarn".to_string()]),
        "{rows:?}"
    );
    assert!(
        rows.contains(&vec!["Owner".to_string(), "data-team".to_string()]),
        "{rows:?}"
    );
}

#[tokio::test]
async fn implicit_tls_with_auth_plain_and_a_chinese_attachment_name() {
    let pki = pki();
    let server = Server::start(
        "implicit",
        Some(&*pki),
        &["--user", "12345@qq.com", "--password", "auth-code"],
    );
    let ch = channel(json!({
        "serverHost": "localhost", "serverPort": server.port, "sslEnable": true, "enableSmtpAuth": true,
        "username": "12345@qq.com", "password": "auth-code", "from": "12345@qq.com",
        "receivers": "ops@example.com", "ca_file": pki.ca, "format": "attachment"
    }));
    ch.send(&Alert::new("作业 orders-etl 失败"))
        .await
        .expect("delivered over SMTPS");
    let (meta, eml) = &server.messages()[0];
    assert_eq!(meta["tls"], true);
    assert!(
        server
            .log("auth.log")
            .starts_with("PLAIN 12345@qq.com tls=True ok=True"),
        "{}",
        server.log("auth.log")
    );
    let m = parse(eml);
    assert_eq!(
        m.attachments().next().unwrap().attachment_name(),
        Some("作业 orders-etl 失败.xlsx")
    );
    assert!(m.body_html(0).is_some() && m.body_text(0).is_some());
}

#[tokio::test]
async fn starttls_required_never_sends_the_password_in_clear() {
    let server = Server::start(
        "plain",
        None,
        &["--user", "alerts", "--password", "pw-secret"],
    );
    let ch = channel(
        json!({"host": "127.0.0.1", "port": server.port, "tls": "starttls",
                            "username": "alerts", "password": "pw-secret",
                            "from": "a@corp.example", "to": ["ops@corp.example"]}),
    );
    let e = ch.send(&alert()).await.unwrap_err();
    assert!(e.message().contains("does not offer STARTTLS"), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(server.log("auth.log"), "", "no AUTH was attempted");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn wrong_password_is_a_permanent_auth_error_without_the_password() {
    let pki = pki();
    let server = Server::start(
        "implicit",
        Some(&*pki),
        &["--user", "alerts", "--password", "right-pw"],
    );
    let ch = channel(
        json!({"host": "localhost", "port": server.port, "tls": "implicit", "ca_file": pki.ca,
                            "username": "alerts", "password": "wrong-pw-value",
                            "from": "a@corp.example", "to": ["ops@corp.example"]}),
    );
    let e = ch.send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.is_retryable()),
        (ErrorKind::Unauthorized, Some("535"), false),
        "{e}"
    );
    let mut shown = format!("{e} {e:?} {ch:?}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        shown.push_str(&format!(" {s} {s:?}"));
        src = s.source();
    }
    assert!(!shown.contains("wrong-pw-value"), "{shown}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_tls_error() {
    let pki = pki();
    let server = Server::start("starttls", Some(&*pki), &[]);
    let ch = channel(
        json!({"host": "localhost", "port": server.port, "tls": "starttls",
                            "from": "a@corp.example", "to": ["ops@corp.example"]}),
    );
    let e = ch.send(&alert()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    let text = format!(
        "{e} {:?}",
        std::error::Error::source(&e).map(|s| s.to_string())
    );
    assert!(
        text.to_lowercase().contains("certificate") || text.to_lowercase().contains("tls"),
        "{text}"
    );
    assert!(server.messages().is_empty());
    // Explicitly accepting invalid certificates gets through (and is logged as a warning).
    let ch = channel(
        json!({"host": "localhost", "port": server.port, "tls": "starttls", "accept_invalid_certs": true,
                            "from": "a@corp.example", "to": ["ops@corp.example"]}),
    );
    ch.send(&alert()).await.unwrap();
}

#[tokio::test]
async fn header_injection_cannot_add_headers_or_recipients() {
    let server = Server::start("plain", None, &[]);
    let ch = channel(
        json!({"host": "127.0.0.1", "port": server.port, "tls": "none",
                            "from": "a@corp.example", "from_name": "Ops\r\nBcc: evil@evil.example",
                            "to": ["ops@corp.example"]}),
    );
    ch.send(&Alert::new("x\r\nBcc: evil@evil.example\r\nX-Injected: 1"))
        .await
        .unwrap();
    let (meta, eml) = &server.messages()[0];
    assert_eq!(meta["rcpt_tos"], json!(["ops@corp.example"]));
    let m = parse(eml);
    assert!(m.bcc().is_none());
    assert!(m.header("X-Injected").is_none());
    assert!(
        m.subject().unwrap().contains("Bcc: evil@evil.example"),
        "kept inside the subject"
    );
    // An address with CR/LF, or not an address, is refused at build time.
    for bad in [
        "ops@corp.example\r\nRCPT TO:<evil@evil.example>",
        "not an address",
    ] {
        let e = build_err(
            json!({"host": "127.0.0.1", "tls": "none", "from": "a@corp.example", "to": [bad]}),
        );
        assert_eq!(e.field(), Some("params.to[0]"), "{e}");
    }
}

#[tokio::test]
async fn refused_recipients_make_a_partial_delivery() {
    let server = Server::start("plain", None, &["--reject", "gone@corp.example"]);
    let ch = channel(
        json!({"host": "127.0.0.1", "port": server.port, "tls": "none", "from": "a@corp.example",
                            "to": ["ops@corp.example", "gone@corp.example"]}),
    );
    let report = AlertGroup::new("g")
        .with_member("mail", ch)
        .dispatch(&alert())
        .await;
    let d = &report.deliveries[0];
    assert_eq!(d.outcome, Outcome::Partial, "{d:?}");
    assert_eq!(
        d.receipt.as_ref().unwrap().rejected_recipients,
        ["gone@corp.example"]
    );
    assert_eq!(
        server.messages()[0].0["rcpt_tos"],
        json!(["ops@corp.example"])
    );
}

#[tokio::test]
async fn all_refused_is_permanent_and_all_deferred_is_retryable() {
    let server = Server::start(
        "plain",
        None,
        &[
            "--reject",
            "gone@corp.example",
            "--defer",
            "busy@corp.example",
        ],
    );
    let gone = channel(
        json!({"host": "127.0.0.1", "port": server.port, "tls": "none", "from": "a@corp.example",
                              "to": ["gone@corp.example"]}),
    );
    let e = gone.send(&alert()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.is_retryable()),
        (ErrorKind::InvalidRecipient, Some("550"), false)
    );
    let busy = channel(
        json!({"host": "127.0.0.1", "port": server.port, "tls": "none", "from": "a@corp.example",
                              "to": ["busy@corp.example"]}),
    );
    let e = busy.send(&alert()).await.unwrap_err();
    assert!(e.is_retryable(), "450 is transient: {e}");
    assert_eq!(e.code(), Some("450"));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn one_pooled_connection_serves_many_sends() {
    let server = Server::start("plain", None, &[]);
    let ch = channel(
        json!({"host": "127.0.0.1", "port": server.port, "tls": "none", "from": "a@corp.example",
                            "to": ["ops@corp.example"], "format": "text"}),
    );
    for i in 0..5 {
        ch.send(&Alert::new(format!("alert {i}")).body(".leading dot line\n..two dots"))
            .await
            .unwrap();
    }
    assert_eq!(server.messages().len(), 5);
    assert_eq!(
        server.log("ehlo.log").lines().count(),
        2,
        "one connection, reused (its EHLO, and the second one that reads SIZE)"
    );
    let m = parse(&server.messages()[4].1)
        .body_text(0)
        .unwrap()
        .replace("\r\n", "\n");
    assert!(
        m.trim_end().ends_with("\n\n.leading dot line\n..two dots"),
        "dot-stuffed on the wire, intact on arrival: {m:?}"
    );
    // `text` format: one text/plain part, as documented (no multipart).
    let raw = String::from_utf8_lossy(&server.messages()[4].1).to_string();
    assert!(raw.contains("Content-Type: text/plain"), "{raw}");
    assert!(!raw.contains("multipart/"), "{raw}");
}

#[test]
fn dinky_email_rows_load_and_plaintext_is_refused_off_loopback() {
    // As Dinky 1.x's form writes it: `sender` is the display name, `user`
    // the From address and login.
    let config = Config::from_dinky(
        &json!([{"id": 1, "name": "dinky-mail", "type": "Email", "enabled": 1, "params": {
            "receivers": ["ops@corp.example"], "receiverCcs": ["lead@corp.example"],
            "serverHost": "smtp.corp.example", "serverPort": 587, "sender": "Dinky",
            "enableSmtpAuth": true, "user": "dinky@corp.example", "password": "dinky-pass-x", "starttlsEnable": true,
            "sslEnable": false, "smtpSslTrust": "*"}}]),
        &Value::Null,
    )
    .unwrap()
    .config;
    // `sender` is not an alias of `from` (Dinky's is a name).
    assert_eq!(
        build_err(json!({"host": "h", "sender": "a@b.example", "to": ["c@d.example"]})).field(),
        Some("params.sender")
    );
    let n = Notifier::from_config(&config).unwrap();
    let p = n.preview("dinky-mail", &alert()).unwrap();
    assert_eq!(p[0].target, "smtp://smtp.corp.example:587");
    assert_eq!(
        p[0].body["recipients"],
        json!(["ops@corp.example", "lead@corp.example"])
    );
    assert!(!format!("{n:?} {config:?} {:?}", n.channel("dinky-mail")).contains("dinky-pass-x"));

    let e = build_err(
        json!({"host": "smtp.corp.example", "tls": "none", "from": "a@b.example", "to": ["c@d.example"]}),
    );
    assert_eq!(e.field(), Some("params.tls"));
    let e = build_err(
        json!({"serverHost": "smtp.corp.example", "sslEnable": false, "starttlsEnable": false,
                             "from": "a@b.example", "receivers": ["c@d.example"]}),
    );
    assert_eq!(
        e.field(),
        Some("params.tls"),
        "Dinky's plain SMTP is refused off loopback: {e}"
    );
    for (params, field) in [
        (json!({"host": "h", "from": "a@b.example"}), "params.to"),
        (
            json!({"host": "h", "from": "nope", "to": ["c@d.example"]}),
            "params.from",
        ),
        (
            json!({"host": "h", "from": "a@b.example", "to": ["c@d.example"], "ca_file": "/nonexistent.pem"}),
            "params.ca_file",
        ),
        (
            json!({"host": "h", "from": "a@b.example", "to": ["c@d.example"], "format": "pdf"}),
            "params.format",
        ),
        (
            json!({"host": "h", "from": "a@b.example", "to": ["c@d.example"], "username": "u"}),
            "params.password",
        ),
    ] {
        assert_eq!(build_err(params.clone()).field(), Some(field), "{params}");
    }
}

// The testkit's SMTP server with TLS, driven by the email channel (lettre,
// rustls) and by a raw TCP client where the client would not misbehave.

fn params(smtp: &FakeSmtp, tls: &str, extra: Value) -> Value {
    let mut p = json!({
        "host": "127.0.0.1", "port": smtp.port(), "tls": tls,
        "from": "alerts@corp.example", "to": ["oncall@corp.example"],
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

#[tokio::test]
async fn starttls_then_auth_delivers_over_tls() {
    let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
    smtp.require_auth("alerts", "s3cret-pw");
    let ca = smtp.ca_file().unwrap();
    let ch = channel(params(
        &smtp,
        "starttls",
        json!({"ca_file": ca, "username": "alerts", "password": "s3cret-pw"}),
    ));
    ch.send(&Alert::new("disk full on db-1")).await.unwrap();
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].tls, "delivered after the STARTTLS handshake");
    assert_eq!(msgs[0].auth_user.as_deref(), Some("alerts"));
    assert_eq!(msgs[0].rcpts, vec!["oncall@corp.example"]);
    assert!(msgs[0].data.contains("disk full on db-1"));
}

#[tokio::test]
async fn implicit_tls_delivers_over_tls() {
    let smtp = FakeSmtp::start_tls(SmtpTls::Implicit).await.unwrap();
    smtp.require_auth("alerts", "pw");
    let ch = channel(params(
        &smtp,
        "implicit",
        json!({"ca_file": smtp.ca_file().unwrap(), "username": "alerts", "password": "pw"}),
    ));
    ch.send(&Alert::new("implicit")).await.unwrap();
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].tls);
}

#[tokio::test]
async fn the_generated_ca_is_needed_to_trust_the_server() {
    let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
    let err = channel(params(&smtp, "starttls", json!({})))
        .send(&Alert::new("x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    let text = format!(
        "{err} {:?}",
        std::error::Error::source(&err).map(|s| s.to_string())
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn a_starttls_server_refuses_mail_in_clear() {
    let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
    // `tls = none` is allowed on loopback; the server still insists on TLS.
    let err = channel(params(&smtp, "none", json!({})))
        .send(&Alert::new("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(smtp.messages().is_empty());
}

/// Reads one (possibly multi-line) SMTP reply.
async fn reply(r: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap() == 0 {
            return all;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

#[tokio::test]
async fn auth_is_offered_only_after_starttls_and_injection_is_cut_off() {
    let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
    smtp.require_auth("alerts", "pw");
    let sock = tokio::net::TcpStream::connect(("127.0.0.1", smtp.port()))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut r = tokio::io::BufReader::new(sock);
    assert!(reply(&mut r).await.starts_with("220 "));
    r.get_mut().write_all(b"EHLO client\r\n").await.unwrap();
    let ehlo = reply(&mut r).await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "no AUTH in clear: {ehlo}");
    r.get_mut()
        .write_all(b"AUTH PLAIN AGFsZXJ0cwBwdw==\r\n")
        .await
        .unwrap();
    assert!(reply(&mut r).await.starts_with("530 5.7.0"));
    // A command pipelined behind STARTTLS (CVE-2011-0411 style injection).
    r.get_mut()
        .write_all(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
        .await
        .unwrap();
    assert!(reply(&mut r).await.starts_with("220 "));
    // Closed at once: without the check the server would wait for a TLS
    // handshake (having dropped the injected bytes) and this would time out.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), reply(&mut r)).await;
    assert_eq!(
        closed.as_deref(),
        Ok(""),
        "connection closed, nothing answered"
    );
    assert!(smtp.messages().is_empty());
}

/// The attachment's name in Content-Type is RFC 2231 (with an ASCII
/// fallback), never an encoded-word inside quotes; the spreadsheet shows
/// the job URL and labels, and its header row speaks the instance's language.
#[tokio::test]
async fn attachment_names_and_spreadsheet_rows() {
    let server = Server::start("plain", None, &[]);
    let ch = channel(
        json!({"host": "127.0.0.1", "port": server.port, "tls": "none",
                            "from": "alerts@corp.example", "to": ["ops@corp.example"],
                            "format": "table_attachment"}),
    );
    let alert = Alert::new("作业 orders-etl 失败")
        .job(
            JobInfo::new("orders-etl")
                .status(JobStatus::Failed)
                .url("https://flink.example/#/job/running/a1"),
        )
        .label("env", "prod");
    ch.send(&alert).await.unwrap();
    let raw = String::from_utf8_lossy(&server.messages()[0].1).to_string();
    let unfolded = raw.replace("\r\n ", " ").replace("\r\n\t", " ");
    let ct = unfolded
        .lines()
        .find(|l| l.starts_with("Content-Type: application/vnd.openxmlformats"))
        .expect("the attachment's Content-Type")
        .to_owned();
    assert!(!ct.contains("=?UTF-8?"), "{ct}");
    assert!(ct.contains("name*=UTF-8''"), "{ct}");
    let messages = server.messages();
    let m = parse(&messages[0].1);
    let att = m.attachments().next().expect("an attachment");
    use calamine::{Reader, Xlsx};
    let mut wb: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(att.contents().to_vec())).unwrap();
    let rows: Vec<Vec<String>> = wb
        .worksheet_range("Alert")
        .unwrap()
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let has = |k: &str, v: &str| rows.contains(&vec![k.to_owned(), v.to_owned()]);
    assert!(
        has("Job URL", "https://flink.example/#/job/running/a1"),
        "{rows:?}"
    );
    assert!(has("Label env", "prod"), "{rows:?}");
    let states = rows.iter().filter(|r| r[0].contains("tate")).count();
    assert_eq!(states, 1, "one state row: {rows:?}");
}
