//! Typed configs (issue 19): for every built-in channel mode, the builder
//! makes the same instance as the JSON path, that instance sends through
//! the testkit's fake platform, and an invalid value gives the JSON path's
//! error (same kind, field and message).
#![cfg(all(
    feature = "dingtalk",
    feature = "wecom",
    feature = "feishu",
    feature = "email",
    feature = "webhook",
    feature = "testkit"
))]

use alertkit::policy::PolicyConfig;
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
use alertkit::testkit::smtp::FakeSmtp;
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, Config, Error, ErrorKind, Http, InstanceConfig, Notifier, Receipt};
use serde_json::{Value, json};

/// Instance `x` of `kind` as `Config::from_value` reads it.
fn from_json(kind: &str, params: Value) -> InstanceConfig {
    Config::from_value(json!({"instances": [{"name": "x", "type": kind, "params": params}]}))
        .unwrap()
        .instances
        .remove(0)
}

/// The error `Notifier::from_config` gives for instance `x` of `kind`.
fn json_error(kind: &str, params: Value) -> Error {
    Notifier::from_config(&Config::default().with_instance(from_json(kind, params))).unwrap_err()
}

/// The typed error is the JSON path's, without the instance name.
fn assert_same_error(typed: Error, json: Error) {
    assert!(
        matches!(typed.kind(), ErrorKind::InvalidConfig | ErrorKind::Template),
        "{typed}"
    );
    assert_eq!(
        (typed.kind(), typed.field(), typed.message()),
        (json.kind(), json.field(), json.message()),
        "typed: {typed}\njson: {json}"
    );
    assert_eq!((typed.instance(), json.instance()), (None, Some("x")));
}

/// Sends through a notifier holding `instance` (no policies).
async fn send(instance: InstanceConfig) -> alertkit::Result<Receipt> {
    let n = Notifier::from_config(
        &Config::default().with_instance(instance.policy(PolicyConfig::off())),
    )?;
    n.channel("x").unwrap().send(&alert()).await
}

/// A link lets WeCom's text card be one.
fn alert() -> Alert {
    Alert::new("disk full").link("Flink UI", "https://flink.example/")
}

#[tokio::test]
async fn dingtalk_robot() {
    use alertkit::channels::dingtalk::{DingTalkRobot, MsgType};
    let fake = FakeDingTalk::start().await;
    fake.add_robot(
        "tok",
        RobotSpec {
            secret: Some("SECtyped".into()),
            keywords: vec!["alert".into()],
        },
    );
    let typed = DingTalkRobot::builder()
        .webhook(fake.webhook("tok"))
        .secret("SECtyped")
        .keywords(["alert"])
        .at_mobiles(["13800000000"])
        .msg_type(MsgType::Text)
        .build()
        .unwrap();
    assert!(!format!("{typed:?}").contains("SECtyped"));
    let json = from_json(
        "dingtalk",
        json!({"mode": "robot", "webhook": fake.webhook("tok"), "secret": "SECtyped",
               "keywords": ["alert"], "at_mobiles": ["13800000000"], "msg_type": "text"}),
    );
    assert_eq!(typed.clone().into_instance("x"), json);
    send(typed.clone().into_instance("x")).await.unwrap();
    typed
        .channel(&Http::new())
        .unwrap()
        .send(&alert())
        .await
        .unwrap();
    let sent = fake.accepted();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].body["msgtype"], "text");
    assert_eq!(sent[0].body["at"]["atMobiles"], json!(["13800000000"]));

    // A webhook without its token; plain HTTP off loopback.
    let e = DingTalkRobot::builder()
        .webhook("https://oapi.dingtalk.com/robot/send")
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "dingtalk",
            json!({"mode": "robot", "webhook": "https://oapi.dingtalk.com/robot/send"}),
        ),
    );
    let e = DingTalkRobot::builder()
        .access_token("t")
        .base_url("http://dingtalk.example")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("params.base_url"));
    assert_same_error(
        e,
        json_error(
            "dingtalk",
            json!({"mode": "robot", "access_token": "t", "base_url": "http://dingtalk.example"}),
        ),
    );
}

