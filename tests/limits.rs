//! Text limits never lose an alert (issue 14 #7): every part of an alert is
//! fitted (title, fields, links, mentions), with a visible marker, and the
//! robot keyword survives fitting. The strict fakes refuse anything over the
//! platform's size limit or without a keyword.
#![cfg(all(
    feature = "dingtalk",
    feature = "feishu",
    feature = "wecom",
    feature = "testkit"
))]

use std::sync::Arc;

use alertkit::policy::PolicyConfig;
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::feishu::{BotSpec, FakeFeishu, RateLimitAnswer};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, AlertChannel, Config, InstanceConfig, JobInfo, Mention, Notifier};
use serde_json::{Value, json};

fn channel(kind: &str, params: Value) -> Arc<dyn AlertChannel> {
    let cfg = params.as_object().unwrap().iter().fold(
        InstanceConfig::new("x", kind).policy(PolicyConfig::off()),
        |c, (k, v)| c.param(k.clone(), v.clone()),
    );
    Notifier::from_config(&Config::default().with_instance(cfg))
        .unwrap()
        .channel("x")
        .unwrap()
}

/// The oversized alerts, each of one kind.
fn oversized() -> Vec<(&'static str, Alert)> {
    let long_link = format!("https://flink.example/#/job/{}", "a".repeat(300));
    let mut many_fields = Alert::new("sixty long fields").job(JobInfo::new("orders-etl"));
    for i in 0..60 {
        many_fields = many_fields.field(format!("field {i}"), "v".repeat(1000));
    }
    let mut many_links = Alert::new("many links");
    for i in 0..200 {
        many_links = many_links.link(format!("link {i}"), long_link.clone());
    }
    let mut many_mentions = Alert::new("many mentions");
    for i in 0..3000 {
        many_mentions = many_mentions.mention(Mention::Mobile(format!("1380000{i:04}")));
    }
    vec![
        ("30 KB title", Alert::new("标题".repeat(5000))),
        ("60 fields", many_fields),
        ("200 links", many_links),
        ("3000 mentions", many_mentions),
        (
            "50 MB body",
            Alert::new("huge body").body("x".repeat(50 << 20)),
        ),
    ]
}

#[tokio::test]
async fn dingtalk_robot_fits_every_part() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok",
        RobotSpec {
            secret: None,
            keywords: vec!["告警".into()],
        },
    );
    for msg_type in ["markdown", "text", "action_card"] {
        let ch = channel(
            "dingtalk",
            json!({"webhook": fake.webhook("tok"), "keywords": ["告警"], "msg_type": msg_type}),
        );
        for (what, alert) in oversized() {
            let r = ch.send(&alert).await;
            let receipt = r.unwrap_or_else(|e| panic!("{msg_type} {what}: {e}"));
            assert!(
                !receipt.notes.is_empty(),
                "{msg_type} {what}: a note says what was cut"
            );
        }
    }
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.accepted && r.body_len <= 20_000)
    );
}

#[tokio::test]
async fn a_keyword_at_the_end_of_a_long_body_survives_fitting() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok",
        RobotSpec {
            secret: None,
            keywords: vec!["告警".into()],
        },
    );
    let ch = channel(
        "dingtalk",
        json!({"webhook": fake.webhook("tok"), "keywords": ["告警"]}),
    );
    let alert = Alert::new("job failed").body(format!("{}\n告警", "y".repeat(34_000)));
    let receipt = ch.send(&alert).await.unwrap();
    assert!(
        receipt.notes.iter().any(|n| n.contains("truncated")),
        "{receipt:?}"
    );
    let text = fake.accepted()[0].body["markdown"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("truncated") && text.ends_with("告警"),
        "{}",
        &text[text.len() - 200..]
    );

    let fs = FakeFeishu::start().await;
    fs.add_bot(
        "t",
        BotSpec {
            keywords: vec!["告警".into()],
            ..BotSpec::default()
        },
    );
    for msg_type in ["interactive", "post", "text"] {
        let ch = channel(
            "feishu",
            json!({"webhook": fs.webhook("t"), "keywords": ["告警"], "msg_type": msg_type}),
        );
        ch.send(&alert)
            .await
            .unwrap_or_else(|e| panic!("feishu {msg_type}: {e}"));
    }
}

#[tokio::test]
async fn feishu_bot_fits_every_part() {
    let fake = FakeFeishu::start().await;
    fake.add_bot("t", BotSpec::default());
    fake.set_rate_limit(1000, 10_000, RateLimitAnswer::Code11232);
    for msg_type in ["interactive", "post", "text"] {
        let ch = channel(
            "feishu",
            json!({"webhook": fake.webhook("t"), "msg_type": msg_type}),
        );
        for (what, alert) in oversized() {
            ch.send(&alert)
                .await
                .unwrap_or_else(|e| panic!("feishu {msg_type} {what}: {e}"));
        }
    }
    assert!(fake.requests().iter().all(|r| r.accepted));
}

#[tokio::test]
async fn wecom_robot_fits_every_part() {
    let fake = FakeWeCom::start().await;
    fake.add_bot("k");
    for msg_type in ["markdown", "text", "markdown_v2"] {
        let ch = channel(
            "wecom",
            json!({"mode": "bot", "webhook": fake.webhook("k"), "msg_type": msg_type}),
        );
        for (what, alert) in oversized() {
            ch.send(&alert)
                .await
                .unwrap_or_else(|e| panic!("wecom {msg_type} {what}: {e}"));
        }
    }
}

#[tokio::test]
async fn a_cut_title_shows_its_marker() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let ch = channel("dingtalk", json!({"webhook": fake.webhook("tok")}));
    ch.send(&Alert::new("T".repeat(30_000))).await.unwrap();
    let title = fake.accepted()[0].body["markdown"]["title"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(title.len() <= 600 && title.contains('…'), "{}", title.len());
}
