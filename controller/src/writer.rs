//! Executes the engine's [`Action`]s against the API with a few concurrent workers.
//!
//! Latest wins per object: a newer patch for a Service replaces a queued one (part by
//! part), and one object is never written by two workers at once. Services come first
//! (that is what users wait for), then pool status and ConfigurationState, then Events.
//! Failed writes are retried with backoff; a Service or pool that is gone is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_crds::api::{ConfigurationState, ConfigurationStateStatus, IPAddressPool, IPAddressPoolStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::allocator::ServiceKey;
use crate::engine::{Action, EventNote};
use crate::metrics::Metrics;

/// Name of the controller's ConfigurationState object.
pub const CONFIG_STATE_NAME: &str = "ferrolb-controller";
/// Events kept waiting at most; older ones are dropped beyond this.
const MAX_QUEUED_EVENTS: usize = 10_000;

/// Patches for one Service.
#[derive(Clone, Debug, Default)]
struct ServiceJob {
    status: Option<Value>,
    metadata: Option<Value>,
}

impl ServiceJob {
    /// Keeps `self`'s parts and takes `older`'s where `self` has none.
    fn fill_from(&mut self, older: ServiceJob) {
        self.status = self.status.take().or(older.status);
        self.metadata = self.metadata.take().or(older.metadata);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Service(ServiceKey),
    Pool(String),
    Config,
}

enum Job {
    Service(ServiceKey, ServiceJob),
    Pool(String, IPAddressPoolStatus),
    Config(ConfigurationStateStatus),
    Event(EventNote),
}

#[derive(Default)]
struct Queue {
    services: VecDeque<ServiceKey>,
    service_jobs: HashMap<ServiceKey, ServiceJob>,
    pools: VecDeque<String>,
    pool_jobs: HashMap<String, IPAddressPoolStatus>,
    config: Option<ConfigurationStateStatus>,
    events: VecDeque<EventNote>,
    in_flight: HashSet<Slot>,
}

impl Queue {
    fn put(&mut self, action: Action) {
        match action {
            Action::Service {
                key,
                status,
                metadata,
            } => self.put_service(key, ServiceJob { status, metadata }),
            Action::PoolStatus { name, status } => {
                if self.pool_jobs.insert(name.clone(), status).is_none()
                    && !self.in_flight.contains(&Slot::Pool(name.clone()))
                {
                    self.pools.push_back(name);
                }
            }
            Action::ConfigState(status) => self.config = Some(status),
            Action::Event(note) => {
                if self.events.len() >= MAX_QUEUED_EVENTS {
                    self.events.pop_front();
                    tracing::warn!("event queue full; dropped the oldest Event");
                }
                self.events.push_back(note);
            }
        }
    }

    fn put_service(&mut self, key: ServiceKey, job: ServiceJob) {
        match self.service_jobs.get_mut(&key) {
            Some(queued) => {
                let mut newer = job;
                newer.fill_from(std::mem::take(queued));
                *queued = newer;
            }
            None => {
                self.service_jobs.insert(key.clone(), job);
                if !self.in_flight.contains(&Slot::Service(key.clone())) {
                    self.services.push_back(key);
                }
            }
        }
    }

    fn take(&mut self) -> Option<Job> {
        if let Some(key) = self.services.pop_front() {
            let job = self.service_jobs.remove(&key).expect("queued keys have jobs");
            self.in_flight.insert(Slot::Service(key.clone()));
            return Some(Job::Service(key, job));
        }
        if let Some(name) = self.pools.pop_front() {
            let status = self.pool_jobs.remove(&name).expect("queued pools have jobs");
            self.in_flight.insert(Slot::Pool(name.clone()));
            return Some(Job::Pool(name, status));
        }
        if !self.in_flight.contains(&Slot::Config)
            && let Some(status) = self.config.take()
        {
            self.in_flight.insert(Slot::Config);
            return Some(Job::Config(status));
        }
        self.events.pop_front().map(Job::Event)
    }

    /// Marks a slot done; a job queued for it meanwhile becomes eligible.
    fn finish(&mut self, slot: Slot) {
        self.in_flight.remove(&slot);
        match slot {
            Slot::Service(key) if self.service_jobs.contains_key(&key) => self.services.push_back(key),
            Slot::Pool(name) if self.pool_jobs.contains_key(&name) => self.pools.push_back(name),
            _ => {}
        }
    }

    /// Puts a failed job back unless something newer replaced it.
    fn retry(&mut self, job: Job) {
        match job {
            Job::Service(key, job) => match self.service_jobs.get_mut(&key) {
                Some(newer) => newer.fill_from(job),
                None => {
                    self.service_jobs.insert(key, job);
                }
            },
            Job::Pool(name, status) => {
                self.pool_jobs.entry(name).or_insert(status);
            }
            Job::Config(status) => {
                self.config.get_or_insert(status);
            }
            Job::Event(_) => {}
        }
    }

