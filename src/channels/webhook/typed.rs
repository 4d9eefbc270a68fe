//! The typed webhook config (the convention is in [`channels`](crate::channels)).

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

typed_config! {
    /// A generic JSON webhook. (`WebhookConfig`, not `Webhook`: that is the
    /// channel.)
    ///
    /// ```
    /// use alertkit::channels::webhook::WebhookConfig;
    ///
    /// let hook = WebhookConfig::builder()
    ///     .url("https://hooks.example.com/alerts")
    ///     .header("X-Api-Key", "k-123")
    ///     .body(serde_json::json!({"text": "{{ title }}"}))
    ///     .success_status([200, 202])
    ///     .build()?;
    /// assert!(!format!("{hook:?}").contains("k-123"));
    ///
    /// let e = WebhookConfig::builder().url("ftp://example.com").build().unwrap_err();
    /// assert_eq!(e.field(), Some("params.url"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    WebhookConfig, WebhookConfigBuilder, kind = super::KIND
}
http_setters!(WebhookConfigBuilder);

impl WebhookConfigBuilder {
    /// Where to send.
    pub fn url(self, url: impl Into<String>) -> Self {
        self.put("url", url.into())
    }

    /// `POST` (default) or `PUT`.
    pub fn method(self, method: impl Into<String>) -> Self {
        self.put("method", method.into())
    }

    /// Adds a header (its value is a secret: redacted in `Debug`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<SecretString>) -> Self {
        let value: SecretString = value.into();
        let headers = self
            .params
            .entry("headers")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(map) = headers {
            map.insert(name.into(), value.expose_secret().into());
        }
        self
    }

    /// Basic authentication.
    pub fn basic_auth(
        self,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        let password: SecretString = password.into();
        self.put(
            "basic_auth",
            serde_json::json!({"username": username.into(), "password": password.expose_secret()}),
        )
    }

    /// Sent as `Authorization: Bearer …`.
    pub fn bearer_token(self, token: impl Into<SecretString>) -> Self {
        self.put_secret("bearer_token", token)
    }

    /// The body: a JSON value whose string leaves are templates rendered
    /// against the alert (default: the alert itself).
    pub fn body(self, body: Value) -> Self {
        self.put("body", body)
    }

    /// The statuses that count as delivered (default: any 2xx).
    pub fn success_status(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        let statuses: Vec<u16> = statuses.into_iter().collect();
        self.success().insert("status".into(), statuses.into());
        self
    }

    /// For APIs that answer 200 with an error code: the answer's value at
    /// `json_pointer` must equal `equals` (`"/errcode"`, `0`).
    pub fn success_when(
        mut self,
        json_pointer: impl Into<String>,
        equals: impl Into<Value>,
    ) -> Self {
        let success = self.success();
        success.insert("json_pointer".into(), json_pointer.into().into());
        success.insert("equals".into(), equals.into());
        self
    }

    fn success(&mut self) -> &mut serde_json::Map<String, Value> {
        let entry = self
            .params
            .entry("success")
            .or_insert_with(|| Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = Value::Object(Default::default());
        }
        entry.as_object_mut().expect("an object")
    }

    /// A dotted path into the body that receives the title (`msg.title`).
    pub fn title_field(self, path: impl Into<String>) -> Self {
        self.put("title_field", path.into())
    }

    /// A dotted path into the body that receives the text (`markdown.text`).
    pub fn content_field(self, path: impl Into<String>) -> Self {
        self.put("content_field", path.into())
    }

    /// Follows 307/308 redirects within the URL's own origin (at most 5);
    /// off by default (a 3xx is a failure).
    pub fn follow_redirects(self, same_origin: bool) -> Self {
        self.put(
            "follow_redirects",
            if same_origin { "same_origin" } else { "none" },
        )
    }
}
