//! A small in-process SMTP server on 127.0.0.1 for sandboxes and host tests:
//! EHLO, AUTH PLAIN and LOGIN (when credentials are set), per-recipient
//! refusals (550), DATA with dot-unstuffing, RSET, NOOP, QUIT. Plain TCP
//! only: for TLS tests alertkit's own suite uses a real server (aiosmtpd).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message the server accepted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpMessage {
    /// `MAIL FROM`.
    pub from: String,
    /// Accepted `RCPT TO`s.
    pub rcpts: Vec<String>,
    /// The message as received (dot-unstuffed, CRLF line ends).
    pub data: String,
    /// The user that authenticated, if any.
    pub auth_user: Option<String>,
}

#[derive(Default)]
struct State {
    messages: Vec<SmtpMessage>,
    refuse: HashSet<String>,
    credentials: Option<(String, String)>,
    connections: u32,
}

/// A fake SMTP server; see the module docs.
#[derive(Clone)]
pub struct FakeSmtp {
    port: u16,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeSmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSmtp")
            .field("port", &self.port)
            .finish()
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl FakeSmtp {
    /// Starts the server on 127.0.0.1 (no authentication required).
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = session(sock, s).await;
                });
            }
        });
        Ok(FakeSmtp {
            port,
            state,
            task: Arc::new(task),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requires AUTH with these credentials.
    pub fn require_auth(&self, user: &str, password: &str) {
        self.with(|s| s.credentials = Some((user.to_owned(), password.to_owned())));
    }

    /// Refuses `address` with 550.
    pub fn refuse(&self, address: &str) {
        self.with(|s| s.refuse.insert(address.to_owned()));
    }

    /// Messages accepted so far.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.with(|s| s.messages.clone())
    }

    /// Connections opened so far.
    pub fn connections(&self) -> u32 {
        self.with(|s| s.connections)
    }
}

fn addr(arg: &str) -> String {
    let a = arg.split_once(':').map_or(arg, |(_, v)| v).trim();
    a.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .to_owned()
}

fn decode(b64: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default()
}

async fn session(sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let creds = {
        let mut s = lock();
        s.connections += 1;
        s.credentials.clone()
    };
    w.write_all(b"220 alertkit fake SMTP ready\r\n").await?;
    let (mut from, mut rcpts, mut user): (Option<String>, Vec<String>, Option<String>) =
        (None, vec![], None);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let auth = if creds.is_some() {
                "250-AUTH PLAIN LOGIN\r\n"
            } else {
                ""
            };
            format!("250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n{auth}250 SIZE 33554432\r\n")
        } else if upper.starts_with("AUTH PLAIN") {
            let payload = match cmd.split_whitespace().nth(2) {
                Some(p) => p.to_owned(),
                None => {
                    w.write_all(b"334 \r\n").await?;
                    line.clear();
                    r.read_line(&mut line).await?;
                    line.trim().to_owned()
                }
            };
            let parts: Vec<String> = decode(&payload).split('\0').map(str::to_owned).collect();
            check(&creds, parts.get(1), parts.get(2), &mut user)
        } else if upper.starts_with("AUTH LOGIN") {
            w.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            line.clear();
            r.read_line(&mut line).await?;
            let u = decode(&line);
            w.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            line.clear();
            r.read_line(&mut line).await?;
            let p = decode(&line);
            check(&creds, Some(&u), Some(&p), &mut user)
        } else if upper.starts_with("MAIL FROM") {
            if creds.is_some() && user.is_none() {
                "530 5.7.0 Authentication required\r\n".to_owned()
            } else {
                from = Some(addr(cmd));
                rcpts.clear();
                "250 2.1.0 OK\r\n".to_owned()
            }
        } else if upper.starts_with("RCPT TO") {
            let a = addr(cmd);
            if lock().refuse.contains(&a) {
                format!("550 5.1.1 <{a}>: Recipient address rejected\r\n")
            } else {
                rcpts.push(a);
                "250 2.1.5 OK\r\n".to_owned()
            }
        } else if upper == "DATA" {
            if from.is_none() || rcpts.is_empty() {
                "503 5.5.1 Bad sequence of commands\r\n".to_owned()
            } else {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    let l = line.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(l));
                    data.push_str("\r\n");
                }
                let msg = SmtpMessage {
                    from: from.take().unwrap_or_default(),
                    rcpts: std::mem::take(&mut rcpts),
                    data,
                    auth_user: user.clone(),
                };
                let n = {
                    let mut s = lock();
                    s.messages.push(msg);
                    s.messages.len()
                };
                format!("250 2.0.0 Ok: queued as M{n}\r\n")
            }
        } else if upper == "RSET" {
            from = None;
            rcpts.clear();
            "250 2.0.0 OK\r\n".to_owned()
        } else if upper == "NOOP" {
            "250 2.0.0 OK\r\n".to_owned()
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognized\r\n".to_owned()
        };
        w.write_all(reply.as_bytes()).await?;
    }
}

fn check(
    creds: &Option<(String, String)>,
    u: Option<&String>,
    p: Option<&String>,
    user: &mut Option<String>,
) -> String {
    match creds {
        Some((cu, cp)) if Some(cu) == u && Some(cp) == p => {
            *user = u.cloned();
            "235 2.7.0 Authentication successful\r\n".to_owned()
        }
        Some(_) => "535 5.7.8 Authentication credentials invalid\r\n".to_owned(),
        None => "503 5.5.1 AUTH not available\r\n".to_owned(),
    }
}
