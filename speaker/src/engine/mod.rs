//! The speaker's decisions, as a plain state machine: what changed (the API's objects,
//! the node's links, the gossip's live set) and the time in, [`Actions`] out (addresses
//! to own, steering rules, statuses, Events, gossip seeds, when to wake). No tokio, no
//! client, no clock: the shell in [`crate::run`] feeds it and carries out what it returns,
//! and the tests drive it with simulated time.
//!
//! Every step plans from scratch (the planner is fast); the engine keeps only what it
//! needs to tell changes apart (Events once per change, statuses when they differ).

mod bgp;
mod claim;
mod isolation;
mod steering;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_crds::config::Config;
use ferrolb_crds::service::{ServiceEvent, ServiceKey};

use ferrolb_crds::api::ServiceL2StatusStatus;

use crate::api::status::{self, Desired};
use crate::host::links::Links;
use crate::host::nftables::Steer;
use crate::l2::Owned;
use crate::planner::{self, Input, NodeInfo, ServiceInfo};

pub use bgp::{BfdSpec, BgpActions, Intents, Limits, Password, PeerIntent, PeerSpec, Wanted};
pub use claim::{Mine, claim};
pub use isolation::Isolation;

/// Up to this many Services starting to be announced at once are logged one by one at
/// info level; beyond (a speaker's first plan), each at debug level and their count at
/// info: 10,000 lines cost tens of milliseconds before the first announcement.
const LOG_EACH_UP_TO: usize = 20;

/// What the speaker plans from, as read from the API after each change.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Services of ours that show addresses, with their endpoints (shared with the
    /// stores and from one view to the next).
    pub services: Vec<Arc<ServiceInfo>>,
    /// The valid configuration.
    pub config: Config,
    /// Every Node.
    pub nodes: Vec<NodeInfo>,
    /// This node's InternalIPs (the dataplane's targets).
    pub node_ips: Vec<IpAddr>,
    /// The other speakers' gossip addresses (empty without gossip).
    pub seeds: Vec<SocketAddr>,
}

/// How the engine decides.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name.
    pub node: String,
    /// Interface patterns never used by default.
    pub excludes: Vec<String>,
    /// Compute steering rules (the nftables dataplane is on).
    pub steering: bool,
    /// Liveness comes from the gossip (else from Node readiness alone).
    pub gossip: bool,
    /// With the gossip isolated this long while other nodes are Ready, use Node readiness.
    pub fallback_after: Duration,
    /// The graceful restart time offered to BGP peers with `enableGracefulRestart`.
    pub restart_time: Duration,
}

/// What changed since the last step; nothing at all is a timer's wake-up.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// The API's objects, read again.
    pub view: Option<View>,
    /// The node's links and addresses.
    pub links: Option<Links>,
    /// The gossip's live set (ignored without gossip).
    pub live: Option<BTreeSet<String>>,
}

/// What the shell must do after a step.
#[derive(Debug, Default, PartialEq)]
pub struct Actions {
    /// New gossip seeds, only when they changed (each change makes the gossip announce).
    pub seeds: Option<Vec<SocketAddr>>,
    /// The plan to carry out; `None` while the engine waits (no API view yet, or the
    /// gossip has not had its chance to find the others).
    pub announce: Option<Announce>,
    /// Step again (with no changes) at this time unless something changes first.
    pub wake_at: Option<Instant>,
    /// The BGP sessions, records and Events, when they changed (always at the first
    /// view).
    pub bgp: Option<BgpActions>,
}

/// This node's share of the plan, to carry out in this order: steering wide (the old and
/// new rules, `lo` with the old and new addresses), then Layer 2 ownership, statuses and
/// Events, then steering narrowed to exactly `steering` and `owned`.
#[derive(Debug, PartialEq)]
pub struct Announce {
    /// Address → interfaces to announce it on (Layer 2).
    pub owned: Owned,
    /// The steering rules (with the dataplane on): for every address this node may have
    /// to take over, so a takeover waits for no nft run.
    pub steering: Option<Arc<BTreeSet<Steer>>>,
    /// Announce every owned address again (a member came back: it may have announced
    /// ours while cut off).
    pub reannounce: bool,
    /// The node's ServiceL2Status objects, when they changed (always at the first plan:
    /// the writer waits for it).
    pub statuses: Option<Desired<ServiceL2StatusStatus>>,
    /// Events to record.
    pub events: Vec<ServiceEvent>,
    /// Figures for the metrics.
    pub figures: Figures,
}

/// A plan's figures for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// IPv4 addresses owned.
    pub v4: usize,
    /// IPv6 addresses owned.
    pub v6: usize,
    /// Live speakers the plan counted.
    pub members: usize,
    /// Addresses gained or given up by this plan.
    pub changes: u64,
}

