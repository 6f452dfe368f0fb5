//! The BGP side of a step: from the configuration and this node, the sessions to keep
//! and the routes each must carry, the node's ServiceBGPStatus records and the Events
//! of a change (pure; `crate::bgp` carries the sessions out).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::message::Family;
use ferrolb_bgp::session::{self, PeerAsn};
use ferrolb_bgp::update::{Attributes, Community, family_of};
use ferrolb_crds::api::ServiceBGPStatusStatus;
use ferrolb_crds::config::{self, CommunityValue, PeerAddress};
use ferrolb_crds::service::{ServiceEvent, ServiceKey};
use ipnet::IpNet;

use super::{View, event};
use crate::api::status::{self, Desired};
use crate::planner::{self, ServiceInfo};

/// How long a dial may take (MetalLB's native speaker: 10 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes a peer should have from this node.
pub type Wanted = Arc<BTreeMap<IpNet, Attributes>>;

/// How to reach a peer and run its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's address and port.
    pub address: SocketAddr,
    /// The local address to dial from (`sourceAddress`).
    pub source: Option<IpAddr>,
    /// `ebgpMultiHop`: send with TTL 255.
    pub multihop: bool,
    /// The TCP MD5 key (`password`, or the Secret of `passwordSecret`).
    pub password: Option<Password>,
    /// The node's addresses, next hops of the family the session's own address is not.
    pub node_v4: Option<Ipv4Addr>,
    /// See `node_v4`.
    pub node_v6: Option<Ipv6Addr>,
    /// The session's terms.
    pub session: session::Config,
    /// A BFD session beside it (`bfdProfile`).
    pub bfd: Option<BfdSpec>,
}

/// A BFD session to a BGP peer, from its BFDProfile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdSpec {
    /// The profile's timers and passive mode.
    pub timers: ferrolb_bfd::session::Config,
    /// Multihop (RFC 5883, port 4784), as the BGP session is `ebgpMultiHop`; single hop
    /// (RFC 5881, port 3784) sends and requires TTL 255.
    pub multihop: bool,
    /// The lowest TTL a multihop packet may arrive with (`minimumTtl`).
    pub minimum_ttl: u8,
    /// `echoMode` asked for: not supported, the session state says so.
    pub echo: bool,
}

/// A TCP MD5 key, never shown in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// One session this node keeps, and its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIntent {
    /// How to reach the peer and run the session.
    pub spec: PeerSpec,
    /// The routes it should have from this node.
    pub wanted: Wanted,
    /// The Services whose addresses those routes carry.
    pub services: Services,
}

/// Services sorted by key, each once (shared: the engine keeps the last plan's, and
/// most steps leave a peer's set as it was).
pub type Services = Arc<[Arc<ServiceInfo>]>;

/// The Services of `a` whose key is not in `b` (both sorted by key), in one pass.
fn missing_from<'s>(
    a: &'s [Arc<ServiceInfo>],
    b: &'s [Arc<ServiceInfo>],
) -> impl Iterator<Item = &'s Arc<ServiceInfo>> {
    let mut rest = b;
    a.iter().filter(move |s| {
        while let Some((o, tail)) = rest.split_first() {
            // Mostly the very same record: no need to compare the keys.
            let order = match Arc::ptr_eq(o, s) {
                true => std::cmp::Ordering::Equal,
                false => o.key.cmp(&s.key),
            };
            match order {
                std::cmp::Ordering::Less => rest = tail,
                std::cmp::Ordering::Equal => {
                    rest = tail;
                    return false;
                }
                std::cmp::Ordering::Greater => return true,
            }
        }
        true
    })
}

/// Every session this node keeps, by BGPPeer name.
pub type Intents = BTreeMap<String, PeerIntent>;

/// The peers this speaker cannot run, by BGPPeer name: the field and why.
pub type Limits = BTreeMap<String, &'static str>;

/// A Service's addresses of one family that a peer does not get, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refusal {
    /// The Service.
    pub service: ServiceKey,
    /// The BGPPeer's name.
    pub peer: String,
    /// Why (names the family).
    pub why: &'static str,
}

/// What to carry out after the BGP side of a step changed.
#[derive(Clone, Debug, PartialEq)]
pub struct BgpActions {
    /// Every session to keep, with its routes (a session missing here is to be stopped).
    pub intents: Intents,
    /// The peers this node cannot run (not in `intents`), with why.
    pub limits: Limits,
    /// The node's ServiceBGPStatus records.
    pub statuses: Desired<ServiceBGPStatusStatus>,
    /// Events: announcements that started, addresses refused to a peer.
    pub events: Vec<ServiceEvent>,
}

