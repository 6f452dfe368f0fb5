//! Executes the engine's [`Action`]s against the API with a few concurrent workers.
//!
//! Latest wins per object: a newer patch replaces a queued one, and one object is never
//! written by two workers at once. A Service's status comes first (that is what users
//! wait for), then pool status and ConfigurationState, then the pool annotation on
//! Services, then Events. Failed writes are retried with backoff; an object that is
//! gone (404) is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_crds::api::{ConfigurationState, ConfigurationStateStatus, IPAddressPool, IPAddressPoolStatus};
use ferrolb_crds::service::ServiceEvent;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::allocator::ServiceKey;
use crate::engine::{Action, AnnotationPatch, StatusPatch};
use crate::metrics::Metrics;

/// Name of the controller's ConfigurationState object.
pub const CONFIG_STATE_NAME: &str = "ferrolb-controller";
/// `reportingController` of our Events.
const REPORTER: &str = "ferrolb.io/controller";
/// Events kept waiting at most; older ones are dropped beyond this.
const MAX_QUEUED_EVENTS: usize = 10_000;

/// Objects of one kind waiting to be written: latest wins per object, and an object in
/// flight is not handed out again until it is done.
struct Lane<K, V> {
    order: VecDeque<K>,
    jobs: HashMap<K, V>,
    in_flight: HashSet<K>,
}

impl<K, V> Default for Lane<K, V> {
    fn default() -> Self {
        Self {
            order: VecDeque::new(),
            jobs: HashMap::new(),
            in_flight: HashSet::new(),
        }
    }
}

impl<K: Clone + Eq + Hash, V> Lane<K, V> {
    /// Queues `value` for `key`, replacing a queued one.
    fn put(&mut self, key: K, value: V) {
        if self.jobs.insert(key.clone(), value).is_none() && !self.in_flight.contains(&key) {
            self.order.push_back(key);
        }
    }

    fn take(&mut self) -> Option<(K, V)> {
        let key = self.order.pop_front()?;
        let value = self.jobs.remove(&key).expect("queued keys have jobs");
        self.in_flight.insert(key.clone());
        Some((key, value))
    }

    /// Marks `key` done (putting `failed` back unless something newer was queued); a
    /// value queued meanwhile becomes eligible.
    fn finish(&mut self, key: K, failed: Option<V>) {
        self.in_flight.remove(&key);
        if let Some(value) = failed {
            self.jobs.entry(key.clone()).or_insert(value);
        }
        if self.jobs.contains_key(&key) {
            self.order.push_back(key);
        }
    }
}

/// What a worker writes.
enum Job {
    Status(ServiceKey, StatusPatch),
    Annotation(ServiceKey, AnnotationPatch),
    Pool(String, IPAddressPoolStatus),
    Config(ConfigurationStateStatus),
    Event(ServiceEvent),
}

/// Every lane, taken in priority order.
#[derive(Default)]
struct Queue {
    status: Lane<ServiceKey, StatusPatch>,
    pools: Lane<String, IPAddressPoolStatus>,
    config: Lane<(), ConfigurationStateStatus>,
    annotations: Lane<ServiceKey, AnnotationPatch>,
    events: VecDeque<ServiceEvent>,
    /// Events dropped because the queue was full, since the start.
    dropped_events: u64,
}

impl Queue {
    fn put(&mut self, action: Action) {
        match action {
            Action::Service {
                key,
                status,
                metadata,
            } => {
                if let Some(patch) = status {
                    self.status.put(key.clone(), patch);
                }
                if let Some(patch) = metadata {
                    self.annotations.put(key, patch);
                }
            }
            Action::PoolStatus { name, status } => self.pools.put(name, status),
            Action::ConfigState(status) => self.config.put((), status),
            Action::Event(note) => {
                if self.events.len() >= MAX_QUEUED_EVENTS {
                    self.events.pop_front();
                    self.dropped_events += 1;
                    if self.dropped_events % 1000 == 1 {
                        tracing::warn!(
                            dropped = self.dropped_events,
                            "event queue full; dropping the oldest Events"
                        );
                    }
                }
                self.events.push_back(note);
            }
        }
    }

    fn take(&mut self) -> Option<Job> {
        if let Some((key, patch)) = self.status.take() {
            return Some(Job::Status(key, patch));
        }
        if let Some((name, status)) = self.pools.take() {
            return Some(Job::Pool(name, status));
        }
        if let Some(((), status)) = self.config.take() {
            return Some(Job::Config(status));
        }
        if let Some((key, patch)) = self.annotations.take() {
            return Some(Job::Annotation(key, patch));
        }
        self.events.pop_front().map(Job::Event)
    }

    /// Marks the job's object done; a failed job is put back.
    fn finish(&mut self, job: Job, failed: bool) {
        match job {
            Job::Status(key, patch) => self.status.finish(key, failed.then_some(patch)),
            Job::Annotation(key, patch) => self.annotations.finish(key, failed.then_some(patch)),
            Job::Pool(name, status) => self.pools.finish(name, failed.then_some(status)),
            Job::Config(status) => self.config.finish((), failed.then_some(status)),
            Job::Event(_) => {}
        }
    }
}

/// Handle to the queue shared with the workers.
#[derive(Clone)]
pub struct Writer {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
}

