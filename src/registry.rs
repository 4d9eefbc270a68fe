//! The [`Registry`] of channel types: a type name (`dingtalk`, `pager`)
//! maps to a factory that builds an instance from its params.
//!
//! Channels depend on this module (the built-ins register themselves here);
//! [`config`](crate::config) holds the data and re-exports these types.
//!
//! A third-party channel implements [`AlertChannel`] and [`FromParams`] and
//! is registered by type:
//!
//! ```
//! use alertkit::{Alert, AlertChannel, BuildContext, Config, FromParams, Http, Notifier, Receipt, Registry, async_trait};
//!
//! #[derive(Debug)]
//! struct Pager { service: String }
//!
//! #[async_trait]
//! impl AlertChannel for Pager {
//!     async fn send(&self, _alert: &Alert) -> alertkit::Result<Receipt> {
//!         Ok(Receipt::new().with_message_id(format!("{}-1", self.service)))
//!     }
//!     fn kind(&self) -> &str { "pager" }
//! }
//!
//! impl FromParams for Pager {
//!     fn from_params(ctx: &BuildContext<'_>) -> alertkit::Result<Self> {
//!         #[derive(serde::Deserialize)]
//!         #[serde(deny_unknown_fields)]
//!         struct Params { service: String }
//!         let p: Params = ctx.params()?;    // a missing or mistyped param names its path
//!         Ok(Pager { service: p.service })
//!     }
//! }
//!
//! let mut registry = Registry::default();
//! registry.register_channel::<Pager>("pager")?.alias("pagerduty", "pager")?;
//! // A type is registered once; `replace` says a replacement is meant.
//! assert!(registry.register_channel::<Pager>("Pager").is_err());
//!
//! let config = Config::from_json(r#"{"instances": [{"name": "p", "type": "PagerDuty",
//!     "params": {"service": "ops"}}]}"#)?;
//! let notifier = Notifier::from_config_with(&config, registry, Http::new())?;
//! assert_eq!(notifier.channel("p").unwrap().kind(), "pager");
//!
//! let mut registry = Registry::default();
//! registry.register_channel::<Pager>("pager")?;
//! let bad = Config::from_json(r#"{"instances": [{"name": "p", "type": "pager", "params": {"srvice": "ops"}}]}"#)?;
//! let e = Notifier::from_config_with(&bad, registry, Http::new()).unwrap_err();
//! assert_eq!((e.instance(), e.field()), (Some("p"), Some("params.srvice")));
//! # Ok::<(), alertkit::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::channel::AlertChannel;
use crate::config::{InstanceConfig, path_error};
use crate::error::{Error, ErrorKind, Result};
use crate::http::Http;
use crate::template::{TemplateOverrides, Templates};

/// What a factory gets to build one instance.
///
/// A channel's tests build it without a [`Notifier`](crate::Notifier):
///
/// ```
/// use alertkit::{BuildContext, ErrorKind, FromParams, Http};
/// use alertkit::template::Templates;
/// use alertkit::testkit::RecordingChannel;
///
/// let params = serde_json::json!({"fail": "yes"}).as_object().unwrap().clone();
/// let http = Http::new();
/// let ctx = BuildContext::new("ops", "recording", &params, &http, Templates::default());
/// let e = RecordingChannel::from_params(&ctx).unwrap_err();
/// assert_eq!((e.kind(), e.field()), (ErrorKind::InvalidConfig, Some("params.fail")));
/// ```
#[derive(Debug)]
pub struct BuildContext<'a> {
    name: &'a str,
    kind: &'a str,
    params: &'a serde_json::Map<String, serde_json::Value>,
    http: &'a Http,
    templates: Templates,
}

impl<'a> BuildContext<'a> {
    /// A context for building an instance outside a [`Notifier`](crate::Notifier)
    /// (tests, hosts wiring channels by hand).
    ///
    /// ```
    /// use alertkit::{BuildContext, Http};
    /// use alertkit::template::Templates;
    /// let params = serde_json::Map::new();
    /// let http = Http::new();
    /// let ctx = BuildContext::new("ops-pager", "pager", &params, &http, Templates::default());
    /// assert_eq!((ctx.name(), ctx.kind()), ("ops-pager", "pager"));
    /// ```
    pub fn new(
        name: &'a str,
        kind: &'a str,
        params: &'a serde_json::Map<String, serde_json::Value>,
        http: &'a Http,
        templates: Templates,
    ) -> Self {
        BuildContext {
            name,
            kind,
            params,
            http,
            templates,
        }
    }

