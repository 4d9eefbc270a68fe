//! Typed configs of the two Feishu/Lark modes (the convention is in
//! [`channels`](crate::channels)).

use secrecy::SecretString;

use super::{Mode, MsgType, ReceiveIdType};

typed_config! {
    /// A custom bot (`mode = "bot"`): its `webhook` URL (or `token`), the
    /// signing `secret` and security keywords.
    ///
    /// ```
    /// use alertkit::channels::feishu::{FeishuBot, MsgType};
    ///
    /// let bot = FeishuBot::builder()
    ///     .webhook("https://open.feishu.cn/open-apis/bot/v2/hook/abc")
    ///     .secret("bot-secret")
    ///     .keywords(["alert"])
    ///     .msg_type(MsgType::Post)
    ///     .build()?;
    /// assert_eq!(bot.params()["msg_type"], "post");
    ///
    /// let e = FeishuBot::builder().webhook("https://open.feishu.cn/elsewhere").build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.webhook"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    FeishuBot, FeishuBotBuilder, kind = super::KIND, mode = Mode::Bot
}
http_setters!(FeishuBotBuilder);

impl FeishuBotBuilder {
    /// The bot's webhook URL (`…/open-apis/bot/v2/hook/<token>`).
    pub fn webhook(self, url: impl Into<String>) -> Self {
        self.put("webhook", url.into())
    }

    /// The hook token, instead of a whole `webhook` (with
    /// [`base_url`](Self::base_url) for Lark).
    pub fn token(self, token: impl Into<SecretString>) -> Self {
        self.put_secret("token", token)
    }

    /// The signing secret of a bot with signing on.
    pub fn secret(self, secret: impl Into<SecretString>) -> Self {
        self.put_secret("secret", secret)
    }

    /// The bot's security keywords: the first is appended when a message holds none.
    pub fn keywords<S: Into<String>>(self, keywords: impl IntoIterator<Item = S>) -> Self {
        self.put_list("keywords", keywords)
    }

    /// User ids (open_id) mentioned in every message.
    pub fn at_user_ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.put_list("at_user_ids", ids)
    }

    /// Mentions everyone in every message.
    pub fn at_all(self, all: bool) -> Self {
        self.put("at_all", all)
    }

    /// The message type (a card by default).
    pub fn msg_type(self, msg_type: MsgType) -> Self {
        self.put_json("msg_type", msg_type)
    }

    /// The API host (default [`FEISHU_BASE`](super::FEISHU_BASE); Lark's is
    /// [`LARK_BASE`](super::LARK_BASE)).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.put("base_url", url.into())
    }
}

typed_config! {
    /// An app bot sending to chats or people (`mode = "app"`).
    ///
    /// ```
    /// use alertkit::channels::feishu::{FeishuApp, ReceiveIdType};
    ///
    /// let app = FeishuApp::builder()
    ///     .app_id("cli_a1")
    ///     .app_secret("app-secret")
    ///     .receive_id_type(ReceiveIdType::Email)
    ///     .receive_ids(["ops@example.com"])
    ///     .build()?;
    /// assert_eq!(app.params()["receive_id_type"], "email");
    ///
    /// let e = FeishuApp::builder().app_id("cli_a1").app_secret("s").build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.receive_ids"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    FeishuApp, FeishuAppBuilder, kind = super::KIND, mode = Mode::App
}
http_setters!(FeishuAppBuilder);

impl FeishuAppBuilder {
    /// The app's id (`cli_…`).
    pub fn app_id(self, id: impl Into<String>) -> Self {
        self.put("app_id", id.into())
    }

    /// The app's secret.
    pub fn app_secret(self, secret: impl Into<SecretString>) -> Self {
        self.put_secret("app_secret", secret)
    }

    /// What kind of id [`receive_ids`](Self::receive_ids) holds (chat ids by default).
    pub fn receive_id_type(self, kind: ReceiveIdType) -> Self {
        self.put_json("receive_id_type", kind)
    }

    /// The chats or people sent to.
    pub fn receive_ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.put_list("receive_ids", ids)
    }

    /// The message type (a card by default).
    pub fn msg_type(self, msg_type: MsgType) -> Self {
        self.put_json("msg_type", msg_type)
    }

    /// The API host (default [`FEISHU_BASE`](super::FEISHU_BASE); Lark's is
    /// [`LARK_BASE`](super::LARK_BASE)).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.put("base_url", url.into())
    }
}