#[tokio::test]
async fn dingtalk_app_and_conversation() {
    use alertkit::channels::dingtalk::{DingTalkApp, DingTalkConversation};
    let fake = FakeDingTalk::start().await;
    fake.add_app("dingapp", "app-secret-value", "dingrobot");
    let typed = DingTalkApp::builder()
        .app_key("dingapp")
        .app_secret("app-secret-value")
        .robot_code("dingrobot")
        .user_ids(["u1"])
        .flow_control_wait(std::time::Duration::from_millis(10))
        .base_url(fake.uri())
        .build()
        .unwrap()
        .into_instance("x");
    // Dinky's and DingTalk's names (`client_id`) read as the typed ones.
    let json = from_json(
        "dingtalk",
        json!({"mode": "app", "app_key": "dingapp", "app_secret": "app-secret-value",
               "robot_code": "dingrobot", "user_ids": ["u1"], "flow_control_wait_ms": 10,
               "base_url": fake.uri()}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();

    let typed = DingTalkConversation::builder()
        .app_key("dingapp")
        .app_secret("app-secret-value")
        .chat_ids(["chat1"])
        .base_url(fake.uri())
        .build()
        .unwrap()
        .into_instance("x");
    let json = from_json(
        "dingtalk",
        json!({"mode": "conversation", "app_key": "dingapp", "app_secret": "app-secret-value",
               "chat_ids": ["chat1"], "base_url": fake.uri()}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();
    assert_eq!(fake.accepted().len(), 2);

    let e = DingTalkApp::builder()
        .app_key("k")
        .app_secret("s")
        .robot_code("r")
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "dingtalk",
            json!({"mode": "app", "app_key": "k", "app_secret": "s", "robot_code": "r"}),
        ),
    );
    let e = DingTalkConversation::builder()
        .app_key("k")
        .chat_ids(["c"])
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("params.app_secret"));
    assert_same_error(
        e,
        json_error(
            "dingtalk",
            json!({"mode": "conversation", "app_key": "k", "chat_ids": ["c"]}),
        ),
    );
}

#[tokio::test]
async fn wecom_app_and_robot() {
    use alertkit::channels::wecom::{MsgType, WeComApp, WeComRobot};
    let fake = FakeWeCom::start().await;
    fake.add_app("ww-corp", "corp-secret-value", 1000002);
    fake.add_recipients(&["zhangsan", "lisi"], &[], &[]);
    fake.add_bot("bot-key");
    let typed = WeComApp::builder()
        .corp_id("ww-corp")
        .secret("corp-secret-value")
        .agent_id(1000002)
        .to_users(["zhangsan", "lisi"])
        .msg_type(MsgType::Textcard)
        .base_url(fake.uri())
        .build()
        .unwrap()
        .into_instance("x");
    let json = from_json(
        "wecom",
        json!({"mode": "app", "corp_id": "ww-corp", "secret": "corp-secret-value",
               "agent_id": 1000002, "to_users": ["zhangsan", "lisi"], "msg_type": "textcard",
               "base_url": fake.uri()}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();

    let typed = WeComRobot::builder()
        .webhook(fake.webhook("bot-key"))
        .mentioned_mobiles(["13800000000"])
        .msg_type(MsgType::Text)
        .build()
        .unwrap()
        .into_instance("x");
    let json = from_json(
        "wecom",
        json!({"mode": "bot", "webhook": fake.webhook("bot-key"),
               "mentioned_mobiles": ["13800000000"], "msg_type": "text"}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();
    let mut kinds: Vec<String> = fake
        .accepted()
        .iter()
        .map(|r| r.body["msgtype"].as_str().unwrap_or_default().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["text", "textcard"]);

    let e = WeComApp::builder()
        .corp_id("ww-corp")
        .secret("s")
        .to_users(["a"])
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "wecom",
            json!({"mode": "app", "corp_id": "ww-corp", "secret": "s", "to_users": ["a"]}),
        ),
    );
    let e = WeComRobot::builder()
        .key("k")
        .msg_type(MsgType::Textcard)
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "wecom",
            json!({"mode": "bot", "key": "k", "msg_type": "textcard"}),
        ),
    );
}

#[tokio::test]
async fn feishu_bot_and_app() {
    use alertkit::channels::feishu::{FeishuApp, FeishuBot, MsgType, ReceiveIdType};
    let fake = FakeFeishu::start().await;
    fake.add_bot(
        "hook-token",
        BotSpec {
            secret: Some("bot-secret".into()),
            keywords: vec!["alert".into()],
        },
    );
    fake.add_app("cli_app", "app-secret-value");
    fake.add_receiver("open_id", "ou_tom");
    let typed = FeishuBot::builder()
        .webhook(fake.webhook("hook-token"))
        .secret("bot-secret")
        .keywords(["alert"])
        .msg_type(MsgType::Post)
        .build()
        .unwrap()
        .into_instance("x");
    let json = from_json(
        "feishu",
        json!({"mode": "bot", "webhook": fake.webhook("hook-token"), "secret": "bot-secret",
               "keywords": ["alert"], "msg_type": "post"}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();

    let typed = FeishuApp::builder()
        .app_id("cli_app")
        .app_secret("app-secret-value")
        .receive_id_type(ReceiveIdType::OpenId)
        .receive_ids(["ou_tom"])
        .base_url(fake.uri())
        .build()
        .unwrap()
        .into_instance("x");
    let json = from_json(
        "feishu",
        json!({"mode": "app", "app_id": "cli_app", "app_secret": "app-secret-value",
               "receive_id_type": "open_id", "receive_ids": ["ou_tom"], "base_url": fake.uri()}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();
    let sent = fake.accepted();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].body["msg_type"], "post");

    let e = FeishuBot::builder()
        .webhook("https://open.feishu.cn/open-apis/bot/v2/hook/")
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "feishu",
            json!({"mode": "bot", "webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/"}),
        ),
    );
    let e = FeishuApp::builder()
        .app_id("cli_app")
        .app_secret("s")
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "feishu",
            json!({"mode": "app", "app_id": "cli_app", "app_secret": "s"}),
        ),
    );
}

