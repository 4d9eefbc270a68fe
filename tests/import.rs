//! Dinky and DolphinScheduler rows (tests/fixtures/import, researched from
//! the tools' sources: MAPPING.md, expected_source_requests.json) imported
//! with `Config::from_dinky` / `Config::from_dolphinscheduler` and sent to
//! the strict fakes, asserting what the source tool meant: recipients,
//! mentions, keywords, message types, the proxy used, the From address,
//! body paths.
#![cfg(all(
    feature = "testkit",
    feature = "dingtalk",
    feature = "wecom",
    feature = "feishu",
    feature = "email",
    feature = "webhook"
))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use alertkit::import::{Imported, Note};
use alertkit::policy::PolicyConfig;
use alertkit::testkit::dingtalk::{FakeDingTalk, RobotSpec};
use alertkit::testkit::feishu::{BotSpec, FakeFeishu};
use alertkit::testkit::smtp::{FakeSmtp, SmtpTls};
use alertkit::testkit::wecom::FakeWeCom;
use alertkit::{Alert, AlertChannel, Config, ErrorKind, JobInfo, JobStatus, Notifier, Severity};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const DING_TOKEN_1: &str = "0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd";
const DING_TOKEN_2: &str = "4567cdef4567cdef4567cdef4567cdef4567cdef4567cdef4567cdef4567cdef";
const DING_TOKEN_3: &str = "89abef0189abef0189abef0189abef0189abef0189abef0189abef0189abef01";
const DING_SECRET: &str = "SEC0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd";
const CORP: &str = "ww0123abcd0123abcd";
const CORP_SECRET: &str = "0123abcd0123abcd0123abcd0123abcd0123abcd012";
const WECOM_KEY_1: &str = "0123abcd-0123-abcd-0123-abcd0123abcd";
const WECOM_KEY_2: &str = "4567cdef-4567-cdef-4567-cdef4567cdef";
const FS_HOOK_1: &str = "0123abcd-0123-abcd-0123-abcd0123abcd";
const FS_HOOK_2: &str = "4567cdef-4567-cdef-4567-cdef4567cdef";
const FS_SECRET: &str = "0123abcd0123abcd0123ab";
const OU_1: &str = "ou_0123abcd0123abcd0123abcd0123abcd";
const OU_2: &str = "ou_4567cdef4567cdef4567cdef4567cdef";
const CHAT: &str = "wrOgQhDgAA0123abcd0123abcd0123ab";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/import/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn alert() -> Alert {
    Alert::new("Dinky Job Alert Test Title")
        .body("The test exception, your job exception will pass here")
        .severity(Severity::Critical)
        .job(JobInfo::new("Dinky Test Job").status(JobStatus::Failed))
}

fn codes(imported: &Imported, row: &str) -> Vec<&'static str> {
    imported
        .notes
        .iter()
        .filter(|n| n.row == row)
        .map(|n| n.code)
        .collect()
}

fn params<'a>(config: &'a Config, name: &str) -> &'a Map<String, Value> {
    &config
        .instances
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no instance {name}"))
        .params
}

fn members(config: &Config, group: &str) -> Vec<String> {
    config
        .groups
        .iter()
        .find(|g| g.name == group)
        .unwrap_or_else(|| panic!("no group {group}"))
        .instances
        .clone()
}

fn replace_prefix(p: &mut Map<String, Value>, key: &str, from: &str, to: &str) {
    if let Some(Value::String(s)) = p.get_mut(key)
        && let Some(rest) = s.strip_prefix(from)
    {
        *s = format!("{to}{rest}");
    }
}

/// The fakes every send goes to, and the loopback proxy.
struct Fakes {
    ding: FakeDingTalk,
    wecom: FakeWeCom,
    feishu: FakeFeishu,
    smtps: FakeSmtp,
    starttls: FakeSmtp,
    hooks: MockServer,
    proxy: TestProxy,
}

impl Fakes {
    async fn start() -> Fakes {
        let ding = FakeDingTalk::start().await;
        ding.add_robot(
            DING_TOKEN_1,
            RobotSpec {
                secret: Some(DING_SECRET.into()),
                keywords: vec!["告警".into()],
            },
        );
        ding.add_robot(DING_TOKEN_2, RobotSpec::default());
        ding.add_robot(
            DING_TOKEN_3,
            RobotSpec {
                secret: None,
                keywords: vec![],
            },
        );
        let wecom = FakeWeCom::start().await;
        wecom.add_app(CORP, CORP_SECRET, 1000002);
        wecom.add_recipients(&["zhangsan", "lisi"], &[], &[]);
        wecom.add_bot(WECOM_KEY_1);
        wecom.add_bot(WECOM_KEY_2);
        wecom.add_chat(CORP, CHAT);
        let feishu = FakeFeishu::start().await;
        feishu.add_bot(
            FS_HOOK_1,
            BotSpec {
                secret: Some(FS_SECRET.into()),
                keywords: vec!["告警".into()],
            },
        );
        feishu.add_bot(FS_HOOK_2, BotSpec::default());
        let smtps = FakeSmtp::start_tls(SmtpTls::Implicit).await.unwrap();
        let starttls = FakeSmtp::start_tls(SmtpTls::StartTls).await.unwrap();
        let hooks = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&hooks)
            .await;
        Fakes {
            ding,
            wecom,
            feishu,
            smtps,
            starttls,
            hooks,
            proxy: TestProxy::start().await,
        }
    }

    /// Points an imported config at the fakes (URLs, SMTP ports, CA, the
    /// loopback proxy) and turns retries off; the mapping itself is left
    /// as imported.
    fn point(&self, config: &Config) -> Config {
        let mut config = config.clone();
        for i in &mut config.instances {
            i.policy = PolicyConfig::off();
            let p = &mut i.params;
            match i.kind.as_str() {
                "dingtalk" => {
                    replace_prefix(p, "webhook", "https://oapi.dingtalk.com", &self.ding.uri())
                }
                "feishu" => {
                    replace_prefix(p, "webhook", "https://open.feishu.cn", &self.feishu.uri())
                }
                "wecom" => {
                    replace_prefix(
                        p,
                        "webhook",
                        "https://qyapi.weixin.qq.com",
                        &self.wecom.uri(),
                    );
                    replace_prefix(
                        p,
                        "base_url",
                        "https://wecom-proxy.corp.example",
                        &self.wecom.uri(),
                    );
                    if p.get("mode") == Some(&json!("app")) && !p.contains_key("base_url") {
                        p.insert("base_url".into(), self.wecom.uri().into());
                    }
                }
                "webhook" => {
                    for host in ["https://ops.corp.example", "https://hooks.corp.example"] {
                        replace_prefix(p, "url", host, &self.hooks.uri());
                    }
                }
                "email" => {
                    let smtp = if p["tls"] == "implicit" {
                        &self.smtps
                    } else {
                        &self.starttls
                    };
                    p.insert("host".into(), "localhost".into());
                    p.insert("port".into(), smtp.port().into());
                    p.insert(
                        "ca_file".into(),
                        smtp.ca_file().unwrap().display().to_string().into(),
                    );
                }
                _ => {}
            }
            if let Some(proxy) = p.get_mut("proxy") {
                proxy["url"] = format!("http://{}", self.proxy.addr).into();
            }
        }
        config
    }
}

