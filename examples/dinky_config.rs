//! Load alert instances and a group exported from Dinky 1.x as they are
//! (`cargo run --example dinky_config`): the rows of `dinky_alert_instance`
//! and `dinky_alert_group` as Dinky's REST API returns them, with only the
//! URLs and the SMTP port pointed at the sandbox so the example runs
//! offline. `Config::from_dinky` maps them to what Dinky meant and says
//! what differs (printed to stderr).

use alertkit::testkit::Sandbox;
use alertkit::testkit::sandbox::{
    DINGTALK_SECRET, DINGTALK_TOKEN, FEISHU_SECRET, FEISHU_TOKEN, KEYWORD, WECOM_KEY,
};
use alertkit::{Alert, Config, GroupStatus, Notifier};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = Sandbox::start().await?;
    // Dinky's `user` is both the login and the From address.
    sandbox
        .smtp
        .require_auth("alerts@sandbox.example", "sandbox-password");
    let instances = json!([
        {"id": 1, "name": "dinky-ding", "tenantId": 1, "type": "DingTalk", "enabled": true,
         "params": {"webhook": sandbox.dingtalk.webhook(DINGTALK_TOKEN), "keyword": KEYWORD,
                    "secret": DINGTALK_SECRET, "isEnableProxy": false, "isAtAll": false,
                    "atMobiles": ["13800000000"]},
         "createTime": "2024-05-06T10:01:00", "creator": 1, "updater": 1},
        {"id": 2, "name": "dinky-wechat", "tenantId": 1, "type": "WeChat", "enabled": true,
         "params": {"sendType": "wechat", "webhook": sandbox.wecom.webhook(WECOM_KEY),
                    "keyword": "Dinky", "atUsers": ["zhangsan"], "isAtAll": false},
         "createTime": "2024-05-06T10:02:00", "creator": 1, "updater": 1},
        {"id": 3, "name": "dinky-feishu", "tenantId": 1, "type": "FeiShu", "enabled": true,
         "params": {"webhook": sandbox.feishu.webhook(FEISHU_TOKEN), "secret": FEISHU_SECRET,
                    "keyword": KEYWORD, "isEnableProxy": false, "isAtAll": false, "atUsers": []},
         "createTime": "2024-05-06T10:03:00", "creator": 1, "updater": 1},
        // The sandbox's server requires STARTTLS; its certificate is from a
        // private CA, which `smtpSslTrust` listing the host accepts.
        {"id": 4, "name": "dinky-email", "tenantId": 1, "type": "Email", "enabled": true,
         "params": {"serverHost": "127.0.0.1", "serverPort": sandbox.smtp.port(), "sender": "Dinky告警",
                    "receivers": ["ops@sandbox.example"], "receiverCcs": [], "enableSmtpAuth": true,
                    "user": "alerts@sandbox.example", "password": "sandbox-password",
                    "starttlsEnable": true, "sslEnable": false, "smtpSslTrust": "127.0.0.1"},
         "createTime": "2024-05-06T10:04:00", "creator": 1, "updater": 1}
    ]);
    let groups = json!([
        {"id": 1, "name": "dinky", "tenantId": 1, "alertInstanceIds": "1,2,3,4", "note": "",
         "enabled": true, "creator": 1, "updater": 1}
    ]);
    let imported = Config::from_dinky(&instances, &groups)?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    let notifier = Notifier::from_config(&imported.config)?;
    let report = notifier.dispatch("dinky", &Alert::sample()).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.status != GroupStatus::Delivered {
        return Err(format!("the group was {:?}", report.status).into());
    }
    Ok(())
}
