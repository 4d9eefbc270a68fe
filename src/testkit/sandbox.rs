//! Every fake platform at once, with ready-made instance configs.

use serde_json::json;

use super::dingtalk::{FakeDingTalk, RobotSpec};
use super::feishu::{BotSpec, FakeFeishu};
use super::smtp::{FakeSmtp, SmtpTls};
use super::wecom::FakeWeCom;
use crate::config::{Config, GroupConfig, InstanceConfig};

/// Robot token, secret and keyword of the sandbox's DingTalk robot.
pub const DINGTALK_TOKEN: &str = "sandbox-robot-token";
/// The DingTalk robot's signing secret.
pub const DINGTALK_SECRET: &str = "SECsandbox0123456789";
/// The key of the sandbox's WeCom robot.
pub const WECOM_KEY: &str = "sandbox-wecom-key";
/// The hook token of the sandbox's Feishu bot.
pub const FEISHU_TOKEN: &str = "sandbox-feishu-token";
/// The Feishu bot's signing secret.
pub const FEISHU_SECRET: &str = "sandbox-feishu-secret";
/// The security keyword both robots require.
pub const KEYWORD: &str = "alert";

/// A DingTalk robot (signed, keyword `alert`), a WeCom robot, a Feishu bot
/// (signed, keyword `alert`) and an SMTP server (STARTTLS required, with a
/// certificate from a CA generated at start, and AUTH), all on 127.0.0.1, as
/// strict as the real platforms.
///
/// ```
/// use alertkit::testkit::Sandbox;
/// use alertkit::{Alert, GroupStatus, Notifier};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let sandbox = Sandbox::start().await.unwrap();
/// let notifier = Notifier::from_config(&sandbox.config()).unwrap();
/// let report = notifier.dispatch(Sandbox::GROUP, &Alert::sample()).await.unwrap();
/// assert_eq!(report.status, GroupStatus::Delivered);
/// assert_eq!(sandbox.dingtalk.accepted().len(), 1);
/// assert_eq!(sandbox.smtp.messages().len(), 1);
/// assert!(sandbox.smtp.messages()[0].tls);
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Sandbox {
    /// The DingTalk fake.
    pub dingtalk: FakeDingTalk,
    /// The WeCom fake.
    pub wecom: FakeWeCom,
    /// The Feishu/Lark fake.
    pub feishu: FakeFeishu,
    /// The SMTP server.
    pub smtp: FakeSmtp,
    /// The SMTP server's CA, written to a file for the email instance.
    smtp_ca_file: std::path::PathBuf,
}

impl Sandbox {
    /// The name of the group [`config`](Sandbox::config) defines.
    pub const GROUP: &'static str = "sandbox";

    /// Starts every fake.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::Sandbox;
    /// let sandbox = Sandbox::start().await.unwrap();
    /// assert!(sandbox.dingtalk.requests().is_empty());
    /// assert!(sandbox.smtp.messages().is_empty());
    /// # });
    /// ```
    pub async fn start() -> std::io::Result<Self> {
        let dingtalk = FakeDingTalk::start().await;
        dingtalk.add_robot(
            DINGTALK_TOKEN,
            RobotSpec {
                secret: Some(DINGTALK_SECRET.into()),
                keywords: vec![KEYWORD.into()],
            },
        );
        let wecom = FakeWeCom::start().await;
        wecom.add_bot(WECOM_KEY);
        let feishu = FakeFeishu::start().await;
        feishu.add_bot(
            FEISHU_TOKEN,
            BotSpec {
                secret: Some(FEISHU_SECRET.into()),
                keywords: vec![KEYWORD.into()],
            },
        );
        let smtp = FakeSmtp::start_tls(SmtpTls::StartTls).await?;
        smtp.require_auth("alerts", "sandbox-password");
        let smtp_ca_file = smtp.ca_file()?;
        Ok(Sandbox {
            dingtalk,
            wecom,
            feishu,
            smtp,
            smtp_ca_file,
        })
    }

    /// Instances `dingtalk`, `wecom`, `feishu` and `email` pointing at the
    /// fakes, in the group [`Sandbox::GROUP`].
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::Sandbox;
    /// use alertkit::{Config, GroupConfig};
    /// let sandbox = Sandbox::start().await.unwrap();
    /// // just the chat robots, in a group of your own
    /// let chat: Vec<_> = sandbox.instances().into_iter().filter(|i| i.kind != "email").collect();
    /// assert_eq!(chat.len(), 3);
    /// let names: Vec<String> = chat.iter().map(|i| i.name.clone()).collect();
    /// let config = chat.into_iter().fold(Config::default(), Config::with_instance)
    ///     .with_group(GroupConfig::new("chat", names));
    /// assert!(alertkit::Notifier::from_config(&config).is_ok());
    /// # });
    /// ```
    pub fn instances(&self) -> Vec<InstanceConfig> {
        let cfg = |name: &str, kind: &str, params: serde_json::Value| {
            let mut c = InstanceConfig::new(name, kind);
            if let serde_json::Value::Object(map) = params {
                c.params = map;
            }
            c
        };
        vec![
            cfg(
                "dingtalk",
                "dingtalk",
                json!({"webhook": self.dingtalk.webhook(DINGTALK_TOKEN), "secret": DINGTALK_SECRET,
                       "keywords": [KEYWORD], "at_mobiles": ["13800000000"]}),
            ),
            cfg(
                "wecom",
                "wecom",
                json!({"webhook": self.wecom.webhook(WECOM_KEY)}),
            ),
            cfg(
                "feishu",
                "feishu",
                json!({"webhook": self.feishu.webhook(FEISHU_TOKEN), "secret": FEISHU_SECRET, "keywords": [KEYWORD]}),
            ),
            cfg(
                "email",
                "email",
                json!({"host": "127.0.0.1", "port": self.smtp.port(), "tls": "starttls",
                       "ca_file": self.smtp_ca_file, "username": "alerts",
                       "password": "sandbox-password", "from": "alerts@sandbox.example", "from_name": "告警中心",
                       "to": ["ops@sandbox.example"], "format": "table"}),
            ),
        ]
    }

    /// The instances and a group over all of them.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use alertkit::testkit::Sandbox;
    /// let sandbox = Sandbox::start().await.unwrap();
    /// let config = sandbox.config();
    /// assert_eq!(config.groups[0].name, Sandbox::GROUP);
    /// assert_eq!(config.groups[0].instances, ["dingtalk", "wecom", "feishu", "email"]);
    /// # });
    /// ```
    pub fn config(&self) -> Config {
        let instances = self.instances();
        let names: Vec<String> = instances.iter().map(|i| i.name.clone()).collect();
        let mut c = Config::default();
        for i in instances {
            c = c.with_instance(i);
        }
        c.with_group(GroupConfig::new(Sandbox::GROUP, names))
    }
}