async fn send(n: &Notifier, name: &str) -> alertkit::Receipt {
    let ch: Arc<dyn AlertChannel> = n
        .channel(name)
        .unwrap_or_else(|| panic!("no channel {name}"));
    ch.send(&alert())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

// ---------------------------------------------------------------- Dinky 1.x

#[test]
fn dinky_1x_db_exports_import_exactly_like_the_api_export() {
    let groups = fixture("dinky1x_groups.json");
    let api = Config::from_dinky(&fixture("dinky1x_instances_api.json"), &groups).unwrap();
    for (instances, groups) in [
        ("dinky1x_instances_db.json", "dinky1x_groups_db.json"),
        ("dinky1x_instances_db_snake.json", "dinky1x_groups_db.json"),
        ("dinky1x_instances_db.json", "dinky1x_groups.json"),
    ] {
        let db = Config::from_dinky(&fixture(instances), &fixture(groups)).unwrap();
        assert_eq!(
            serde_json::to_value(&db.config).unwrap(),
            serde_json::to_value(&api.config).unwrap(),
            "{instances} + {groups}"
        );
        assert_eq!(db.notes, api.notes, "{instances}");
    }
}

#[test]
fn dinky_1x_rows_map_to_what_dinky_meant() {
    let imported = Config::from_dinky(
        &fixture("dinky1x_instances_api.json"),
        &fixture("dinky1x_groups.json"),
    )
    .unwrap();
    let c = &imported.config;
    // DingTalk: keyword and mobiles kept (Dinky put them in the title only).
    assert_eq!(
        Value::Object(params(c, "ding-ops").clone()),
        json!({"webhook": format!("https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN_1}"),
               "secret": DING_SECRET, "keywords": ["告警"], "at_mobiles": ["13800000001", "13800000002"],
               "at_all": false, "msg_type": "markdown"})
    );
    let row1 = codes(&imported, "instance 1 \"ding-ops\"");
    assert!(
        row1.contains(&"DT-MENTION") && row1.contains(&"DT-KEYWORD"),
        "{row1:?}"
    );
    // The proxy host Dinky 1.x never read.
    assert_eq!(
        params(c, "ding-proxy")["proxy"],
        json!({"url": "http://10.0.0.12:3128", "username": "proxyuser", "password": "proxy-pass-0123"})
    );
    assert!(codes(&imported, "instance 2 \"ding-proxy\"").contains(&"PROXY-BROKEN-IN-DINKY"));
    let disabled = c
        .instances
        .iter()
        .find(|i| i.name == "ding-disabled")
        .unwrap();
    assert!(!disabled.enabled);
    // WeCom app: atUsers are the recipients, isAtAll is @all; sendUrl kept
    // when it is not the default (ending in /cgi-bin is fine now).
    let app = params(c, "wecom-app");
    assert_eq!(app["to_users"], json!(["zhangsan", "lisi"]));
    assert!(!app.contains_key("mentioned_users") && !app.contains_key("base_url"));
    let all = params(c, "wecom-app-all");
    assert_eq!(all["to_users"], json!(["@all"]));
    assert_eq!(all["base_url"], "https://wecom-proxy.corp.example/cgi-bin");
    // WeCom robot: keyword dropped (never sent), names become mentions.
    let bot = params(c, "wecom-bot");
    assert_eq!(bot["mentioned_users"], json!(["wangwu", "zhaoliu"]));
    assert!(!bot.contains_key("keyword"));
    let row6 = codes(&imported, "instance 6 \"wecom-bot\"");
    assert!(
        row6.contains(&"WECOM-KEYWORD") && row6.contains(&"WECOM-MENTION-NEW"),
        "{row6:?}"
    );
    // FeiShu: an empty atUsers is @all; isAtAll is ignored.
    assert_eq!(params(c, "feishu-all")["at_all"], true);
    assert_eq!(params(c, "feishu-all")["msg_type"], "interactive");
    assert!(codes(&imported, "instance 7 \"feishu-all\"").contains(&"FS-SIGN-NEW"));
    let users = params(c, "feishu-users-proxy");
    assert_eq!(users["at_all"], false);
    assert_eq!(users["at_user_ids"], json!([OU_1, OU_2]));
    let row8 = codes(&imported, "instance 8 \"feishu-users-proxy\"");
    assert!(
        row8.contains(&"FS-ATALL-IGNORED") && row8.contains(&"PROXY-BROKEN-IN-DINKY"),
        "{row8:?}"
    );
    // Email: `user` is the From address and login, `sender` the name.
    assert_eq!(
        Value::Object(params(c, "mail-ssl-465").clone()),
        json!({"host": "smtp.exmail.qq.com", "port": 465, "tls": "implicit", "from": "alerts@corp.example",
               "from_name": "Dinky告警", "username": "alerts@corp.example", "password": "app-pass-0123abcd",
               "enable_smtp_auth": true, "to": ["ops@corp.example", "dba@corp.example"],
               "cc": ["lead@corp.example"], "smtp_ssl_trust": "*", "format": "html"})
    );
    assert!(codes(&imported, "instance 9 \"mail-ssl-465\"").contains(&"MAIL-TRUST"));
    let row10 = codes(&imported, "instance 10 \"mail-starttls-587\"");
    assert!(
        row10.contains(&"MAIL-STARTTLS-REQUIRED") && row10.contains(&"MAIL-TRUST"),
        "{row10:?}"
    );
    // Http: dotted paths; the empty header pair is no header.
    let md = params(c, "http-markdown");
    assert_eq!(md["title_field"], "markdown.title");
    assert_eq!(md["content_field"], "markdown.text");
    assert!(!md.contains_key("headers"));
    assert!(codes(&imported, "instance 11 \"http-markdown\"").contains(&"HTTP-CONTENT-TYPE"));
    // Sms is not imported, and every group that listed it says so.
    assert!(c.instances.iter().all(|i| i.name != "sms-aliyun"));
    assert!(codes(&imported, "instance 13 \"sms-aliyun\"").contains(&"UNSUPPORTED"));
    // 0.7 rows left in a 1.x database: read with their 0.7 meaning.
    let ding07 = params(c, "ding-07-leftover");
    assert_eq!(ding07["msg_type"], "text");
    assert_eq!(ding07["at_mobiles"], json!(["13800000004", "13800000005"]));
    assert!(codes(&imported, "instance 14 \"ding-07-leftover\"").contains(&"07-ROW-IN-1X"));
    let wecom07 = params(c, "wecom-07-leftover");
    assert_eq!(
        (&wecom07["mode"], &wecom07["mentioned_users"]),
        (&json!("bot"), &json!(["wangwu"]))
    );
    assert!(codes(&imported, "instance 15 \"wecom-07-leftover\"").contains(&"07-ROW-IN-1X"));

    // Groups by id, as Dinky resolves them.
    assert_eq!(
        members(c, "flink-prod"),
        [
            "ding-ops",
            "wecom-app",
            "feishu-all",
            "mail-ssl-465",
            "http-markdown"
        ]
    );
    assert_eq!(
        members(c, "flink-proxy"),
        ["ding-proxy", "wecom-app-all", "feishu-users-proxy"]
    );
    assert_eq!(members(c, "paused"), ["ding-disabled", "wecom-bot"]);
    assert!(
        !c.groups
            .iter()
            .find(|g| g.name == "paused")
            .unwrap()
            .enabled
    );
    assert!(codes(&imported, "group 3 \"paused\"").contains(&"GROUP-DISABLED"));
    assert_eq!(members(c, "edge-cases"), ["mail-starttls-587", "http-text"]);
    let edge = codes(&imported, "group 4 \"edge-cases\"");
    assert_eq!(
        edge,
        ["UNSUPPORTED", "MISSING-ID"],
        "0 and \"\" are skipped silently"
    );
    assert_eq!(
        members(c, "legacy-07"),
        ["ding-07-leftover", "wecom-07-leftover"]
    );
    assert!(members(c, "empty").is_empty());
    // The whole config builds as is.
    Notifier::from_config(c).unwrap();
}

#[tokio::test]
async fn dinky_1x_rows_send_what_dinky_meant() {
    let fakes = Fakes::start().await;
    // Row 5's own WeCom behind `https://wecom-proxy.corp.example/cgi-bin`,
    // where its app (agent 1000003) lives.
    let wecom_proxy = FakeWeCom::start().await;
    wecom_proxy.add_app(CORP, CORP_SECRET, 1000003);
    fakes
        .smtps
        .require_auth("alerts@corp.example", "app-pass-0123abcd");
    fakes
        .starttls
        .require_auth("flink-alerts@corp.example", "app-pass-4567cdef");
    let imported = Config::from_dinky(
        &fixture("dinky1x_instances_db.json"),
        &fixture("dinky1x_groups_db.json"),
    )
    .unwrap();
    let mut config = fakes.point(&imported.config);
    for i in &mut config.instances {
        if i.name == "wecom-app-all" {
            i.params["base_url"] = format!("{}/cgi-bin", wecom_proxy.uri()).into();
        }
    }
    let n = Notifier::from_config(&config).unwrap();

    // 1: signed, keyword in the message, mobiles mentioned.
    send(&n, "ding-ops").await;
    let r = fakes.ding.accepted().pop().unwrap();
    assert_eq!(r.query["access_token"], DING_TOKEN_1);
    assert!(r.query.contains_key("sign") && r.query.contains_key("timestamp"));
    assert_eq!(r.body["msgtype"], "markdown");
    assert_eq!(
        r.body["at"]["atMobiles"],
        json!(["13800000001", "13800000002"])
    );
    assert_eq!(r.body["at"]["isAtAll"], false);
    let text = r.body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("告警") && text.contains("@13800000001"),
        "{text}"
    );

    // 2: through the proxy, with its Basic credentials.
    send(&n, "ding-proxy").await;
    let r = fakes.ding.accepted().pop().unwrap();
    assert_eq!(r.query["access_token"], DING_TOKEN_2);
    assert_eq!(r.body["at"]["isAtAll"], true);
    let seen = fakes.proxy.seen();
    assert!(
        seen.iter()
            .any(|(line, auth)| line.contains("/robot/send?access_token=")
                && auth.as_deref() == Some(basic("proxyuser", "proxy-pass-0123").as_str())),
        "{seen:?}"
    );

    // 4: app message to the recipients Dinky sent to.
    send(&n, "wecom-app").await;
    let r = fakes.wecom.accepted().pop().unwrap();
    assert_eq!(r.path, "/cgi-bin/message/send");
    assert_eq!(
        (&r.body["touser"], &r.body["agentid"], &r.body["msgtype"]),
        (&json!("zhangsan|lisi"), &json!(1000002), &json!("markdown"))
    );
    // 5: sendUrl ending in /cgi-bin, not doubled; @all.
    send(&n, "wecom-app-all").await;
    let r = wecom_proxy.accepted().pop().unwrap();
    assert_eq!(r.path, "/cgi-bin/message/send");
    assert_eq!(
        (&r.body["touser"], &r.body["agentid"]),
        (&json!("@all"), &json!(1000003))
    );
    assert!(
        wecom_proxy
            .requests()
            .iter()
            .all(|r| !r.path.contains("cgi-bin/cgi-bin")),
        "no doubled /cgi-bin"
    );
    // 6: robot markdown mentioning the users.
    send(&n, "wecom-bot").await;
    let r = fakes.wecom.accepted().pop().unwrap();
    assert_eq!(r.query["key"], WECOM_KEY_1);
    assert_eq!(r.body["msgtype"], "markdown");
    let content = r.body["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("<@wangwu><@zhaoliu>"), "{content}");
    assert!(
        !content.contains("Flink"),
        "Dinky never sent the keyword: {content}"
    );

    // 7: signed card with the keyword, @all.
    send(&n, "feishu-all").await;
    let r = fakes.feishu.accepted().pop().unwrap();
    assert_eq!(r.body["msg_type"], "interactive");
    assert!(r.body.get("sign").is_some());
    let card = r.body["card"].to_string();
    assert!(
        card.contains("<at id=all></at>") && card.contains("告警"),
        "{card}"
    );
    // 8: through the proxy, mentioning the users only.
    send(&n, "feishu-users-proxy").await;
    let r = fakes.feishu.accepted().pop().unwrap();
    let card = r.body["card"].to_string();
    assert!(card.contains(&format!("<at id={OU_1}></at>")) && !card.contains("<at id=all>"));
    assert!(
        fakes
            .proxy
            .seen()
            .iter()
            .any(|(line, _)| line.contains(&format!("/open-apis/bot/v2/hook/{FS_HOOK_2}")))
    );

    // 9: SMTPS, AUTH as `user`, From `user` with `sender` as the name.
    send(&n, "mail-ssl-465").await;
    let m = fakes.smtps.messages().pop().unwrap();
    assert!(m.tls);
    assert_eq!(m.from, "alerts@corp.example");
    assert_eq!(m.auth_user.as_deref(), Some("alerts@corp.example"));
    assert_eq!(
        m.rcpts,
        ["ops@corp.example", "dba@corp.example", "lead@corp.example"]
    );
    let from = header(&m.data, "From");
    assert!(
        from.ends_with("<alerts@corp.example>") && from.contains("=?"),
        "{from}"
    );
    // 10: STARTTLS (required), the display name.
    send(&n, "mail-starttls-587").await;
    let m = fakes.starttls.messages().pop().unwrap();
    assert!(m.tls);
    assert_eq!(m.from, "flink-alerts@corp.example");
    assert!(header(&m.data, "From").contains("Flink Alerts"));

    // 11: title and text at their dotted paths.
    send(&n, "http-markdown").await;
    let r = fakes
        .hooks
        .received_requests()
        .await
        .unwrap()
        .pop()
        .unwrap();
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["source"], "dinky");
    assert_eq!(body["markdown"]["title"], "Dinky Job Alert Test Title");
    assert!(
        body["markdown"]["text"]
            .as_str()
            .unwrap()
            .contains("your job exception")
    );
    // 12: no title path: title and text in text.content; the headers.
    send(&n, "http-text").await;
    let r = fakes
        .hooks
        .received_requests()
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(r.url.path(), "/incident");
    assert_eq!(r.url.query(), Some("team=data"));
    assert_eq!(r.headers["x-api-key"], "0123abcd0123abcd");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let content = body["text"]["content"].as_str().unwrap();
    assert!(
        content.contains("Dinky Job Alert Test Title\n") && content.contains("your job exception"),
        "{content}"
    );

    // 14 and 15: the 0.7 meaning.
    send(&n, "ding-07-leftover").await;
    let r = fakes.ding.accepted().pop().unwrap();
    assert_eq!(r.body["msgtype"], "text");
    assert_eq!(
        r.body["at"]["atMobiles"],
        json!(["13800000004", "13800000005"])
    );
    send(&n, "wecom-07-leftover").await;
    let r = fakes.wecom.accepted().pop().unwrap();
    assert_eq!(r.query["key"], WECOM_KEY_2);
    assert!(
        r.body["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("<@wangwu>")
    );

    // Groups dispatch to every member.
    let report = n.dispatch("flink-prod", &alert()).await.unwrap();
    assert_eq!(report.deliveries.len(), 5);
    assert!(
        report.deliveries.iter().all(|d| d.error.is_none()),
        "{report:?}"
    );
}

fn header(data: &str, name: &str) -> String {
    data.lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l[name.len()..].starts_with(':')
        })
        .map(|l| l[name.len() + 1..].trim().to_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- Dinky 0.7

#[tokio::test]
async fn dinky_07_rows_send_what_dinky_07_sent() {
    let imported = Config::from_dinky(
        &fixture("dinky07_instances.json"),
        &fixture("dinky07_groups.json"),
    )
    .unwrap();
    let c = &imported.config;
    assert!(
        imported.notes.iter().all(|n| n.code != "07-ROW-IN-1X"),
        "a 0.7 dump is not a 1.x one"
    );
    assert_eq!(
        Value::Object(params(c, "ding-md").clone()),
        json!({"webhook": format!("https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN_1}"),
               "secret": DING_SECRET, "keywords": ["告警"], "at_mobiles": ["13800000001", "13800000002"],
               "at_all": false, "msg_type": "markdown",
               "proxy": {"url": "http://10.0.0.12:3128", "username": "proxyuser", "password": "proxy-pass-0123"}})
    );
    assert!(
        codes(&imported, "instance 1 \"ding-md\"").is_empty(),
        "the 0.7 proxy worked"
    );
    assert_eq!(
        params(c, "wechat-app")["to_users"],
        json!(["zhangsan", "lisi"])
    );
    assert_eq!(params(c, "wechat-app")["agent_id"], "1000002");
    assert_eq!(
        params(c, "wechat-chat")["mentioned_users"],
        json!(["wangwu", "zhaoliu"])
    );
    assert_eq!(params(c, "wechat-chat-all")["msg_type"], "text");
    assert_eq!(params(c, "feishu-post")["msg_type"], "post");
    assert_eq!(params(c, "feishu-post")["at_all"], false);
    assert_eq!(params(c, "feishu-text-all")["at_all"], true);
    let mail = params(c, "mail-table-attachment");
    assert_eq!(
        (
            &mail["from"],
            &mail["from_name"],
            &mail["username"],
            &mail["format"]
        ),
        (
            &json!("alerts@corp.example"),
            &json!("Dinky告警"),
            &json!("alerts@corp.example"),
            &json!("table_attachment")
        )
    );
    let row8 = codes(&imported, "instance 8 \"mail-table-attachment\"");
    assert!(
        row8.contains(&"MAIL-XLS-PATH") && row8.contains(&"MAIL-STARTTLS-REQUIRED"),
        "{row8:?}"
    );
    let disabled = c
        .instances
        .iter()
        .find(|i| i.name == "mail-text-disabled")
        .unwrap();
    assert!(!disabled.enabled, "\"enabled\": false inside params");
    assert!(!disabled.params.contains_key("enabled"));
    assert_eq!(disabled.params["format"], "html");
    assert_eq!(
        members(c, "prod"),
        [
            "ding-md",
            "wechat-app",
            "feishu-post",
            "mail-table-attachment"
        ]
    );

    let fakes = Fakes::start().await;
    fakes
        .starttls
        .require_auth("alerts@corp.example", "app-pass-0123abcd");
    let n = Notifier::from_config(&fakes.point(c)).unwrap();
    send(&n, "ding-md").await;
    let r = fakes.ding.accepted().pop().unwrap();
    assert_eq!(r.body["msgtype"], "markdown");
    assert!(
        fakes
            .proxy
            .seen()
            .iter()
            .any(|(l, _)| l.contains("/robot/send"))
    );
    send(&n, "ding-text-all").await;
    let r = fakes.ding.accepted().pop().unwrap();
    assert_eq!(
        (&r.body["msgtype"], &r.body["at"]["isAtAll"]),
        (&json!("text"), &json!(true))
    );
    send(&n, "wechat-app").await;
    let r = fakes.wecom.accepted().pop().unwrap();
    assert_eq!(r.body["touser"], "zhangsan|lisi");
    send(&n, "wechat-chat-all").await;
    let r = fakes.wecom.accepted().pop().unwrap();
    assert_eq!(r.body["msgtype"], "text");
    assert_eq!(r.body["text"]["mentioned_list"], json!(["@all"]));
    send(&n, "feishu-post").await;
    let r = fakes.feishu.accepted().pop().unwrap();
    assert_eq!(r.body["msg_type"], "post");
    let post = r.body["content"].to_string();
    assert!(post.contains(OU_1) && post.contains(OU_2), "{post}");
    send(&n, "feishu-text-all").await;
    let r = fakes.feishu.accepted().pop().unwrap();
    assert_eq!(r.body["msg_type"], "text");
    assert!(
        r.body["content"]["text"]
            .as_str()
            .unwrap()
            .contains("user_id=\"all\"")
    );
    send(&n, "mail-table-attachment").await;
    let m = fakes.starttls.messages().pop().unwrap();
    assert_eq!(m.from, "alerts@corp.example");
    assert_eq!(
        m.rcpts,
        ["ops@corp.example", "dba@corp.example", "lead@corp.example"]
    );
    assert!(m.data.contains(".xlsx"), "the attachment");
}

// ---------------------------------------------------------- DolphinScheduler

fn ds_import() -> Imported {
    Config::from_dolphinscheduler_with_plugins(
        &fixture("ds32_instances.json"),
        &fixture("ds32_groups.json"),
        &fixture("ds32_plugin_defines.json"),
    )
    .unwrap()
}

#[test]
fn ds_api_rows_import_like_the_stored_rows() {
    let stored = ds_import();
    let api =
        Config::from_dolphinscheduler(&fixture("ds32_instances_api.json"), &Value::Null).unwrap();
    for i in &api.config.instances {
        let same = stored
            .config
            .instances
            .iter()
            .find(|s| s.name == i.name)
            .unwrap();
        assert_eq!(
            serde_json::to_value(i).unwrap(),
            serde_json::to_value(same).unwrap()
        );
    }
    assert_eq!(api.config.instances.len(), 2);
    // Without a plugin name or defines, the error names the row.
    let e =
        Config::from_dolphinscheduler(&fixture("ds32_instances.json"), &Value::Null).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert_eq!(e.field(), Some("instances[0].pluginDefineId"));
    assert!(e.to_string().contains("row 101"), "{e}");
}

#[test]
fn ds_rows_map_to_what_dolphinscheduler_meant() {
    let imported = ds_import();
    let c = &imported.config;
    assert_eq!(
        Value::Object(params(c, "ds-ding-md").clone()),
        json!({"webhook": format!("https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN_1}"),
               "secret": DING_SECRET, "keywords": ["告警"], "at_mobiles": ["13800000001", "13800000002"],
               "at_user_ids": ["manager01"], "at_all": false, "msg_type": "markdown"})
    );
    assert_eq!(
        params(c, "ds-ding-text-proxy")["proxy"]["url"],
        "http://10.0.0.12:3128"
    );
    assert!(codes(&imported, "instance 102 \"ds-ding-text-proxy\"").contains(&"DS-WARNTYPE"));
    assert_eq!(
        params(c, "ds-wecom-app")["to_users"],
        json!(["zhangsan", "lisi"])
    );
    assert_eq!(params(c, "ds-wecom-groupchat")["chat_ids"], json!([CHAT]));
    assert!(!params(c, "ds-feishu-default-proxy").contains_key("proxy"));
    assert!(
        codes(&imported, "instance 106 \"ds-feishu-default-proxy\"")
            .contains(&"DS-FEISHU-DEFAULT-PROXY")
    );
    let mail = params(c, "ds-mail-ssl");
    assert_eq!(
        (
            &mail["from"],
            &mail["username"],
            &mail["format"],
            &mail["tls"]
        ),
        (
            &json!("alerts@corp.example"),
            &json!("alerts@corp.example"),
            &json!("table"),
            &json!("implicit")
        )
    );
    assert!(codes(&imported, "instance 107 \"ds-mail-ssl\"").contains(&"MAIL-TRUST-ALL"));
    let relay = params(c, "ds-mail-relay");
    assert_eq!(relay["enable_smtp_auth"], false);
    assert!(!relay.contains_key("username"));
    let http = c
        .instances
        .iter()
        .find(|i| i.name == "ds-http-post")
        .unwrap();
    assert_eq!(http.timeout_ms, Some(120_000));
    assert_eq!(http.params["content_field"], "text");
    assert_eq!(
        http.params["headers"],
        json!({"Content-Type": "application/json", "X-Api-Key": "0123abcd0123abcd"})
    );
    let upgraded = params(c, "ds-ding-31-upgraded");
    assert!(!upgraded.contains_key("WarningType"));
    assert!(codes(&imported, "instance 118 \"ds-ding-31-upgraded\"").contains(&"DS-WARNTYPE"));
    for (id, name) in [
        (110, "ds-http-get"),
        (111, "ds-slack"),
        (112, "ds-telegram"),
        (113, "ds-webex-room"),
        (114, "ds-pagerduty"),
        (115, "ds-script"),
        (116, "ds-alertmanager"),
        (117, "ds-aliyun-voice"),
    ] {
        assert!(c.instances.iter().all(|i| i.name != name), "{name}");
        assert!(
            codes(&imported, &format!("instance {id} {name:?}")).contains(&"UNSUPPORTED"),
            "{name}"
        );
    }
    assert!(members(c, "default admin warning group").is_empty());
    assert!(members(c, "global alert group").is_empty());
    assert_eq!(
        members(c, "data-platform"),
        [
            "ds-ding-md",
            "ds-wecom-app",
            "ds-feishu",
            "ds-mail-ssl",
            "ds-http-post"
        ]
    );
    assert_eq!(
        members(c, "oncall"),
        [
            "ds-ding-text-proxy",
            "ds-wecom-groupchat",
            "ds-feishu-default-proxy",
            "ds-mail-relay"
        ],
        "\" 104\" is trimmed as DolphinScheduler does"
    );
    assert_eq!(
        codes(&imported, "group 4 \"oncall\"")
            .iter()
            .filter(|c| **c == "UNSUPPORTED")
            .count(),
        4
    );
    assert_eq!(members(c, "misc"), ["ds-ding-31-upgraded"]);
    Notifier::from_config(c).unwrap();
}

#[tokio::test]
async fn ds_rows_send_what_dolphinscheduler_meant() {
    let fakes = Fakes::start().await;
    // DolphinScheduler's Feishu plugin has no secret.
    fakes.feishu.add_bot(FS_HOOK_1, BotSpec::default());
    fakes
        .smtps
        .require_auth("alerts@corp.example", "app-pass-0123abcd");
    let imported = ds_import();
    let n = Notifier::from_config(&fakes.point(&imported.config)).unwrap();

    send(&n, "ds-ding-md").await;
    let r = fakes.ding.accepted().pop().unwrap();
    assert_eq!(r.body["msgtype"], "markdown");
    assert_eq!(r.body["at"]["atUserIds"], json!(["manager01"]));
    let text = r.body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("@13800000001") && text.contains("@manager01") && text.contains("告警"),
        "{text}"
    );
    send(&n, "ds-ding-text-proxy").await;
    let r = fakes.ding.accepted().pop().unwrap();
    assert_eq!(
        (&r.body["msgtype"], &r.body["at"]["isAtAll"]),
        (&json!("text"), &json!(true))
    );
    assert!(
        r.body["text"]["content"]
            .as_str()
            .unwrap()
            .contains("DolphinScheduler")
    );
    assert!(
        fakes.proxy.seen().iter().any(
            |(_, auth)| auth.as_deref() == Some(basic("proxyuser", "proxy-pass-0123").as_str())
        )
    );
    send(&n, "ds-ding-31-upgraded").await;
    assert_eq!(fakes.ding.accepted().pop().unwrap().body["msgtype"], "text");

    send(&n, "ds-wecom-app").await;
    let r = fakes.wecom.accepted().pop().unwrap();
    assert_eq!(
        (&r.body["touser"], &r.body["agentid"]),
        (&json!("zhangsan|lisi"), &json!(1000002))
    );
    // GROUP CHAT: appchat/send with the app's token, to the chat.
    send(&n, "ds-wecom-groupchat").await;
    let r = fakes.wecom.accepted().pop().unwrap();
    assert_eq!(r.path, "/cgi-bin/appchat/send");
    assert_eq!(
        (&r.body["chatid"], &r.body["msgtype"]),
        (&json!(CHAT), &json!("text"))
    );
    assert!(r.body.get("agentid").is_none());

    send(&n, "ds-feishu").await;
    let r = fakes.feishu.accepted().pop().unwrap();
    assert_eq!(r.body["msg_type"], "text");
    send(&n, "ds-feishu-default-proxy").await;

    send(&n, "ds-mail-ssl").await;
    let m = fakes.smtps.messages().pop().unwrap();
    assert_eq!(
        (m.from.as_str(), m.auth_user.as_deref()),
        ("alerts@corp.example", Some("alerts@corp.example"))
    );
    send(&n, "ds-mail-relay").await;
    let m = fakes.starttls.messages().pop().unwrap();
    assert_eq!(
        (m.from.as_str(), m.auth_user.as_deref(), m.tls),
        ("dolphinscheduler@corp.example", None, true)
    );
    assert!(m.data.contains(".xlsx"));

    send(&n, "ds-http-post").await;
    let r = fakes
        .hooks
        .received_requests()
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(r.url.path(), "/api/v1/alerts");
    assert_eq!(r.headers["x-api-key"], "0123abcd0123abcd");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (&body["source"], &body["severity"]),
        (&json!("dolphinscheduler"), &json!("critical"))
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("your job exception")
    );
}

