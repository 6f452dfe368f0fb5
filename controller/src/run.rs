//! The running controller: leader election around sessions; a session watches
//! Services, IPAddressPools and Namespaces, feeds the [`Engine`] and hands its actions
//! to the [`Writer`].
//!
//! ```text
//!   campaign (Lease) ──leader──► main loop ──gains──► session ──────────────┐
//!                                    ▲                 watches ─► Engine ─► Writer workers ─► API
//!                                    └──── loses / SIGTERM: session dropped at once
//! ```
//!
//! Each leadership term starts a fresh session, so the allocator is always rebuilt
//! from what the Services show (a previous leader may have written since).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ferrolb_crds::api::IPAddressPool;
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::allocator::{ClassPolicy, ServiceKey};
use crate::engine::Engine;
use crate::leader::{self, Timing};
use crate::metrics::Metrics;
use crate::writer::Writer;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// FerroLB's namespace (pools, Lease, ConfigurationState).
    pub namespace: String,
    /// Which Services are ours.
    pub class: ClassPolicy,
    /// This replica's name in the Lease.
    pub identity: String,
    /// The Lease's name.
    pub lease_name: String,
    /// Election timing.
    pub timing: Timing,
    /// Concurrent API writers.
    pub writers: usize,
}

/// Runs until `stop` turns true; then drops the session and gives up the Lease.
pub async fn run(client: Client, options: Options, metrics: Arc<Metrics>, stop: watch::Receiver<bool>) {
    let (leader_tx, mut leader) = watch::channel(false);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &options.namespace);
    let campaign = tokio::spawn(leader::campaign(
        leases,
        options.lease_name.clone(),
        options.identity.clone(),
        options.timing,
        leader_tx,
        stop.clone(),
    ));
    metrics.ready.store(true, Ordering::Relaxed);
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            _ = leader.wait_for(|l| *l) => {}
            _ = stopping.wait_for(|s| *s) => break,
        }
        metrics.set_leader(true);
        tracing::info!(identity = %options.identity, "leading: starting a session");
        tokio::select! {
            _ = session(client.clone(), &options, metrics.clone(), leader.clone()) => {}
            _ = leader.wait_for(|l| !*l) => tracing::warn!("leadership lost: stopped writing"),
            _ = stopping.wait_for(|s| *s) => {}
        }
        metrics.set_leader(false);
        metrics.ready.store(true, Ordering::Relaxed);
        if *stopping.borrow() {
            break;
        }
    }
    // The campaign sees `stop` too: it releases the Lease and returns.
    let _ = campaign.await;
}

/// One leadership term; returns only if every watch ended (they retry forever).
async fn session(client: Client, options: &Options, metrics: Arc<Metrics>, leader: watch::Receiver<bool>) {
    metrics.ready.store(false, Ordering::Relaxed);
    let mut tasks = JoinSet::new();
    let writer = Writer::start(
        &mut tasks,
        options.writers,
        client.clone(),
        options.namespace.clone(),
        options.identity.clone(),
        leader,
        metrics.clone(),
    );
    let config = watcher::Config::default();
    let mut services = watch_stream(Api::<Service>::all(client.clone()), config.clone());
    let mut pools = watch_stream(
        Api::<IPAddressPool>::namespaced(client.clone(), &options.namespace),
        config.clone(),
    );
    let mut namespaces = watch_stream(Api::<Namespace>::all(client), config);

    let mut state = Watched {
        engine: Engine::new(&options.namespace, options.class.clone(), now()),
        synced: [false; 3],
        listed_services: BTreeSet::new(),
        listed_pools: BTreeSet::new(),
    };
    loop {
        // Whatever is ready is handled as one batch: one round of actions and metrics.
        let input = tokio::select! {
            Some(events) = services.next() => Input::Services(events),
            Some(events) = pools.next() => Input::Pools(events),
            Some(events) = namespaces.next() => Input::Namespaces(events),
            else => return,
        };
        let began = Instant::now();
        state.engine.set_now(now());
        state.handle(input);
        let engine = &mut state.engine;
        if !engine.started() && state.synced.iter().all(|s| *s) {
            tracing::info!("initial lists complete: restoring addresses from Service status");
            engine.start();
            metrics.ready.store(true, Ordering::Relaxed);
        }
        writer.submit(engine.take_actions());
        metrics.observe_reconcile(began.elapsed().as_secs_f64());
        metrics.update_from(engine);
    }
}

/// Ready watch events, from whichever watch delivered first.
enum Input {
    Services(Vec<Event<Service>>),
    Pools(Vec<Event<IPAddressPool>>),
    Namespaces(Vec<Event<Namespace>>),
}

/// The engine and what the watches' initial lists have told so far.
struct Watched {
    engine: Engine,
    /// Services, pools, namespaces: first list complete.
    synced: [bool; 3],
    listed_services: BTreeSet<ServiceKey>,
    listed_pools: BTreeSet<String>,
}

impl Watched {
    fn handle(&mut self, input: Input) {
        let engine = &mut self.engine;
        match input {
            Input::Services(events) => {
                for event in events {
                    match event {
                        Event::Init => self.listed_services.clear(),
                        Event::InitApply(svc) => {
                            self.listed_services.insert(ServiceKey::of(&svc));
                            engine.service_applied(&svc);
                        }
                        Event::InitDone => {
                            engine.services_relisted(&std::mem::take(&mut self.listed_services));
                            engine.forget_writes();
                            self.synced[0] = true;
                        }
                        Event::Apply(svc) => engine.service_applied(&svc),
                        Event::Delete(svc) => engine.service_deleted(&ServiceKey::of(&svc)),
                    }
                }
            }
            Input::Pools(events) => {
                for event in events {
                    match event {
                        Event::Init => self.listed_pools.clear(),
                        Event::InitApply(pool) => {
                            self.listed_pools
                                .insert(pool.metadata.name.clone().unwrap_or_default());
                            engine.pool_applied(pool);
                        }
                        Event::InitDone => {
                            engine.pools_relisted(&std::mem::take(&mut self.listed_pools));
                            self.synced[1] = true;
                        }
                        Event::Apply(pool) => engine.pool_applied(pool),
                        Event::Delete(pool) => {
                            engine.pool_deleted(pool.metadata.name.as_deref().unwrap_or_default())
                        }
                    }
                }
            }
            Input::Namespaces(events) => {
                for event in events {
                    match event {
                        Event::Init => {}
                        Event::InitApply(ns) | Event::Apply(ns) => engine.namespace_applied(&ns),
                        Event::InitDone => self.synced[2] = true,
                        Event::Delete(ns) => {
                            engine.namespace_deleted(ns.metadata.name.as_deref().unwrap_or_default())
                        }
                    }
                }
            }
        }
    }
}

/// Most watch events handled as one batch.
const BATCH: usize = 256;

/// A watch that retries with backoff forever and logs its errors, in batches of the
/// events already received.
fn watch_stream<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = Vec<Event<K>>> + Unpin + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let events = watcher::watcher(api, config).default_backoff().filter_map(|result| async move {
        match result {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(%error, kind = %K::kind(&K::DynamicType::default()), "watch failed; retrying");
                None
            }
        }
    });
    Box::pin(events.ready_chunks(BATCH))
}

fn now() -> Time {
    Time(Timestamp::now())
}