/// The BGP side of the engine: what was carried out last, to tell changes apart.
#[derive(Debug, Default)]
pub struct Bgp {
    /// The graceful restart time offered to peers with `enableGracefulRestart`.
    restart_time: Duration,
    planned: bool,
    intents: Intents,
    limits: Limits,
    refused: BTreeSet<Refusal>,
    /// The ServiceBGPStatus records of `intents`, kept up to date by the Services whose
    /// peers changed (rebuilding 10,000 records at each step costs more than the plan).
    statuses: Desired<ServiceBGPStatusStatus>,
}

impl Bgp {
    /// Nothing planned yet; `restart_time` is offered to the peers that enable graceful
    /// restart.
    pub fn new(restart_time: Duration) -> Self {
        Self {
            restart_time,
            ..Self::default()
        }
    }

    /// The sessions of the last plan.
    pub fn intents(&self) -> &Intents {
        &self.intents
    }

    /// Plans node `me` from `view`; `None` when nothing changed since the last plan
    /// (the first plan always answers: the status writer waits for it).
    pub fn step(&mut self, view: &View, me: &str) -> Option<BgpActions> {
        let (intents, limits, refused) = intents(view, me, self.restart_time, &self.intents);
        // Said once per change, not at every API event.
        for (peer, limit) in limits.iter().filter(|(p, l)| self.limits.get(*p) != Some(*l)) {
            tracing::warn!(%peer, "BGPPeer: {limit}");
        }
        if self.planned && intents == self.intents && limits == self.limits && refused == self.refused {
            return None;
        }
        // What changed, peer by peer: sorted sets compare in one pass.
        let mut started: BTreeMap<&ServiceKey, (&ServiceInfo, Vec<String>)> = BTreeMap::new();
        let mut touched: BTreeSet<&ServiceKey> = BTreeSet::new();
        for (peer, intent) in &intents {
            let old = self.intents.get(peer).map_or(&[][..], |i| &i.services[..]);
            if std::ptr::eq(old, &intent.services[..]) {
                continue;
            }
            for service in missing_from(&intent.services, old) {
                started
                    .entry(&service.key)
                    .or_insert_with(|| (service, Vec::new()))
                    .1
                    .push(format!("{peer} ({})", intent.spec.address));
                touched.insert(&service.key);
            }
            touched.extend(missing_from(old, &intent.services).map(|s| &s.key));
        }
        for (_, gone) in self.intents.iter().filter(|(p, _)| !intents.contains_key(*p)) {
            touched.extend(gone.services.iter().map(|s| &s.key));
        }
        let mut events = Vec::new();
        let new_refusals: Vec<&Refusal> = refused.difference(&self.refused).collect();
        let quiet = started.len() > super::LOG_EACH_UP_TO;
        if quiet {
            tracing::info!(
                services = started.len(),
                "announcing by BGP (each Service at debug level)"
            );
        }
        for (service, (info, peers)) in &started {
            let ips = ips_of(Some(info));
            match quiet {
                true => tracing::debug!(%service, ips, ?peers, "announcing by BGP"),
                false => tracing::info!(%service, ips, ?peers, "announcing by BGP"),
            }
            events.push(event(
                service,
                Some(info),
                false,
                "bgpAnnounced",
                format!(
                    "announcing {ips} from node {me} to BGP peers {}",
                    peers.join(", ")
                ),
            ));
        }
        for Refusal { service, peer, why } in new_refusals {
            let info = planner::find(&view.services, service);
            events.push(event(
                service,
                info,
                true,
                "bgpNotAnnounced",
                format!(
                    "node {me} does not announce {} to BGP peer {peer}: {why}",
                    ips_of(info)
                ),
            ));
        }
        let mut statuses = std::mem::take(&mut self.statuses);
        for service in touched {
            let peers: Vec<&String> = intents
                .iter()
                .filter(|(_, i)| planner::find(&i.services, service).is_some())
                .map(|(p, _)| p)
                .collect();
            let (name, record) = status::bgp_record(me, service, peers);
            match record.peers.is_empty() {
                true => statuses.remove(name.as_str()),
                false => statuses.insert(name.into(), Arc::new(record)),
            };
        }
        *self = Self {
            restart_time: self.restart_time,
            planned: true,
            intents: intents.clone(),
            limits: limits.clone(),
            refused,
            statuses: statuses.clone(),
        };
        Some(BgpActions {
            intents,
            limits,
            statuses,
            events,
        })
    }
}

