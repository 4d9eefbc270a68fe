//! [`Layer`] and [`Stack`]: host middleware around every instance, composed
//! the way tower layers are, with the built-in retry and rate limit as two
//! of the layers.

use std::fmt;
use std::sync::Arc;

use super::{Limiter, PolicyConfig, RateLimited, Retrying, Toggle};
use crate::channel::AlertChannel;
use crate::config::InstanceConfig;

/// A decorator a host puts around every instance's channel: a circuit
/// breaker, a tenant filter, metrics, an audit of every attempt. Closures
/// `Fn(Arc<dyn AlertChannel>, &InstanceConfig) -> Arc<dyn AlertChannel>`
/// are layers.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use alertkit::policy::Stack;
/// use alertkit::{AlertChannel, Config, Http, InstanceConfig, Notifier};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// // A closure is a layer; this one records what it wraps and adds nothing.
/// let audit = move |ch: Arc<dyn AlertChannel>, inst: &InstanceConfig| { s.lock().unwrap().push(inst.name.clone()); ch };
/// let notifier = Notifier::new(alertkit::testkit::recording_registry(), Http::new()).layers(Stack::default().layer(audit));
/// notifier.apply(&Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}]}"#).unwrap()).unwrap();
/// assert_eq!(*seen.lock().unwrap(), ["ops"]);
/// ```
pub trait Layer: Send + Sync + 'static {
    /// `channel` wrapped; `instance` is the config it was built from (its
    /// name, type, params and policy).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::policy::Layer;
    /// use alertkit::testkit::RecordingChannel;
    /// use alertkit::{AlertChannel, InstanceConfig};
    /// let passthrough = |ch: Arc<dyn AlertChannel>, inst: &InstanceConfig| { assert_eq!(inst.name, "ops"); ch };
    /// let inner: Arc<dyn AlertChannel> = Arc::new(RecordingChannel::new());
    /// let wrapped = passthrough.wrap(inner.clone(), &InstanceConfig::new("ops", "recording"));
    /// assert!(Arc::ptr_eq(&inner, &wrapped));
    /// ```
    fn wrap(
        &self,
        channel: Arc<dyn AlertChannel>,
        instance: &InstanceConfig,
    ) -> Arc<dyn AlertChannel>;
}

impl<F> Layer for F
where
    F: Fn(Arc<dyn AlertChannel>, &InstanceConfig) -> Arc<dyn AlertChannel> + Send + Sync + 'static,
{
    fn wrap(
        &self,
        channel: Arc<dyn AlertChannel>,
        instance: &InstanceConfig,
    ) -> Arc<dyn AlertChannel> {
        self(channel, instance)
    }
}

#[derive(Clone)]
enum Step {
    RateLimit,
    Retry,
    Host(Arc<dyn Layer>),
}

/// The layers around every instance a [`Notifier`](crate::Notifier)
/// builds, innermost first: each step wraps what the steps before it made.
/// [`rate_limit`](Stack::rate_limit) and [`retry`](Stack::retry) place the
/// built-in policies (configured per instance by its `policy`; off there,
/// the step adds nothing). The default is `rate_limit` then `retry`: every
/// retry waits for its slot.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use alertkit::policy::Stack;
/// use alertkit::{async_trait, Alert, AlertChannel, Config, Http, InstanceConfig, Notifier, Receipt, Result};
///
/// /// Counts every call it sees.
/// #[derive(Debug)]
/// struct Counted { inner: Arc<dyn AlertChannel>, calls: Arc<AtomicUsize> }
///
/// #[async_trait]
/// impl AlertChannel for Counted {
///     async fn send(&self, alert: &Alert) -> Result<Receipt> {
///         self.calls.fetch_add(1, Ordering::SeqCst);
///         self.inner.send(alert).await
///     }
///     fn kind(&self) -> &str { self.inner.kind() }
///     fn limits(&self) -> alertkit::Limits { self.inner.limits() }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let calls = Arc::new(AtomicUsize::new(0));
/// let c = calls.clone();
/// // Metrics outside the retry: one call per dispatch, whatever the retries.
/// let stack = Stack::default().layer(move |inner: Arc<dyn AlertChannel>, _: &InstanceConfig| {
///     Arc::new(Counted { inner, calls: c.clone() }) as Arc<dyn AlertChannel>
/// });
/// let notifier = Notifier::new(alertkit::testkit::recording_registry(), Http::new()).layers(stack);
/// notifier.apply(&Config::from_json(r#"{"instances": [{"name": "ops", "type": "recording"}],
///                                       "groups": [{"name": "g", "instances": ["ops"]}]}"#).unwrap()).unwrap();
/// notifier.dispatch("g", &Alert::new("disk full")).await.unwrap();
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct Stack {
    steps: Vec<Step>,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<&str> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::RateLimit => "rate_limit",
                Step::Retry => "retry",
                Step::Host(_) => "layer",
            })
            .collect();
        f.debug_struct("Stack").field("steps", &steps).finish()
    }
}