/// What the workers need.
struct Context {
    client: Client,
    namespace: String,
    identity: String,
    leader: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Starts `workers` workers in `tasks`; they write only while `leader` is true.
    pub fn start(
        tasks: &mut JoinSet<()>,
        workers: usize,
        client: Client,
        namespace: String,
        identity: String,
        leader: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let writer = Writer {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let context = Arc::new(Context {
            client,
            namespace,
            identity,
            leader,
            metrics,
        });
        for _ in 0..workers.max(1) {
            tasks.spawn(writer.clone().work(context.clone()));
        }
        writer
    }

    /// Queues the actions.
    pub fn submit(&self, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        let mut queue = self.queue.lock().expect("writer queue poisoned");
        for action in actions {
            queue.put(action);
        }
        drop(queue);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    async fn work(self, context: Arc<Context>) {
        let mut failures: u32 = 0;
        loop {
            let job = self.queue.lock().expect("writer queue poisoned").take();
            let Some(job) = job else {
                self.wake.notified().await;
                continue;
            };
            if !*context.leader.borrow() {
                return;
            }
            let kind = job_kind(&job);
            let result = execute(&context, &job).await;
            context.metrics.write(kind, result.is_ok());
            if let Err(error) = &result {
                tracing::warn!(%error, kind, "write failed; will retry");
                failures = (failures + 1).min(6);
                tokio::time::sleep(Duration::from_millis(100 << failures)).await;
            } else {
                failures = 0;
            }
            self.queue
                .lock()
                .expect("writer queue poisoned")
                .finish(job, result.is_err());
            self.wake.notify_one();
        }
    }
}

fn job_kind(job: &Job) -> &'static str {
    match job {
        Job::Status(..) => "service_status",
        Job::Annotation(..) => "service_annotation",
        Job::Pool(..) => "pool_status",
        Job::Config(_) => "configuration_state",
        Job::Event(_) => "event",
    }
}

/// Performs one write; a 404 (the object is gone) counts as done.
async fn execute(context: &Context, job: &Job) -> kube::Result<()> {
    let params = PatchParams::default();
    let gone = |result: kube::Result<()>| match result {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    };
    match job {
        Job::Status(key, patch) => {
            let api: Api<Service> = Api::namespaced(context.client.clone(), &key.namespace);
            gone(
                api.patch_status(&key.name, &params, &Patch::Merge(patch))
                    .await
                    .map(|_| ()),
            )
        }
        Job::Annotation(key, patch) => {
            let api: Api<Service> = Api::namespaced(context.client.clone(), &key.namespace);
            gone(
                api.patch(&key.name, &params, &Patch::Merge(patch))
                    .await
                    .map(|_| ()),
            )
        }
        Job::Pool(name, status) => {
            let api: Api<IPAddressPool> = Api::namespaced(context.client.clone(), &context.namespace);
            let patch = Patch::Merge(json!({"status": status}));
            gone(api.patch_status(name, &params, &patch).await.map(|_| ()))
        }
        Job::Config(status) => {
            let api: Api<ConfigurationState> = Api::namespaced(context.client.clone(), &context.namespace);
            let patch = Patch::Merge(json!({"status": status}));
            match api.patch_status(CONFIG_STATE_NAME, &params, &patch).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    let object = ConfigurationState::new(CONFIG_STATE_NAME, Default::default());
                    api.create(&PostParams::default(), &object).await?;
                    api.patch_status(CONFIG_STATE_NAME, &params, &patch)
                        .await
                        .map(|_| ())
                }
                other => other.map(|_| ()),
            }
        }
        Job::Event(note) => {
            let api: Api<K8sEvent> = Api::namespaced(context.client.clone(), &note.key.namespace);
            api.create(&PostParams::default(), &note.object(REPORTER, &context.identity))
                .await
                .map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::ClassPolicy;
    use crate::engine::{Desired, View};

    #[test]
    fn latest_wins_and_one_writer_per_object() {
        let mut lane: Lane<&str, i32> = Lane::default();
        lane.put("a", 1);
        lane.put("a", 2);
        assert_eq!(lane.take(), Some(("a", 2)));
        // While "a" is in flight a newer value waits for it.
        lane.put("a", 3);
        assert_eq!(lane.take(), None);
        lane.finish("a", None);
        assert_eq!(lane.take(), Some(("a", 3)));
    }

    #[test]
    fn a_failed_write_yields_to_a_newer_one() {
        let mut lane: Lane<&str, i32> = Lane::default();
        lane.put("a", 1);
        let (key, old) = lane.take().unwrap();
        lane.put("a", 2);
        lane.finish(key, Some(old));
        assert_eq!(lane.take(), Some(("a", 2)));
        lane.finish("a", Some(2));
        assert_eq!(lane.take(), Some(("a", 2)), "retried");
    }

    #[test]
    fn status_then_pools_then_annotations_then_events() {
        let service = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "b"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1"},
        }))
        .unwrap();
        let view = View::of(&service, &ClassPolicy::default());
        let desired = Desired {
            ingress: vec!["10.0.0.1".parse().unwrap()],
            condition: None,
            pool_annotation: None,
        };
        let now = serde_json::from_value(json!("2026-11-23T10:00:00Z")).unwrap();
        let status = crate::engine::status_patch(&view, &desired, &now);
        let mut q = Queue::default();
        q.put(Action::Event(ServiceEvent {
            key: ServiceKey::new("ns", "a"),
            uid: None,
            warning: false,
            action: "Allocate",
            reason: "IPAllocated",
            message: String::new(),
        }));
        q.put(Action::Service {
            key: ServiceKey::new("ns", "a"),
            status: None,
            metadata: Some(AnnotationPatch(None)),
        });
        q.put(Action::PoolStatus {
            name: "p".into(),
            status: IPAddressPoolStatus::default(),
        });
        q.put(Action::Service {
            key: ServiceKey::new("ns", "b"),
            status,
            metadata: None,
        });
        assert!(matches!(q.take(), Some(Job::Status(..))));
        assert!(matches!(q.take(), Some(Job::Pool(..))));
        assert!(matches!(q.take(), Some(Job::Annotation(..))));
        assert!(matches!(q.take(), Some(Job::Event(..))));
    }
}
