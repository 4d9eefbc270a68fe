//! Load alert instances exported from Dinky as they are
//! (`cargo run --example dinky_config`): Dinky's type names and param
//! names, pointed at the sandbox so the example runs offline.

use alertkit::testkit::Sandbox;
use alertkit::testkit::sandbox::{
    DINGTALK_SECRET, DINGTALK_TOKEN, FEISHU_SECRET, FEISHU_TOKEN, KEYWORD, WECOM_KEY,
};
use alertkit::{Alert, Config, Notifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = Sandbox::start().await?;
    // Rows of Dinky's alert-instance table, with their JSON `params` (only
    // the URLs changed to point at the sandbox).
    let config = Config::from_json(&format!(
        r#"{{"instances": [
        {{"name": "dinky-ding", "type": "DingTalk", "params": {{"webhook": "{ding}", "keyword": "{KEYWORD}",
          "secret": "{DINGTALK_SECRET}", "isEnableProxy": false, "hostname": "", "port": "", "user": "", "password": "",
          "isAtAll": false, "atMobiles": ["13800000000"]}}}},
        {{"name": "dinky-wechat", "type": "WeChat", "params": {{"sendType": "wechat", "webhook": "{wecom}",
          "keyword": "Dinky", "atUsers": ["zhangsan"], "isAtAll": false}}}},
        {{"name": "dinky-feishu", "type": "FeiShu", "params": {{"webhook": "{feishu}", "secret": "{FEISHU_SECRET}",
          "keyword": "{KEYWORD}", "atUsers": [], "isAtAll": false}}}},
        {{"name": "dinky-email", "type": "Email", "params": {{"serverHost": "127.0.0.1", "serverPort": {port},
          "sender": "dinky@sandbox.example", "receivers": ["ops@sandbox.example"], "receiverCcs": [],
          "enableSmtpAuth": true, "user": "alerts", "password": "sandbox-password", "starttlsEnable": false,
          "sslEnable": false, "smtpSslTrust": "", "mailProtocol": "SMTP"}}}}
      ],
      "groups": [{{"name": "dinky", "instances": ["dinky-ding", "dinky-wechat", "dinky-feishu", "dinky-email"]}}]}}"#,
        ding = sandbox.dingtalk.webhook(DINGTALK_TOKEN),
        wecom = sandbox.wecom.webhook(WECOM_KEY),
        feishu = sandbox.feishu.webhook(FEISHU_TOKEN),
        port = sandbox.smtp.port(),
    ))?;
    let notifier = Notifier::from_config(&config)?;
    let report = notifier.dispatch("dinky", &Alert::sample()).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