    /// The instance name.
    ///
    /// ```
    /// use alertkit::{BuildContext, Http};
    /// use alertkit::template::Templates;
    /// let (params, http) = (serde_json::Map::new(), Http::new());
    /// let ctx = BuildContext::new("ops-pager", "pager", &params, &http, Templates::default());
    /// assert_eq!(ctx.name(), "ops-pager"); // for messages and metrics
    /// ```
    pub fn name(&self) -> &str {
        self.name
    }

    /// The canonical type name the instance was registered under.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use alertkit::{AlertChannel, BuildContext, Config, Http, Notifier, Registry};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// let seen = Arc::new(Mutex::new(String::new()));
    /// let mut registry = Registry::empty();
    /// let s = seen.clone();
    /// registry.register("Pager", move |ctx: &BuildContext<'_>| {
    ///     *s.lock().unwrap() = ctx.kind().to_owned();
    ///     Ok(Arc::new(RecordingChannel::new()) as Arc<dyn AlertChannel>)
    /// })?.alias("pagerduty", "pager")?;
    /// let config = Config::from_json(r#"{"instances": [{"name": "p", "type": "PAGERDUTY"}]}"#)?;
    /// Notifier::from_config_with(&config, registry, Http::new())?;
    /// assert_eq!(*seen.lock().unwrap(), "Pager"); // as registered, whatever the config says
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn kind(&self) -> &str {
        self.kind
    }

    /// The raw params.
    ///
    /// ```
    /// use alertkit::{BuildContext, Http};
    /// use alertkit::template::Templates;
    /// let params = serde_json::json!({"service": "ops", "v2_field": 1}).as_object().unwrap().clone();
    /// let http = Http::new();
    /// let ctx = BuildContext::new("p", "pager", &params, &http, Templates::default());
    /// // e.g. to accept params of several versions
    /// assert!(ctx.raw_params().contains_key("v2_field"));
    /// ```
    pub fn raw_params(&self) -> &serde_json::Map<String, serde_json::Value> {
        self.params
    }

    /// The shared HTTP client and caches.
    ///
    /// ```
    /// use alertkit::{BuildContext, Http};
    /// use alertkit::template::Templates;
    /// let (params, http) = (serde_json::Map::new(), Http::new());
    /// let ctx = BuildContext::new("p", "pager", &params, &http, Templates::default());
    /// // the host's one client: connection pool, proxy and TLS setup for every instance
    /// assert!(std::ptr::eq(ctx.http(), &http));
    /// let _client: reqwest::Client = ctx.http().client().clone();
    /// ```
    pub fn http(&self) -> &Http {
        self.http
    }

    /// The instance's compiled templates.
    ///
    /// ```
    /// use alertkit::{Alert, BuildContext, Http};
    /// use alertkit::template::{Format, TemplateOverrides, Templates};
    /// let (params, http) = (serde_json::Map::new(), Http::new());
    /// let templates = Templates::with_overrides(&TemplateOverrides::default().template(Format::Text, "!! {{ title }}"))?;
    /// let ctx = BuildContext::new("p", "pager", &params, &http, templates);
    /// // a channel keeps them and renders every alert with them
    /// let text = ctx.templates().render(Format::Text, &Alert::new("disk full"), "pager")?;
    /// assert_eq!(text, "!! disk full");
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// Deserializes the params into the channel's config struct. An unknown,
    /// missing or mistyped param is an [`ErrorKind::InvalidConfig`] error whose
    /// field is the param's path (`params.at_mobiles[2]`). Declare the struct
    /// with `#[serde(deny_unknown_fields)]` so typos are caught.
    ///
    /// ```
    /// use alertkit::{BuildContext, ErrorKind, Http};
    /// use alertkit::template::Templates;
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct Params { service: String, #[serde(default)] urgent: bool }
    ///
    /// let params = serde_json::json!({"service": "ops", "urgnet": true}).as_object().unwrap().clone();
    /// let http = Http::new();
    /// let ctx = BuildContext::new("p", "pager", &params, &http, Templates::default());
    /// let e = ctx.params::<Params>().unwrap_err();
    /// assert_eq!((e.kind(), e.field()), (ErrorKind::InvalidConfig, Some("params.urgnet")));
    /// ```
    pub fn params<T: DeserializeOwned>(&self) -> Result<T> {
        serde_path_to_error::deserialize(self.params).map_err(|e| path_error("params", e))
    }
}

/// Builds a channel from an instance's params. Any
/// `Fn(&BuildContext<'_>) -> Result<Arc<dyn AlertChannel>>` is one (for a
/// factory that holds state); a channel type that implements [`FromParams`]
/// needs none (see [`Registry::register_channel`]).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use alertkit::{AlertChannel, BuildContext, ChannelFactory, Registry, Result};
/// use alertkit::testkit::RecordingChannel;
///
/// /// Counts the instances it built (a factory with state).
/// struct Counting(AtomicUsize);
///
/// impl ChannelFactory for Counting {
///     fn build(&self, _ctx: &BuildContext<'_>) -> Result<Arc<dyn AlertChannel>> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Ok(Arc::new(RecordingChannel::new()))
///     }
/// }
///
/// let mut registry = Registry::empty();
/// registry.register("counted", Counting(AtomicUsize::new(0)))?;
/// assert!(registry.contains("counted"));
/// # Ok::<(), alertkit::Error>(())
/// ```
pub trait ChannelFactory: Send + Sync + 'static {
    /// Validates the params and builds the channel. Nothing may be sent here.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{AlertChannel, BuildContext, ChannelFactory, Error, Http};
    /// use alertkit::template::Templates;
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// let factory = |ctx: &BuildContext<'_>| {
    ///     if !ctx.raw_params().contains_key("service") {
    ///         return Err(Error::config("params.service", "the pager needs a service"));
    ///     }
    ///     Ok(Arc::new(RecordingChannel::new()) as Arc<dyn AlertChannel>)
    /// };
    /// // a factory's own test, without a Notifier
    /// let (params, http) = (serde_json::Map::new(), Http::new());
    /// let ctx = BuildContext::new("p", "pager", &params, &http, Templates::default());
    /// assert_eq!(factory.build(&ctx).unwrap_err().field(), Some("params.service"));
    /// ```
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn AlertChannel>>;
}

