//! DingTalk robot signing (platforms.md §1.2, vectors §7.1).
//!
//! `sign = urlencode(base64(HMAC-SHA256(key = secret, msg = "{ts_ms}\n{secret}")))`,
//! the secret including its `SEC` prefix, the timestamp in milliseconds, and
//! the result percent-encoded exactly once as a query parameter.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

/// The base64 signature (before URL encoding) for `timestamp_ms`.
pub(crate) fn signature(secret: &SecretString, timestamp_ms: i64) -> String {
    let secret = secret.expose_secret();
    // HMAC-SHA256 takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Adds `timestamp` and `sign` to the robot URL, encoding the signature once.
pub(crate) fn sign_url(url: &mut Url, secret: &SecretString, timestamp_ms: i64) {
    let sign = signature(secret, timestamp_ms);
    url.query_pairs_mut()
        .append_pair("timestamp", &timestamp_ms.to_string())
        .append_pair("sign", &sign);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("SEC0123456789abcdef")
    }

    fn query_sign(ts: i64) -> String {
        let mut u = Url::parse("https://oapi.dingtalk.com/robot/send?access_token=TOKEN").unwrap();
        sign_url(&mut u, &secret(), ts);
        u.query().unwrap().to_owned()
    }

    #[test]
    fn vector_d1() {
        assert_eq!(
            signature(&secret(), 1_700_000_000_000),
            "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="
        );
        // §7.1: the full query for D1, encoded exactly once.
        assert_eq!(
            query_sign(1_700_000_000_000),
            "access_token=TOKEN&timestamp=1700000000000&sign=TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"
        );
    }

    #[test]
    fn vector_d2_plus_signs_are_encoded() {
        assert_eq!(
            signature(&secret(), 1_700_000_000_001),
            "h9I8htdbvJCasKF0f8Gu+a2Cr5fjl9T+pzb6hx3n+pE="
        );
        assert!(
            query_sign(1_700_000_000_001)
                .ends_with("&sign=h9I8htdbvJCasKF0f8Gu%2Ba2Cr5fjl9T%2Bpzb6hx3n%2BpE%3D")
        );
    }

    #[test]
    fn wrong_variants_of_section_7_1_are_not_produced() {
        let q = query_sign(1_700_000_000_000);
        let good = signature(&secret(), 1_700_000_000_000);
        for wrong in [
            "TSZbRFUuvaSQaRKUpF970OPCb2%252FLcQAP3wOvwZIzBZk%253D", // double-encoded
            "dnsu25fgtKaZF3LVi3oY15MSW/wnmYxDixFIAj6ldj4=",         // seconds timestamp
            "Mlto50AaSn3QZnZDs1QFhYMpyOmwKXUw3BMZneu5Khs=",         // key/message swapped
            "391tiQVeqLh3cHyEaMHSOhZAhRqCTsH+Gb3gi5FNxr8=",         // Feishu-style roles
            "vd8HSeVJ26ef0br4NC/4m4QdLact9bJyzIoDazbcVNM=",         // SEC prefix stripped
            "mXX0uITzTNLzJfLOaa7fh9ReAQ+XMRiJS9srQxLlSDM=",         // literal backslash-n
            "4d265b44552ebda490691294a45f7bd0e3c26f6fcb71000fdf03afc192330599", // hex digest
        ] {
            assert_ne!(good, wrong);
            assert!(!q.contains(wrong), "{q} contains {wrong}");
        }
        // D2 unencoded would decode '+' as space server-side: the query must not hold a raw '+'.
        assert!(!query_sign(1_700_000_000_001).contains('+'));
        // The seconds-timestamp variant is self-consistent but for the wrong unit.
        assert_eq!(
            signature(&secret(), 1_700_000_000),
            "dnsu25fgtKaZF3LVi3oY15MSW/wnmYxDixFIAj6ldj4="
        );
    }
}
