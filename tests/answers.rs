//! Only real success is success (issue 14 #6): answers that look like
//! success but are not (HTML under 200, `{}`, a float or boolean code,
//! `errcode 0` under HTTP 500, a redirect) are never `delivered`, and a
//! hostile `invalidStaffIdList` cannot make a count underflow.
#![cfg(all(
    feature = "dingtalk",
    feature = "feishu",
    feature = "wecom",
    feature = "testkit"
))]

use std::sync::Arc;

use alertkit::policy::PolicyConfig;
use alertkit::testkit::Fault;
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, AlertChannel, Config, InstanceConfig, Notifier};
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

fn raw(status: u16, body: &str) -> Fault {
    Fault::Raw {
        status,
        headers: vec![],
        body: body.into(),
    }
}

#[tokio::test]
async fn dingtalk_app_html_or_empty_200_is_not_delivered() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    let ch = channel(
        "dingtalk",
        json!({"mode": "app", "client_id": "dingapp", "client_secret": "app-secret-value",
               "robot_code": "dingrobot", "user_ids": ["u1"], "base_url": fake.uri()}),
    );
    for answer in [raw(200, "<html><body>portal</body></html>"), raw(200, "")] {
        fake.push_fault_on("batchSend", answer);
        let r = ch.send(&Alert::new("t")).await;
        assert!(r.is_err(), "{r:?}");
    }
    assert!(
        ch.send(&Alert::new("t")).await.is_ok(),
        "a real answer still works"
    );
}

#[tokio::test]
async fn dingtalk_app_invalid_list_longer_than_the_batch_does_not_underflow() {
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    let ch = channel(
        "dingtalk",
        json!({"mode": "app", "client_id": "dingapp", "client_secret": "app-secret-value",
               "robot_code": "dingrobot", "user_ids": ["u1"], "base_url": fake.uri()}),
    );
    fake.push_fault_on(
        "batchSend",
        Fault::Reply(
            200,
            json!({"processQueryKey": "q", "invalidStaffIdList": ["x", "y", "z"],
                   "flowControlledStaffIdList": []}),
        ),
    );
    let receipt = ch.send(&Alert::new("t")).await.unwrap();
    assert!(
        !receipt.is_partial(),
        "ids not in the batch are not our recipients: {receipt:?}"
    );
}

#[tokio::test]
async fn robot_http_500_with_errcode_0_is_not_delivered() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let ch = channel("dingtalk", json!({"webhook": fake.webhook("tok")}));
    fake.push_fault(Fault::Reply(500, json!({"errcode": 0, "errmsg": "ok"})));
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    assert!(e.is_retryable(), "a 5xx is worth another try: {e}");

    let wc = FakeWeCom::start().await;
    wc.add_bot("k");
    let ch = channel("wecom", json!({"mode": "bot", "webhook": wc.webhook("k")}));
    wc.push_fault(Fault::Reply(502, json!({"errcode": 0, "errmsg": "ok"})));
    assert!(ch.send(&Alert::new("t")).await.is_err());
}

#[tokio::test]
async fn feishu_answers_without_an_integer_code_are_not_delivered() {
    let fake = FakeFeishu::start().await;
    fake.add_bot("t", BotSpec::default());
    let ch = channel("feishu", json!({"webhook": fake.webhook("t")}));
    for answer in [
        json!({}),
        json!({"code": 19024.0, "msg": "Key Words Not Found"}),
        json!({"code": true}),
        json!({"code": null, "msg": "success"}),
    ] {
        fake.push_fault(Fault::Reply(200, answer.clone()));
        let r = ch.send(&Alert::new("t")).await;
        assert!(r.is_err(), "{answer} is not success: {r:?}");
    }
    fake.push_fault(Fault::Reply(500, json!({"code": 0, "msg": "success"})));
    assert!(ch.send(&Alert::new("t")).await.is_err());
    assert!(ch.send(&Alert::new("t")).await.is_ok());
}

#[tokio::test]
async fn a_redirect_is_a_failure_naming_where_it_pointed() {
    let fake = FakeDingTalk::start().await;
    fake.add_robot("tok", RobotSpec::default());
    let ch = channel("dingtalk", json!({"webhook": fake.webhook("tok")}));
    fake.push_fault(Fault::Raw {
        status: 302,
        headers: vec![(
            "location".into(),
            "https://evil.example/collect?access_token=stolen".into(),
        )],
        body: String::new(),
    });
    let e = ch.send(&Alert::new("t")).await.unwrap_err();
    let text = e.to_string();
    assert!(!e.is_retryable());
    assert!(
        text.contains("redirect") && text.contains("evil.example"),
        "{text}"
    );
    assert!(!text.contains("stolen"), "the Location is redacted: {text}");
    // Exactly one request: the redirect was not followed.
    assert_eq!(fake.requests().len(), 1);
}