#[tokio::test]
async fn email() {
    use alertkit::channels::email::{EmailConfig, EmailFormat, TlsMode};
    let smtp = FakeSmtp::start().await.unwrap();
    let typed = EmailConfig::builder()
        .host("127.0.0.1")
        .port(smtp.port())
        .tls(TlsMode::None)
        .from("alerts@example.test")
        .from_name("告警")
        .to(["ops@example.test"])
        .cc(["lead@example.test"])
        .format(EmailFormat::Text)
        .build()
        .unwrap()
        .into_instance("x");
    let json = from_json(
        "email",
        json!({"host": "127.0.0.1", "port": smtp.port(), "tls": "none",
               "from": "alerts@example.test", "from_name": "告警", "to": ["ops@example.test"],
               "cc": ["lead@example.test"], "format": "text"}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();
    assert_eq!(smtp.messages().len(), 1);

    // Port 0, refused by the same param reader; plain SMTP off loopback.
    let e = EmailConfig::builder()
        .host("smtp.example.com")
        .port(0)
        .from("a@example.com")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("params.port"));
    assert_same_error(
        e,
        json_error(
            "email",
            json!({"host": "smtp.example.com", "port": 0, "from": "a@example.com"}),
        ),
    );
    let e = EmailConfig::builder()
        .host("smtp.example.com")
        .tls(TlsMode::None)
        .from("a@example.com")
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "email",
            json!({"host": "smtp.example.com", "tls": "none", "from": "a@example.com"}),
        ),
    );
    // A missing required param names its path as serde does.
    let e = EmailConfig::builder().host("h").build().unwrap_err();
    assert_eq!(e.field(), Some("params.from"));
    assert_same_error(e, json_error("email", json!({"host": "h"})));
}