/// What was carried out last, to tell changes apart.
#[derive(Debug, Default)]
struct Last {
    planned: bool,
    members_changed: bool,
    owned: Owned,
    /// Service → interfaces it is announced on, from this node.
    announced: BTreeMap<ServiceKey, Vec<String>>,
    /// Services warned about, with the interfaces missing.
    warned: BTreeMap<ServiceKey, BTreeSet<String>>,
    statuses: Desired<ServiceL2StatusStatus>,
}

/// The speaker's state.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    started: Instant,
    view: Option<View>,
    links: Links,
    /// The gossip's live set; `None` without gossip.
    gossip: Option<BTreeSet<String>>,
    isolation: Isolation,
    fallback: bool,
    seeds: Vec<SocketAddr>,
    /// Shared with the shell: a takeover hands it over without copying every rule.
    rules: Option<Arc<BTreeSet<Steer>>>,
    bgp: bgp::Bgp,
    last: Last,
}

impl Engine {
    /// An engine started at `started` (the gossip's chance to find the others counts
    /// from then).
    pub fn new(settings: Settings, started: Instant) -> Self {
        let gossip = settings.gossip.then(|| BTreeSet::from([settings.node.clone()]));
        let bgp = bgp::Bgp::new(settings.restart_time);
        Self {
            settings,
            started,
            view: None,
            links: Links::default(),
            gossip,
            isolation: Isolation::default(),
            fallback: false,
            seeds: Vec::new(),
            rules: None,
            bgp,
            last: Last::default(),
        }
    }

    /// Drops the API view ahead of reading a fresh one, so that two never live at once
    /// (the view of 1,000 Services with their endpoints weighs about a megabyte). The
    /// next step must bring a view.
    pub fn release_view(&mut self) {
        self.view = None;
    }

    /// Whether this node is leaving rather than restarting its speaker: its Node is
    /// cordoned, NotReady (as a node shutting down gracefully is marked) or gone. A
    /// stopping speaker then makes its BGP peers drop its routes at once.
    pub fn node_leaving(&self) -> bool {
        let me = self.settings.node.as_str();
        self.view
            .as_ref()
            .and_then(|v| v.nodes.iter().find(|n| n.name == me))
            .is_none_or(|n| n.unschedulable || !n.ready)
    }

    /// The links the last step planned with (the Layer 2 shell opens sockets on them).
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Takes in `changes` at `now` and decides.
    pub fn step(&mut self, changes: Changes, now: Instant) -> Actions {
        // The steering rules change only with the API or the links: a gossip change (a
        // takeover) plans with the rules at hand.
        let rules_stale = changes.view.is_some() || changes.links.is_some() || changes.live.is_none();
        let view_changed = changes.view.is_some();
        let mut actions = Actions::default();
        if let Some(mut view) = changes.view {
            // Sorted by key, the plans' Service sets are compared and built in one pass
            // (the stores' views already are: this costs one comparison per Service).
            view.services.sort_by(|a, b| a.key.cmp(&b.key));
            if self.settings.gossip && view.seeds != self.seeds {
                self.seeds = view.seeds.clone();
                actions.seeds = Some(view.seeds.clone());
            }
            self.view = Some(view);
        }
        if let Some(links) = changes.links {
            self.links = links;
        }
        if let (Some(live), Some(gossip)) = (changes.live, &mut self.gossip) {
            *gossip = live;
            self.last.members_changed |= self.last.planned;
        }
        let Some(view) = &self.view else {
            return actions;
        };
        let me = self.settings.node.as_str();
        // BGP needs no liveness view: each node decides from its own Node.
        if view_changed {
            actions.bgp = self.bgp.step(view, me);
        }
        let after = self.settings.fallback_after;
        // Before the gossip has had a chance to find the others, a speaker alone would
        // claim every address: wait, then fall back to Node readiness if still alone.
        self.isolation = self.isolation.observe(self.gossip.as_ref(), &view.nodes, me, now);
        let live = match &self.gossip {
            None => ready_nodes(&view.nodes),
            Some(_) if self.isolation.fallback(now, after) => {
                if !self.fallback {
                    tracing::warn!("no other speaker reachable by gossip: using Node readiness");
                }
                self.fallback = true;
                ready_nodes(&view.nodes)
            }
            Some(_) if self.isolation.isolated() && !self.last.planned && now < self.started + after => {
                actions.wake_at = Some(self.started + after);
                return actions;
            }
            Some(live) => {
                self.fallback = false;
                live.clone()
            }
        };
        // Without an L2Advertisement no address is announced by Layer 2 (a BGP-only
        // cluster): the two Layer 2 plans of each step are skipped, not made empty at
        // 3 ms each for 10,000 Services.
        let layer2 = !view.config.l2_advertisements.is_empty();
        let plan_with = |live: &BTreeSet<String>| match layer2 {
            true => planner::plan(Input {
                config: &view.config,
                services: &view.services,
                nodes: &view.nodes,
                live,
            }),
            false => planner::Plan::default(),
        };
        let services = &view.services;
        let excludes = &self.settings.excludes;
        let mine = claim(me, &plan_with(&live), &self.links, excludes);
        if self.settings.steering && (rules_stale || self.rules.is_none()) {
            // Rules for every address this node may have to take over: its plan were it
            // the only live node.
            let eligible = plan_with(&BTreeSet::from([me.to_string()]));
            let owned = claim(me, &eligible, &self.links, excludes).owned;
            let mut rules = steering::rules(me, &eligible, services, &view.node_ips, &self.links, &owned);
            // ...and every address this node announces by BGP (the routers send its
            // traffic here).
            let routed = self
                .bgp
                .intents()
                .values()
                .flat_map(|intent| intent.services.iter().map(|s| &**s));
            rules.extend(steering::routed(routed, &view.node_ips));
            self.rules = Some(Arc::new(rules));
        }
        let mut announce = self.last.take(mine, me, services, live.len());
        announce.steering = self
            .settings
            .steering
            .then(|| self.rules.clone().unwrap_or_default());
        actions.announce = Some(announce);
        actions.wake_at = self.isolation.wake_at(now, after);
        actions
    }
}

