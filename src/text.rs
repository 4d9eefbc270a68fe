//! Size limits: truncating text on UTF-8 boundaries with a visible marker.

use crate::error::{Error, ErrorKind, Result};

/// Cuts `s` to at most `max` bytes on a char boundary, ending with
/// "… (truncated, N bytes omitted)" when anything was cut. Returns the text
/// and the number of bytes omitted.
pub(crate) fn truncate_marked(s: &str, max: usize) -> (String, usize) {
    if s.len() <= max {
        return (s.to_owned(), 0);
    }
    // The marker's length depends on N; size it for the worst case.
    let marker_len = marker(s.len()).len();
    let mut cut = max.saturating_sub(marker_len);
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let omitted = s.len() - cut;
    let mut out = String::with_capacity(max);
    out.push_str(&s[..cut]);
    out.push_str(&marker(omitted));
    (out, omitted)
}

/// `body` cut so that `body + suffix` is at most `max` bytes, with the
/// truncation marker; the suffix (mentions, keywords) is never cut. Returns
/// the text and the bytes omitted.
pub(crate) fn fit_text(body: &str, suffix: &str, max: usize) -> (String, usize) {
    let (mut text, omitted) = truncate_marked(body, max.saturating_sub(suffix.len()));
    text.push_str(suffix);
    (text, omitted)
}

/// A payload fitted into a byte limit.
pub(crate) struct Fitted {
    /// The serialized JSON.
    pub bytes: Vec<u8>,
    /// Bytes of the body text left out (0 when it fitted whole).
    pub omitted: usize,
}

/// Serializes `make(body + suffix)`, cutting `body` (never `suffix`) until
/// the JSON is at most `max` bytes. JSON escaping makes the size of a cut
/// hard to predict, so it searches for the longest prefix that fits.
pub(crate) fn fit_json<F, T>(body: &str, suffix: &str, max: usize, make: F) -> Result<Fitted>
where
    F: Fn(&str) -> T,
    T: serde::Serialize,
{
    let build = |body: &str| -> Result<Vec<u8>> {
        let text = if suffix.is_empty() {
            std::borrow::Cow::Borrowed(body)
        } else {
            std::borrow::Cow::Owned(format!("{body}{suffix}"))
        };
        crate::http::json_bytes(&make(&text), text.len() + 512)
    };
    let whole = build(body)?;
    if whole.len() <= max {
        return Ok(Fitted {
            bytes: whole,
            omitted: 0,
        });
    }
    // The payload's size grows with the kept prefix: binary search it.
    let (mut lo, mut hi) = (0usize, body.len());
    let mut best = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let (cut, omitted) = truncate_marked(body, mid);
        let bytes = build(&cut)?;
        if bytes.len() <= max {
            best = Some(Fitted { bytes, omitted });
            lo = mid + 1;
        } else if mid == 0 {
            break;
        } else {
            hi = mid - 1;
        }
    }
    best.ok_or_else(|| {
        Error::new(
            ErrorKind::PayloadTooLarge,
            format!("the message cannot be fitted into {max} bytes (title, mentions or links alone are too long)"),
        )
        .with_retryable(false)
    })
}

/// At most `n` characters of `s`, ending in `…` when cut.
pub(crate) fn limit_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((cut, _)) => {
            let keep = s[..cut]
                .char_indices()
                .nth(n.saturating_sub(1))
                .map_or(0, |(i, _)| i);
            format!("{}…", &s[..keep])
        }
        None => s.to_owned(),
    }
}

fn marker(omitted: usize) -> String {
    format!("\n… (truncated, {omitted} bytes omitted)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Any text, any limit: the result fits, is valid UTF-8 by construction,
        // keeps a prefix of the input, and says how much it left out.
        #[test]
        fn truncation_fits_and_keeps_a_prefix(s in "\\PC{0,400}", max in 0usize..600) {
            let (t, omitted) = truncate_marked(&s, max);
            if omitted == 0 {
                prop_assert_eq!(&t, &s);
            } else {
                prop_assert!(t.len() <= max.max(marker(s.len()).len()));
                let kept = t.len() - marker(omitted).len();
                prop_assert_eq!(kept + omitted, s.len());
                prop_assert!(s.starts_with(&t[..kept]));
            }
        }

        #[test]
        fn fitted_json_is_valid_and_within_limit(s in "[\\PC\n\"\\\\]{0,300}", max in 80usize..400) {
            match fit_json(&s, "@x", max, |t| serde_json::json!({"text": t})) {
                Ok(f) => {
                    prop_assert!(f.bytes.len() <= max);
                    let v: serde_json::Value = serde_json::from_slice(&f.bytes).unwrap();
                    prop_assert!(v["text"].as_str().unwrap().ends_with("@x"));
                }
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::PayloadTooLarge),
            }
        }

        #[test]
        fn limit_chars_never_exceeds(s in "\\PC{0,100}", n in 1usize..50) {
            prop_assert!(limit_chars(&s, n).chars().count() <= n);
        }
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let s = "告警".repeat(1000); // 6000 bytes
        let (t, omitted) = truncate_marked(&s, 2048);
        assert!(t.len() <= 2048, "{}", t.len());
        assert!(t.ends_with(&format!("(truncated, {omitted} bytes omitted)")));
        assert_eq!(t.len() - marker(omitted).len() + omitted, s.len());
        assert_eq!(truncate_marked("short", 10), ("short".to_owned(), 0));
        assert_eq!(limit_chars("告警告警", 3), "告警…");
        assert_eq!(limit_chars("告警告", 3), "告警告");
        assert_eq!(limit_chars("ab", 5), "ab");
        let fitted = fit_json(&s, "!", 3000, |t| serde_json::json!({"content": t})).unwrap();
        assert!(
            fitted.bytes.len() <= 3000 && fitted.bytes.len() > 2900,
            "{}",
            fitted.bytes.len()
        );
        let v: serde_json::Value = serde_json::from_slice(&fitted.bytes).unwrap();
        assert!(v["content"].as_str().unwrap().ends_with("omitted)!"));
        assert!(fit_json("x", &"y".repeat(100), 50, |t| serde_json::json!(t)).is_err());
        let (t, omitted) = fit_text(&s, "\n@all", 100);
        assert!(
            t.len() <= 100 && t.ends_with("bytes omitted)\n@all") && omitted > 0,
            "{t}"
        );
        for max in 0..60 {
            let (t, _) = truncate_marked(&s, max);
            assert!(t.len() <= max.max(marker(s.len()).len()));
        }
    }
}
