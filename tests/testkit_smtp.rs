//! The testkit's SMTP server with TLS, driven by the email channel (lettre,
//! rustls) and by a raw TCP client where the client would not misbehave.

use std::sync::Arc;

use alertkit::policy::PolicyConfig;
use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
use alertkit::{Alert, AlertChannel, Config, ErrorKind, InstanceConfig, Notifier};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn channel(params: Value) -> Arc<dyn AlertChannel> {
    let mut cfg = InstanceConfig::new("mail", "email").policy(PolicyConfig::off());
    cfg.params = params.as_object().unwrap().clone();
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("mail")
        .unwrap()
}

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
async fn reply(r: &mut BufReader<tokio::net::TcpStream>) -> String {
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
    let mut r = BufReader::new(sock);
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
