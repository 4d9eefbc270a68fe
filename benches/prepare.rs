//! Prepare cost per channel for a typical Flink alert: template render +
//! payload + fit + serialize (`cargo bench --bench prepare`). Measured
//! through `AlertChannel::preview`, which also parses the payload back into
//! a `serde_json::Value` for display: an upper bound on the send path's work
//! (signing, which `preview` leaves out, is measured on its own).

use std::hint::black_box;

use alertkit::template::{Format, Templates};
use alertkit::{Alert, Config, Notifier};
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
    }
    let huge = Alert::sample().body("作业失败 \"quoted\"\n".repeat(1500));
    let ch = n.channel("dingtalk").unwrap();
    c.bench_function("prepare/dingtalk-30KB-fitted", |b| {
        b.iter(|| ch.preview(black_box(&huge)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
