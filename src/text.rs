//! Size limits: truncating text on UTF-8 boundaries with a visible marker.
//! Public through [`toolkit`](crate::toolkit).

use std::borrow::Cow;

use crate::alert::{Alert, Mention};
use crate::error::{Error, ErrorKind, Result};

/// Cuts `s` to at most `max` bytes on a char boundary, ending with
/// "\n… (truncated, N bytes omitted)" when anything was cut. Returns the text
/// and the number of bytes omitted.
///
/// ```
/// use alertkit::toolkit::truncate_marked;
///
/// let (text, omitted) = truncate_marked(&"告警".repeat(100), 100);
/// assert!(text.len() <= 100);
/// assert!(text.ends_with(&format!("… (truncated, {omitted} bytes omitted)")));
/// assert_eq!(truncate_marked("short", 100), ("short".to_owned(), 0));
/// ```
pub fn truncate_marked(s: &str, max: usize) -> (String, usize) {
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
///
/// ```
/// use alertkit::toolkit::fit_text;
///
/// let (text, omitted) = fit_text(&"x".repeat(500), " @13800000000 alert", 120);
/// assert!(text.len() <= 120 && omitted > 0);
/// assert!(text.ends_with(" @13800000000 alert"));
/// ```
pub fn fit_text(body: &str, suffix: &str, max: usize) -> (String, usize) {
    let (mut text, omitted) = truncate_marked(body, max.saturating_sub(suffix.len()));
    text.push_str(suffix);
    (text, omitted)
}

/// A payload fitted into a byte limit by [`fit_json`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fitted {
    /// The serialized JSON.
    pub bytes: Vec<u8>,
    /// Bytes of the body text left out (0 when it fitted whole).
    pub omitted: usize,
}

/// Serializes `make(body + suffix)`, cutting `body` (never `suffix`) until
/// the JSON is at most `max` bytes. JSON escaping makes the size of a cut
/// hard to predict, so it searches for the longest prefix that fits. An
/// [`ErrorKind::PayloadTooLarge`] error when even an empty body does not fit.
///
/// ```
/// use alertkit::toolkit::fit_json;
///
/// let body = "line \"quoted\"\n".repeat(200);
/// let fitted = fit_json(&body, "\nalert", 1_000, |text| {
///     serde_json::json!({"msgtype": "text", "text": {"content": text}})
/// })?;
/// assert!(fitted.bytes.len() <= 1_000 && fitted.omitted > 0);
/// let sent: serde_json::Value = serde_json::from_slice(&fitted.bytes).unwrap();
/// assert!(sent["text"]["content"].as_str().unwrap().ends_with("\nalert"));
///
/// let e = fit_json("body", "", 10, |t| serde_json::json!({"text": t, "title": "far too long a title"}))
///     .unwrap_err();
/// assert_eq!(e.kind(), alertkit::ErrorKind::PayloadTooLarge);
/// # Ok::<(), alertkit::Error>(())
/// ```
pub fn fit_json<F, T>(body: &str, suffix: &str, max: usize, make: F) -> Result<Fitted>
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

