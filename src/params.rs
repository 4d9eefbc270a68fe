//! Deserializers for param shapes several channels share (Dinky's among them).

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

/// A port as a number or a numeric string (Dinky stores either); empty is none.
pub(crate) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        N(u16),
        S(String),
    }
    match Option::<Port>::deserialize(d)? {
        None => Ok(None),
        Some(Port::N(n)) => Ok(Some(n)),
        Some(Port::S(s)) if s.trim().is_empty() => Ok(None),
        Some(Port::S(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("invalid port {s:?}"))),
    }
}
