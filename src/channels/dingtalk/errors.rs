//! DingTalk answers → error kinds (platforms.md §1.5, §2.2, §2.3, §8).

use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::http::Reply;

/// How long DingTalk throttles a robot that exceeded 20 messages a minute
/// is up to 10 minutes; a minute is the shortest wait that can help.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Classifies an `errcode` answer of the robot and legacy APIs. `None` for 0.
pub(crate) fn classify_errcode(reply: &Reply) -> Option<Error> {
    if reply.code_is_zero() {
        // `errcode 0` under a non-2xx status is no success (a proxy, a
        // broken gateway): the status wins.
        return (!reply.status.is_success()).then(|| crate::http::unexpected_reply(reply));
    }
    let Some(code) = reply.code() else {
        return Some(crate::http::unexpected_reply(reply));
    };
    let msg = reply.message();
    let lower = msg.to_lowercase();
    let (kind, retryable) = match code.as_str() {
        "-1" => (ErrorKind::Platform, true),
        "310000" => (security_kind(&lower), false),
        "130101" | "410100" => (ErrorKind::RateLimited, true),
        "90030" => (ErrorKind::RateLimited, false),
        "300001" | "300005" | "400101" | "400102" | "40001" | "40014" | "42001" | "88" => {
            (token_or_auth(&code), false)
        }
        "400013" | "400106" => (ErrorKind::InvalidRecipient, false),
        "400105" | "40035" | "430101" | "430102" | "430103" | "430104" => {
            (ErrorKind::InvalidContent, false)
        }
        "460101" | "101002" | "34016" => (ErrorKind::PayloadTooLarge, false),
        // Legacy per-app/per-corp API quotas (§2.3).
        "90018" | "90006" | "90005" => (ErrorKind::RateLimited, true),
        _ => (ErrorKind::Platform, false),
    };
    let mut e = Error::new(kind, msg)
        .with_code(code)
        .with_retryable(retryable)
        .with_http_status(reply.status.as_u16());
    if kind == ErrorKind::RateLimited && retryable {
        e = e.with_retry_after(reply.retry_after.unwrap_or(RATE_LIMIT_WAIT));
    }
    Some(e)
}

fn token_or_auth(code: &str) -> ErrorKind {
    match code {
        "40014" | "42001" => ErrorKind::TokenExpired,
        _ => ErrorKind::Unauthorized,
    }
}

/// 310000 covers four security checks; tell them apart by the message
/// (English, or the newer Chinese wording), never trusting it for more.
fn security_kind(lower: &str) -> ErrorKind {
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["keyword", "关键词"]) {
        ErrorKind::KeywordMissing
    } else if has(&["whitelist", "白名单", " ip "]) || lower.starts_with("ip ") {
        ErrorKind::IpNotAllowed
    } else if has(&["sign", "签名", "timestamp", "时间戳"]) {
        ErrorKind::SignatureMismatch
    } else {
        ErrorKind::Platform
    }
}

