//! Size limits: truncating text on UTF-8 boundaries with a visible marker.

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

fn marker(omitted: usize) -> String {
    format!("\n… (truncated, {omitted} bytes omitted)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        let s = "告警".repeat(1000); // 6000 bytes
        let (t, omitted) = truncate_marked(&s, 2048);
        assert!(t.len() <= 2048, "{}", t.len());
        assert!(t.ends_with(&format!("(truncated, {omitted} bytes omitted)")));
        assert_eq!(t.len() - marker(omitted).len() + omitted, s.len());
        assert_eq!(truncate_marked("short", 10), ("short".to_owned(), 0));
        for max in 0..60 {
            let (t, _) = truncate_marked(&s, max);
            assert!(t.len() <= max.max(marker(s.len()).len()));
        }
    }
}