#[tokio::test]
async fn ds_dev_rows_with_msg_placeholders_and_put() {
    let imported = Config::from_dolphinscheduler_with_plugins(
        &fixture("dsdev_instances.json"),
        &Value::Null,
        &fixture("ds32_plugin_defines.json"),
    )
    .unwrap();
    let c = &imported.config;
    assert_eq!(
        params(c, "dsdev-ding")["at_user_ids"],
        json!(["manager01", "manager02"])
    );
    let post = params(c, "dsdev-http-post-msg");
    assert_eq!(post["headers"], json!({"X-Api-Key": "0123abcd0123abcd"}));
    assert_eq!(post["body"]["text"], "DS: {% include \"text\" %}");
    assert!(
        codes(&imported, "instance 202 \"dsdev-http-post-msg\"")
            .contains(&"DS-HTTP-MSG-PLACEHOLDER")
    );
    assert!(c.instances.iter().all(|i| i.name != "dsdev-http-get-msg"));
    assert_eq!(params(c, "dsdev-http-put")["method"], "PUT");

    let fakes = Fakes::start().await;
    let n = Notifier::from_config(&fakes.point(c)).unwrap();
    send(&n, "dsdev-http-post-msg").await;
    send(&n, "dsdev-http-put").await;
    let reqs = fakes.hooks.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert!(body["text"].as_str().unwrap().starts_with("DS: "));
    assert_eq!(body["source"], "dolphinscheduler");
    assert_eq!(reqs[1].method.as_str(), "PUT");
    let body: Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert!(
        body["state"]
            .as_str()
            .unwrap()
            .contains("Dinky Job Alert Test Title")
    );
}