#[tokio::test]
async fn webhook() {
    use alertkit::channels::webhook::WebhookConfig;
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(header("x-api-key", "k-123"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"errcode": 0})))
        .mount(&server)
        .await;
    let url = format!("{}/alerts", server.uri());
    let typed = WebhookConfig::builder()
        .url(&url)
        .method("PUT")
        .header("x-api-key", "k-123")
        .body(json!({"text": "{{ title }}"}))
        .success_status([202])
        .success_when("/errcode", 0)
        .build()
        .unwrap();
    assert!(!format!("{typed:?}").contains("k-123"));
    let typed = typed.into_instance("x");
    let json = from_json(
        "webhook",
        json!({"url": url, "method": "PUT", "headers": {"x-api-key": "k-123"},
               "body": {"text": "{{ title }}"},
               "success": {"status": [202], "json_pointer": "/errcode", "equals": 0}}),
    );
    assert_eq!(typed, json);
    send(typed).await.unwrap();
    let got = server.received_requests().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body_json::<Value>().unwrap(),
        json!({"text": "disk full"})
    );

    let e = WebhookConfig::builder()
        .url("https://hooks.example.com")
        .method("DELETE")
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "webhook",
            json!({"url": "https://hooks.example.com", "method": "DELETE"}),
        ),
    );
    let e = WebhookConfig::builder()
        .url("https://hooks.example.com")
        .body(json!({"text": "{{ title "}))
        .build()
        .unwrap_err();
    assert_same_error(
        e,
        json_error(
            "webhook",
            json!({"url": "https://hooks.example.com", "body": {"text": "{{ title "}}),
        ),
    );
}

/// Every value of every enum a typed setter takes is one the JSON path
/// reads back as that value (serde names and aliases cannot drift apart),
/// and the `mode` param written is the type's `MODE`.
#[test]
fn every_enum_value_builds() {
    use alertkit::channels::{dingtalk, email, feishu, wecom};
    for m in [
        dingtalk::MsgType::Markdown,
        dingtalk::MsgType::Text,
        dingtalk::MsgType::ActionCard,
    ] {
        let robot = dingtalk::DingTalkRobot::builder()
            .access_token("t")
            .msg_type(m)
            .build()
            .unwrap();
        let back: dingtalk::MsgType =
            serde_json::from_value(robot.params()["msg_type"].clone()).unwrap();
        assert_eq!(back, m);
        let mode: dingtalk::Mode = serde_json::from_value(robot.params()["mode"].clone()).unwrap();
        assert_eq!(mode, dingtalk::DingTalkRobot::MODE);
    }
    for m in [
        wecom::MsgType::Markdown,
        wecom::MsgType::Text,
        wecom::MsgType::MarkdownV2,
    ] {
        let robot = wecom::WeComRobot::builder()
            .key("k")
            .msg_type(m)
            .build()
            .unwrap();
        let mode: wecom::Mode = serde_json::from_value(robot.params()["mode"].clone()).unwrap();
        assert_eq!(mode, wecom::WeComRobot::MODE);
    }
    for m in [
        wecom::MsgType::Markdown,
        wecom::MsgType::Text,
        wecom::MsgType::Textcard,
    ] {
        wecom::WeComApp::builder()
            .corp_id("ww")
            .secret("s")
            .agent_id(1)
            .to_users(["u"])
            .msg_type(m)
            .build()
            .unwrap();
    }
    for m in [
        feishu::MsgType::Interactive,
        feishu::MsgType::Post,
        feishu::MsgType::Text,
    ] {
        for r in [
            feishu::ReceiveIdType::ChatId,
            feishu::ReceiveIdType::OpenId,
            feishu::ReceiveIdType::UserId,
            feishu::ReceiveIdType::UnionId,
            feishu::ReceiveIdType::Email,
        ] {
            let app = feishu::FeishuApp::builder()
                .app_id("cli")
                .app_secret("s")
                .receive_id_type(r)
                .receive_ids(["x"])
                .msg_type(m)
                .build()
                .unwrap();
            let back: feishu::ReceiveIdType =
                serde_json::from_value(app.params()["receive_id_type"].clone()).unwrap();
            assert_eq!(back, r);
            let mode: feishu::Mode = serde_json::from_value(app.params()["mode"].clone()).unwrap();
            assert_eq!(mode, feishu::FeishuApp::MODE);
        }
    }
    for tls in [
        email::TlsMode::Implicit,
        email::TlsMode::Starttls,
        email::TlsMode::None,
    ] {
        for format in [
            email::EmailFormat::Html,
            email::EmailFormat::Text,
            email::EmailFormat::Table,
            email::EmailFormat::Attachment,
            email::EmailFormat::TableAttachment,
        ] {
            let mail = email::EmailConfig::builder()
                .host("127.0.0.1")
                .tls(tls)
                .from("a@example.test")
                .to(["b@example.test"])
                .format(format)
                .build()
                .unwrap();
            let back: (email::TlsMode, email::EmailFormat) = (
                serde_json::from_value(mail.params()["tls"].clone()).unwrap(),
                serde_json::from_value(mail.params()["format"].clone()).unwrap(),
            );
            assert_eq!(back, (tls, format));
        }
    }
}

