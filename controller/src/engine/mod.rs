//! The controller's decisions, as a plain state machine: objects in (Services, pools,
//! namespaces, as the watches deliver them), [`Action`]s out (patches, Events, pool
//! status, ConfigurationState). No client and no clock inside; the shell in `run`
//! feeds it and executes what it returns.
//!
//! Level-triggered: every Service of ours is reconciled when it changes, when the
//! pools change, when its namespace's labels change, and (while it waits for an
//! address) whenever an address is released anywhere.

mod service;
mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_crds::api::{ConfigurationStateStatus, IPAddressPool, IPAddressPoolStatus};
use ferrolb_crds::config::{self, Objects, Outcome};
use ferrolb_crds::service::ServiceEvent;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::allocator::{AllocError, Allocator, Assignment, ClassPolicy, HoldingError, ServiceKey};

pub use service::{AnnotationPatch, CONDITION, Desired, StatusPatch, Verdict, View, status_patch};

/// Something the shell must do against the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Patch a Service (status subresource and/or metadata), merge patches.
    Service {
        /// The Service.
        key: ServiceKey,
        /// Patch of the status subresource.
        status: Option<StatusPatch>,
        /// Patch of the object (annotations).
        metadata: Option<AnnotationPatch>,
    },
    /// Record an Event on a Service.
    Event(ServiceEvent),
    /// Write a pool's status.
    PoolStatus {
        /// The pool.
        name: String,
        /// Its status.
        status: IPAddressPoolStatus,
    },
    /// Write the controller's ConfigurationState.
    ConfigState(ConfigurationStateStatus),
}

/// Counters the shell exports as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Allocation failures by reason.
    pub failures: BTreeMap<&'static str, u64>,
    /// Services whose addresses were taken back, or not restored from their status, by
    /// reason.
    pub releases: BTreeMap<&'static str, u64>,
}

/// The controller's state.
pub struct Engine {
    namespace: String,
    class: ClassPolicy,
    now: Time,
    started: bool,
    allocator: Allocator,
    pools: BTreeMap<String, IPAddressPool>,
    outcome: Outcome,
    config_state: Option<ConfigurationStateStatus>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    services: BTreeMap<ServiceKey, View>,
    /// Services waiting for an address.
    pending: BTreeSet<ServiceKey>,
    /// What we last asked each Service to show; the watch may lag behind our writes.
    written: HashMap<ServiceKey, Desired>,
    /// Pool statuses last asked for.
    pool_written: HashMap<String, IPAddressPoolStatus>,
    /// An address was released since the pending Services were last retried.
    released: bool,
    actions: Vec<Action>,
    tally: Tally,
}