fn ips_of(info: Option<&ServiceInfo>) -> String {
    info.map(|s| {
        s.ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// Why a session would not carry `family`, if it would not.
fn refused_family(spec: &PeerSpec, dual_stack: bool, family: Family) -> Option<&'static str> {
    let transport = match spec.address {
        SocketAddr::V4(_) => Family::Ipv4Unicast,
        SocketAddr::V6(_) => Family::Ipv6Unicast,
    };
    if family == transport {
        return None;
    }
    if !dual_stack {
        return Some(match family {
            Family::Ipv4Unicast => {
                "IPv4 addresses: the session runs over IPv6 and spec.dualStackAddressFamily is false"
            }
            Family::Ipv6Unicast => {
                "IPv6 addresses: the session runs over IPv4 and spec.dualStackAddressFamily is false"
            }
        });
    }
    match family {
        Family::Ipv4Unicast if spec.node_v4.is_none() => {
            Some("IPv4 addresses: the node has no IPv4 InternalIP to give as the next hop")
        }
        Family::Ipv6Unicast if spec.node_v6.is_none() => {
            Some("IPv6 addresses: the node has no IPv6 InternalIP to give as the next hop")
        }
        _ => None,
    }
}

/// The sessions and routes of node `me` in `view` (offering `restart_time` to peers with
/// graceful restart), the peers it cannot run (left out), and the addresses it refuses
/// to a peer. A peer's route and Service sets equal to those in `last` are shared with
/// it, not built again: most steps change none or a few of 10,000 Services.
pub fn intents(
    view: &View,
    me: &str,
    restart_time: Duration,
    last: &Intents,
) -> (Intents, Limits, BTreeSet<Refusal>) {
    let mut limits = Limits::new();
    let mut refused = BTreeSet::new();
    let Some(node) = view.nodes.iter().find(|n| n.name == me) else {
        return (Intents::new(), limits, refused);
    };
    let plan = planner::bgp::plan(&view.config, &view.services, node);
    let node_v4 = view.node_ips.iter().find_map(|ip| match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    let node_v6 = view.node_ips.iter().find_map(|ip| match ip {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    });
    let mut out = Intents::new();
    for (name, planned) in plan.peers {
        let Some(peer) = view.config.peers.get(name) else {
            continue;
        };
        let spec = match spec(peer, &view.config.bfd_profiles, node_v4, node_v6, restart_time) {
            Ok(spec) => spec,
            Err(limit) => {
                limits.insert(name.to_string(), limit);
                continue;
            }
        };
        let why = |f: Family| refused_family(&spec, peer.dual_stack_address_family, f);
        let wanted: BTreeMap<IpNet, Attributes> = planned
            .routes
            .into_iter()
            .filter(|(prefix, _)| why(family_of(prefix)).is_none())
            .map(|(prefix, route)| {
                let attributes = Attributes {
                    local_pref: route.local_pref,
                    communities: route.communities.iter().map(community).collect(),
                };
                (prefix, attributes)
            })
            .collect();
        let mut services: Vec<&Arc<ServiceInfo>> = Vec::with_capacity(planned.services.len());
        for info in planned.services {
            let mut sent = false;
            for ip in &info.ips {
                match why(family_of(&IpNet::from(*ip))) {
                    Some(why) => {
                        refused.insert(Refusal {
                            service: info.key.clone(),
                            peer: name.to_string(),
                            why,
                        });
                    }
                    None => sent = true,
                }
            }
            if sent {
                services.push(info);
            }
        }
        // In the view's order, which the engine sorts by key: then this costs one
        // comparison per Service.
        services.sort_by(|a, b| a.key.cmp(&b.key));
        let before = last.get(name);
        let wanted = match before {
            Some(b) if *b.wanted == wanted => b.wanted.clone(),
            _ => Arc::new(wanted),
        };
        let services = match before {
            Some(b) if b.services.iter().eq(services.iter().copied()) => b.services.clone(),
            _ => services.into_iter().cloned().collect(),
        };
        out.insert(
            name.to_string(),
            PeerIntent {
                spec,
                wanted,
                services,
            },
        );
    }
    (out, limits, refused)
}

fn community(value: &CommunityValue) -> Community {
    match *value {
        CommunityValue::Standard(a, b) => Community::Standard(a, b),
        CommunityValue::Large(a, b, c) => Community::Large(a, b, c),
    }
}

/// The session of `peer` from a node with these addresses; `Err` for a peer this
/// speaker cannot run, saying why.
fn spec(
    peer: &config::Peer,
    profiles: &BTreeMap<String, config::BfdProfile>,
    node_v4: Option<Ipv4Addr>,
    node_v6: Option<Ipv6Addr>,
    restart_time: Duration,
) -> Result<PeerSpec, &'static str> {
    let PeerAddress::Ip(ip) = &peer.address else {
        return Err("unnumbered sessions (spec.interface) are not supported: peer skipped");
    };
    if peer.vrf.is_some() {
        return Err("sessions in a VRF (spec.vrf) are not supported: peer skipped");
    }
    if peer
        .password
        .as_ref()
        .is_some_and(|p| p.len() > crate::host::tcp_md5::MAX_KEY_LEN)
    {
        return Err("the TCP MD5 password is longer than 80 bytes (the kernel's limit): peer skipped");
    }
    let Some(router_id) = peer.router_id.or(node_v4) else {
        return Err("no spec.routerID and no IPv4 InternalIP on the node: peer skipped");
    };
    let peer_asn = match peer.peer_asn {
        config::PeerAsn::Fixed(asn) => PeerAsn::Fixed(asn),
        config::PeerAsn::Internal => PeerAsn::Internal,
        config::PeerAsn::External => PeerAsn::External,
    };
    let bfd = peer
        .bfd_profile
        .as_ref()
        .and_then(|name| profiles.get(name))
        .map(|profile| BfdSpec {
            timers: ferrolb_bfd::session::Config {
                desired_min_tx: Duration::from_millis(profile.transmit_interval_ms.into()),
                required_min_rx: Duration::from_millis(profile.receive_interval_ms.into()),
                detect_mult: u8::try_from(profile.detect_multiplier).unwrap_or(u8::MAX),
                passive: profile.passive_mode,
            },
            multihop: peer.ebgp_multi_hop,
            minimum_ttl: profile
                .minimum_ttl
                .and_then(|t| u8::try_from(t).ok())
                .unwrap_or(254),
            echo: profile.echo_mode,
        });
    let spec = PeerSpec {
        bfd,
        address: SocketAddr::new(*ip, peer.port),
        source: peer.source_address,
        multihop: peer.ebgp_multi_hop,
        password: peer.password.clone().map(Password),
        node_v4,
        node_v6,
        session: session::Config {
            local_asn: peer.local_asn.unwrap_or(peer.my_asn),
            peer_asn,
            router_id,
            hold_time: peer.hold_time,
            keepalive_time: Some(peer.keepalive_time),
            connect_time: peer.connect_time,
            connect_timeout: CONNECT_TIMEOUT,
            // The session's own family; the other too with `dualStackAddressFamily`
            // (MetalLB's default is one family per session).
            families: match (ip, peer.dual_stack_address_family) {
                (_, true) => BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
                (IpAddr::V4(_), false) => BTreeSet::from([Family::Ipv4Unicast]),
                (IpAddr::V6(_), false) => BTreeSet::from([Family::Ipv6Unicast]),
            },
            graceful_restart: peer.graceful_restart.then_some(restart_time),
        },
    };
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn set(names: &BTreeSet<u8>, shared: &BTreeMap<u8, Arc<ServiceInfo>>) -> Vec<Arc<ServiceInfo>> {
        names.iter().map(|n| shared[n].clone()).collect()
    }

    proptest! {
        /// The one-pass difference of two sorted sets is the set difference, whether the
        /// records are shared or copies.
        #[test]
        fn missing_from_is_the_set_difference(
            a in proptest::collection::btree_set(0u8..40, 0..30),
            b in proptest::collection::btree_set(0u8..40, 0..30),
            copy in any::<bool>(),
        ) {
            let record = |n: &u8| Arc::new(ServiceInfo {
                key: ServiceKey::new("ns", format!("s{n:02}")),
                uid: None,
                ips: Vec::new(),
                local: false,
                labels: Default::default(),
                endpoints: Vec::new(),
                ports: Vec::new(),
            });
            let shared: BTreeMap<u8, Arc<ServiceInfo>> = (0..40).map(|n| (n, record(&n))).collect();
            let left = set(&a, &shared);
            let right = match copy {
                true => b.iter().map(record).collect(),
                false => set(&b, &shared),
            };
            let got: Vec<String> = missing_from(&left, &right).map(|s| s.key.name.clone()).collect();
            let want: Vec<String> = a.difference(&b).map(|n| format!("s{n:02}")).collect();
            prop_assert_eq!(got, want);
        }
    }
}
