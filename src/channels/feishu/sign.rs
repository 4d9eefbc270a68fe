//! Feishu/Lark bot signing (platforms.md §5.2, vectors §7.2).
//!
//! `sign = base64(HMAC-SHA256(key = "{ts_s}\n{secret}", msg = ""))`: the roles
//! are inverted from DingTalk's, the timestamp is in **seconds**, and the
//! signature goes in the JSON body, not the URL (so it is not URL-encoded).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The signature for `timestamp_s`.
pub(crate) fn signature(secret: &SecretString, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{}", secret.expose_secret());
    let mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> SecretString {
        SecretString::from(x.to_owned())
    }

    #[test]
    fn vectors_f1_f2_fdoc() {
        let secret = s("SEC0123456789abcdef");
        assert_eq!(
            signature(&secret, 1_700_000_000),
            "PiO7POLlSx/DM2qf8Dy/XCWeJK3exVnevp5G99LEN2M="
        );
        assert_eq!(
            signature(&secret, 1_700_000_002),
            "b9A54IFKmntIlWXksgSGDJ6gR2UNRKZ/f+6Xe3OUvcs="
        );
        assert_eq!(
            signature(&s("demo"), 1_599_360_473),
            "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
        );
    }

    #[test]
    fn wrong_variants_of_section_7_2_differ() {
        let good = signature(&s("SEC0123456789abcdef"), 1_700_000_000);
        for wrong in [
            "391tiQVeqLh3cHyEaMHSOhZAhRqCTsH+Gb3gi5FNxr8=", // milliseconds
            "dnsu25fgtKaZF3LVi3oY15MSW/wnmYxDixFIAj6ldj4=", // DingTalk roles
            "PiO7POLlSx%2FDM2qf8Dy%2FXCWeJK3exVnevp5G99LEN2M%3D", // URL-encoded in JSON
        ] {
            assert_ne!(good, wrong);
        }
        // The millisecond variant is what this function gives for a ms timestamp:
        // the unit, not the algorithm, is what must be right.
        assert_eq!(
            signature(&s("SEC0123456789abcdef"), 1_700_000_000_000),
            "391tiQVeqLh3cHyEaMHSOhZAhRqCTsH+Gb3gi5FNxr8="
        );
    }
}
