//! Prepare cost per channel for a typical Flink alert: template render +
//! payload + fit + serialize (`cargo bench --bench prepare`). Measured
//! through `AlertChannel::preview`, which also parses the payload back into
//! a `serde_json::Value` for display: `prepare/<channel>` is an upper bound
//! on the send path's work, and `parse-back/<channel>` measures that extra
//! parse on its own, so the send path costs about the difference. Signing,
//! which `preview` leaves out, is `sign/hmac-sha256` (the same primitive as
//! DingTalk's and Feishu's signatures: HMAC-SHA256, base64, URL-encoding).

use std::hint::black_box;

use alertkit::template::{Format, Templates};
use alertkit::{Alert, AlertGroup, Config, Notifier};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let alert = Alert::sample();
    let config = Config::from_json(
        r#"{"instances": [
            {"name": "dingtalk", "type": "dingtalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=t",
             "secret": "SEC0123456789abcdef", "keywords": ["告警"], "at_mobiles": ["13800000000"]}},
            {"name": "wecom", "type": "wecom", "params": {"webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}},
            {"name": "wecom-app", "type": "wecom", "params": {"mode": "app", "corp_id": "c", "secret": "s", "agent_id": 1, "to_users": ["u"]}},
            {"name": "feishu", "type": "feishu", "params": {"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/t", "secret": "s"}},
            {"name": "email", "type": "email", "params": {"host": "smtp.example.com", "from": "a@example.com", "to": ["b@example.com"], "format": "table"}},
            {"name": "webhook", "type": "webhook", "params": {"url": "https://ops.example/x", "body": {"t": "{{ title }}", "b": "{{ body }}"}}}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config(&config).unwrap();
    let templates = Templates::default();

    c.bench_function("template/title", |b| {
        b.iter(|| {
            templates
                .render(Format::Title, black_box(&alert), "dingtalk")
                .unwrap()
        })
    });
    c.bench_function("template/markdown", |b| {
        b.iter(|| {
            templates
                .render(Format::Markdown, black_box(&alert), "dingtalk")
                .unwrap()
        })
    });
    for name in [
        "dingtalk",
        "wecom",
        "wecom-app",
        "feishu",
        "email",
        "webhook",
    ] {
        let ch = n.channel(name).unwrap();
        c.bench_function(&format!("prepare/{name}"), |b| {
            b.iter(|| ch.preview(black_box(&alert)).unwrap())
        });
        let bytes: Vec<Vec<u8>> = ch
            .preview(&alert)
            .unwrap()
            .iter()
            .map(|p| serde_json::to_vec(&p.body).unwrap())
            .collect();
        c.bench_function(&format!("parse-back/{name}"), |b| {
            b.iter(|| {
                for body in &bytes {
                    black_box(
                        serde_json::from_slice::<serde_json::Value>(black_box(body)).unwrap(),
                    );
                }
            })
        });
    }
    c.bench_function("sign/hmac-sha256", |b| {
        use base64::Engine;
        use hmac::{Hmac, KeyInit, Mac};
        b.iter(|| {
            let ts = black_box(1_732_000_000_000i64);
            let secret = black_box("SEC0123456789abcdef0123456789abcdef");
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{ts}\n{secret}").as_bytes());
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            url::form_urlencoded::byte_serialize(sig.as_bytes()).collect::<String>()
        })
    });
    // The four HTTP channels of a group previewed together: they share one
    // template context, as in a dispatch. Per channel, divide by 4.
    let mut group = AlertGroup::new("g");
    for name in ["dingtalk", "wecom", "feishu", "webhook"] {
        group = group.with_member(name, n.channel(name).unwrap());
    }
    c.bench_function("prepare/group-of-4-http", |b| {
        b.iter(|| group.preview(black_box(&alert)))
    });
    let huge = Alert::sample().body("作业失败 \"quoted\"\n".repeat(1500));
    let ch = n.channel("dingtalk").unwrap();
    c.bench_function("prepare/dingtalk-30KB-fitted", |b| {
        b.iter(|| ch.preview(black_box(&huge)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