impl<F> ChannelFactory for F
where
    F: Fn(&BuildContext<'_>) -> Result<Arc<dyn AlertChannel>> + Send + Sync + 'static,
{
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn AlertChannel>> {
        self(ctx)
    }
}

/// A channel type built from an instance's params, for
/// [`Registry::register_channel`] (see the [module docs](self) for a whole
/// channel).
///
/// ```
/// # use alertkit::{Alert, AlertChannel, BuildContext, FromParams, Receipt, async_trait};
/// # #[derive(Debug)] struct Pager { client: reqwest::Client, service: String }
/// # #[async_trait] impl AlertChannel for Pager {
/// #     async fn send(&self, _: &Alert) -> alertkit::Result<Receipt> { Ok(Receipt::new()) }
/// # }
/// impl FromParams for Pager {
///     fn from_params(ctx: &BuildContext<'_>) -> alertkit::Result<Self> {
///         #[derive(serde::Deserialize)]
///         #[serde(deny_unknown_fields)]
///         struct Params { service: String }
///         let p: Params = ctx.params()?;
///         // The shared client (connection pool, the host's proxy and TLS settings).
///         Ok(Pager { client: ctx.http().client().clone(), service: p.service })
///     }
/// }
/// ```
pub trait FromParams: AlertChannel + Sized {
    /// Validates the params (read them with [`BuildContext::params`]) and
    /// builds the channel. Nothing may be sent here.
    ///
    /// ```
    /// use alertkit::{BuildContext, FromParams, Http};
    /// use alertkit::template::Templates;
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// // a channel's own test of its params, without a Notifier
    /// let params = serde_json::json!({"delay_ms": 5}).as_object().unwrap().clone();
    /// let http = Http::new();
    /// let ctx = BuildContext::new("ops", "recording", &params, &http, Templates::default());
    /// assert!(RecordingChannel::from_params(&ctx).is_ok());
    /// ```
    fn from_params(ctx: &BuildContext<'_>) -> Result<Self>;
}

/// Maps a type name to a channel factory.
///
/// [`Registry::default`] holds the built-in channels of the enabled
/// features (with Dinky's type names as aliases); a third-party crate adds
/// its own with [`register_channel`](Registry::register_channel) or
/// [`register`](Registry::register). Names match case-insensitively. A
/// name is registered once: registering it again is an error unless
/// [`replace`](Registry::replace) says so.
///
/// ```
/// use std::sync::Arc;
/// use alertkit::{AlertChannel, BuildContext, ErrorKind, Registry};
/// use alertkit::testkit::RecordingChannel;
///
/// let mut registry = Registry::default();
/// // A factory that holds state: a closure.
/// let shared = RecordingChannel::new();
/// registry.register("pager", move |_ctx: &BuildContext<'_>| {
///     Ok(Arc::new(shared.clone()) as Arc<dyn AlertChannel>)
/// })?;
/// assert!(registry.kinds().contains(&"pager"));
///
/// let e = registry.register_channel::<RecordingChannel>("DingTalk").unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::InvalidConfig);
/// registry.replace("dingtalk", |_ctx: &BuildContext<'_>| {
///     Ok(Arc::new(RecordingChannel::new()) as Arc<dyn AlertChannel>)
/// })?;
/// assert!(registry.alias("pd", "pagerduty").is_err());   // no such type
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    /// lower-cased type name → (the name as registered, factory)
    kinds: HashMap<String, (String, Arc<dyn ChannelFactory>)>,
    /// lower-cased alias → lower-cased type name
    aliases: HashMap<String, String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl Registry {
    /// A registry with no channel types.
    ///
    /// ```
    /// use alertkit::{Config, ErrorKind, Http, Notifier, Registry};
    /// let registry = Registry::empty(); // not even the built-in channels
    /// assert!(registry.kinds().is_empty());
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "dingtalk"}]}"#)?;
    /// let e = Notifier::from_config_with(&config, registry, Http::new()).unwrap_err();
    /// assert_eq!((e.kind(), e.field()), (ErrorKind::InvalidConfig, Some("type")));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn empty() -> Self {
        Registry {
            kinds: HashMap::new(),
            aliases: HashMap::new(),
        }
    }

    /// Registers the type `kind`, built by `factory`. An
    /// [`ErrorKind::InvalidConfig`] error if the name is empty or already
    /// a type or an alias (use [`replace`](Registry::replace) to replace one).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{AlertChannel, BuildContext, Registry};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// let mut registry = Registry::empty();
    /// let pager = |_ctx: &BuildContext<'_>| Ok(Arc::new(RecordingChannel::new()) as Arc<dyn AlertChannel>);
    /// registry.register("pager", pager)?;
    /// assert!(registry.register("PAGER", pager).is_err()); // names match case-insensitively
    /// assert!(registry.register("", pager).is_err());
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn register(&mut self, kind: &str, factory: impl ChannelFactory) -> Result<&mut Self> {
        let key = kind.to_ascii_lowercase();
        check_name(kind, "name")?;
        if let Some(taken) = self.taken(&key) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "channel type {kind:?} is already registered ({taken}); use Registry::replace to replace it"
                ),
            ));
        }
        self.kinds.insert(key, (kind.to_owned(), Arc::new(factory)));
        Ok(self)
    }

    /// Registers the type `kind`, built by [`C::from_params`](FromParams::from_params);
    /// the same rules as [`register`](Registry::register).
    ///
    /// ```
    /// use alertkit::Registry;
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// let mut registry = Registry::empty();
    /// registry.register_channel::<RecordingChannel>("memory")?.alias("mem", "memory")?;
    /// assert_eq!(registry.kinds(), ["memory"]);
    /// assert!(registry.contains("MEM"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn register_channel<C: FromParams>(&mut self, kind: &str) -> Result<&mut Self> {
        self.register(kind, factory_of::<C>)
    }

    /// Registers the type `kind`, replacing the type or alias of that name
    /// if there is one (an alias of that name stops being one; other
    /// aliases of a replaced type now name the new one).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::{AlertChannel, BuildContext, Config, Http, Notifier, Registry};
    /// use alertkit::testkit::RecordingChannel;
    ///
    /// // every DingTalk instance goes to an in-memory channel (a staging host)
    /// let mut registry = Registry::default();
    /// registry.replace("dingtalk", |_ctx: &BuildContext<'_>| {
    ///     Ok(Arc::new(RecordingChannel::new()) as Arc<dyn AlertChannel>)
    /// })?;
    /// let config = Config::from_json(r#"{"instances": [{"name": "ops", "type": "DingTalk"}]}"#)?;
    /// let notifier = Notifier::from_config_with(&config, registry, Http::new())?;
    /// assert_eq!(notifier.channel("ops").unwrap().kind(), "recording");
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn replace(&mut self, kind: &str, factory: impl ChannelFactory) -> Result<&mut Self> {
        check_name(kind, "name")?;
        let key = kind.to_ascii_lowercase();
        self.aliases.remove(&key);
        self.kinds.insert(key, (kind.to_owned(), Arc::new(factory)));
        Ok(self)
    }

    /// Makes `alias` another name of the registered type (or alias) `kind`.
    /// An [`ErrorKind::InvalidConfig`] error if `kind` is unknown or
    /// `alias` already names another type; naming the same one again is fine.
    ///
    /// ```
    /// use alertkit::Registry;
    /// let mut registry = Registry::default();
    /// registry.alias("ding", "dingtalk")?;
    /// registry.alias("ding", "dingtalk")?; // the same again is fine
    /// assert!(registry.contains("Ding"));
    /// assert!(registry.alias("ding", "email").is_err()); // taken
    /// assert!(registry.alias("sms", "no-such-type").is_err());
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn alias(&mut self, alias: &str, kind: &str) -> Result<&mut Self> {
        let kind_key = kind.to_ascii_lowercase();
        let Some(target) = self.resolve(&kind_key) else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "cannot alias {alias:?} to unknown channel type {kind:?}; known: {}",
                    self.kinds().join(", ")
                ),
            ));
        };
        let target = target.to_owned();
        let key = alias.to_ascii_lowercase();
        check_name(alias, "alias")?;
        match self.resolve(&key) {
            Some(t) if t == target => Ok(self),
            Some(_) => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "{alias:?} already names channel type {:?}",
                    self.taken(&key).unwrap_or_default()
                ),
            )),
            None => {
                self.aliases.insert(key, target);
                Ok(self)
            }
        }
    }

    /// Whether `kind` names a registered type or alias (case-insensitively).
    ///
    /// ```
    /// use alertkit::Registry;
    /// let registry = Registry::default();
    /// assert!(registry.contains("dingtalk") && registry.contains("DingTalk"));
    /// assert!(!registry.contains("pager"));
    /// ```
    pub fn contains(&self, kind: &str) -> bool {
        self.resolve(&kind.to_ascii_lowercase()).is_some()
    }

    /// The type names as registered (no aliases), sorted.
    ///
    /// ```
    /// use alertkit::Registry;
    /// use alertkit::testkit::RecordingChannel;
    /// let mut registry = Registry::empty();
    /// registry.register_channel::<RecordingChannel>("memory")?.alias("mem", "memory")?;
    /// registry.register_channel::<RecordingChannel>("Audit")?;
    /// assert_eq!(registry.kinds(), ["Audit", "memory"]); // no aliases
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn kinds(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.kinds.values().map(|(k, _)| k.as_str()).collect();
        v.sort_unstable();
        v
    }

    /// The lower-cased type name `key` (a type or an alias) stands for.
    fn resolve<'s>(&'s self, key: &'s str) -> Option<&'s str> {
        if self.kinds.contains_key(key) {
            return Some(key);
        }
        self.aliases.get(key).map(String::as_str)
    }

    /// What a lower-cased name already is: the type's name as registered
    /// (for an alias, the type it names).
    fn taken(&self, key: &str) -> Option<String> {
        let kind = self.resolve(key)?;
        let name = &self.kinds.get(kind)?.0;
        Some(if kind == key {
            format!("type {name:?}")
        } else {
            format!("an alias of {name:?}")
        })
    }

    /// A built-in type and its aliases (no name can be taken yet).
    pub(crate) fn builtin(
        &mut self,
        kind: &str,
        aliases: &[&str],
        factory: impl Fn(&BuildContext<'_>) -> Result<Arc<dyn AlertChannel>> + Send + Sync + 'static,
    ) {
        let key = kind.to_ascii_lowercase();
        for alias in aliases {
            self.aliases.insert(alias.to_ascii_lowercase(), key.clone());
        }
        let key2 = kind.to_ascii_lowercase();
        self.aliases.remove(&key2);
        self.kinds
            .insert(key2, (kind.to_owned(), Arc::new(factory)));
    }

    /// Builds one instance with `templates` (group overrides already merged).
    pub(crate) fn build(
        &self,
        cfg: &InstanceConfig,
        http: &Http,
        group_templates: &TemplateOverrides,
    ) -> Result<Arc<dyn AlertChannel>> {
        let err = |e: Error| e.with_instance(cfg.name.clone());
        if cfg.name.trim().is_empty() {
            return Err(Error::config("name", "instance name is empty"));
        }
        let (kind, factory) = self
            .resolve(&cfg.kind.to_ascii_lowercase())
            .and_then(|key| self.kinds.get(key))
            .ok_or_else(|| {
                err(Error::config(
                    "type",
                    format!(
                        "unknown channel type {:?}; known: {}",
                        cfg.kind,
                        self.kinds().join(", ")
                    ),
                ))
            })?;
        if cfg.timeout_ms == Some(0) {
            return Err(err(Error::config("timeout_ms", "must be at least 1")));
        }
        cfg.policy.validate().map_err(err)?;
        let merged = cfg.templates.or(group_templates);
        let templates = Templates::with_overrides(&merged).map_err(err)?;
        let ctx = BuildContext::new(&cfg.name, kind, &cfg.params, http, templates);
        let secrets = crate::secrets::secrets_of(cfg);
        let scrub = |e: Error| {
            let list: Vec<&str> = secrets.iter().map(String::as_str).collect();
            e.map_message(|m| crate::http::scrub(m, &list))
        };
        let channel = factory.build(&ctx).map_err(|e| {
            // A factory's errors are config errors by definition: nothing was sent.
            let e = if e.kind() == ErrorKind::Template {
                e
            } else {
                e.with_retryable(false)
            };
            err(scrub(e))
        })?;
        Ok(crate::secrets::Scrubbed::wrap(channel, secrets))
    }
}