impl Engine {
    /// An engine for the FerroLB namespace `namespace`, serving Services of `class`.
    pub fn new(namespace: impl Into<String>, class: ClassPolicy, now: Time) -> Self {
        Self {
            namespace: namespace.into(),
            class,
            now,
            started: false,
            allocator: Allocator::new(),
            pools: BTreeMap::new(),
            outcome: Outcome::default(),
            config_state: None,
            namespaces: HashMap::new(),
            services: BTreeMap::new(),
            pending: BTreeSet::new(),
            written: HashMap::new(),
            pool_written: HashMap::new(),
            released: false,
            actions: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// Sets the time stamped on conditions from now on.
    pub fn set_now(&mut self, now: Time) {
        self.now = now;
    }

    /// Whether [`Self::start`] ran.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Once every watch delivered its first list: takes back the addresses Services
    /// show (those with more addresses first, then the oldest), then reconciles
    /// everything. No new address is handed out before all are restored.
    pub fn start(&mut self) {
        self.reconfigure(true);
        self.started = true;
        let mut holders: Vec<(&ServiceKey, &View)> = self
            .services
            .iter()
            .filter(|(_, v)| v.ours && !v.ingress.is_empty())
            .collect();
        holders
            .sort_by_key(|(key, view)| (std::cmp::Reverse(view.ingress.len()), view.created.clone(), *key));
        let requests: Vec<_> = holders
            .into_iter()
            .map(|(k, v)| (self.request_of(k, v), v.ingress.clone()))
            .collect();
        for (req, ips) in requests {
            if let Some(req) = req
                && let Err(why) = self.allocator.restore(&req, &ips)
            {
                tracing::info!(service = %req.key, ?ips, %why, "address in status not restored");
                *self.tally.releases.entry(why.reason()).or_default() += 1;
            }
        }
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in keys {
            self.reconcile(&key);
        }
    }

    /// Forgets what was written, so that the next reconcile compares with what the
    /// Services really show (after a relist of the Services).
    pub fn forget_writes(&mut self) {
        self.written.clear();
        self.pool_written.clear();
        self.config_state = None;
    }

    /// A Service was created or changed.
    pub fn service_applied(&mut self, service: &Service) {
        let key = ServiceKey::of(service);
        let view = View::of(service, &self.class);
        let shown = view.shown();
        let foreign = !view.ours && shown.condition.is_none() && shown.pool_annotation.is_none();
        if foreign && self.allocator.assignment(&key).is_none() && !self.written.contains_key(&key) {
            // Nothing of ours on it: not worth remembering (most Services are not ours).
            self.services.remove(&key);
            return;
        }
        self.services.insert(key.clone(), view);
        if self.started {
            self.reconcile(&key);
        }
    }

    /// A Service was deleted.
    pub fn service_deleted(&mut self, key: &ServiceKey) {
        self.services.remove(key);
        self.written.remove(key);
        self.pending.remove(key);
        if !self.allocator.release(key).is_empty() {
            self.released = true;
        }
    }

    /// After a relist: every Service not in `present` was deleted meanwhile.
    pub fn services_relisted(&mut self, present: &BTreeSet<ServiceKey>) {
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !present.contains(k))
            .cloned()
            .collect();
        for key in gone {
            self.service_deleted(&key);
        }
    }

    /// A pool was created or changed (its status included).
    pub fn pool_applied(&mut self, pool: IPAddressPool) {
        let name = pool.metadata.name.clone().unwrap_or_default();
        // Our own status writes come back as changes: only what the config model reads
        // (spec, labels, namespace, age) is worth rebuilding the configuration for.
        let same_config = self.pools.get(&name).is_some_and(|old| {
            old.spec == pool.spec
                && old.metadata.labels == pool.metadata.labels
                && old.metadata.namespace == pool.metadata.namespace
                && old.metadata.creation_timestamp == pool.metadata.creation_timestamp
        });
        self.pools.insert(name, pool);
        if self.started && !same_config {
            self.reconfigure(false);
        }
    }

    /// A pool was deleted.
    pub fn pool_deleted(&mut self, name: &str) {
        self.pools.remove(name);
        self.pool_written.remove(name);
        if self.started {
            self.reconfigure(false);
        }
    }

    /// After a relist: only the pools in `present` exist.
    pub fn pools_relisted(&mut self, present: &BTreeSet<String>) {
        self.pools.retain(|name, _| present.contains(name));
        if self.started {
            self.reconfigure(false);
        }
    }

    /// A namespace was created or changed.
    pub fn namespace_applied(&mut self, namespace: &Namespace) {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        if self.namespaces.get(&name) == Some(&labels) {
            return;
        }
        self.namespaces.insert(name.clone(), labels);
        if self.started {
            let keys: Vec<ServiceKey> = self
                .services
                .keys()
                .filter(|k| k.namespace == name)
                .cloned()
                .collect();
            for key in keys {
                self.reconcile(&key);
            }
        }
    }

    /// A namespace was deleted (its Services go with it through their own deletions).
    pub fn namespace_deleted(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// What the engine decided since the last call, with pool statuses and the
    /// ConfigurationState brought up to date.
    pub fn take_actions(&mut self) -> Vec<Action> {
        if self.started {
            self.retry_pending();
            self.update_pool_statuses();
        }
        std::mem::take(&mut self.actions)
    }

    /// Allocation failures so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The allocator, for metrics and checks.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// Services waiting for an address.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The problems of the current configuration, one per object and field.
    pub fn config_issues(&self) -> &[ferrolb_crds::config::Issue] {
        &self.outcome.issues
    }

    /// The names of the pools in use.
    pub fn pool_names(&self) -> impl Iterator<Item = &String> {
        self.outcome.config.pools.keys()
    }

    fn reconfigure(&mut self, force: bool) {
        let objects = Objects {
            pools: self.pools.values().cloned().collect(),
            ..Objects::default()
        };
        let outcome = config::build(&self.namespace, &objects);
        let changed = outcome.config.pools != self.outcome.config.pools;
        if outcome.issues != self.outcome.issues || self.config_state.is_none() {
            let previous = self
                .config_state
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let state = status::configuration_state(&outcome.issues, &previous, &self.now);
            self.config_state = Some(state.clone());
            self.actions.push(Action::ConfigState(state));
        }
        for issue in &outcome.issues {
            if !self.outcome.issues.contains(issue) {
                tracing::warn!(%issue, "configuration problem");
            }
        }
        self.outcome = outcome;
        if !(changed || force) {
            return;
        }
        let lost = self.allocator.set_pools(&self.outcome.config.pools);
        for (key, ips) in lost {
            self.cleared(&key, &ips, &HoldingError::PoolRemoved);
        }
        if self.started {
            let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
            for key in keys {
                self.reconcile(&key);
            }
        }
    }

    fn request_of(&self, key: &ServiceKey, view: &View) -> Option<crate::allocator::Request> {
        let mut req = view.request.clone()?.ok()?;
        if let Some(labels) = self.namespaces.get(&key.namespace) {
            req.namespace_labels = labels.clone();
        }
        Some(req)
    }

    /// Brings one Service to where it should be.
    fn reconcile(&mut self, key: &ServiceKey) {
        let Some(view) = self.services.get(key).cloned() else {
            return;
        };
        if !view.ours {
            self.pending.remove(key);
            let released = self.allocator.release(key);
            if !released.is_empty() {
                self.cleared(key, &released, &HoldingError::NotServed);
            }
            // Leave foreign Services alone unless they carry something of ours.
            let shown = view.shown();
            let ours_shown =
                shown.condition.is_some() || shown.pool_annotation.is_some() || !released.is_empty();
            if ours_shown
                || (!view.load_balancer && !shown.ingress.is_empty() && self.written.contains_key(key))
            {
                let ingress = if view.load_balancer {
                    without(&shown.ingress, &released)
                } else {
                    Vec::new()
                };
                self.apply(
                    key,
                    &view,
                    Desired {
                        ingress,
                        ..Desired::cleared()
                    },
                );
            }
            return;
        }
        let req = match self.request_of(key, &view) {
            Some(req) => req,
            None => {
                let Some(Err(error)) = view.request.clone() else {
                    return;
                };
                let error = AllocError::Request(error);
                if !self.allocator.release(key).is_empty() {
                    self.released = true;
                }
                self.fail(key, &view, &error);
                return;
            }
        };
        if self.allocator.assignment(key).is_none() && !view.ingress.is_empty() {
            // Held by a previous leader, or written before we saw the Service.
            let _ = self.allocator.restore(&req, &view.ingress);
        }
        let ensured = self.allocator.ensure(&req);
        if let Some(cleared) = &ensured.cleared {
            self.cleared(key, &cleared.ips, &cleared.why);
        }
        match ensured.result {
            Ok(assignment) => {
                self.pending.remove(key);
                self.succeed(key, &view, assignment);
            }
            Err(error) => self.fail(key, &view, &error),
        }
    }

    fn succeed(&mut self, key: &ServiceKey, view: &View, assignment: Assignment) {
        let pools = assignment.pools.join(",");
        let desired = Desired {
            ingress: assignment.ips.clone(),
            condition: Some(Verdict {
                ok: true,
                reason: "Allocated".into(),
                message: format!("assigned {} from pool {pools}", list(&assignment.ips)),
            }),
            pool_annotation: Some(pools.clone()),
        };
        let before = self.believed(key, view);
        if before.ingress != desired.ingress {
            let added = without(&desired.ingress, &before.ingress);
            let message = if before.ingress.is_empty() {
                format!("Assigned IP {} from pool {pools}", list(&added))
            } else if without(&before.ingress, &desired.ingress).is_empty() {
                format!("Assigned additional IP {} from pool {pools}", list(&added))
            } else {
                format!(
                    "Assigned IP {} from pool {pools} (was {})",
                    list(&desired.ingress),
                    list(&before.ingress)
                )
            };
            self.event(key, false, "IPAllocated", message);
        }
        self.apply(key, view, desired);
    }

    fn fail(&mut self, key: &ServiceKey, view: &View, error: &AllocError) {
        self.pending.insert(key.clone());
        let verdict = Verdict {
            ok: false,
            reason: error.reason().into(),
            message: error.to_string(),
        };
        let before = self.believed(key, view);
        if before.condition.as_ref() != Some(&verdict) {
            *self.tally.failures.entry(error.reason()).or_default() += 1;
            self.event(
                key,
                true,
                "AllocationFailed",
                format!("Failed to allocate IP for {key}: {error}"),
            );
        }
        self.apply(
            key,
            view,
            Desired {
                ingress: Vec::new(),
                condition: Some(verdict),
                pool_annotation: None,
            },
        );
    }

    /// What the Service shows, or what we last asked it to show if the watch has not
    /// caught up.
    fn believed(&self, key: &ServiceKey, view: &View) -> Desired {
        self.written.get(key).cloned().unwrap_or_else(|| view.shown())
    }

    fn apply(&mut self, key: &ServiceKey, view: &View, desired: Desired) {
        if self.written.get(key) == Some(&desired) {
            return;
        }
        let status = service::status_patch(view, &desired, &self.now);
        let metadata = service::metadata_patch(view, &desired);
        if status.is_some() || metadata.is_some() {
            self.actions.push(Action::Service {
                key: key.clone(),
                status,
                metadata,
            });
        }
        self.written.insert(key.clone(), desired);
    }

    /// Addresses were taken from a Service: say so, and let the pending ones retry.
    fn cleared(&mut self, key: &ServiceKey, ips: &[IpAddr], why: &HoldingError) {
        self.released = true;
        *self.tally.releases.entry(why.reason()).or_default() += 1;
        self.event(
            key,
            false,
            "ClearAssignment",
            format!("released {}: {why}", list(ips)),
        );
    }

    fn event(&mut self, key: &ServiceKey, warning: bool, reason: &'static str, message: String) {
        self.actions.push(Action::Event(ServiceEvent {
            key: key.clone(),
            uid: self.services.get(key).and_then(|v| v.uid.clone()),
            warning,
            action: "Allocate",
            reason,
            message,
        }));
    }

    /// Retries the pending Services, oldest first, after an address was released.
    fn retry_pending(&mut self) {
        if !std::mem::take(&mut self.released) {
            return;
        }
        let mut keys: Vec<ServiceKey> = self.pending.iter().cloned().collect();
        keys.sort_by_key(|k| (self.services.get(k).and_then(|v| v.created.clone()), k.clone()));
        for key in keys {
            self.reconcile(&key);
        }
        // Pending Services hold nothing, so retrying them released nothing more.
        self.released = false;
    }

    fn update_pool_statuses(&mut self) {
        let mut updates = Vec::new();
        for (name, pool) in &self.pools {
            let issues: Vec<_> = self.outcome.issues_of("IPAddressPool", name).collect();
            let usage = self
                .outcome
                .config
                .pools
                .contains_key(name)
                .then(|| self.allocator.usage(name))
                .flatten();
            let last = self.pool_written.get(name).or(pool.status.as_ref());
            let previous: &[Condition] = last.map_or(&[], |s| &s.conditions);
            let status = status::pool_status(usage, &issues, previous, &self.now);
            if last != Some(&status) {
                updates.push((name.clone(), status));
            }
        }
        for (name, status) in updates {
            self.pool_written.insert(name.clone(), status.clone());
            self.actions.push(Action::PoolStatus { name, status });
        }
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

fn without(ips: &[IpAddr], minus: &[IpAddr]) -> Vec<IpAddr> {
    ips.iter().filter(|ip| !minus.contains(ip)).copied().collect()
}

#[cfg(test)]
mod tests;
