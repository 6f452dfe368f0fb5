//! The BGP side of a step: from the configuration and this node, the sessions to keep
//! and the routes each must carry (pure; `crate::bgp` carries them out).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::message::Family;
use ferrolb_bgp::session::{self, PeerAsn};
use ferrolb_bgp::update::{Attributes, Community};
use ferrolb_crds::config::{self, CommunityValue, PeerAddress};
use ferrolb_crds::service::ServiceKey;
use ipnet::IpNet;

use super::View;
use crate::planner;

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
    /// The node's addresses, next hops of the family the session's own address is not.
    pub node_v4: Option<Ipv4Addr>,
    /// See `node_v4`.
    pub node_v6: Option<Ipv6Addr>,
    /// The session's terms.
    pub session: session::Config,
}

/// One session this node keeps, and its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIntent {
    /// How to reach the peer and run the session.
    pub spec: PeerSpec,
    /// The routes it should have from this node.
    pub wanted: Wanted,
    /// The Services whose addresses those routes carry.
    pub services: BTreeSet<ServiceKey>,
}

/// Every session this node keeps, by BGPPeer name.
pub type Intents = BTreeMap<String, PeerIntent>;

/// What this speaker cannot do for a peer, by BGPPeer name: the field and what follows.
pub type Limits = BTreeMap<String, &'static str>;

/// The sessions and routes of node `me` in `view`, and what it cannot do for some peers
/// (those it cannot run at all are left out).
pub fn intents(view: &View, me: &str) -> (Intents, Limits) {
    let mut limits = Limits::new();
    let Some(node) = view.nodes.iter().find(|n| n.name == me) else {
        return (Intents::new(), limits);
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
    for (name, routes) in plan.peers {
        let Some(peer) = view.config.peers.get(name) else {
            continue;
        };
        let spec = match spec(peer, node_v4, node_v6) {
            Ok((spec, limit)) => {
                if let Some(limit) = limit {
                    limits.insert(name.to_string(), limit);
                }
                spec
            }
            Err(limit) => {
                limits.insert(name.to_string(), limit);
                continue;
            }
        };
        let wanted = routes
            .into_iter()
            .map(|(prefix, route)| {
                let attributes = Attributes {
                    local_pref: route.local_pref,
                    communities: route.communities.iter().map(community).collect(),
                };
                (prefix, attributes)
            })
            .collect();
        let services = plan
            .services
            .iter()
            .filter(|(_, peers)| peers.contains(name))
            .map(|(key, _)| (*key).clone())
            .collect();
        out.insert(
            name.to_string(),
            PeerIntent {
                spec,
                wanted: Arc::new(wanted),
                services,
            },
        );
    }
    (out, limits)
}

fn community(value: &CommunityValue) -> Community {
    match *value {
        CommunityValue::Standard(a, b) => Community::Standard(a, b),
        CommunityValue::Large(a, b, c) => Community::Large(a, b, c),
    }
}

/// The session of `peer` from a node with these addresses, with what it lacks; `Err`
/// for a peer this speaker cannot run yet, saying why.
fn spec(
    peer: &config::Peer,
    node_v4: Option<Ipv4Addr>,
    node_v6: Option<Ipv6Addr>,
) -> Result<(PeerSpec, Option<&'static str>), &'static str> {
    let PeerAddress::Ip(ip) = &peer.address else {
        return Err("unnumbered sessions (spec.interface) are not supported: peer skipped");
    };
    if peer.vrf.is_some() {
        return Err("sessions in a VRF (spec.vrf) are not supported: peer skipped");
    }
    let limit = peer
        .password
        .is_some()
        .then_some("TCP MD5 (spec.password) is not supported yet: the session runs without it");
    let Some(router_id) = peer.router_id.or(node_v4) else {
        return Err("no spec.routerID and no IPv4 InternalIP on the node: peer skipped");
    };
    let peer_asn = match peer.peer_asn {
        config::PeerAsn::Fixed(asn) => PeerAsn::Fixed(asn),
        config::PeerAsn::Internal => PeerAsn::Internal,
        config::PeerAsn::External => PeerAsn::External,
    };
    let spec = PeerSpec {
        address: SocketAddr::new(*ip, peer.port),
        source: peer.source_address,
        multihop: peer.ebgp_multi_hop,
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
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
        },
    };
    Ok((spec, limit))
}
