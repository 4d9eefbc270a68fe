//! Reading a Flink JobManager's REST API: GETs under a deadline and a size
//! cap, Basic auth kept out of URLs, and the answer shapes the watcher uses
//! (parsed leniently: a field of the wrong type reads as absent).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use url::Url;

/// Why a GET gave nothing usable. Its text names the path, never the
/// address or its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// Not 2xx.
    Status(u16),
    /// The answer was larger than the cap (bytes).
    TooLarge(usize),
    /// Connection refused, reset, or the deadline passed.
    Transport(String),
    /// Not the JSON shape expected.
    Shape,
}

impl FetchError {
    pub(crate) fn describe(&self, path: &str) -> String {
        match self {
            FetchError::Status(s) => format!("GET /{path}: HTTP {s}"),
            FetchError::TooLarge(cap) => {
                format!("GET /{path}: the answer is larger than the watcher's {cap}-byte limit")
            }
            FetchError::Transport(m) => format!("GET /{path}: {m}"),
            FetchError::Shape => format!("GET /{path}: not the answer Flink gives"),
        }
    }
}

/// The JobManager's address (without userinfo) and how to read it.
#[derive(Clone)]
pub(crate) struct Rest {
    pub(crate) client: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) auth: Option<(String, SecretString)>,
    pub(crate) max_reply: usize,
    pub(crate) timeout: Duration,
}