// ------------------------------------------------------------- errors, leaks

#[test]
fn notes_and_errors_never_hold_secrets() {
    let all = [
        Config::from_dinky(
            &fixture("dinky1x_instances_api.json"),
            &fixture("dinky1x_groups.json"),
        )
        .unwrap(),
        Config::from_dinky(&fixture("dinky07_instances.json"), &Value::Null).unwrap(),
        ds_import(),
    ];
    let secrets = [
        DING_TOKEN_1,
        DING_SECRET,
        CORP_SECRET,
        "proxy-pass-0123",
        "app-pass-0123abcd",
        WECOM_KEY_1,
        FS_HOOK_1,
        "0123abcd0123abcd0123abcd0123ab\"",
        "LTAI0123abcd0123abcd",
    ];
    for imported in &all {
        let text = format!(
            "{:?} {}",
            imported,
            imported
                .notes
                .iter()
                .map(Note::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        for s in secrets {
            assert!(!text.contains(s), "{s} leaked");
        }
    }
    // A broken params text: the error names the row and field, not the value.
    let e = Config::from_dinky(
        &json!([{"id": 9, "name": "x", "type": "Email", "params": "{\"password\": \"hunter2"}]),
        &Value::Null,
    )
    .unwrap_err();
    assert_eq!(e.field(), Some("instances[0].params"));
    assert!(
        e.to_string().contains("row 9") && !e.to_string().contains("hunter2"),
        "{e}"
    );
    let e = Config::from_dinky(
        &json!([{"id": 3, "name": "x", "type": "DingTalk", "enabled": "maybe"}]),
        &Value::Null,
    )
    .unwrap_err();
    assert_eq!(e.field(), Some("instances[0].enabled"));
}

#[test]
fn duplicate_names_across_tenants_are_renamed_with_a_note() {
    let rows = json!([
        {"id": 1, "name": "ops", "tenantId": 1, "type": "DingTalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=a"}},
        {"id": 2, "name": "ops", "tenantId": 2, "type": "DingTalk", "params": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=b"}}
    ]);
    let imported = Config::from_dinky(
        &rows,
        &json!([{"id": 1, "name": "g", "alertInstanceIds": "1,2"}]),
    )
    .unwrap();
    let names: Vec<&str> = imported
        .config
        .instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["ops", "ops#2"]);
    assert!(codes(&imported, "instance 2 \"ops\"").contains(&"TENANT"));
    assert_eq!(members(&imported.config, "g"), ["ops", "ops#2"]);
}

// ------------------------------------------------ WeCom appchat, URL joins

#[tokio::test]
async fn wecom_appchat_is_as_strict_as_the_platform() {
    let fake = FakeWeCom::start().await;
    fake.add_app(CORP, CORP_SECRET, 1000002);
    fake.add_chat(CORP, CHAT);
    let channel = |chats: Value, base: String| {
        let cfg = alertkit::InstanceConfig::new("chat", "wecom")
            .policy(PolicyConfig::off())
            .param("mode", "app")
            .param("corp_id", CORP)
            .param("secret", CORP_SECRET)
            .param("chat_ids", chats)
            .param("base_url", base);
        Notifier::from_config(&Config::default().with_instance(cfg))
            .unwrap()
            .channel("chat")
            .unwrap()
    };
    // Base URL with and without /cgi-bin (Dinky's sendUrl form).
    for base in [
        fake.uri(),
        format!("{}/cgi-bin", fake.uri()),
        format!("{}/cgi-bin/", fake.uri()),
    ] {
        channel(json!([CHAT]), base).send(&alert()).await.unwrap();
    }
    assert_eq!(fake.accepted().len(), 3);
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.contains("cgi-bin/cgi-bin"))
    );
    let e = channel(json!(["wrUnknownChat01"]), fake.uri())
        .send(&alert())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.is_retryable()),
        (ErrorKind::InvalidRecipient, Some("86003"), false)
    );
    // A chat of another corp is unknown to this one's token.
    fake.add_app("ww-other", "other-secret", 1000009);
    fake.add_chat("ww-other", "wrOtherCorpChat");
    let e = channel(json!(["wrOtherCorpChat"]), fake.uri())
        .send(&alert())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("86003"));
    // Chat ids are checked when the instance is built.
    let cfg = alertkit::InstanceConfig::new("chat", "wecom")
        .param("mode", "app")
        .param("corp_id", CORP)
        .param("secret", CORP_SECRET)
        .param("chat_ids", json!(["not a chat id!"]));
    let e = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap_err();
    assert_eq!(e.field(), Some("params.chat_ids[0]"));
}

