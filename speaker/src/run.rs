//! The running speaker: a thin shell around the [`Engine`]. Sources wake it; it tells
//! the engine what changed and carries out the actions the engine returns.
//!
//! ```text
//!   watches (Services, EndpointSlices, Nodes, pools, L2Advertisements) ─► View ─┐
//!   gossip live set ───────────────────────────────────────────────────────────┼─► Engine::step
//!   netlink links/addresses ───────────────────────────────────────────────────┤      │ Actions
//!   timer (Actions::wake_at) ──────────────────────────────────────────────────┘      │
//!      ┌──────────────────────────────────────────────────────────────────────────────┘
//!      ├─► gossip seeds           ├─► nftables + lo (wide, then narrow)
//!      ├─► L2 (ARP/NDP)           ├─► ServiceL2Status writer (task)
//!      ├─► BGP sessions (a task per peer: bgp::Peers) ─► reports ─┬─► BGPSessionState writer
//!      │                          ├─► ServiceBGPStatus writer     └─► metrics (at scrape)
//!      └─► metrics                └─► Event writer (task)
//! ```
//!
//! Every speaker computes the same plan, so no speaker asks another who announces what.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferrolb_bgp::message::cease;
use ferrolb_bgp::session::Stop;
use ferrolb_crds::service::{ClassPolicy, ServiceEvent};
use kube::Client;
use tokio::sync::{Notify, mpsc, watch};

use ferrolb_crds::api::{
    BGPSessionState, BGPSessionStateStatus, ServiceBGPStatus, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusStatus,
};

use crate::api::status::{self, Desired};
use crate::api::stores::Stores;
use crate::api::watch::Listed;
use crate::bgp::Peers;
use crate::bgp::report::{self, Reports};
use crate::engine::{Announce, Changes, Engine, Settings};
use crate::host::links::Links;
use crate::host::steering::Steering;
use crate::l2::announcer::Schedule;
use crate::l2::membership::Membership;
use crate::l2::{L2, Owned};
use crate::metrics::Metrics;

/// How the speaker runs.
pub struct Options {
    /// This node's name.
    pub node: String,
    /// FerroLB's namespace (pools, advertisements, ServiceL2Status).
    pub namespace: String,
    /// Interface patterns never used by default.
    pub excludes: Vec<String>,
    /// Steer VIP traffic to NodePorts with nftables (and put VIPs on lo).
    pub dataplane: bool,
    /// The gossip, if enabled; `None`: liveness from Node readiness alone.
    pub membership: Option<Membership>,
    /// With gossip isolated this long while other nodes are Ready, use Node readiness.
    pub fallback_after: Duration,
    /// Repetition of gratuitous announcements.
    pub schedule: Schedule,
    /// Which Services are ours, by `spec.loadBalancerClass` (the controller's `--lb-class`).
    pub class: ClassPolicy,
    /// The graceful restart time offered to BGP peers with `enableGracefulRestart`.
    pub restart_time: Duration,
}

impl Options {
    /// A speaker that opens no gossip socket, no raw socket and no dataplane: liveness
    /// from Node readiness, every interface excluded (for a node that only speaks BGP,
    /// and for tests without root).
    pub fn api_only(node: &str, namespace: &str) -> Self {
        Self {
            node: node.into(),
            namespace: namespace.into(),
            excludes: vec!["*".into()],
            dataplane: false,
            membership: None,
            fallback_after: Duration::from_secs(5),
            schedule: Schedule::default(),
            class: ClassPolicy::default(),
            restart_time: Duration::from_secs(120),
        }
    }
}

/// Where the engine's actions go.
struct Outputs {
    l2: L2,
    bgp: Peers,
    steering: Option<Steering>,
    statuses: watch::Sender<Arc<Desired<ServiceL2StatusStatus>>>,
    bgp_statuses: watch::Sender<Arc<Desired<ServiceBGPStatusStatus>>>,
    events: mpsc::Sender<ServiceEvent>,
    metrics: Arc<Metrics>,
}

