//! Typed configs of the three DingTalk modes (the convention is in
//! [`channels`](crate::channels)).

use std::time::Duration;

use secrecy::SecretString;

use super::{Mode, MsgType};

typed_config! {
    /// A custom group robot (`mode = "robot"`): its `webhook` URL (or
    /// `access_token`), the signing `secret` and security keywords.
    ///
    /// ```
    /// use alertkit::channels::dingtalk::{DingTalkRobot, MsgType};
    ///
    /// let robot = DingTalkRobot::builder()
    ///     .webhook("https://oapi.dingtalk.com/robot/send?access_token=abc")
    ///     .secret("SEC0123")
    ///     .keywords(["alert"])
    ///     .msg_type(MsgType::Text)
    ///     .build()?;
    /// assert!(!format!("{robot:?}").contains("SEC0123"));
    /// let instance = robot.into_instance("ops-ding");
    /// assert_eq!(instance.params["keywords"], serde_json::json!(["alert"]));
    ///
    /// // Validated as the JSON path validates it.
    /// let e = DingTalkRobot::builder().webhook("https://oapi.dingtalk.com/robot/send").build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.webhook"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    DingTalkRobot, DingTalkRobotBuilder, kind = super::KIND, mode = Mode::Robot
}
http_setters!(DingTalkRobotBuilder);

impl DingTalkRobotBuilder {
    /// The robot's webhook URL (`…/robot/send?access_token=…`).
    pub fn webhook(self, url: impl Into<String>) -> Self {
        self.put("webhook", url.into())
    }

    /// The robot's access token, instead of a whole `webhook` (with
    /// [`base_url`](Self::base_url) for another host).
    pub fn access_token(self, token: impl Into<SecretString>) -> Self {
        self.put_secret("access_token", token)
    }

    /// The signing secret (`SEC…`) of a robot with signing on.
    pub fn secret(self, secret: impl Into<SecretString>) -> Self {
        self.put_secret("secret", secret)
    }

    /// The robot's security keywords: the first is appended when a message holds none.
    pub fn keywords<S: Into<String>>(self, keywords: impl IntoIterator<Item = S>) -> Self {
        self.put_list("keywords", keywords)
    }

    /// Mobiles mentioned in every message.
    pub fn at_mobiles<S: Into<String>>(self, mobiles: impl IntoIterator<Item = S>) -> Self {
        self.put_list("at_mobiles", mobiles)
    }

    /// User ids mentioned in every message.
    pub fn at_user_ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.put_list("at_user_ids", ids)
    }

    /// Mentions everyone in every message.
    pub fn at_all(self, all: bool) -> Self {
        self.put("at_all", all)
    }

    /// The message type (markdown by default).
    pub fn msg_type(self, msg_type: MsgType) -> Self {
        self.put_json("msg_type", msg_type)
    }

    /// The API host (default [`OAPI_BASE`](super::OAPI_BASE)), used with
    /// [`access_token`](Self::access_token).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.put("base_url", url.into())
    }
}

typed_config! {
    /// An enterprise internal app's robot (`mode = "app"`), sending to
    /// users one by one and to group conversations.
    ///
    /// ```
    /// use alertkit::channels::dingtalk::DingTalkApp;
    ///
    /// let app = DingTalkApp::builder()
    ///     .app_key("dingapp")
    ///     .app_secret("app-secret")
    ///     .robot_code("dingrobot")
    ///     .user_ids(["manager01"])
    ///     .build()?;
    /// assert_eq!(app.params()["mode"], "app");
    ///
    /// let e = DingTalkApp::builder().app_key("k").app_secret("s").robot_code("r").build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.user_ids"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    DingTalkApp, DingTalkAppBuilder, kind = super::KIND, mode = Mode::App
}
http_setters!(DingTalkAppBuilder);

impl DingTalkAppBuilder {
    /// The app's key (`client_id`).
    pub fn app_key(self, key: impl Into<String>) -> Self {
        self.put("app_key", key.into())
    }

    /// The app's secret (`client_secret`).
    pub fn app_secret(self, secret: impl Into<SecretString>) -> Self {
        self.put_secret("app_secret", secret)
    }

    /// The robot's code.
    pub fn robot_code(self, code: impl Into<String>) -> Self {
        self.put("robot_code", code.into())
    }

    /// Users sent to one by one (`oToMessages/batchSend`).
    pub fn user_ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.put_list("user_ids", ids)
    }

    /// Group conversations sent to (`groupMessages/send`).
    pub fn open_conversation_ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.put_list("open_conversation_ids", ids)
    }

    /// How often flow-controlled users are tried again within one send (default 2).
    pub fn flow_control_retries(self, retries: u32) -> Self {
        self.put("flow_control_retries", retries)
    }

    /// The wait before flow-controlled users are tried again (default 1 s).
    pub fn flow_control_wait(self, wait: Duration) -> Self {
        self.put(
            "flow_control_wait_ms",
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        )
    }

    /// The message type (markdown by default).
    pub fn msg_type(self, msg_type: MsgType) -> Self {
        self.put_json("msg_type", msg_type)
    }

    /// The API host (default [`API_BASE`](super::API_BASE)).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.put("base_url", url.into())
    }
}

typed_config! {
    /// The legacy `gettoken` + `chat/send` flow (`mode = "conversation"`).
    ///
    /// ```
    /// use alertkit::channels::dingtalk::DingTalkConversation;
    ///
    /// let chats = DingTalkConversation::builder()
    ///     .app_key("dingapp")
    ///     .app_secret("app-secret")
    ///     .chat_ids(["chat0123"])
    ///     .build()?;
    /// assert_eq!(chats.params()["mode"], "conversation");
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    DingTalkConversation, DingTalkConversationBuilder, kind = super::KIND, mode = Mode::Conversation
}
http_setters!(DingTalkConversationBuilder);

impl DingTalkConversationBuilder {
    /// The app's key.
    pub fn app_key(self, key: impl Into<String>) -> Self {
        self.put("app_key", key.into())
    }

    /// The app's secret.
    pub fn app_secret(self, secret: impl Into<SecretString>) -> Self {
        self.put_secret("app_secret", secret)
    }

    /// The chats sent to.
    pub fn chat_ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.put_list("chat_ids", ids)
    }

    /// The message type (markdown by default).
    pub fn msg_type(self, msg_type: MsgType) -> Self {
        self.put_json("msg_type", msg_type)
    }

    /// The API host (default [`OAPI_BASE`](super::OAPI_BASE)).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.put("base_url", url.into())
    }
}
