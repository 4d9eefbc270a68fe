//! WeCom answers → error kinds (platforms.md §3.3, §4, §8).

use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::http::Reply;

/// Token errors that warrant one refresh and resend (§3.1).
pub(crate) const TOKEN_CODES: [&str; 4] = ["40014", "42001", "41001", "40001"];

/// Classifies an `errcode` answer. `None` for 0.
pub(crate) fn classify(reply: &Reply) -> Option<Error> {
    if reply.code_is_zero() {
        // `errcode 0` under a non-2xx status is no success: the status wins.
        return (!reply.status.is_success()).then(|| crate::http::unexpected_reply(reply));
    }
    let Some(code) = reply.code() else {
        return Some(crate::http::unexpected_reply(reply));
    };
    let (kind, retryable) = match code.as_str() {
        "-1" => (ErrorKind::Platform, true),
        "45009" => (ErrorKind::RateLimited, true),
        "40014" | "42001" | "41001" => (ErrorKind::TokenExpired, true),
        "40001" | "40013" | "93000" | "40056" | "301002" => (ErrorKind::Unauthorized, false),
        "60020" => (ErrorKind::IpNotAllowed, false),
        // 81013: all recipients invalid; 86001: chatid not valid, 86003: no such chat.
        "81013" | "86001" | "86003" => (ErrorKind::InvalidRecipient, false),
        "40058" => (ErrorKind::PayloadTooLarge, false),
        "40008" | "44004" | "40035" => (ErrorKind::InvalidContent, false),
        _ if reply.status.is_server_error() => (ErrorKind::Platform, true),
        _ => (ErrorKind::Platform, false),
    };
    let mut e = Error::new(kind, short(&reply.message()))
        .with_code(code)
        .with_retryable(retryable)
        .with_http_status(reply.status.as_u16());
    if kind == ErrorKind::RateLimited {
        // 45009 is a per-minute window (§4): waiting less only burns attempts.
        e = e.with_retry_after(reply.retry_after.unwrap_or(Duration::from_secs(60)));
    }
    Some(e)
}

/// WeCom appends `, hint: [...], from ip: x, more info at https://...` to
/// every message; keep the part a person reads.
fn short(msg: &str) -> String {
    msg.split(", hint:").next().unwrap_or(msg).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use serde_json::json;

    fn check(code: i64, kind: ErrorKind, retryable: bool) {
        let r = Reply {
            status: StatusCode::OK,
            retry_after: None,
            location: None,
            body: json!({"errcode": code, "errmsg": "x, hint: [1688], from ip: 1.1.1.1, more info at https://open.work.weixin.qq.com/devtool/query?e=1"}),
        };
        let e = classify(&r).expect("error");
        assert_eq!((e.kind(), e.is_retryable()), (kind, retryable), "{code}");
        assert_eq!(e.message(), "x");
    }

    #[test]
    fn section_3_3_and_4_codes() {
        check(-1, ErrorKind::Platform, true);
        check(45009, ErrorKind::RateLimited, true);
        check(40014, ErrorKind::TokenExpired, true);
        check(42001, ErrorKind::TokenExpired, true);
        check(41001, ErrorKind::TokenExpired, true);
        check(40001, ErrorKind::Unauthorized, false);
        check(40013, ErrorKind::Unauthorized, false);
        check(93000, ErrorKind::Unauthorized, false);
        check(60020, ErrorKind::IpNotAllowed, false);
        check(81013, ErrorKind::InvalidRecipient, false);
        check(40058, ErrorKind::PayloadTooLarge, false);
        check(40008, ErrorKind::InvalidContent, false);
        check(44004, ErrorKind::InvalidContent, false);
    }
}
