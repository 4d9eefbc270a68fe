//! Prepare cost per channel: template render + payload + serialize, for a
//! typical Flink alert (`cargo bench --bench prepare`). Measured through
//! `AlertChannel::preview`, which also parses the payload back into a
//! `serde_json::Value` (an upper bound on the send path's work).

use std::hint::black_box;

use alertkit::template::{Format, Templates};
use alertkit::{Alert, Config, Notifier};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let alert = Alert::sample();
    let config = Config::from_json(
        r#"{"instances": [
            {"name": "robot", "type": "dingtalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=t",
             "secret": "SEC0123456789abcdef", "keywords": ["告警"], "at_mobiles": ["13800000000"]}},
            {"name": "robot-text", "type": "dingtalk", "params": {"access_token": "t", "msg_type": "text"}}]}"#,
    )
    .unwrap();
    let n = Notifier::from_config(&config).unwrap();
    let templates = Templates::default();

    c.bench_function("template/markdown", |b| {
        b.iter(|| {
            templates
                .render(Format::Markdown, black_box(&alert), "dingtalk")
                .unwrap()
        })
    });
    for name in ["robot", "robot-text"] {
        let ch = n.channel(name).unwrap();
        c.bench_function(&format!("prepare/dingtalk-{name}"), |b| {
            b.iter(|| ch.preview(black_box(&alert)).unwrap())
        });
    }
    let huge = Alert::sample().body("作业失败 \"quoted\"\n".repeat(1500));
    let ch = n.channel("robot").unwrap();
    c.bench_function("prepare/dingtalk-robot-30KB-truncated", |b| {
        b.iter(|| ch.preview(black_box(&huge)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
