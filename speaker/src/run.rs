//! The running speaker: watches feed stores; every change (API, gossip, links) leads to
//! one fresh plan, which the Layer 2 shell, the dataplane and the status writer apply.
//!
//! ```text
//!   watches (Services, EndpointSlices, Nodes, pools, L2Advertisements) ─┐
//!   gossip live set ─────────────────────────────────────────────────────┼─► plan ─► L2 (ARP/NDP)
//!   netlink links/addresses ─────────────────────────────────────────────┘     ├──► nftables + lo
//!                                                                              ├──► ServiceL2Status
//!                                                                              └──► Events
//! ```
//!
//! Every speaker computes the same plan, so no speaker asks another who announces what.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferrolb_crds::api::{IPAddressPool, L2Advertisement};
use ferrolb_crds::config::{self, Objects};
use ferrolb_crds::service::ServiceEvent;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{Notify, mpsc, watch};

use crate::announcer::Schedule;
use crate::dataplane::{Nftables, Steer};
use crate::interfaces::Links;
use crate::l2::{L2, Owned};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::netlink::Loopback;
use crate::planner::{self, Input, Plan, ServiceInfo, SliceInfo};
use crate::status;
use crate::watch::{Listed, Records, WatchEnded};
use ferrolb_crds::service::ClassPolicy;

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
}

/// The records the watches keep.
struct Stores {
    services: Records<ServiceInfo>,
    slices: Records<SliceInfo>,
    nodes: Records<Node>,
    pools: Records<IPAddressPool>,
    ads: Records<L2Advertisement>,
}