#[tokio::test]
async fn wecom_base_url_may_end_in_cgi_bin() {
    // Dinky's `sendUrl` form: `https://qyapi.weixin.qq.com/cgi-bin`.
    let fake = FakeWeCom::start().await;
    fake.add_app(CORP, CORP_SECRET, 1000002);
    fake.add_recipients(&["zhangsan"], &[], &[]);
    let cfg = alertkit::InstanceConfig::new("app", "wecom")
        .policy(PolicyConfig::off())
        .param("mode", "app")
        .param("corp_id", CORP)
        .param("secret", CORP_SECRET)
        .param("agent_id", 1000002)
        .param("to_users", json!(["zhangsan"]))
        .param("base_url", format!("{}/cgi-bin", fake.uri()));
    let n = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap();
    n.channel("app").unwrap().send(&alert()).await.unwrap();
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/cgi-bin/gettoken", "/cgi-bin/message/send"]);
    let p = n.preview("app", &alert()).unwrap();
    assert!(
        p[0].target.ends_with("/cgi-bin/message/send") && !p[0].target.contains("cgi-bin/cgi-bin")
    );
}

#[tokio::test]
async fn webhook_fields_are_dotted_paths() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let cfg = alertkit::InstanceConfig::new("h", "webhook")
        .param("url", server.uri())
        .param(
            "body",
            json!({"msgtype": "markdown", "markdown": {"keep": 1}}),
        )
        .param("title_field", "markdown.title")
        .param("content_field", "a.b.c");
    let n = Notifier::from_config(&Config::default().with_instance(cfg)).unwrap();
    let p = n.preview("h", &alert()).unwrap();
    assert_eq!(p[0].body["markdown"]["title"], "Dinky Job Alert Test Title");
    assert_eq!(p[0].body["markdown"]["keep"], 1);
    assert!(
        p[0].body["a"]["b"]["c"]
            .as_str()
            .unwrap()
            .contains("your job exception")
    );
    assert!(p[0].body.get("markdown.title").is_none());
    let bad = alertkit::InstanceConfig::new("h", "webhook")
        .param("url", server.uri())
        .param("body", json!({"markdown": "text"}))
        .param("title_field", "markdown.title");
    let e = Notifier::from_config(&Config::default().with_instance(bad)).unwrap_err();
    assert_eq!(e.field(), Some("params.title_field"));
}

