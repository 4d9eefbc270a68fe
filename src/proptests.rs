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
        // Success codes in each form, and near misses.
        Just(Value::from(0)),
        Just(Value::from("0")),
        Just(serde_json::json!(0.0)),
        Just(Value::from("00")),
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
    Reply::new(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn response_parsing_never_panics(body in arb_json(), status in 100u16..600) {
        let r = reply(status, body);
        prop_assert_eq!(r.code_is_zero(), r.code().as_deref() == Some("0"));
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
        if let Ok(t) = Templates::with_overrides(&TemplateOverrides::default().template(Format::Text, src)) {
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

/// Text that exercises the templates: Markdown and HTML punctuation, line
/// breaks (`\r` alone too), blank-line runs, trailing spaces, Chinese.
fn arb_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!(
            "[a-z0-9 <>&\"'/*_#\\[\\]|`~\\\\\\n\\r\\t告警✅]{{0,{max}}}"
        ))
        .unwrap_or_else(|_| unreachable!("a valid pattern")),
        proptest::string::string_regex(&format!("\\PC{{0,{max}}}"))
            .unwrap_or_else(|_| unreachable!("a valid pattern")),
    ]
}

prop_compose! {
    fn arb_job()(
        name in arb_text(20),
        id in prop::option::of(arb_text(10)),
        status in prop::option::of(prop_oneof![
            Just(crate::JobStatus::Failed),
            Just(crate::JobStatus::Running),
            Just(crate::JobStatus::Finished),
        ]),
        cluster in prop::option::of(arb_text(10)),
        url in prop::option::of(arb_text(20)),
        // Always with an end: a running job's duration reads the clock.
        times in prop::option::of((0i64..4_000_000_000, 0i64..200_000)),
        error in prop::option::of(arb_text(1200)),
    ) -> crate::JobInfo {
        let mut j = crate::JobInfo::new(name);
        j.id = id;
        j.status = status;
        j.cluster = cluster;
        j.url = url;
        j.error = error;
        if let Some((start, len)) = times {
            let at = |s| chrono::DateTime::from_timestamp(s, 0).unwrap_or_default();
            j.started_at = Some(at(start));
            j.ended_at = Some(at(start + len));
        }
        j
    }
}

prop_compose! {
    fn arb_alert()(
        title in arb_text(60),
        body in arb_text(200),
        severity in prop_oneof![
            Just(crate::Severity::Info),
            Just(crate::Severity::Warning),
            Just(crate::Severity::Error),
            Just(crate::Severity::Critical),
        ],
        resolved in any::<bool>(),
        job in prop::option::of(arb_job()),
        fields in prop::collection::vec((arb_text(10), arb_text(20)), 0..3),
        links in prop::collection::vec((arb_text(10), arb_text(20)), 0..3),
        occurred in prop::option::of(0i64..4_000_000_000),
    ) -> crate::Alert {
        let mut a = crate::Alert::new(title).body(body).severity(severity);
        if resolved {
            a = a.resolved();
        }
        a.job = job;
        a.fields = fields;
        for (title, url) in links {
            a = a.link(title, url);
        }
        a.occurred_at = occurred.and_then(|s| chrono::DateTime::from_timestamp(s, 0));
        a
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// The built-in templates written in Rust say exactly what their
    /// minijinja sources say.
    #[test]
    fn builtin_renderer_matches_the_template_sources(
        alert in arb_alert(),
        zh in any::<bool>(),
        platform in prop_oneof![
            Just("dingtalk"), Just("wecom"), Just("wecom_v2"), Just("feishu"),
            Just("feishu_card"), Just("email"), Just("webhook"),
        ],
    ) {
        use crate::template::{Format, Lang, TemplateOverrides, Templates};
        let lang = if zh { Lang::Zh } else { Lang::En };
        let t = Templates::with_overrides(&TemplateOverrides::default().lang(lang))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for format in [Format::Title, Format::Text, Format::Markdown, Format::Html] {
            let fast = t.render(format, &alert, platform);
            let jinja = t.render_minijinja(format, &alert, platform);
            prop_assert_eq!(
                fast.as_ref().map_err(|e| e.to_string()),
                jinja.as_ref().map_err(|e| e.to_string()),
                "{:?} on {}", format, platform
            );
        }
    }
}

/// `human_duration` as first written (a list of parts, zeros trimmed from
/// the end): the reference for the allocation-free version.
fn human_duration_reference(secs: i64) -> String {
    if secs <= 0 {
        return "0s".to_owned();
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 || (!parts.is_empty() && unit != "s") {
            parts.push(format!("{n}{unit}"));
        }
    }
    while parts.len() > 1 && parts.last().is_some_and(|p| p.starts_with('0')) {
        parts.pop();
    }
    parts.join(" ")
}

proptest! {
    #[test]
    fn human_duration_matches_the_reference(secs in prop_oneof![any::<i64>(), -10i64..400_000]) {
        prop_assert_eq!(crate::template::human_duration(secs), human_duration_reference(secs));
    }
}

proptest! {
    /// Markdown escaping: a backslash before each special character, the
    /// rest untouched (against a character-by-character reference).
    #[test]
    fn md_escape_matches_the_reference(s in "[a-z \\\\`*_\\[\\]#<>|~告警✅\\n]{0,40}|\\PC{0,40}") {
        let mut reference = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if "\\`*_[]#<>|~".contains(c) {
                reference.push('\\');
            }
            reference.push(c);
            if c == '<' || (c == ']' && chars.peek() == Some(&'(')) {
                reference.push('\u{200B}');
            }
        }
        prop_assert_eq!(crate::template::md_escape(&s), reference);
    }
}