/// At most `n` characters of `s`, ending in `…` when cut (for platforms
/// that count characters, not bytes).
///
/// ```
/// use alertkit::toolkit::limit_chars;
/// assert_eq!(limit_chars("告警：磁盘已满", 3), "告警…");
/// assert_eq!(limit_chars("ok", 3), "ok");
/// ```
pub fn limit_chars(s: &str, n: usize) -> String {
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

/// At most `max` bytes of `s` on a char boundary, ending in `…` when cut
/// (for one-line parts: titles, names, field values).
///
/// ```
/// use alertkit::toolkit::cut_line;
/// assert_eq!(cut_line("orders-etl-backfill", 10), "orders-…");
/// assert_eq!(cut_line("orders", 10), "orders");
/// ```
pub fn cut_line(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// The longest URL kept: a cut URL is a broken one, so longer ones are left out.
const MAX_URL: usize = 2048;

/// `alert` with every part bounded for a message of about `max` bytes, so
/// that no single part (a 30 KB title, 60 long fields, hundreds of links or
/// mentions) can make the message unsendable: the title to a tenth of the
/// budget (64–512 bytes), fields to a third (each value cut with `…`, the
/// rest summed up in a last "…" field), links and labels to a fifth and an
/// eighth, mentions to an eighth (`@all` kept), the body to twice the budget
/// (the channel's own fitting cuts it exactly, with its marker). Borrowed
/// when everything is within bounds, which is the common case. The notes
/// say what was cut (for a [`Receipt`](crate::Receipt)'s notes).
///
/// ```
/// use std::borrow::Cow;
/// use alertkit::Alert;
/// use alertkit::toolkit::fit_alert;
///
/// let small = Alert::new("disk full").body("95%");
/// assert!(matches!(fit_alert(&small, 4096).0, Cow::Borrowed(_)));
///
/// let huge = Alert::new("t".repeat(30_000)).body("b".repeat(100_000));
/// let (fitted, notes) = fit_alert(&huge, 4096);
/// assert!(fitted.title.len() <= 512 && fitted.body.len() <= 2 * 4096);
/// assert!(notes.iter().any(|n| n.starts_with("title cut")), "{notes:?}");
/// ```
pub fn fit_alert(alert: &Alert, max: usize) -> (Cow<'_, Alert>, Vec<String>) {
    let b = Budget::new(max);
    if b.fits(alert) {
        return (Cow::Borrowed(alert), Vec::new());
    }
    let mut notes = Vec::new();
    let mut a = Alert::new(cut_line(&alert.title, b.title));
    if a.title.len() < alert.title.len() {
        notes.push(format!(
            "title cut to {} of {} bytes",
            a.title.len(),
            alert.title.len()
        ));
    }
    a.severity = alert.severity;
    a.state = alert.state;
    a.occurred_at = alert.occurred_at;
    a.dedup_key = alert.dedup_key.clone();
    if alert.body.len() > b.body {
        a.body = truncate_marked(&alert.body, b.body).0;
        notes.push(format!(
            "body of {} bytes cut before rendering",
            alert.body.len()
        ));
    } else {
        a.body = alert.body.clone();
    }
    a.job = alert.job.as_ref().map(|j| {
        let mut j = j.clone();
        j.name = cut_line(&j.name, b.name);
        j.id = j.id.map(|v| cut_line(&v, b.name));
        j.cluster = j.cluster.map(|v| cut_line(&v, b.name));
        j.error = j.error.map(|v| truncate_marked(&v, b.fields / 2).0);
        if j.url.as_ref().is_some_and(|u| u.len() > MAX_URL) {
            j.url = None;
            notes.push("job URL left out: longer than 2048 bytes".to_owned());
        }
        j
    });
    let mut used = 0usize;
    for (i, (k, v)) in alert.fields.iter().enumerate() {
        let per = (b.fields / alert.fields.len().max(1)).max(128);
        let (k, v) = (cut_line(k, b.name), cut_line(v, per));
        used = used.saturating_add(k.len() + v.len());
        // Room is kept for the closing "… N more fields omitted" row.
        if used.saturating_add(40) > b.fields && i + 1 < alert.fields.len() || used > b.fields {
            let left = alert.fields.len() - i;
            a.fields
                .push(("…".to_owned(), format!("{left} more fields omitted")));
            notes.push(format!("{left} of {} fields omitted", alert.fields.len()));
            break;
        }
        a.fields.push((k, v));
    }
    if a.fields.len() == alert.fields.len() && a.fields != alert.fields {
        notes.push("long field values cut".to_owned());
    }
    let mut used = 0usize;
    for (k, v) in &alert.labels {
        let (k, v) = (cut_line(k, b.name), cut_line(v, b.name));
        used = used.saturating_add(k.len() + v.len());
        if used > b.labels {
            notes.push("labels omitted past the message's budget".to_owned());
            break;
        }
        a.labels.insert(k, v);
    }
    let (mut used, mut dropped) = (0usize, 0usize);
    for l in &alert.links {
        let title = cut_line(&l.title, b.name);
        used = used.saturating_add(title.len() + l.url.len());
        if l.url.len() > MAX_URL || used > b.links {
            dropped += 1;
            continue;
        }
        a.links.push(crate::alert::Link {
            title,
            url: l.url.clone(),
        });
    }
    if dropped > 0 {
        notes.push(format!(
            "{dropped} of {} links omitted (too long, or past the message's budget)",
            alert.links.len()
        ));
    }
    let (mut used, mut dropped) = (0usize, 0usize);
    for m in &alert.mentions {
        let len = match m {
            Mention::All => 0,
            Mention::Mobile(x) | Mention::UserId(x) | Mention::Email(x) => x.len() + 16,
        };
        used = used.saturating_add(len);
        if len > b.name || used > b.mentions {
            dropped += 1;
            continue;
        }
        a.mentions.push(m.clone());
    }
    if dropped > 0 {
        notes.push(format!(
            "{dropped} of {} mentions omitted past the message's budget",
            alert.mentions.len()
        ));
    }
    (Cow::Owned(a), notes)
}

/// Byte budgets of [`fit_alert`].
struct Budget {
    title: usize,
    name: usize,
    body: usize,
    fields: usize,
    labels: usize,
    links: usize,
    mentions: usize,
}

impl Budget {
    fn new(max: usize) -> Self {
        Budget {
            title: (max / 10).clamp(64, 512),
            name: 256,
            body: max.saturating_mul(2),
            fields: max / 3,
            labels: max / 8,
            links: max / 5,
            mentions: max / 8,
        }
    }

    /// Whether every part is within its budget (no copy needed).
    fn fits(&self, a: &Alert) -> bool {
        let short = |s: &str| s.len() <= self.name;
        let fields: usize = a.fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        let per = self.fields / a.fields.len().max(1);
        let labels: usize = a.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        let links: usize = a.links.iter().map(|l| l.title.len() + l.url.len()).sum();
        let mentions: usize = a
            .mentions
            .iter()
            .map(|m| match m {
                Mention::All => 0,
                Mention::Mobile(x) | Mention::UserId(x) | Mention::Email(x) => x.len() + 16,
            })
            .sum();
        a.title.len() <= self.title
            && a.body.len() <= self.body
            && fields <= self.fields
            && a.fields
                .iter()
                .all(|(k, v)| short(k) && v.len() <= per.max(128))
            && labels <= self.labels
            && a.labels.iter().all(|(k, v)| short(k) && short(v))
            && links <= self.links
            && a.links
                .iter()
                .all(|l| short(&l.title) && l.url.len() <= MAX_URL)
            && mentions <= self.mentions
            && a.mentions.iter().all(|m| match m {
                Mention::All => true,
                Mention::Mobile(x) | Mention::UserId(x) | Mention::Email(x) => {
                    x.len() + 16 <= self.name
                }
            })
            && a.job.as_ref().is_none_or(|j| {
                short(&j.name)
                    && j.id.as_deref().is_none_or(short)
                    && j.cluster.as_deref().is_none_or(short)
                    && j.error.as_ref().is_none_or(|e| e.len() <= self.fields / 2)
                    && j.url.as_ref().is_none_or(|u| u.len() <= MAX_URL)
            })
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

        // Whatever the parts' sizes, the fitted alert is within every budget,
        // and an alert already within them is borrowed as it is.
        #[test]
        fn fitted_alerts_are_within_budget(
            title in 0usize..3000, fields in 0usize..80, value in 0usize..2000,
            links in 0usize..60, url in 10usize..3000, mentions in 0usize..400,
            max in 1000usize..20_000,
        ) {
            let mut a = Alert::new("t".repeat(title)).body("b".repeat(title * 3));
            for i in 0..fields {
                a = a.field(format!("f{i}"), "v".repeat(value));
            }
            for i in 0..links {
                a = a.link(format!("l{i}"), "u".repeat(url));
            }
            for i in 0..mentions {
                a = a.mention(Mention::UserId(format!("user{i}")));
            }
            let (fitted, notes) = fit_alert(&a, max);
            let b = Budget::new(max);
            prop_assert!(b.fits(&fitted));
            match fitted {
                Cow::Borrowed(_) => prop_assert!(notes.is_empty() && b.fits(&a)),
                Cow::Owned(_) => prop_assert!(!notes.is_empty() || !b.fits(&a)),
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
