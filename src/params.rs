//! Deserializers for param shapes several channels share (Dinky's among them).
//!
//! Numbers: every number in a config (params, time limits, policies) may be
//! written as a JSON number or as a numeric string (`"587"`, as Dinky and
//! DolphinScheduler store them); an empty string is "not set" where the
//! field is optional. Errors name the expected type, never the value.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// Dinky stores one `keyword` string (often empty); alertkit takes a list.
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let v = match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => s.split(',').map(str::to_owned).collect(),
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

/// A required number, or a numeric string.
pub(crate) fn num<'de, D, T>(d: D) -> Result<T, D::Error>
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
pub(crate) fn opt_num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + DeserializeOwned,
    T::Err: Display,
{
    number(serde_json::Value::deserialize(d)?)
}

/// A port as a number or a numeric string (Dinky stores either); empty is
/// none; 0 is refused.
pub(crate) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
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