/// Classifies an answer of the new API (api.dingtalk.com): HTTP 4xx with a
/// string `code`. `None` for success.
pub(crate) fn classify_new_api(reply: &Reply) -> Option<Error> {
    if reply.status.is_success() {
        // Success answers are JSON objects; an HTML page or an empty body
        // under 200 (a proxy, a portal) is no delivery.
        return (!reply.body.is_object()).then(|| crate::http::unexpected_reply(reply));
    }
    let Some(code) = reply
        .body
        .get("code")
        .and_then(|c| c.as_str())
        .map(str::to_owned)
    else {
        return Some(crate::http::unexpected_reply(reply));
    };
    let msg = reply.message();
    let (kind, retryable) = if code == "InvalidAuthentication" {
        (ErrorKind::TokenExpired, true)
    } else if code.starts_with("Forbidden.AccessDenied.QpsLimit") {
        (ErrorKind::RateLimited, true)
    } else if code.starts_with("Forbidden")
        || code == "bot.stopped"
        || code.starts_with("invalidParameter.robotCode")
    {
        (ErrorKind::Unauthorized, false)
    } else if code.starts_with("invalidParameter.userIds")
        || code.starts_with("invalidParameter.openConversationId")
    {
        (ErrorKind::InvalidRecipient, false)
    } else if code.starts_with("invalidParameter") || code.starts_with("template.") {
        (ErrorKind::InvalidContent, false)
    } else if reply.status.is_server_error() {
        (ErrorKind::Platform, true)
    } else {
        (ErrorKind::Platform, false)
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

    fn reply(body: serde_json::Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            retry_after: None,
            location: None,
            body,
        }
    }

    fn check(code: i64, msg: &str, kind: ErrorKind, retryable: bool) {
        let e =
            classify_errcode(&reply(json!({"errcode": code, "errmsg": msg}))).expect("an error");
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (kind, retryable),
            "{code} {msg}"
        );
        assert_eq!(e.code(), Some(code.to_string().as_str()));
    }

    #[test]
    fn section_1_5_codes() {
        assert!(classify_errcode(&reply(json!({"errcode": 0, "errmsg": "ok"}))).is_none());
        check(-1, "系统繁忙", ErrorKind::Platform, true);
        check(
            310000,
            "keywords not in content",
            ErrorKind::KeywordMissing,
            false,
        );
        check(
            310000,
            "invalid timestamp",
            ErrorKind::SignatureMismatch,
            false,
        );
        check(
            310000,
            "sign not match",
            ErrorKind::SignatureMismatch,
            false,
        );
        check(
            310000,
            "ip 1.2.3.4 not in whitelist",
            ErrorKind::IpNotAllowed,
            false,
        );
        check(
            310000,
            "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳必须都放在调用的网址中，请确认机器人的密钥加密和填写正确;link:x",
            ErrorKind::SignatureMismatch,
            false,
        );
        check(
            310000,
            "错误描述:机器人发送签名不匹配;解决方案:...",
            ErrorKind::SignatureMismatch,
            false,
        );
        check(
            130101,
            "send too fast, exceed 20 times per minute",
            ErrorKind::RateLimited,
            true,
        );
        check(410100, "发送速度太快而限流", ErrorKind::RateLimited, true);
        check(300001, "token is not exist", ErrorKind::Unauthorized, false);
        check(300005, "token is not exist", ErrorKind::Unauthorized, false);
        check(400101, "access_token不存在", ErrorKind::Unauthorized, false);
        check(400102, "机器人已停用", ErrorKind::Unauthorized, false);
        check(400013, "群已被解散", ErrorKind::InvalidRecipient, false);
        check(400106, "机器人不存在", ErrorKind::InvalidRecipient, false);
        check(400105, "不支持的消息类型", ErrorKind::InvalidContent, false);
        for c in [430101, 430102, 430103, 430104] {
            check(c, "含有不安全的外链", ErrorKind::InvalidContent, false);
        }
        check(
            460101,
            "message too long, exceed 20000 bytes",
            ErrorKind::PayloadTooLarge,
            false,
        );
        check(
            101002,
            "message is too long",
            ErrorKind::PayloadTooLarge,
            false,
        );
        check(40035, "缺少参数 json", ErrorKind::InvalidContent, false);
        check(90030, "webhook over limit", ErrorKind::RateLimited, false);
        check(999999, "new code", ErrorKind::Platform, false);
    }

    #[test]
    fn rate_limits_carry_a_wait() {
        let e = classify_errcode(&reply(
            json!({"errcode": 130101, "errmsg": "send too fast"}),
        ))
        .unwrap();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn no_code_is_classified_by_status() {
        let mut r = reply(serde_json::Value::Null);
        r.status = StatusCode::BAD_GATEWAY;
        let e = classify_errcode(&r).unwrap();
        assert!(e.is_retryable());
        assert_eq!(e.code(), Some("HTTP 502"));
    }

    #[test]
    fn new_api_codes() {
        let r = |status: u16, code: &str| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            location: None,
            body: json!({"code": code, "message": "m", "requestid": "r"}),
        };
        let k = |status, code| {
            let e = classify_new_api(&r(status, code)).unwrap();
            (e.kind(), e.is_retryable())
        };
        assert_eq!(
            k(400, "InvalidAuthentication"),
            (ErrorKind::TokenExpired, true)
        );
        assert_eq!(
            k(403, "Forbidden.AccessDenied.QpsLimitForApi"),
            (ErrorKind::RateLimited, true)
        );
        assert_eq!(
            k(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
            (ErrorKind::RateLimited, true)
        );
        assert_eq!(
            k(403, "Forbidden.AccessDenied.AccessTokenPermissionDenied"),
            (ErrorKind::Unauthorized, false)
        );
        assert_eq!(
            k(400, "invalidParameter.userIds.overMax"),
            (ErrorKind::InvalidRecipient, false)
        );
        assert_eq!(
            k(400, "invalidParameter.msgParam.invalid"),
            (ErrorKind::InvalidContent, false)
        );
        assert_eq!(
            k(400, "invalidParameter.robotCode.notExsit"),
            (ErrorKind::Unauthorized, false)
        );
        assert_eq!(k(400, "bot.stopped"), (ErrorKind::Unauthorized, false));
        assert!(
            classify_new_api(&Reply {
                status: StatusCode::OK,
                retry_after: None,
                location: None,
                body: json!({})
            })
            .is_none()
        );
    }
}