impl Rest {
    fn url(&self, path: &str, query: Option<&str>) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut segs) = u.path_segments_mut() {
            segs.pop_if_empty();
            segs.extend(path.split('/'));
        }
        // Keep a query the base URL has (a proxy's token) and add ours.
        let joined = match (self.base.query(), query) {
            (Some(b), Some(q)) => Some(format!("{b}&{q}")),
            (b, q) => b.or(q).map(str::to_owned),
        };
        u.set_query(joined.as_deref());
        u
    }

    /// GET `path` and parse it as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Result<T, FetchError> {
        let bytes = self.get_bytes(path, query).await?;
        serde_json::from_slice(&bytes).map_err(|_| FetchError::Shape)
    }

    async fn get_bytes(&self, path: &str, query: Option<&str>) -> Result<Vec<u8>, FetchError> {
        let mut req = self
            .client
            .get(self.url(path, query))
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some((user, pass)) = &self.auth {
            req = req.basic_auth(user, Some(pass.expose_secret()));
        }
        let read = async {
            let mut resp = req.send().await.map_err(transport)?;
            let status = resp.status();
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let announced = resp.content_length().unwrap_or(0);
            if announced > self.max_reply as u64 {
                return Err(FetchError::TooLarge(self.max_reply));
            }
            // One allocation for an answer that says its length (at most the cap).
            let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
            while let Some(chunk) = resp.chunk().await.map_err(transport)? {
                if body.len().saturating_add(chunk.len()) > self.max_reply {
                    return Err(FetchError::TooLarge(self.max_reply));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        // The client's own timeout covers this too; the outer one also bounds
        // a server that trickles an answer.
        match tokio::time::timeout(self.timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Transport(format!(
                "no complete answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "connection failed"
    };
    FetchError::Transport(what.to_owned())
}

// ---- lenient fields -------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyStr {
    S(String),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyNum {
    I(i64),
    U(u64),
    F(f64),
    Other(serde::de::IgnoredAny),
}

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match AnyStr::deserialize(d)? {
        AnyStr::S(s) => Some(s),
        AnyStr::Other(_) => None,
    })
}

fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match AnyNum::deserialize(d)? {
        AnyNum::I(n) => Some(n),
        AnyNum::U(n) => i64::try_from(n).ok(),
        AnyNum::F(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
        _ => None,
    })
}

fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum AnyList<T> {
        L(Vec<T>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match AnyList::<T>::deserialize(d)? {
        AnyList::L(v) => v,
        AnyList::Other(_) => Vec::new(),
    })
}

fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum AnyObj<T> {
        O(T),
        Other(serde::de::IgnoredAny),
    }
    Ok(match AnyObj::<T>::deserialize(d)? {
        AnyObj::O(v) => Some(v),
        AnyObj::Other(_) => None,
    })
}

// ---- answers --------------------------------------------------------------

/// `GET /jobs/overview`. `jobs` is required: an answer without it is not
/// Flink's.
#[derive(Debug, Deserialize)]
pub(crate) struct Overview {
    pub(crate) jobs: Vec<OverviewJob>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OverviewJob {
    #[serde(default, deserialize_with = "string")]
    pub(crate) jid: Option<String>,
    #[serde(default, deserialize_with = "string")]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "string")]
    pub(crate) state: Option<String>,
    #[serde(default, rename = "start-time", deserialize_with = "int")]
    pub(crate) start_time: Option<i64>,
    #[serde(default, rename = "end-time", deserialize_with = "int")]
    pub(crate) end_time: Option<i64>,
    #[serde(default, rename = "last-modification", deserialize_with = "int")]
    pub(crate) last_modification: Option<i64>,
}

/// `GET /jobs/:jid/exceptions`: the history of 1.15+ and the older
/// `root-exception` shape.
#[derive(Debug, Deserialize)]
pub(crate) struct Exceptions {
    #[serde(default, rename = "exceptionHistory", deserialize_with = "object")]
    pub(crate) history: Option<History>,
    #[serde(default, rename = "root-exception", deserialize_with = "string")]
    pub(crate) root: Option<String>,
    #[serde(default, deserialize_with = "int")]
    pub(crate) timestamp: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct History {
    #[serde(default, deserialize_with = "list")]
    pub(crate) entries: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Entry {
    #[serde(default, rename = "exceptionName", deserialize_with = "string")]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "string")]
    pub(crate) stacktrace: Option<String>,
    #[serde(default, deserialize_with = "int")]
    pub(crate) timestamp: Option<i64>,
    #[serde(default, rename = "taskName", deserialize_with = "string")]
    pub(crate) task: Option<String>,
    #[serde(default, deserialize_with = "string")]
    pub(crate) endpoint: Option<String>,
    #[serde(default, rename = "concurrentExceptions", deserialize_with = "list")]
    pub(crate) concurrent: Vec<Entry>,
}

/// `GET /jobs/:jid/checkpoints`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Checkpoints {
    #[serde(default, deserialize_with = "object")]
    pub(crate) counts: Option<Counts>,
    #[serde(default, deserialize_with = "object")]
    pub(crate) latest: Option<Latest>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct Counts {
    #[serde(default, deserialize_with = "int")]
    pub(crate) completed: Option<i64>,
    #[serde(default, deserialize_with = "int")]
    pub(crate) failed: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Latest {
    #[serde(default, deserialize_with = "object")]
    pub(crate) failed: Option<CheckpointRef>,
    #[serde(default, deserialize_with = "object")]
    pub(crate) completed: Option<CheckpointRef>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct CheckpointRef {
    #[serde(default, deserialize_with = "int")]
    pub(crate) id: Option<i64>,
    #[serde(default, deserialize_with = "string")]
    pub(crate) failure_message: Option<String>,
}

/// `GET /config`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClusterConfig {
    #[serde(default, rename = "flink-version", deserialize_with = "string")]
    pub(crate) version: Option<String>,
    #[serde(default, rename = "refresh-interval", deserialize_with = "int")]
    pub(crate) refresh_interval: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_fields_read_as_absent() {
        let o: Overview = serde_json::from_str(
            r#"{"jobs":[{"jid":5,"name":["x"],"state":null,"start-time":"1","end-time":1e300,"last-modification":-1}]}"#,
        )
        .unwrap();
        let j = &o.jobs[0];
        assert_eq!(
            (j.jid.as_deref(), j.name.as_deref(), j.state.as_deref()),
            (None, None, None)
        );
        assert_eq!(
            (j.start_time, j.end_time, j.last_modification),
            (None, None, Some(-1))
        );
        assert!(serde_json::from_str::<Overview>(r#"{"errors":[]}"#).is_err());
        let e: Exceptions =
            serde_json::from_str(r#"{"exceptionHistory":{"entries":{"a":1}},"root-exception":7}"#)
                .unwrap();
        assert!(e.history.unwrap().entries.is_empty());
        assert!(e.root.is_none());
        let c: Checkpoints =
            serde_json::from_str(r#"{"counts":[],"latest":{"failed":"x","completed":{"id":"9"}}}"#)
                .unwrap();
        assert!(
            c.counts
                .is_none_or(|n| n.failed.is_none() && n.completed.is_none())
        );
        assert!(c.latest.as_ref().unwrap().failed.is_none());
        assert_eq!(c.latest.unwrap().completed.unwrap().id, None);
    }
}
