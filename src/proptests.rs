//! Property tests standing in for fuzzing (run in CI in bounded time):
//! platform-response parsing and template rendering never panic, whatever
//! a server or a user hands them.

use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;

use crate::http::Reply;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,20}".prop_map(Value::String),
        // The names platforms use, with values of any type.
        prop_oneof![
            Just("errcode"),
            Just("code"),
            Just("msg"),
            Just("errmsg"),
            Just("StatusCode"),
            Just("message")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("errcode".to_owned()),
                        Just("code".to_owned()),
                        Just("errmsg".to_owned()),
                        Just("msg".to_owned()),
                        Just("StatusCode".to_owned()),
                        Just("invaliduser".to_owned()),
                        Just("invalidStaffIdList".to_owned()),
                        "[a-z]{1,8}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        retry_after: None,
        body,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn response_parsing_never_panics(body in arb_json(), status in 100u16..600) {
        let r = reply(status, body);
        let _ = r.code();
        let _ = r.message();
        let _ = crate::http::unexpected_reply(&r);
        #[cfg(feature = "dingtalk")]
        {
            let _ = crate::channels::dingtalk::classify_errcode(&r);
            let _ = crate::channels::dingtalk::classify_new_api(&r);
        }
        #[cfg(feature = "wecom")]
        let _ = crate::channels::wecom::classify(&r);
        #[cfg(feature = "feishu")]
        let _ = crate::channels::feishu::classify(&r);
    }

    #[test]
    fn a_zero_code_is_never_an_error(msg in "\\PC{0,30}") {
        let r = reply(200, serde_json::json!({"errcode": 0, "code": 0, "errmsg": msg}));
        #[cfg(feature = "dingtalk")]
        prop_assert!(crate::channels::dingtalk::classify_errcode(&r).is_none());
        #[cfg(feature = "wecom")]
        prop_assert!(crate::channels::wecom::classify(&r).is_none());
        #[cfg(feature = "feishu")]
        prop_assert!(crate::channels::feishu::classify(&r).is_none());
    }

    #[test]
    fn templates_compile_or_fail_cleanly(src in "[\\PC{}%#\\n]{0,80}", title in "\\PC{0,40}") {
        use crate::template::{Format, TemplateOverrides, Templates};
        if let Ok(t) = Templates::with_overrides(&TemplateOverrides::default().with(Format::Text, src)) {
            let _ = t.render(Format::Text, &crate::Alert::new(title), "x");
        }
    }

    #[test]
    fn any_alert_renders_in_every_format(title in "\\PC{0,60}", body in "\\PC{0,200}", field in "\\PC{0,20}") {
        let a = crate::Alert::new(title).body(body).field(field.clone(), field);
        let out = crate::template::Templates::default().preview(&a, "dingtalk");
        prop_assert!(out.is_ok(), "{:?}", out.err());
    }
}
