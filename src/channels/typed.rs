//! The machinery of the typed configs (see the [module docs](super)): a
//! typed config is a params map that passed the channel's own validation.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::channel::AlertChannel;
use crate::config::InstanceConfig;
use crate::error::Result;
use crate::http::{Http, ProxyConfig};
use crate::registry::Registry;
use crate::template::TemplateOverrides;

/// Builds the params of built-in type `kind` exactly as an instance config's
/// are built (the same factory, the same errors), without the instance name.
pub(crate) fn check(kind: &str, params: &Map<String, Value>) -> Result<()> {
    channel(kind, kind, params, &Http::new())
        .map(drop)
        .map_err(crate::error::Error::without_instance)
}

/// The channel of built-in type `kind` built from `params`.
pub(crate) fn channel(
    name: &str,
    kind: &str,
    params: &Map<String, Value>,
    http: &Http,
) -> Result<Arc<dyn AlertChannel>> {
    let mut registry = Registry::empty();
    super::register_builtins(&mut registry);
    let mut cfg = InstanceConfig::new(name, kind);
    cfg.params = params.clone();
    registry.build(&cfg, http, &TemplateOverrides::default())
}

/// `params` as `Debug` shows them: secrets and URL tokens redacted.
pub(crate) fn redacted(params: &Map<String, Value>) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), crate::config::redact_param(k, v)))
        .collect()
}

/// A value as JSON (the params' types always serialize).
pub(crate) fn json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The `proxy` param of a [`ProxyConfig`].
pub(crate) fn proxy(proxy: &ProxyConfig) -> Value {
    use secrecy::ExposeSecret;
    let mut m = Map::new();
    m.insert("url".into(), Value::String(proxy.url.to_string()));
    if let Some(u) = &proxy.username {
        m.insert("username".into(), Value::String(u.clone()));
    }
    if let Some(p) = &proxy.password {
        m.insert(
            "password".into(),
            Value::String(p.expose_secret().to_owned()),
        );
    }
    Value::Object(m)
}

/// A list param.
pub(crate) fn list<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}

/// Declares a typed config `$name` of built-in type `$kind` and its builder
/// `$builder`: the shared methods (`builder`, `build`, `params`,
/// `into_instance`, `channel`, redacting `Debug`, and `MODE` for a channel
/// with modes). The setters are written next to the call, on the builder.
#[allow(unused_macros)]
macro_rules! typed_config {
    (
        $(#[$doc:meta])*
        $name:ident, $builder:ident, kind = $kind:expr, mode = $mode_ty:ident::$mode:ident
    ) => {
        typed_config!(@common $(#[$doc])* $name, $builder, $kind,
            Some($crate::channels::typed::json($mode_ty::$mode)));

        impl $name {
            #[doc = concat!("The mode this config is for (its `mode` param): [`", stringify!($mode_ty), "::", stringify!($mode), "`].")]
            pub const MODE: $mode_ty = $mode_ty::$mode;
        }
    };
    (
        $(#[$doc:meta])*
        $name:ident, $builder:ident, kind = $kind:expr
    ) => {
        typed_config!(@common $(#[$doc])* $name, $builder, $kind, None);
    };
    (
        @common
        $(#[$doc:meta])*
        $name:ident, $builder:ident, $kind:expr, $mode:expr
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq)]
        pub struct $name {
            params: serde_json::Map<String, serde_json::Value>,
        }

        #[doc = concat!("Builds a [`", stringify!($name), "`]: each setter sets one param; ")]
        #[doc = concat!("[`build`](", stringify!($builder), "::build) validates them all, as a JSON config is validated.")]
        #[derive(Clone, Default, PartialEq)]
        #[must_use]
        pub struct $builder {
            params: serde_json::Map<String, serde_json::Value>,
        }

        impl $name {
            /// A builder with no params set.
            pub fn builder() -> $builder {
                $builder::default()
            }

            /// The params, as an instance config holds them (secrets in clear:
            /// this is what a host saves).
            pub fn params(&self) -> &serde_json::Map<String, serde_json::Value> {
                &self.params
            }

            /// An enabled instance `name` of this config, for a
            /// [`Config`](crate::Config) or
            /// [`Notifier::upsert_instance`](crate::Notifier::upsert_instance).
            pub fn into_instance(self, name: impl Into<String>) -> $crate::config::InstanceConfig {
                let mut cfg = $crate::config::InstanceConfig::new(name, $kind);
                cfg.params = self.params;
                cfg
            }

            /// The channel itself, on `http`, named after its type in errors.
            /// No retry or rate-limit policy wraps it (a
            /// [`Notifier`](crate::Notifier) adds those to its instances).
            pub fn channel(
                &self,
                http: &$crate::http::Http,
            ) -> $crate::error::Result<std::sync::Arc<dyn $crate::channel::AlertChannel>> {
                $crate::channels::typed::channel($kind, $kind, &self.params, http)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("params", &$crate::channels::typed::redacted(&self.params))
                    .finish()
            }
        }

        impl std::fmt::Debug for $builder {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($builder))
                    .field("params", &$crate::channels::typed::redacted(&self.params))
                    .finish()
            }
        }

        impl $builder {
            /// Validates the params exactly as the JSON path does (the same
            /// channel factory runs on them): an
            /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig)
            /// error names the param at fault (`params.webhook`), never its value.
            pub fn build(mut self) -> $crate::error::Result<$name> {
                let mode: Option<serde_json::Value> = $mode;
                if let Some(mode) = mode {
                    self.params.insert("mode".into(), mode);
                }
                $crate::channels::typed::check($kind, &self.params)?;
                Ok($name { params: self.params })
            }

            fn put(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
                self.params.insert(key.to_owned(), value.into());
                self
            }

            fn put_secret(self, key: &str, value: impl Into<secrecy::SecretString>) -> Self {
                use secrecy::ExposeSecret;
                let value: secrecy::SecretString = value.into();
                self.put(key, value.expose_secret())
            }

            #[allow(dead_code)]
            fn put_list<S: Into<String>>(self, key: &str, items: impl IntoIterator<Item = S>) -> Self {
                self.put(key, $crate::channels::typed::list(items))
            }

            #[allow(dead_code)]
            fn put_json(self, key: &str, value: impl serde::Serialize) -> Self {
                self.put(key, $crate::channels::typed::json(value))
            }
        }
    };
}

/// The setters of an HTTP channel's transport (`proxy`, `allow_http`) on
/// `$builder`.
#[allow(unused_macros)]
macro_rules! http_setters {
    ($builder:ident) => {
        impl $builder {
            /// Routes this instance's requests through an HTTP proxy.
            pub fn proxy(self, proxy: &$crate::http::ProxyConfig) -> Self {
                self.put("proxy", $crate::channels::typed::proxy(proxy))
            }

            /// Allows `http://` URLs that are not on loopback (a gateway
            /// inside a trusted network). Off by default.
            pub fn allow_http(self, allow: bool) -> Self {
                self.put("allow_http", allow)
            }
        }
    };
}