    fn is_idle(&self) -> bool {
        self.services.is_empty()
            && self.pools.is_empty()
            && self.config.is_none()
            && self.events.is_empty()
            && self.in_flight.is_empty()
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
    recorder: Recorder,
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
        let reporter = Reporter {
            controller: "ferrolb-controller".into(),
            instance: Some(identity),
        };
        let context = Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            namespace,
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

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.lock().expect("writer queue poisoned").is_idle()
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
            let slot = match &job {
                Job::Service(key, _) => Some(Slot::Service(key.clone())),
                Job::Pool(name, _) => Some(Slot::Pool(name.clone())),
                Job::Config(_) => Some(Slot::Config),
                Job::Event(_) => None,
            };
            let kind = job_kind(&job);
            match execute(&context, &job).await {
                Ok(()) => {
                    failures = 0;
                    context.metrics.write(kind, true);
                }
                Err(error) => {
                    context.metrics.write(kind, false);
                    tracing::warn!(%error, kind, "write failed; will retry");
                    failures = (failures + 1).min(6);
                    tokio::time::sleep(Duration::from_millis(100 << failures)).await;
                    self.queue.lock().expect("writer queue poisoned").retry(job);
                }
            }
            if let Some(slot) = slot {
                self.queue.lock().expect("writer queue poisoned").finish(slot);
                self.wake.notify_one();
            }
        }
    }
}

fn job_kind(job: &Job) -> &'static str {
    match job {
        Job::Service(..) => "service",
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
        Job::Service(key, patches) => {
            let api: Api<Service> = Api::namespaced(context.client.clone(), &key.namespace);
            if let Some(status) = &patches.status {
                gone(
                    api.patch_status(&key.name, &params, &Patch::Merge(status))
                        .await
                        .map(|_| ()),
                )?;
            }
            if let Some(metadata) = &patches.metadata {
                gone(
                    api.patch(&key.name, &params, &Patch::Merge(metadata))
                        .await
                        .map(|_| ()),
                )?;
            }
            Ok(())
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
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(note.key.namespace.clone()),
                name: Some(note.key.name.clone()),
                uid: note.uid.clone(),
                ..ObjectReference::default()
            };
            let event = Event {
                type_: if note.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: note.reason.into(),
                note: Some(note.message.clone()),
                action: "Allocate".into(),
                secondary: None,
            };
            context.recorder.publish(&event, &reference).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, status: Option<i32>, metadata: Option<i32>) -> Action {
        Action::Service {
            key: ServiceKey::new("ns", name),
            status: status.map(|n| json!(n)),
            metadata: metadata.map(|n| json!(n)),
        }
    }

    #[test]
    fn latest_wins_part_by_part_and_one_writer_per_object() {
        let mut q = Queue::default();
        q.put(service("a", Some(1), Some(1)));
        q.put(service("a", Some(2), None));
        let Some(Job::Service(key, job)) = q.take() else {
            panic!()
        };
        assert_eq!((job.status, job.metadata), (Some(json!(2)), Some(json!(1))));
        // While "a" is in flight a newer patch waits for it.
        q.put(service("a", Some(3), None));
        assert!(q.take().is_none());
        q.finish(Slot::Service(key));
        let Some(Job::Service(_, job)) = q.take() else {
            panic!()
        };
        assert_eq!(job.status, Some(json!(3)));
    }

    #[test]
    fn services_before_pools_before_events() {
        let mut q = Queue::default();
        q.put(Action::Event(EventNote {
            key: ServiceKey::new("ns", "a"),
            uid: None,
            warning: false,
            reason: "IPAllocated",
            message: String::new(),
        }));
        q.put(Action::PoolStatus {
            name: "p".into(),
            status: IPAddressPoolStatus::default(),
        });
        q.put(service("a", Some(1), None));
        assert!(matches!(q.take(), Some(Job::Service(..))));
        assert!(matches!(q.take(), Some(Job::Pool(..))));
        assert!(matches!(q.take(), Some(Job::Event(..))));
    }

    #[test]
    fn a_failed_write_yields_to_newer_parts() {
        let mut q = Queue::default();
        q.put(service("a", Some(1), Some(1)));
        let Some(job) = q.take() else { panic!() };
        q.put(service("a", None, Some(2)));
        q.retry(job);
        q.finish(Slot::Service(ServiceKey::new("ns", "a")));
        let Some(Job::Service(_, job)) = q.take() else {
            panic!()
        };
        assert_eq!((job.status, job.metadata), (Some(json!(1)), Some(json!(2))));
    }
}
