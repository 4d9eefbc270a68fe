//! Typed configs of the two WeCom modes (the convention is in
//! [`channels`](crate::channels)).

use secrecy::SecretString;

use super::{Mode, MsgType};

typed_config! {
    /// Application messages (`mode = "app"`): the corp, the app's secret and
    /// agent id, and the users, parties, tags or app chats sent to.
    ///
    /// ```
    /// use alertkit::channels::wecom::{MsgType, WeComApp};
    ///
    /// let app = WeComApp::builder()
    ///     .corp_id("ww01")
    ///     .secret("corp-secret")
    ///     .agent_id(1000002)
    ///     .to_users(["zhangsan", "lisi"])
    ///     .msg_type(MsgType::Textcard)
    ///     .build()?;
    /// assert_eq!(app.params()["to_users"], serde_json::json!(["zhangsan", "lisi"]));
    ///
    /// let e = WeComApp::builder().corp_id("ww01").secret("s").to_users(["a"]).build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.agent_id"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    WeComApp, WeComAppBuilder, kind = super::KIND, mode = Mode::App
}
http_setters!(WeComAppBuilder);

impl WeComAppBuilder {
    /// The corp id (`ww…`).
    pub fn corp_id(self, id: impl Into<String>) -> Self {
        self.put("corp_id", id.into())
    }

    /// The app's secret (`corpsecret`).
    pub fn secret(self, secret: impl Into<SecretString>) -> Self {
        self.put_secret("secret", secret)
    }

    /// The app's agent id (needed to send to users, parties or tags).
    pub fn agent_id(self, id: i64) -> Self {
        self.put("agent_id", id)
    }

    /// Users sent to (`@all` for everyone).
    pub fn to_users<S: Into<String>>(self, users: impl IntoIterator<Item = S>) -> Self {
        self.put_list("to_users", users)
    }

    /// Departments sent to.
    pub fn to_parties<S: Into<String>>(self, parties: impl IntoIterator<Item = S>) -> Self {
        self.put_list("to_parties", parties)
    }

    /// Tags sent to.
    pub fn to_tags<S: Into<String>>(self, tags: impl IntoIterator<Item = S>) -> Self {
        self.put_list("to_tags", tags)
    }

    /// Group chats the app created (`appchat/send`).
    pub fn chat_ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.put_list("chat_ids", ids)
    }

    /// The message type (markdown by default; `markdown_v2` is for robots only).
    pub fn msg_type(self, msg_type: MsgType) -> Self {
        self.put_json("msg_type", msg_type)
    }

    /// The API host (default [`BASE`](super::BASE)).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.put("base_url", url.into())
    }
}

typed_config! {
    /// A group robot (`mode = "bot"`): its `webhook` URL (or `key`), an
    /// optional keyword and mentions.
    ///
    /// ```
    /// use alertkit::channels::wecom::{MsgType, WeComRobot};
    ///
    /// let robot = WeComRobot::builder()
    ///     .webhook("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc")
    ///     .mentioned_mobiles(["13800000000"])
    ///     .msg_type(MsgType::Text)
    ///     .build()?;
    /// assert_eq!(robot.params()["mode"], "bot");
    /// assert!(!format!("{robot:?}").contains("key=abc"));
    ///
    /// let e = WeComRobot::builder().msg_type(MsgType::Textcard).key("abc").build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.msg_type"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    WeComRobot, WeComRobotBuilder, kind = super::KIND, mode = Mode::Bot
}
http_setters!(WeComRobotBuilder);

impl WeComRobotBuilder {
    /// The robot's webhook URL (`…/webhook/send?key=…`).
    pub fn webhook(self, url: impl Into<String>) -> Self {
        self.put("webhook", url.into())
    }

    /// The robot's key, instead of a whole `webhook`.
    pub fn key(self, key: impl Into<SecretString>) -> Self {
        self.put_secret("key", key)
    }

    /// A keyword the message must hold (appended when it does not).
    pub fn keyword(self, keyword: impl Into<String>) -> Self {
        self.put("keyword", keyword.into())
    }

    /// User ids mentioned in every message.
    pub fn mentioned_users<S: Into<String>>(self, users: impl IntoIterator<Item = S>) -> Self {
        self.put_list("mentioned_users", users)
    }

    /// Mobiles mentioned in every message.
    pub fn mentioned_mobiles<S: Into<String>>(self, mobiles: impl IntoIterator<Item = S>) -> Self {
        self.put_list("mentioned_mobiles", mobiles)
    }

    /// Mentions everyone in every message.
    pub fn at_all(self, all: bool) -> Self {
        self.put("at_all", all)
    }

    /// Sends as text when a markdown message has mentions markdown cannot carry.
    pub fn mention_fallback_text(self, fallback: bool) -> Self {
        self.put("mention_fallback_text", fallback)
    }

    /// The message type (markdown by default; `textcard` is for apps only).
    pub fn msg_type(self, msg_type: MsgType) -> Self {
        self.put_json("msg_type", msg_type)
    }

    /// The API host (default [`BASE`](super::BASE)), used with [`key`](Self::key).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.put("base_url", url.into())
    }
}