impl Default for Stack {
    /// `rate_limit`, then `retry`.
    fn default() -> Self {
        Stack::new().rate_limit().retry()
    }
}

impl Stack {
    /// No layers at all: not even the built-in policies.
    ///
    /// ```
    /// use alertkit::policy::Stack;
    /// assert_eq!(format!("{:?}", Stack::new()), r#"Stack { steps: [] }"#);
    /// assert_eq!(format!("{:?}", Stack::default()), r#"Stack { steps: ["rate_limit", "retry"] }"#);
    /// ```
    pub fn new() -> Self {
        Stack { steps: Vec::new() }
    }

    /// The instance's rate-limit policy goes here.
    ///
    /// ```
    /// use alertkit::policy::Stack;
    /// // Retry inside the rate limit: one slot per dispatch, whatever the retries.
    /// let stack = Stack::new().retry().rate_limit();
    /// assert_eq!(format!("{stack:?}"), r#"Stack { steps: ["retry", "rate_limit"] }"#);
    /// ```
    pub fn rate_limit(mut self) -> Self {
        self.steps.push(Step::RateLimit);
        self
    }

    /// The instance's retry policy goes here.
    ///
    /// ```
    /// use alertkit::policy::Stack;
    /// let stack = Stack::new().retry(); // no rate limit at all
    /// assert_eq!(format!("{stack:?}"), r#"Stack { steps: ["retry"] }"#);
    /// ```
    pub fn retry(mut self) -> Self {
        self.steps.push(Step::Retry);
        self
    }

    /// A layer of the host's goes here.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use alertkit::policy::Stack;
    /// use alertkit::{AlertChannel, InstanceConfig};
    /// let stack = Stack::default().layer(|ch: Arc<dyn AlertChannel>, _: &InstanceConfig| ch);
    /// assert_eq!(format!("{stack:?}"), r#"Stack { steps: ["rate_limit", "retry", "layer"] }"#);
    /// ```
    pub fn layer(mut self, layer: impl Layer) -> Self {
        self.steps.push(Step::Host(Arc::new(layer)));
        self
    }

    /// `channel` (built from `instance`) wrapped in every step, the
    /// built-in ones configured by `policy`.
    pub(crate) fn apply(
        &self,
        channel: Arc<dyn AlertChannel>,
        instance: &InstanceConfig,
        policy: &PolicyConfig,
        limiter: &Arc<Limiter>,
    ) -> Arc<dyn AlertChannel> {
        let mut c = channel;
        for step in &self.steps {
            c = match step {
                Step::RateLimit => match &policy.rate_limit {
                    Toggle::On(p) => Arc::new(RateLimited::new(c, limiter.clone(), p.clone())),
                    Toggle::Off => c,
                },
                Step::Retry => match &policy.retry {
                    Toggle::On(p) => Arc::new(Retrying::new(c, *p)),
                    Toggle::Off => c,
                },
                Step::Host(l) => l.wrap(c, instance),
            };
        }
        c
    }
}
