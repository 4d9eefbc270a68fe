//! The `metrics` facade sees every delivery (feature `metrics`).
#![cfg(all(feature = "metrics", feature = "testkit"))]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alertkit::testkit::recording_registry;
use alertkit::{Alert, Config, GroupConfig, Http, InstanceConfig, Notifier};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

#[derive(Default)]
struct Store {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    samples: Mutex<Vec<(String, f64)>>,
}

struct C(Arc<AtomicU64>);
impl CounterFn for C {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::SeqCst);
    }
    fn absolute(&self, v: u64) {
        self.0.store(v, Ordering::SeqCst);
    }
}

struct H(String, &'static Store);
impl HistogramFn for H {
    fn record(&self, v: f64) {
        self.1.samples.lock().unwrap().push((self.0.clone(), v));
    }
}

struct Rec(&'static Store);

fn name(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let c = self
            .0
            .counters
            .lock()
            .unwrap()
            .entry(name(key))
            .or_default()
            .clone();
        Counter::from_arc(Arc::new(C(c)))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(H(name(key), self.0)))
    }
}

#[tokio::test]
async fn deliveries_are_counted_by_instance_kind_and_outcome() {
    let store: &'static Store = Box::leak(Box::default());
    metrics::set_global_recorder(Rec(store)).unwrap();
    let config = Config::default()
        .with_instance(InstanceConfig::new("ok", "recording"))
        .with_instance(InstanceConfig::new("bad", "recording").param("fail", true))
        .with_group(GroupConfig::new("g", ["ok", "bad"]));
    let n = Notifier::from_config_with(&config, recording_registry(), Http::new()).unwrap();
    n.dispatch("g", &Alert::new("a")).await.unwrap();
    n.dispatch("g", &Alert::new("b")).await.unwrap();
    let counters = store.counters.lock().unwrap();
    let get = |k: &str| counters.get(k).map_or(0, |c| c.load(Ordering::SeqCst));
    assert_eq!(
        get("alertkit_deliveries_total{instance=ok,kind=recording,outcome=delivered}"),
        2
    );
    assert_eq!(
        get("alertkit_deliveries_total{instance=bad,kind=recording,outcome=failed}"),
        2
    );
    assert_eq!(
        get("alertkit_attempts_total{instance=ok,kind=recording}"),
        2
    );
    let samples = store.samples.lock().unwrap();
    assert_eq!(
        samples
            .iter()
            .filter(|(k, _)| k.starts_with("alertkit_delivery_seconds{instance=ok"))
            .count(),
        2
    );
}
