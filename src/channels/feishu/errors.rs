//! Feishu/Lark answers → error kinds (platforms.md §5.4, §8, §11).

use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::http::Reply;

/// Tenant-token errors that warrant one refresh and resend (§11).
pub(crate) const TOKEN_CODES: [&str; 3] = ["99991663", "99991668", "99991661"];

/// Classifies an answer by `code` (falling back to `StatusCode`). `None` for 0.
pub(crate) fn classify(reply: &Reply) -> Option<Error> {
    // Every answer Feishu documents carries an integer `code` (or, from
    // old bots, `StatusCode`); `{}`, `true` or `19024.0` are not success.
    let code = reply
        .body
        .get("code")
        .or_else(|| reply.body.get("StatusCode"))
        .and_then(|c| match c {
            serde_json::Value::Number(n) => {
                Some(n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()))
            }
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        });
    let Some(code) = code else {
        return Some(crate::http::unexpected_reply(reply));
    };
    if code == "0" {
        return (!reply.status.is_success()).then(|| crate::http::unexpected_reply(reply));
    }
    let msg = reply.message();
    let lower = msg.to_lowercase();
    let (kind, retryable) = match code.as_str() {
        // One code, two meanings (§5.4): never loop on a malformed body.
        "9499" if lower.contains("too many") || lower.contains("frequency") => {
            (ErrorKind::RateLimited, true)
        }
        "9499" => (ErrorKind::InvalidContent, false),
        "11232" => (ErrorKind::RateLimited, true),
        "19001" | "19007" => (ErrorKind::Unauthorized, false),
        "19002" => (ErrorKind::InvalidContent, false),
        "19021" => (ErrorKind::SignatureMismatch, false),
        "19022" => (ErrorKind::IpNotAllowed, false),
        "19024" => (ErrorKind::KeywordMissing, false),
        c if TOKEN_CODES.contains(&c) => (ErrorKind::TokenExpired, true),
        "10003" | "10014" | "99991664" => (ErrorKind::Unauthorized, false),
        "230001" | "230002" | "230006" | "230013" => (ErrorKind::InvalidRecipient, false),
        "230025" => (ErrorKind::PayloadTooLarge, false),
        "230020" | "99991400" => (ErrorKind::RateLimited, true),
        _ if reply.status.is_server_error() => (ErrorKind::Platform, true),
        _ => (ErrorKind::Platform, false),
    };
    let mut e = Error::new(kind, msg)
        .with_code(code)
        .with_retryable(retryable)
        .with_http_status(reply.status.as_u16());
    if kind == ErrorKind::RateLimited {
        e = e.with_retry_after(reply.retry_after.unwrap_or(Duration::from_secs(1)));
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use serde_json::json;

    fn k(status: u16, body: serde_json::Value) -> Option<(ErrorKind, bool)> {
        let r = Reply {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            location: None,
            body,
        };
        classify(&r).map(|e| (e.kind(), e.is_retryable()))
    }

    #[test]
    fn section_5_4_codes() {
        assert_eq!(
            k(
                200,
                json!({"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"})
            ),
            None
        );
        assert_eq!(k(200, json!({"code": 0, "msg": "success"})), None);
        assert_eq!(k(200, json!({"StatusCode": 0})), None);
        assert_eq!(
            k(400, json!({"code": 9499, "msg": "too many request"})),
            Some((ErrorKind::RateLimited, true))
        );
        assert_eq!(
            k(400, json!({"code": 9499, "msg": "Bad Request"})),
            Some((ErrorKind::InvalidContent, false))
        );
        assert_eq!(
            k(
                200,
                json!({"StatusCode": 9499, "StatusMessage": "fail to parse content"})
            ),
            Some((ErrorKind::InvalidContent, false))
        );
        assert_eq!(
            k(
                200,
                json!({"code": 11232, "msg": "frequency limited psm[x]appID[1]"})
            ),
            Some((ErrorKind::RateLimited, true))
        );
        assert_eq!(
            k(
                200,
                json!({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"})
            ),
            Some((ErrorKind::Unauthorized, false))
        );
        assert_eq!(
            k(
                200,
                json!({"code": 19002, "msg": "params error, msg_type need"})
            ),
            Some((ErrorKind::InvalidContent, false))
        );
        assert_eq!(
            k(200, json!({"code": 19007, "msg": "Bot Not Enabled"})),
            Some((ErrorKind::Unauthorized, false))
        );
        assert_eq!(
            k(
                200,
                json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"})
            ),
            Some((ErrorKind::SignatureMismatch, false))
        );
        assert_eq!(
            k(200, json!({"code": 19022, "msg": "Ip Not Allowed"})),
            Some((ErrorKind::IpNotAllowed, false))
        );
        assert_eq!(
            k(200, json!({"code": 19024, "msg": "Key Words Not Found"})),
            Some((ErrorKind::KeywordMissing, false))
        );
        assert_eq!(
            k(
                400,
                json!({"code": 99991663, "msg": "Invalid access token for authorization"})
            ),
            Some((ErrorKind::TokenExpired, true))
        );
        assert_eq!(
            k(502, serde_json::Value::Null),
            Some((ErrorKind::Platform, true))
        );
    }
}