// ------------------------------------------------------ a loopback proxy

/// Request lines and `Proxy-Authorization` values the proxy saw.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A forward HTTP proxy on 127.0.0.1 recording each request line and its
/// `Proxy-Authorization`, forwarding to the origin (one request per
/// connection).
struct TestProxy {
    addr: SocketAddr,
    seen: Seen,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl TestProxy {
    async fn start() -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = forward(sock, s).await;
                });
            }
        });
        TestProxy {
            addr,
            seen,
            _task: task,
        }
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn forward(mut client: TcpStream, seen: Seen) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut kept = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':') {
            let key = k.trim().to_ascii_lowercase();
            headers.insert(key.clone(), v.trim().to_owned());
            if !matches!(
                key.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection"
            ) {
                kept.push(l.to_owned());
            }
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    seen.lock().unwrap().push((
        request_line.clone(),
        headers.get("proxy-authorization").cloned(),
    ));
    // `POST http://127.0.0.1:PORT/path?q HTTP/1.1` → origin form.
    let mut parts = request_line.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let url = url::Url::parse(target).map_err(std::io::Error::other)?;
    let origin = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    );
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for l in kept {
        out.push_str(&l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut upstream = TcpStream::connect(origin).await?;
    upstream.write_all(out.as_bytes()).await?;
    upstream.write_all(&buf[head_end..]).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// The README's "Config, live edits, Dinky" example, as written there.
#[test]
fn readme_dinky_example() {
    let instances = json!([
      {"id": 1, "name": "ding-ops", "tenant_id": 1, "type": "DingTalk", "enabled": 1,
       "params": "{\"webhook\": \"https://oapi.dingtalk.com/robot/send?access_token=abc\", \"keyword\": \"告警\", \"secret\": \"SECabc\", \"isEnableProxy\": false, \"isAtAll\": false, \"atMobiles\": [\"13800000001\"]}",
       "creator": 1, "updater": 1},
      {"id": 4, "name": "wecom-app", "tenant_id": 1, "type": "WeChat", "enabled": 1,
       "params": {"sendType": "app", "corpId": "ww01", "secret": "s", "agentId": 1000002,
                  "sendUrl": "https://qyapi.weixin.qq.com/cgi-bin", "atUsers": ["zhangsan", "lisi"], "isAtAll": false}}
    ]);
    let groups =
        json!([{"id": 1, "name": "flink-prod", "alert_instance_ids": "1,4,99", "enabled": 1}]);
    let imported = Config::from_dinky(&instances, &groups).unwrap();
    assert_eq!(
        imported.config.instances[1].params["to_users"],
        json!(["zhangsan", "lisi"])
    );
    assert_eq!(
        imported.config.groups[0].instances,
        ["ding-ops", "wecom-app"]
    );
    let shown: Vec<String> = imported.notes.iter().map(Note::to_string).collect();
    assert!(
        shown.contains(&"instance 1 \"ding-ops\", params.atMobiles: Dinky 1.x put the mobiles only in the markdown title, so nobody was pinged; alertkit pings them [DT-MENTION]".to_owned()),
        "{shown:#?}"
    );
    assert!(codes(&imported, "group 1 \"flink-prod\"").contains(&"MISSING-ID"));
    Notifier::from_config(&imported.config).unwrap();
}

/// Every row of expected_source_requests.json is imported or named in an
/// UNSUPPORTED note; a row its tool never sent carries a note or is
/// imported disabled, as the tool had it.
#[test]
fn no_fixture_row_is_dropped_silently() {
    let expected = fixture("expected_source_requests.json");
    let dinky1x = Config::from_dinky(
        &fixture("dinky1x_instances_api.json"),
        &fixture("dinky1x_groups.json"),
    )
    .unwrap();
    let dinky07 = Config::from_dinky(
        &fixture("dinky07_instances.json"),
        &fixture("dinky07_groups.json"),
    )
    .unwrap();
    let ds32 = ds_import();
    let dsdev = Config::from_dolphinscheduler_with_plugins(
        &fixture("dsdev_instances.json"),
        &Value::Null,
        &fixture("ds32_plugin_defines.json"),
    )
    .unwrap();
    let mut checked = 0;
    for row in expected["rows"].as_array().unwrap() {
        let imported = match row["source"].as_str().unwrap() {
            "dinky1x" => &dinky1x,
            "dinky07" => &dinky07,
            "ds32" => &ds32,
            "dsdev" => &dsdev,
            other => panic!("unknown source {other}"),
        };
        let name = row["name"].as_str().unwrap();
        let label = format!("instance {} {name:?}", row["row_id"]);
        let instance = imported.config.instances.iter().find(|i| i.name == name);
        let notes = codes(imported, &label);
        match instance {
            Some(i) if row["sent"] == false => assert!(
                !i.enabled || !notes.is_empty(),
                "{label}: its tool sent nothing, and nothing says why: {notes:?}"
            ),
            Some(_) => {}
            None => assert!(notes.contains(&"UNSUPPORTED"), "{label}: {notes:?}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 46);
}