/// Runs until `stop` turns true; then says goodbye and removes what it installed.
pub async fn run(
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let dirty = Arc::new(Notify::new());
    let stores = Stores::watch(&client, &options.namespace, &options.class, &dirty);
    let mut links = crate::host::netlink::followed();
    let gossip = options.membership.as_ref();
    let l2 = L2::start(options.schedule);
    metrics.attach(l2.clone(), gossip.map(|m| m.counters.clone()));
    let node = options.node.clone();
    let namespace = options.namespace.clone();
    let statuses = status::start::<ServiceL2Status>(client.clone(), &namespace, &node);
    let bgp_statuses = status::start::<ServiceBGPStatus>(client.clone(), &namespace, &node);
    let sessions = status::start::<BGPSessionState>(client.clone(), &namespace, &node);
    let (reports, reports_rx) = watch::channel(Reports::new());
    metrics.attach_bgp(reports_rx.clone());
    tokio::spawn(session_states(node.clone(), reports_rx, sessions));
    let (events, event_rx) = mpsc::channel(1024);
    tokio::spawn(status::write_events(client.clone(), node.clone(), event_rx));
    let steering = match options.dataplane {
        true => Some(Steering::open().await?),
        false => None,
    };
    let mut out = Outputs {
        l2,
        bgp: Peers::new(reports),
        steering,
        statuses,
        bgp_statuses,
        events,
        metrics,
    };

    tracing::info!(node = %node, "waiting for the initial lists");
    if stores.listed(&mut stop).await? == Listed::Stopped {
        tracing::info!("stopping before the initial lists were complete");
        return withdraw(options.membership, out, true).await;
    }
    let gossip_at = gossip.map(|m| m.advertise);
    let mut live = gossip.map(|m| m.live.clone());
    let mut engine = Engine::new(
        Settings {
            node: node.clone(),
            excludes: options.excludes.clone(),
            steering: options.dataplane,
            gossip: gossip.is_some(),
            fallback_after: options.fallback_after,
            restart_time: options.restart_time,
        },
        Instant::now(),
    );
    let mut woke = Woke::Api;
    loop {
        // Each source is read only when it changed: the stores only change with the
        // API, and reading them is the costly part of a step.
        let changes = Changes {
            view: (woke == Woke::Api).then(|| {
                engine.release_view();
                stores.view(&namespace, &node, gossip_at)
            }),
            links: (woke == Woke::Links || links.has_changed().unwrap_or(false))
                .then(|| links.borrow_and_update().clone()),
            live: live
                .as_mut()
                .filter(|rx| woke == Woke::Gossip || rx.has_changed().unwrap_or(false))
                .map(|rx| rx.borrow_and_update().clone()),
        };
        let actions = engine.step(changes, Instant::now());
        if let (Some(m), Some(seeds)) = (gossip, actions.seeds) {
            m.seeds(seeds).await;
        }
        if let Some(bgp) = actions.bgp {
            out.bgp.apply(bgp.intents, &bgp.limits).await;
            out.bgp_statuses.send_replace(Arc::new(bgp.statuses));
            out.record(bgp.events);
        }
        if let Some(announce) = actions.announce {
            out.carry_out(announce, engine.links()).await;
        }
        woke = wait(&dirty, &mut links, &mut live, &mut stop, actions.wake_at).await;
        if woke == Woke::Stop || *stop.borrow() {
            break;
        }
        tracing::debug!(?woke, "planning");
    }
    let leaving = engine.node_leaving();
    tracing::info!(leaving, "stopping: leaving the gossip and withdrawing");
    withdraw(options.membership, out, leaving).await
}

impl Outputs {
    async fn carry_out(&mut self, announce: Announce, links: &Links) {
        let rules = announce.steering.unwrap_or_default();
        if let Some(s) = &mut self.steering {
            // Steering is in place before the gratuitous ARP draws traffic; `lo` carries
            // only owned addresses (the kernel would answer ARP for the others).
            s.widen(&rules, &announce.owned).await;
        }
        self.l2.apply(&announce.owned, links);
        if announce.reannounce {
            self.l2.reannounce();
        }
        if let Some(desired) = announce.statuses {
            self.statuses.send_replace(Arc::new(desired));
        }
        self.record(announce.events);
        let f = announce.figures;
        self.metrics.set_plan(f.v4, f.v6, f.members, f.changes);
        if let Some(s) = &mut self.steering {
            // ...and stays until the node has stopped answering for what it gave up.
            s.narrow(&rules, &announce.owned).await;
        }
        self.metrics.ready.store(true, Ordering::Relaxed);
    }

    /// Queues Events for the Event writer (dropped, not awaited, when it lags).
    fn record(&self, events: Vec<ServiceEvent>) {
        for event in events {
            if let Err(err) = self.events.try_send(event) {
                tracing::debug!(service = %err.into_inner().key, "event queue full: Event dropped");
            }
        }
    }
}

/// Turns the BGP sessions' reports into the node's BGPSessionState records, whenever
/// they change.
async fn session_states(
    node: String,
    mut reports: watch::Receiver<Reports>,
    records: watch::Sender<Arc<Desired<BGPSessionStateStatus>>>,
) {
    while reports.changed().await.is_ok() {
        let desired = report::states(&node, &reports.borrow_and_update());
        records.send_replace(Arc::new(desired));
    }
}

/// Leaves the gossip, ends the BGP sessions, stops answering and removes the steering.
/// A node `leaving` (cordoned, shutting down) makes its BGP peers drop its routes now;
/// otherwise this is a restart, and peers with graceful restart keep them meanwhile —
/// so the steering rules stay too, for the traffic they keep sending (the next speaker
/// replaces them at its first plan).
async fn withdraw(membership: Option<Membership>, mut out: Outputs, leaving: bool) -> anyhow::Result<()> {
    if let Some(m) = membership {
        m.leave().await;
    }
    let how = match leaving {
        true => Stop::Cease {
            subcode: cease::ADMINISTRATIVE_SHUTDOWN,
            reason: "FerroLB speaker stopping: node cordoned or shutting down".into(),
        },
        false => Stop::Restart {
            reason: "FerroLB speaker restarting".into(),
        },
    };
    let kept = out.bgp.stop(how).await;
    out.l2.apply(&Owned::new(), &Links::default());
    if let Some(s) = &mut out.steering {
        s.remove(kept).await;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Woke {
    Api,
    Links,
    Gossip,
    Timer,
    Stop,
}

async fn wait(
    dirty: &Notify,
    links: &mut watch::Receiver<Links>,
    live: &mut Option<watch::Receiver<BTreeSet<String>>>,
    stop: &mut watch::Receiver<bool>,
    wake_at: Option<Instant>,
) -> Woke {
    let gossip = async {
        if let Some(rx) = live
            && rx.changed().await.is_ok()
        {
            return;
        }
        std::future::pending().await
    };
    let timer = async {
        match wake_at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    let woke = tokio::select! {
        biased;
        _ = stop.changed() => Woke::Stop,
        _ = gossip => Woke::Gossip,
        _ = links.changed() => Woke::Links,
        _ = dirty.notified() => Woke::Api,
        _ = timer => Woke::Timer,
    };
    if woke == Woke::Api {
        // API changes come in bursts (a Service, then its status, then its slices):
        // one plan for the burst.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    woke
}