impl Last {
    /// Takes `mine` as carried out, and says what to do about it.
    fn take(&mut self, mine: Mine, me: &str, services: &[Arc<ServiceInfo>], members: usize) -> Announce {
        let Mine {
            owned,
            announced,
            missing,
        } = mine;
        let changes = owned.keys().filter(|ip| !self.owned.contains_key(ip)).count()
            + self.owned.keys().filter(|ip| !owned.contains_key(ip)).count();
        let reannounce = std::mem::take(&mut self.members_changed) && !owned.is_empty();
        let mut events = Vec::new();
        let started: Vec<_> = announced
            .iter()
            .filter(|(service, _)| !self.announced.contains_key(*service))
            .collect();
        let quiet = started.len() > LOG_EACH_UP_TO;
        if quiet {
            tracing::info!(
                services = started.len(),
                "announcing (each Service at debug level)"
            );
        }
        for (service, interfaces) in started {
            let info = planner::find(services, service);
            let ips: Vec<String> = info
                .map(|s| s.ips.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            match quiet {
                true => tracing::debug!(%service, ips = ?ips, ?interfaces, "announcing"),
                false => tracing::info!(%service, ips = ?ips, ?interfaces, "announcing"),
            }
            let on = if interfaces.is_empty() {
                "no interface".to_string()
            } else {
                interfaces.join(", ")
            };
            events.push(event(
                service,
                info,
                false,
                "nodeAssigned",
                format!(
                    "announcing {} from node {me} with protocol layer2 on {on}",
                    ips.join(", ")
                ),
            ));
        }
        for service in self.announced.keys().filter(|s| !announced.contains_key(*s)) {
            tracing::info!(%service, "no longer announcing");
        }
        for (service, names) in &missing {
            if self.warned.get(service) != Some(names) {
                let list: Vec<&str> = names.iter().map(String::as_str).collect();
                events.push(event(
                    service,
                    planner::find(services, service),
                    true,
                    "InterfacesMissing",
                    format!(
                        "node {me} has none of the advertisement's interfaces {}",
                        list.join(", ")
                    ),
                ));
            }
        }
        let desired: Desired<ServiceL2StatusStatus> = announced
            .iter()
            .map(|(service, interfaces)| {
                let (name, record) = status::record(me, service, interfaces);
                (name.into(), Arc::new(record))
            })
            .collect();
        let statuses = (!self.planned || desired != self.statuses).then(|| desired.clone());
        let v4 = owned.keys().filter(|ip| ip.is_ipv4()).count();
        let figures = Figures {
            v4,
            v6: owned.len() - v4,
            members,
            changes: changes as u64,
        };
        *self = Self {
            planned: true,
            members_changed: false,
            owned: owned.clone(),
            announced,
            warned: missing,
            statuses: desired,
        };
        Announce {
            owned,
            steering: None,
            reannounce,
            statuses,
            events,
            figures,
        }
    }
}

/// An Event on a Service (Layer 2's and BGP's).
fn event(
    service: &ServiceKey,
    info: Option<&ServiceInfo>,
    warning: bool,
    reason: &'static str,
    message: String,
) -> ServiceEvent {
    ServiceEvent {
        key: service.clone(),
        uid: info.and_then(|s| s.uid.clone()),
        warning,
        action: "Announce",
        reason,
        message,
    }
}

fn ready_nodes(nodes: &[NodeInfo]) -> BTreeSet<String> {
    nodes.iter().filter(|n| n.ready).map(|n| n.name.clone()).collect()
}