/// The factory of a [`FromParams`] channel type.
fn factory_of<C: FromParams>(ctx: &BuildContext<'_>) -> Result<Arc<dyn AlertChannel>> {
    Ok(Arc::new(C::from_params(ctx)?))
}

/// A type name or alias: not empty, no blanks around it, no control
/// characters (a config's `type` would never match it).
fn check_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() || name.trim() != name || name.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("channel type {what} {name:?} must be non-empty, without blanks around it or control characters"),
        )
        .with_retryable(false));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        webhook: String,
        #[serde(default)]
        at_mobiles: Vec<String>,
    }

    fn ctx_err(params: serde_json::Value) -> Error {
        let map = params.as_object().unwrap().clone();
        let http = Http::new();
        let ctx = BuildContext::new("ops", "x", &map, &http, Templates::default());
        ctx.params::<P>().unwrap_err()
    }

    #[test]
    fn param_errors_name_the_field() {
        let e = ctx_err(serde_json::json!({}));
        assert_eq!(e.field(), Some("params.webhook"), "{e}");
        assert!(e.message().contains("missing field"), "{e}");
        let e = ctx_err(serde_json::json!({"webhook": "x", "wehbook": "y"}));
        assert_eq!(e.field(), Some("params.wehbook"), "{e}");
        let e = ctx_err(serde_json::json!({"webhook": "x", "at_mobiles": ["1", 2]}));
        assert_eq!(e.field(), Some("params.at_mobiles[1]"), "{e}");
        let e = ctx_err(serde_json::json!({"webhook": 5}));
        assert_eq!(e.field(), Some("params.webhook"), "{e}");
    }

    #[derive(Debug)]
    struct Nothing;

    #[async_trait::async_trait]
    impl AlertChannel for Nothing {
        async fn send(&self, _: &crate::Alert) -> Result<crate::Receipt> {
            Ok(crate::Receipt::new())
        }
    }

    fn memory(_: &BuildContext<'_>) -> Result<Arc<dyn AlertChannel>> {
        Ok(Arc::new(Nothing))
    }

    #[test]
    fn names_are_registered_once_and_aliases_need_a_type() {
        let mut r = Registry::empty();
        r.register("Pager", memory).unwrap();
        let e = r.register("pager", memory).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.message().contains("already registered"), "{e}");
        r.alias("pd", "PAGER")
            .unwrap()
            .alias("PD", "pager")
            .unwrap();
        r.alias("pd2", "pd").unwrap();
        assert!(r.register("pd", memory).is_err());
        assert!(r.alias("x", "nope").is_err());
        assert!(r.alias("", "pager").is_err());
        assert!(r.register(" ", memory).is_err());
        r.register("other", memory).unwrap();
        assert!(r.alias("pd", "other").is_err());
        assert!(r.alias("other", "pager").is_err());
        assert_eq!(r.kinds(), ["Pager", "other"]);
        // Replacing a type keeps its aliases; replacing an alias makes it a type.
        r.replace("pager", memory).unwrap();
        assert!(r.contains("pd2"));
        r.replace("pd", memory).unwrap();
        // Names are what they look like: no blanks around, none empty.
        assert!(r.register(" pager2", memory).is_err());
        assert!(r.replace("", memory).is_err());
        assert!(r.alias("pd3 ", "pager").is_err());
        assert_eq!(r.kinds(), ["other", "pager", "pd"]);
        assert!(r.contains("pd2"));
    }
}