/// Runs until `stop` turns true; then says goodbye and removes what it installed.
pub async fn run(
    client: Client,
    mut options: Options,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let dirty = Arc::new(Notify::new());
    let stores = Stores {
        services: Records::watch(Api::all(client.clone()), &dirty, {
            let class = options.class.clone();
            move |s: Service| planner::service_info(&s, &class)
        }),
        slices: Records::watch(Api::all(client.clone()), &dirty, |s: EndpointSlice| {
            planner::slice_info(&s)
        }),
        nodes: Records::watch(Api::all(client.clone()), &dirty, |n| Some(prune_node(n))),
        pools: Records::watch(
            Api::namespaced(client.clone(), &options.namespace),
            &dirty,
            |p: IPAddressPool| Some(unannotated(p)),
        ),
        ads: Records::watch(
            Api::namespaced(client.clone(), &options.namespace),
            &dirty,
            |a: L2Advertisement| Some(unannotated(a)),
        ),
    };
    let (links_tx, mut links) = watch::channel(Links::default());
    tokio::spawn(async move {
        loop {
            let Err(err) = crate::netlink::follow(&links_tx).await;
            tracing::error!(error = %err, "lost track of the node's links: following again in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let l2 = L2::start(options.schedule);
    metrics.attach(
        l2.clone(),
        options.membership.as_ref().map(|m| m.counters.clone()),
    );
    let (status_tx, status_rx) = watch::channel(Arc::new(status::Desired::new()));
    tokio::spawn(status::write_statuses(
        client.clone(),
        options.namespace.clone(),
        options.node.clone(),
        status_rx,
        status::RESYNC,
    ));
    let (event_tx, event_rx) = mpsc::channel(1024);
    tokio::spawn(status::write_events(
        client.clone(),
        options.node.clone(),
        event_rx,
    ));
    let mut steering = if options.dataplane {
        Some(Steering {
            nft: Nftables::default(),
            lo: Loopback::open().await?,
            rules: None,
        })
    } else {
        None
    };

    tracing::info!(node = %options.node, "waiting for the initial lists");
    if stores.listed(&mut stop).await? == Listed::Stopped {
        tracing::info!("stopping before the initial lists were complete");
        withdraw(options.membership.take(), &l2, steering.as_mut()).await;
        return Ok(());
    }
    let mut live_rx = options.membership.as_ref().map(|m| m.live.clone());
    let started = Instant::now();
    let mut isolation = Isolation::default();
    let mut state = State::default();
    // What woke the loop decides what is read again: the stores only change with the
    // API, the steering rules only with the API or the links. A gossip change (a
    // takeover) plans from what is at hand.
    let mut woke = Woke::Api;
    let mut view: Option<View> = None;
    loop {
        if woke == Woke::Api {
            view = None;
        }
        let fresh = view.is_none();
        let gossip_at = options.membership.as_ref().map(|m| m.advertise);
        let View {
            services: services_list,
            config,
            nodes,
            node_ips,
            seeds,
        } = view.get_or_insert_with(|| View::read(&stores, &options.namespace, &options.node, gossip_at));
        let gossip_live = live_rx.as_mut().map(|rx| rx.borrow_and_update().clone());
        if let (Some(m), true) = (&options.membership, fresh) {
            // Only a change is sent: each list makes the gossip announce to strangers.
            if *seeds != state.seeds {
                state.seeds = seeds.clone();
                m.seeds(seeds.clone()).await;
            }
        }
        // Before the gossip has had a chance to find the others, a speaker alone would
        // claim every address: wait, then fall back to Node readiness if still alone.
        let now = Instant::now();
        isolation = isolation.observe(gossip_live.as_ref(), nodes, &options.node, now);
        let live = match gossip_live {
            None => ready_nodes(nodes),
            Some(_) if isolation.fallback(now, options.fallback_after) => {
                if !state.fallback {
                    tracing::warn!("no other speaker reachable by gossip: using Node readiness");
                }
                state.fallback = true;
                ready_nodes(nodes)
            }
            Some(_) if isolation.isolated() && !state.planned && now < started + options.fallback_after => {
                woke = wait(
                    &dirty,
                    &mut links,
                    &mut live_rx,
                    &mut stop,
                    Some(started + options.fallback_after - now),
                )
                .await;
                if *stop.borrow() {
                    break;
                }
                continue;
            }
            Some(live) => {
                state.fallback = false;
                live
            }
        };
        let links_now = links.borrow_and_update().clone();
        let plan_with = |live: &BTreeSet<String>| {
            planner::plan(Input {
                config,
                services: services_list,
                nodes,
                live,
            })
        };
        let plan = plan_with(&live);
        let services: BTreeMap<&str, &ServiceInfo> =
            services_list.iter().map(|s| (s.key.as_str(), s)).collect();
        let mine = claim(&options, &plan, &links_now);
        if let Some(s) = &mut steering {
            if woke != Woke::Gossip || s.rules.is_none() {
                // Rules for every address this node may have to take over (its plan
                // were it the only live node), so a takeover waits for no nft run.
                let eligible = plan_with(&BTreeSet::from([options.node.clone()]));
                s.rules = Some(steering_rules(
                    &options.node,
                    &eligible,
                    &services,
                    node_ips,
                    &links_now,
                    &claim(&options, &eligible, &links_now).owned,
                ));
            }
            // Steering is in place before the gratuitous ARP draws traffic; `lo` carries
            // only owned addresses (the kernel would answer ARP for the others).
            s.widen(&mine.owned).await;
        }
        state.apply(
            mine, &options, &services, &links_now, &l2, &event_tx, &metrics, &live, &status_tx,
        );
        if let Some(s) = &mut steering {
            // ...and stays until the node has stopped answering for what it gave up.
            s.narrow(&state.owned).await;
        }
        metrics.ready.store(true, Ordering::Relaxed);
        woke = wait(
            &dirty,
            &mut links,
            &mut live_rx,
            &mut stop,
            isolation.wake_in(Instant::now(), options.fallback_after),
        )
        .await;
        if *stop.borrow() {
            break;
        }
        tracing::debug!(?woke, "planning");
        if woke == Woke::Gossip {
            state.members_changed = true;
        }
    }
    tracing::info!("stopping: leaving the gossip and withdrawing");
    withdraw(options.membership.take(), &l2, steering.as_mut()).await;
    Ok(())
}

/// Leaves the gossip, stops answering and removes the steering.
async fn withdraw(membership: Option<Membership>, l2: &L2, steering: Option<&mut Steering>) {
    if let Some(m) = membership {
        m.leave().await;
    }
    l2.apply(&Owned::new(), &Links::default());
    if let Some(Steering { nft, lo, .. }) = steering {
        if let Err(err) = nft.remove().await {
            tracing::warn!(error = %err, "cannot remove the nftables table");
        }
        lo.set(&BTreeSet::new()).await;
    }
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
    timer: Option<Duration>,
) -> Woke {
    let gossip = async {
        match live {
            Some(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    let woke = tokio::select! {
        biased;
        _ = stop.changed() => Woke::Stop,
        _ = gossip => Woke::Gossip,
        _ = links.changed() => Woke::Links,
        _ = dirty.notified() => Woke::Api,
        _ = tokio::time::sleep(timer.unwrap_or(Duration::from_secs(3600))) => Woke::Timer,
    };
    if woke == Woke::Api {
        // API changes come in bursts (a Service, then its status, then its slices):
        // one plan for the burst.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    woke
}

/// Since when the gossip has left this speaker alone while other Nodes are Ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Isolation {
    since: Option<Instant>,
}

impl Isolation {
    /// Takes in the gossip's live set (`None`: no gossip, `--membership api`, which
    /// nothing can isolate) at `now`.
    fn observe(
        self,
        live: Option<&BTreeSet<String>>,
        nodes: &[planner::NodeInfo],
        me: &str,
        now: Instant,
    ) -> Self {
        let alone = live.is_some_and(|live| {
            live.iter().all(|m| m == me) && nodes.iter().any(|n| n.ready && n.name != me)
        });
        Self {
            since: if alone { self.since.or(Some(now)) } else { None },
        }
    }

    fn isolated(&self) -> bool {
        self.since.is_some()
    }

    /// Whether liveness must come from Node readiness instead of the gossip.
    fn fallback(&self, now: Instant, after: Duration) -> bool {
        self.since
            .is_some_and(|since| now.saturating_duration_since(since) >= after)
    }

    /// How long until [`Self::fallback`] turns true, when it will (nothing else wakes
    /// the loop then).
    fn wake_in(&self, now: Instant, after: Duration) -> Option<Duration> {
        let left = (self.since? + after).saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }
}

fn ready_nodes(nodes: &[planner::NodeInfo]) -> BTreeSet<String> {
    nodes.iter().filter(|n| n.ready).map(|n| n.name.clone()).collect()
}

/// The gossip addresses of the other nodes: their InternalIP of the family of this
/// speaker's own gossip address (its socket reaches no other), on the same port.
fn seeds<'a>(nodes: impl Iterator<Item = &'a Node>, me: &str, mine: SocketAddr) -> Vec<SocketAddr> {
    nodes
        .filter(|n| n.name_any() != me)
        .filter_map(|n| node_ips(n).into_iter().find(|ip| ip.is_ipv4() == mine.is_ipv4()))
        .map(|ip| SocketAddr::new(ip, mine.port()))
        .collect()
}

/// An object without its field-manager records and annotations, often most of its size
/// (kubectl's last-applied copy, controllers' bookkeeping).
fn unannotated<K: Resource>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    object
}

/// Keeps of a Node its labels, the type and status of its conditions and its addresses
/// (a Node's image list alone can be tens of kilobytes).
fn prune_node(node: Node) -> Node {
    let mut node = unannotated(node);
    if let Some(status) = node.status.take() {
        node.status = Some(NodeStatus {
            addresses: status.addresses,
            conditions: status.conditions.map(|list| {
                list.into_iter()
                    .map(|c| NodeCondition {
                        type_: c.type_,
                        status: c.status,
                        ..NodeCondition::default()
                    })
                    .collect()
            }),
            ..NodeStatus::default()
        });
    }
    node.spec = None;
    node
}

/// A Node's InternalIP addresses.
fn node_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

impl Stores {
    /// Waits for every first list, or until `stop` turns true.
    async fn listed(&self, stop: &mut watch::Receiver<bool>) -> Result<Listed, WatchEnded> {
        // Once `stop` is true, each wait after the first returns at once.
        let all = [
            self.services.listed(stop).await?,
            self.slices.listed(stop).await?,
            self.nodes.listed(stop).await?,
            self.pools.listed(stop).await?,
            self.ads.listed(stop).await?,
        ];
        Ok(if all.contains(&Listed::Stopped) {
            Listed::Stopped
        } else {
            Listed::Complete
        })
    }
}

/// What the loop reads from the stores, read again only after an API change.
struct View {
    services: Vec<ServiceInfo>,
    config: config::Config,
    nodes: Vec<planner::NodeInfo>,
    /// This node's InternalIPs (the dataplane's targets).
    node_ips: Vec<IpAddr>,
    /// The other speakers' gossip addresses, when gossip runs at `gossip_at`.
    seeds: Vec<SocketAddr>,
}

impl View {
    fn read(stores: &Stores, namespace: &str, me: &str, gossip_at: Option<SocketAddr>) -> Self {
        let objects = Objects {
            pools: stores.pools.read(|m| m.values().cloned().collect()),
            l2_advertisements: stores.ads.read(|m| m.values().cloned().collect()),
            nodes: stores.nodes.read(|m| m.values().cloned().collect()),
            ..Objects::default()
        };
        Self {
            services: stores.services.read(|services| {
                stores
                    .slices
                    .read(|slices| planner::join(services.values(), slices.values()))
            }),
            // Invalid objects are left out, as the controller reports them.
            config: config::build(namespace, &objects).config,
            nodes: objects.nodes.iter().map(planner::node_info).collect(),
            node_ips: objects
                .nodes
                .iter()
                .find(|n| n.name_any() == me)
                .map(node_ips)
                .unwrap_or_default(),
            seeds: gossip_at
                .map(|at| seeds(objects.nodes.iter(), me, at))
                .unwrap_or_default(),
        }
    }
}

/// What was applied last, to tell changes apart.
#[derive(Default)]
struct State {
    seeds: Vec<SocketAddr>,
    planned: bool,
    fallback: bool,
    members_changed: bool,
    owned: Owned,
    /// Service → interfaces it is announced on, from this node.
    announced: BTreeMap<String, Vec<String>>,
    /// Services warned about, with the interfaces missing.
    warned: BTreeMap<String, BTreeSet<String>>,
}

/// This node's share of a plan.
struct Mine {
    /// Address → interfaces to announce it on.
    owned: Owned,
    /// Service → interfaces it is announced on.
    announced: BTreeMap<String, Vec<String>>,
    /// Service → listed interfaces this node lacks.
    missing: BTreeMap<String, BTreeSet<String>>,
}

fn claim(options: &Options, plan: &Plan, links: &Links) -> Mine {
    let mut mine = Mine {
        owned: Owned::new(),
        announced: BTreeMap::new(),
        missing: BTreeMap::new(),
    };
    for (ip, a) in plan.of_node(&options.node) {
        let choice = links.choose(*ip, &a.interfaces, &options.excludes);
        for service in &a.services {
            mine.announced
                .entry(service.to_string())
                .or_default()
                .extend(choice.interfaces.iter().cloned());
            if !choice.missing.is_empty() {
                mine.missing
                    .entry(service.to_string())
                    .or_default()
                    .extend(choice.missing.iter().cloned());
            }
        }
        if !choice.interfaces.is_empty() {
            mine.owned.insert(*ip, choice.interfaces);
        }
    }
    for list in mine.announced.values_mut() {
        list.sort();
        list.dedup();
    }
    mine
}

/// The dataplane of the announced addresses: nft rules and the VIPs on `lo`.
struct Steering {
    nft: Nftables,
    lo: Loopback,
    /// The rules wanted (every address the node may take over), computed again only
    /// when the API or the links change.
    rules: Option<BTreeSet<Steer>>,
}

impl Steering {
    /// Puts the wanted rules in place, keeping rules they do not replace (same address,
    /// port and protocol: a map holds one target each), and adds `owned` to `lo`.
    async fn widen(&mut self, owned: &Owned) {
        let wanted = self.rules.clone().unwrap_or_default();
        let key = |s: &Steer| (s.protocol.clone(), s.vip, s.port);
        let replaced: BTreeSet<_> = wanted.iter().map(key).collect();
        let kept = self.nft.current().filter(|s| !replaced.contains(&key(s)));
        let rules: BTreeSet<Steer> = kept.chain(&wanted).cloned().collect();
        let vips: BTreeSet<IpAddr> = self.lo.added().iter().chain(owned.keys()).copied().collect();
        self.put(&rules, &vips).await;
    }

    /// Puts exactly the wanted rules in place and exactly `owned` on `lo`.
    async fn narrow(&mut self, owned: &Owned) {
        let rules = self.rules.clone().unwrap_or_default();
        self.put(&rules, &owned.keys().copied().collect()).await;
    }

    async fn put(&mut self, rules: &BTreeSet<Steer>, vips: &BTreeSet<IpAddr>) {
        if let Err(err) = self.nft.apply(rules).await {
            tracing::error!(error = %err, "cannot write the nftables steering");
        }
        self.lo.set(vips).await;
    }
}

impl State {
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        mine: Mine,
        options: &Options,
        services: &BTreeMap<&str, &ServiceInfo>,
        links: &Links,
        l2: &L2,
        events: &mpsc::Sender<ServiceEvent>,
        metrics: &Metrics,
        live: &BTreeSet<String>,
        statuses: &watch::Sender<Arc<status::Desired>>,
    ) {
        let Mine {
            owned,
            announced,
            missing,
        } = mine;
        let changes = owned.keys().filter(|ip| !self.owned.contains_key(ip)).count()
            + self.owned.keys().filter(|ip| !owned.contains_key(ip)).count();
        l2.apply(&owned, links);
        if std::mem::take(&mut self.members_changed) && !owned.is_empty() {
            // A returning member may have announced our addresses while cut off
            // (partition heal): the deterministic winner announces again.
            l2.reannounce();
        }
        for (service, interfaces) in &announced {
            if self.announced.contains_key(service) {
                continue;
            }
            let info = services.get(service.as_str());
            let ips: Vec<String> = info
                .map(|s| s.ips.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            tracing::info!(%service, ips = ?ips, ?interfaces, "announcing");
            event(
                events,
                service,
                info.and_then(|s| s.uid.clone()),
                false,
                "nodeAssigned",
                format!(
                    "announcing {} from node {} with protocol layer2 on {}",
                    ips.join(", "),
                    options.node,
                    if interfaces.is_empty() {
                        "no interface".to_string()
                    } else {
                        interfaces.join(", ")
                    }
                ),
            );
        }
        for service in self.announced.keys().filter(|s| !announced.contains_key(*s)) {
            tracing::info!(%service, "no longer announcing");
        }
        for (service, names) in &missing {
            if self.warned.get(service) != Some(names) {
                let list: Vec<&str> = names.iter().map(String::as_str).collect();
                event(
                    events,
                    service,
                    services.get(service.as_str()).and_then(|s| s.uid.clone()),
                    true,
                    "InterfacesMissing",
                    format!(
                        "node {} has none of the advertisement's interfaces {}",
                        options.node,
                        list.join(", ")
                    ),
                );
            }
        }
        self.warned = missing;
        let desired: status::Desired = announced
            .iter()
            .map(|(service, interfaces)| status::record(&options.node, service, interfaces))
            .collect();
        // The first plan is always sent, empty or not: the writer waits for it.
        let first = !self.planned;
        statuses.send_if_modified(|old| {
            let changed = first || **old != desired;
            if changed {
                *old = Arc::new(desired);
            }
            changed
        });
        let v4 = owned.keys().filter(|ip| ip.is_ipv4()).count();
        metrics.set_plan(v4, owned.len() - v4, live.len(), changes as u64);
        self.owned = owned;
        self.announced = announced;
        self.planned = true;
    }
}

/// Queues an Event on a Service (dropped when the queue is full: Events are advice).
fn event(
    events: &mpsc::Sender<ServiceEvent>,
    service: &str,
    uid: Option<String>,
    warning: bool,
    reason: &'static str,
    message: String,
) {
    let (namespace, name) = service.split_once('/').unwrap_or(("", service));
    let event = ServiceEvent {
        namespace: namespace.into(),
        name: name.into(),
        uid,
        warning,
        action: "Announce",
        reason,
        message,
    };
    if events.try_send(event).is_err() {
        tracing::debug!(%service, "event queue full: Event dropped");
    }
}

/// The dataplane's rules: every port with a NodePort of every Service `plan` gives this
/// node, to the node's address of the VIP's family (from the API, `api_ips`, or else
/// from the announcing interface).
fn steering_rules(
    node: &str,
    plan: &Plan,
    services: &BTreeMap<&str, &ServiceInfo>,
    api_ips: &[IpAddr],
    links: &Links,
    owned: &Owned,
) -> BTreeSet<Steer> {
    let mut rules = BTreeSet::new();
    for (ip, a) in plan.of_node(node) {
        let Some(ifaces) = owned.get(ip) else { continue };
        let node_ip = api_ips
            .iter()
            .copied()
            .find(|n| n.is_ipv4() == ip.is_ipv4())
            .or_else(|| {
                ifaces
                    .iter()
                    .filter_map(|name| links.by_name(name))
                    .find_map(|l| links.primary(l.index, ip.is_ipv4()))
            });
        let Some(node_ip) = node_ip else { continue };
        for port in a
            .services
            .iter()
            .filter_map(|s| services.get(*s))
            .flat_map(|s| &s.ports)
        {
            rules.insert(Steer {
                protocol: port.protocol.clone(),
                vip: *ip,
                port: port.port,
                node: node_ip,
                node_port: port.node_port,
            });
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ips: &[&str]) -> Node {
        let addresses: Vec<_> = ips
            .iter()
            .map(|ip| serde_json::json!({"type": "InternalIP", "address": ip}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"addresses": addresses},
        }))
        .unwrap()
    }

    fn nodes(list: &[(&str, bool)]) -> Vec<planner::NodeInfo> {
        list.iter()
            .map(|(name, ready)| planner::NodeInfo {
                name: name.to_string(),
                labels: BTreeMap::new(),
                ready: *ready,
                network_unavailable: false,
            })
            .collect()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn without_gossip_nothing_isolates_and_nothing_wakes() {
        let t0 = Instant::now();
        let after = Duration::from_secs(5);
        let cluster = nodes(&[("me", true), ("n2", true), ("n3", true)]);
        let mut isolation = Isolation::default();
        for s in [0, 1, 10, 100] {
            let now = t0 + Duration::from_secs(s);
            isolation = isolation.observe(None, &cluster, "me", now);
            assert!(!isolation.isolated(), "at {s} s");
            assert!(!isolation.fallback(now, after), "at {s} s");
            assert_eq!(isolation.wake_in(now, after), None, "at {s} s");
        }
    }

    #[test]
    fn gossip_with_peers_is_not_isolated() {
        let t0 = Instant::now();
        let after = Duration::from_secs(5);
        let cluster = nodes(&[("me", true), ("n2", true)]);
        let isolation = Isolation::default().observe(Some(&names(&["me", "n2"])), &cluster, "me", t0);
        assert!(!isolation.isolated());
        assert!(!isolation.fallback(t0 + after * 10, after));
        assert_eq!(isolation.wake_in(t0, after), None);
        // Alone with no other Node Ready: nobody to find, nothing to fall back to.
        let alone = nodes(&[("me", true), ("n2", false)]);
        let isolation = Isolation::default().observe(Some(&names(&["me"])), &alone, "me", t0);
        assert!(!isolation.isolated());
    }

    #[test]
    fn gossip_alone_while_others_are_ready_falls_back_after_the_delay() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let after = Duration::from_secs(5);
        let cluster = nodes(&[("me", true), ("n2", true)]);
        let me = names(&["me"]);
        let isolation = Isolation::default().observe(Some(&me), &cluster, "me", at(1000));
        assert!(isolation.isolated());
        assert!(!isolation.fallback(at(1000), after));
        assert_eq!(isolation.wake_in(at(1000), after), Some(after));
        // Seen again later: isolated since the first time, not since the last.
        let isolation = isolation.observe(Some(&me), &cluster, "me", at(3000));
        assert_eq!(isolation.wake_in(at(3000), after), Some(Duration::from_secs(3)));
        assert!(!isolation.fallback(at(5999), after));
        assert!(isolation.fallback(at(6000), after));
        // Fallen back: only a change (gossip or API) can alter that, no timer needed.
        assert_eq!(isolation.wake_in(at(6000), after), None);
        // A peer appears: isolation ends.
        let isolation = isolation.observe(Some(&names(&["me", "n2"])), &cluster, "me", at(7000));
        assert!(!isolation.isolated());
        assert!(!isolation.fallback(at(7000), after));
    }

    #[test]
    fn seeds_are_the_other_nodes_of_the_gossip_family() {
        let nodes = [
            node("me", &["10.0.0.1", "fd00::1"]),
            node("dual", &["fd00::2", "10.0.0.2"]),
            node("v6only", &["fd00::3"]),
            node("none", &[]),
        ];
        let v4: SocketAddr = "10.0.0.1:7946".parse().unwrap();
        let v6: SocketAddr = "[fd00::1]:7946".parse().unwrap();
        let list = |mine| seeds(nodes.iter(), "me", mine);
        assert_eq!(list(v4), ["10.0.0.2:7946".parse().unwrap()]);
        assert_eq!(
            list(v6),
            [
                "[fd00::2]:7946".parse::<SocketAddr>().unwrap(),
                "[fd00::3]:7946".parse().unwrap()
            ]
        );
    }
}
