//! Deserializers for param shapes several channels share (Dinky's among them).
//!
//! Numbers: every number in a config (params, time limits, policies) may be
//! written as a JSON number or as a numeric string (`"587"`, as Dinky and
//! DolphinScheduler store them); an empty string is "not set" where the
//! field is optional. Errors name the expected type, never the value.
//!
//! Public through [`toolkit`](crate::toolkit), for `#[serde(deserialize_with = "…")]`.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// A list of strings, or one `,`-separated string (Dinky stores one
/// `keyword`, often empty): items are trimmed, empty ones dropped, null is
/// an empty list.
///
/// ```
/// use alertkit::toolkit::one_or_many;
///
/// #[derive(serde::Deserialize)]
/// struct Params {
///     #[serde(default, deserialize_with = "one_or_many")]
///     keywords: Vec<String>,
/// }
/// let p: Params = serde_json::from_value(serde_json::json!({"keywords": "alert, 告警,"})).unwrap();
/// assert_eq!(p.keywords, ["alert", "告警"]);
/// let p: Params = serde_json::from_value(serde_json::json!({"keywords": ["a", " "]})).unwrap();
/// assert_eq!(p.keywords, ["a"]);
/// let p: Params = serde_json::from_value(serde_json::json!({"keywords": null})).unwrap();
/// assert!(p.keywords.is_empty());
/// ```
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    split_list(d, &[','])
}

/// A list of ids, or one string of ids separated by `|` or `,` (WeCom's own
/// `touser` form: `"zhangsan|lisi"`); trimmed, empty ones dropped.
///
/// ```
/// use alertkit::toolkit::ids;
///
/// #[derive(serde::Deserialize)]
/// struct Params {
///     #[serde(default, deserialize_with = "ids")]
///     to_users: Vec<String>,
/// }
/// let p: Params = serde_json::from_value(serde_json::json!({"to_users": "zhangsan|lisi,wangwu"})).unwrap();
/// assert_eq!(p.to_users, ["zhangsan", "lisi", "wangwu"]);
/// ```
pub fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    split_list(d, &['|', ','])
}

fn split_list<'de, D: Deserializer<'de>>(
    d: D,
    separators: &[char],
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let v = match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => s.split(separators).map(str::to_owned).collect(),
        Some(OneOrMany::Many(v)) => v,
    };
    Ok(v.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `None` for null or an empty string, else the number.
fn number<T, E>(v: serde_json::Value) -> Result<Option<T>, E>
where
    T: FromStr + DeserializeOwned,
    T::Err: Display,
    E: serde::de::Error,
{
    let what = std::any::type_name::<T>();
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => T::deserialize(n)
            .map(Some)
            .map_err(|_| E::custom(format!("expected {what}: the number is out of range"))),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| E::custom(format!("expected {what}: the string is not one"))),
        other => Err(E::custom(format!(
            "invalid type: {}, expected {what} (a number or a numeric string)",
            type_name(&other)
        ))),
    }
}

/// A required number, or a numeric string (`"587"`). The error names the
/// expected type, never the value.
///
/// ```
/// use alertkit::toolkit::num;
///
/// #[derive(serde::Deserialize)]
/// struct Params {
///     #[serde(deserialize_with = "num")]
///     agent_id: i64,
/// }
/// let p: Params = serde_json::from_value(serde_json::json!({"agent_id": "1000002"})).unwrap();
/// assert_eq!(p.agent_id, 1000002);
/// let e = serde_json::from_value::<Params>(serde_json::json!({"agent_id": "s3cret"})).err().unwrap();
/// assert!(!e.to_string().contains("s3cret"));
/// ```
pub fn num<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + DeserializeOwned,
    T::Err: Display,
{
    let v = serde_json::Value::deserialize(d)?;
    number(v)?.ok_or_else(|| {
        D::Error::custom(format!(
            "expected {}, got nothing",
            std::any::type_name::<T>()
        ))
    })
}

/// An optional number, or a numeric string; null or `""` is none.
///
/// ```
/// use alertkit::toolkit::opt_num;
///
/// #[derive(serde::Deserialize)]
/// struct Params {
///     #[serde(default, deserialize_with = "opt_num")]
///     timeout_ms: Option<u64>,
/// }
/// let p: Params = serde_json::from_value(serde_json::json!({"timeout_ms": ""})).unwrap();
/// assert_eq!(p.timeout_ms, None);
/// let p: Params = serde_json::from_value(serde_json::json!({"timeout_ms": "1500"})).unwrap();
/// assert_eq!(p.timeout_ms, Some(1500));
/// ```
pub fn opt_num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + DeserializeOwned,
    T::Err: Display,
{
    number(serde_json::Value::deserialize(d)?)
}

/// A port as a number or a numeric string (Dinky stores either); empty is
/// none; 0 is refused.
///
/// ```
/// use alertkit::toolkit::port;
///
/// #[derive(serde::Deserialize)]
/// struct Params {
///     #[serde(default, deserialize_with = "port")]
///     port: Option<u16>,
/// }
/// let p: Params = serde_json::from_value(serde_json::json!({"port": "465"})).unwrap();
/// assert_eq!(p.port, Some(465));
/// assert!(serde_json::from_value::<Params>(serde_json::json!({"port": 0})).is_err());
/// assert!(serde_json::from_value::<Params>(serde_json::json!({"port": 70000})).is_err());
/// ```
pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match opt_num::<D, u16>(d)? {
        Some(0) => Err(D::Error::custom("port 0 is not a port")),
        p => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(deserialize_with = "num")]
        n: u32,
        #[serde(default, deserialize_with = "opt_num")]
        o: Option<u64>,
        #[serde(default, deserialize_with = "port")]
        p: Option<u16>,
    }

    fn parse(v: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_numeric_strings_alike() {
        let t = parse(serde_json::json!({"n": "7", "o": 9, "p": "587"})).unwrap();
        assert_eq!((t.n, t.o, t.p), (7, Some(9), Some(587)));
        let t = parse(serde_json::json!({"n": 7, "o": "", "p": null})).unwrap();
        assert_eq!((t.o, t.p), (None, None));
        let e = parse(serde_json::json!({"n": "secret-ish"})).unwrap_err();
        assert!(e.contains("u32") && !e.contains("secret-ish"), "{e}");
        let e = parse(serde_json::json!({"n": -1})).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse(serde_json::json!({"n": true})).unwrap_err();
        assert!(e.contains("a boolean"), "{e}");
        let e = parse(serde_json::json!({"n": 1, "p": 0})).unwrap_err();
        assert!(e.contains("port 0"), "{e}");
        let e = parse(serde_json::json!({"n": 1, "p": 70000})).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }
}