/// No builder or built config shows a secret in `Debug`.
#[test]
fn secrets_stay_out_of_debug() {
    use alertkit::channels::{dingtalk, email, feishu, webhook, wecom};
    const S: &str = "s3cr3t-value";
    let debug = [
        format!(
            "{:?}",
            dingtalk::DingTalkRobot::builder().access_token(S).secret(S)
        ),
        format!(
            "{:?}",
            dingtalk::DingTalkApp::builder()
                .app_key("k")
                .app_secret(S)
                .robot_code("r")
                .user_ids(["u"])
                .build()
                .unwrap()
        ),
        format!("{:?}", wecom::WeComRobot::builder().key(S).build().unwrap()),
        format!("{:?}", wecom::WeComApp::builder().corp_id("ww").secret(S)),
        format!(
            "{:?}",
            feishu::FeishuBot::builder()
                .token(S)
                .secret(S)
                .build()
                .unwrap()
        ),
        format!(
            "{:?}",
            email::EmailConfig::builder()
                .host("127.0.0.1")
                .username("u")
                .password(S)
                .from("a@example.test")
                .to(["b@example.test"])
                .build()
                .unwrap()
        ),
        format!(
            "{:?}",
            webhook::WebhookConfig::builder()
                .url("https://hooks.example.com/x")
                .bearer_token(S)
                .basic_auth("u", S)
                .header("X-Key", S)
                .build()
                .unwrap()
        ),
    ];
    for d in debug {
        assert!(!d.contains(S), "{d}");
    }
}

/// The README's typed config example, as written there.
#[test]
fn readme_typed_example() -> Result<(), alertkit::Error> {
    use alertkit::GroupConfig;
    use alertkit::channels::dingtalk::DingTalkRobot;
    use alertkit::channels::email::{EmailConfig, TlsMode};

    let ding = DingTalkRobot::builder()
        .webhook("https://oapi.dingtalk.com/robot/send?access_token=abc")
        .secret("SECabc") // a secrecy::SecretString, never in Debug
        .keywords(["告警"])
        .build()?;
    let mail = EmailConfig::builder()
        .host("smtp.example.com")
        .tls(TlsMode::Implicit)
        .username("alerts")
        .password("app-password")
        .from("alerts@example.com")
        .to(["ops@example.com"])
        .build()?;
    let config = Config::default()
        .with_instance(ding.into_instance("ops-ding"))
        .with_instance(mail.into_instance("ops-mail"))
        .with_group(GroupConfig::new("flink-prod", ["ops-ding", "ops-mail"]));
    let notifier = Notifier::from_config(&config)?;
    assert_eq!(notifier.instances().len(), 2);
    // It saves as the JSON a host would have written.
    let saved = serde_json::to_value(&config).unwrap();
    assert_eq!(saved["instances"][0]["params"]["keywords"], json!(["告警"]));
    assert_eq!(saved["instances"][1]["params"]["tls"], "implicit");
    Ok(())
}
