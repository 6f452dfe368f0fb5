//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::collections::BTreeMap;

use crate::engine::{Engine, Tally};

type Labels = Vec<(String, String)>;

/// Every metric of the controller.
pub struct Metrics {
    registry: Registry,
    in_use: Family<Labels, Gauge>,
    total: Family<Labels, Gauge>,
    failures: Family<Labels, Counter>,
    releases: Family<Labels, Counter>,
    /// The engine's tally as last exported (the counters add what it gained since).
    seen: std::sync::Mutex<Tally>,
    pending: Gauge,
    reconcile: Histogram,
    writes: Family<Labels, Counter>,
    write_errors: Family<Labels, Counter>,
    leader: Gauge,
    config_issues: Family<Labels, Gauge>,
    /// Readiness: true once the controller is a follower or a synced leader.
    pub ready: AtomicBool,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("ferrolb");
        let in_use = Family::<Labels, Gauge>::default();
        let total = Family::<Labels, Gauge>::default();
        let failures = Family::<Labels, Counter>::default();
        let releases = Family::<Labels, Counter>::default();
        let pending = Gauge::default();
        let reconcile = Histogram::new(exponential_buckets(0.000_01, 4.0, 10));
        let writes = Family::<Labels, Counter>::default();
        let write_errors = Family::<Labels, Counter>::default();
        let leader = Gauge::default();
        let config_issues = Family::<Labels, Gauge>::default();
        registry.register(
            "allocator_addresses_in_use",
            "Addresses of a pool assigned to Services (a shared address counts once)",
            in_use.clone(),
        );
        registry.register(
            "allocator_addresses",
            "Addresses a pool can hand out (saturates at 2^63-1)",
            total.clone(),
        );
        registry.register(
            "allocation_failures",
            "Failed allocations by reason",
            failures.clone(),
        );
        registry.register(
            "address_releases",
            "Services whose addresses were taken back, or not restored from their status after a restart, by reason",
            releases.clone(),
        );
        registry.register(
            "services_pending",
            "LoadBalancer Services waiting for an address",
            pending.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time the engine took for one watch event",
            reconcile.clone(),
        );
        registry.register("api_writes", "Writes to the API by kind", writes.clone());
        registry.register(
            "api_write_errors",
            "Failed writes to the API by kind",
            write_errors.clone(),
        );
        registry.register("leader", "1 while this replica is the leader", leader.clone());
        registry.register(
            "config_issues",
            "Problems of the configuration by kind and severity (invalid: left out; pending: waits for a reference)",
            config_issues.clone(),
        );
        Arc::new(Self {
            registry,
            in_use,
            total,
            failures,
            releases,
            seen: Default::default(),
            pending,
            reconcile,
            writes,
            write_errors,
            leader,
            config_issues,
            ready: AtomicBool::new(false),
        })
    }

    /// Records one engine turn.
    pub fn observe_reconcile(&self, seconds: f64) {
        self.reconcile.observe(seconds);
    }

    /// Records one API write.
    pub fn write(&self, kind: &str, ok: bool) {
        let labels = vec![("kind".to_string(), kind.to_string())];
        self.writes.get_or_create(&labels).inc();
        if !ok {
            self.write_errors.get_or_create(&labels).inc();
        }
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Copies pool usage, pending count and failure counts from the engine.
    pub fn update_from(&self, engine: &Engine) {
        self.in_use.clear();
        self.total.clear();
        let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
        for pool in engine.pool_names() {
            let Some(usage) = engine.allocator().usage(pool) else {
                continue;
            };
            for (i, family) in ["ipv4", "ipv6"].iter().enumerate() {
                let labels = vec![
                    ("pool".into(), pool.clone()),
                    ("family".into(), family.to_string()),
                ];
                self.in_use.get_or_create(&labels).set(clamp(usage.assigned[i]));
                let capacity = usage.assigned[i].saturating_add(usage.available[i]);
                self.total.get_or_create(&labels).set(clamp(capacity));
            }
        }
        self.pending
            .set(i64::try_from(engine.pending()).unwrap_or(i64::MAX));
        let mut issues: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
        for issue in engine.config_issues() {
            let severity = match issue.severity {
                ferrolb_crds::config::Severity::Invalid => "invalid",
                ferrolb_crds::config::Severity::Pending => "pending",
            };
            *issues.entry((issue.object.kind, severity)).or_default() += 1;
        }
        self.config_issues.clear();
        for ((kind, severity), count) in issues {
            let labels = vec![
                ("kind".to_string(), kind.to_string()),
                ("severity".to_string(), severity.to_string()),
            ];
            self.config_issues.get_or_create(&labels).set(count);
        }
        let mut seen = self.seen.lock().expect("metrics lock poisoned");
        let tally = engine.tally();
        catch_up(&self.failures, &tally.failures, &seen.failures);
        catch_up(&self.releases, &tally.releases, &seen.releases);
        *seen = tally.clone();
    }
}

/// Adds to each reason's counter what `now` counts beyond `before`.
fn catch_up(counters: &Family<Labels, Counter>, now: &BTreeMap<&str, u64>, before: &BTreeMap<&str, u64>) {
    for (reason, count) in now {
        let labels = vec![("reason".to_string(), reason.to_string())];
        let gained = count.saturating_sub(before.get(reason).copied().unwrap_or(0));
        counters.get_or_create(&labels).inc_by(gained);
    }
}

impl ferrolb_process::Exporter for Metrics {
    fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
