//! What this node announces to each BGP peer: a pure function of the configuration, the
//! Services with their endpoints and this node's Node. Unlike Layer 2, every eligible
//! node announces (the router spreads the traffic by ECMP), so a node decides from its
//! own Node alone, with no view of the others' liveness.
//!
//! Rules (MetalLB's, plus draining):
//! - the node keeps a session with every BGPPeer whose `nodeSelectors` admit it;
//! - it announces an address's prefix to a peer when the address lies in a valid pool
//!   that a BGPAdvertisement names, whose `serviceSelectors` match every Service on the
//!   address, whose `nodeSelectors` admit the node and whose `peers` (if set) name the
//!   peer; the node is not labelled `node.kubernetes.io/exclude-from-external-load-balancers`
//!   and not NetworkUnavailable; and a Service on the address can be served from the
//!   node (`externalTrafficPolicy: Local`: a usable endpoint here; `Cluster`: anywhere);
//! - a cordoned node (`spec.unschedulable`) announces nothing but keeps its sessions, so
//!   the routers move the traffic before its pods go;
//! - the prefix is the address aggregated to the advertisement's `aggregationLength`
//!   (`aggregationLengthV6`); several advertisements of one prefix to one peer merge
//!   their communities (their localPrefs cannot conflict: the configuration model
//!   refuses that).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrolb_crds::config::{BgpAdvertisement, CommunityValue, Config, Family, Pool};
use ipnet::IpNet;

use super::{ByAddress, EXCLUDE_LABEL, NodeInfo, ServiceInfo};

/// The attributes of one announced prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteAttributes {
    /// LOCAL_PREF, for internal peers.
    pub local_pref: Option<u32>,
    /// Communities, aliases resolved.
    pub communities: BTreeSet<CommunityValue>,
}

/// What this node announces to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerPlan<'a> {
    /// The prefixes, with their attributes.
    pub routes: BTreeMap<IpNet, RouteAttributes>,
    /// The Services whose addresses those routes carry (ServiceBGPStatus), each once, in
    /// the order of the planner's input.
    pub services: Vec<&'a Arc<ServiceInfo>>,
}

/// This node's BGP plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpPlan<'a> {
    /// Peer name → what to announce to it (every peer this node keeps a session with is
    /// a key, announcing or not).
    pub peers: BTreeMap<&'a str, PeerPlan<'a>>,
}

/// An advertisement that applies to the node, with the positions of the peers it targets.
type Applicable<'c> = (&'c BgpAdvertisement, Vec<usize>);

/// Computes what `node` announces. Runs at every change over every Service: the loop
/// touches no map keyed by name (string comparisons were most of its cost at 10,000
/// Services), only addresses, prefixes and positions in `services`.
pub fn plan<'a>(config: &'a Config, services: &'a [Arc<ServiceInfo>], node: &NodeInfo) -> BgpPlan<'a> {
    let mut plan = BgpPlan::default();
    for (name, peer) in &config.peers {
        if peer.node_selectors.matches_or_empty(&node.labels) {
            plan.peers.insert(name.as_str(), PeerPlan::default());
        }
    }
    let announcing =
        !node.unschedulable && !node.network_unavailable && !node.labels.contains_key(EXCLUDE_LABEL);
    if plan.peers.is_empty() || !announcing {
        return plan;
    }
    // What depends on the node and the configuration alone, once: per pool, the
    // advertisements that apply here, each with the positions of the peers it targets.
    let pools: Vec<(&Pool, Vec<Applicable>)> = config
        .pools
        .iter()
        .map(|(name, pool)| {
            let ads = config
                .bgp_advertisements
                .values()
                .filter(|ad| ad.pools.contains(name) && ad.node_selectors.matches_or_empty(&node.labels))
                .map(|ad| {
                    let peers = plan.peers.keys().enumerate();
                    (
                        ad,
                        peers
                            .filter(|(_, p)| ad.targets_peer(p))
                            .map(|(i, _)| i)
                            .collect(),
                    )
                })
                .collect();
            (pool, ads)
        })
        .collect();
    let mut peers: Vec<&mut PeerPlan> = plan.peers.values_mut().collect();
    // Positions of the Services each peer gets, sorted and made unique at the end.
    let mut positions: Vec<Vec<usize>> = vec![Vec::new(); peers.len()];
    // The Services on the address that can be served from the node (reused).
    let mut served = Vec::new();
    for (ip, on_ip) in ByAddress::of(services).runs() {
        let Some((_, ads)) = pools.iter().find(|(p, _)| p.range_of(ip).is_some()) else {
            continue;
        };
        served.clear();
        served.extend(on_ip.iter().filter(|i| services[**i].servable_from(&node.name)));
        if served.is_empty() {
            continue;
        }
        let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
        let ads = ads.iter().filter(|(ad, _)| {
            on_ip
                .iter()
                .all(|i| ad.service_selectors.matches_or_empty(&services[*i].labels))
        });
        for (ad, targets) in ads {
            let Ok(prefix) = IpNet::new(ip, ad.aggregation_for(family)).map(|n| n.trunc()) else {
                continue;
            };
            for &t in targets {
                let (peer, positions) = (&mut *peers[t], &mut positions[t]);
                let route = peer.routes.entry(prefix).or_default();
                route.communities.extend(ad.communities.iter().copied());
                route.local_pref = route.local_pref.max(ad.local_pref);
                positions.extend_from_slice(&served);
            }
        }
    }
    for (peer, mut positions) in peers.into_iter().zip(positions) {
        positions.sort_unstable();
        positions.dedup();
        peer.services = positions.into_iter().map(|i| &services[i]).collect();
    }
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ferrolb_crds::config;
    use ferrolb_crds::service::ServiceKey;

    use super::*;
    use crate::planner::tests::node;
    use crate::planner::{Endpoint, ServiceInfo};

    const NS: &str = "ferrolb-system";

    fn config(objects: &[(&str, &str, &str)]) -> Config {
        let text: String = objects
            .iter()
            .map(|(kind, name, spec)| {
                let version = if *kind == "BGPPeer" { "v1beta2" } else { "v1beta1" };
                format!("---\napiVersion: ferrolb.io/{version}\nkind: {kind}\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {spec}\n")
            })
            .collect();
        let outcome = config::build(NS, &config::parse_manifests(&text).unwrap());
        assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
        outcome.config
    }

    fn base(advertisements: &[(&str, &str)]) -> Config {
        let mut objects = vec![
            ("IPAddressPool", "p", "{addresses: [10.0.0.0/24, 'fd00::/120']}"),
            (
                "BGPPeer",
                "r1",
                "{myASN: 64512, peerASN: 64513, peerAddress: 10.1.0.1}",
            ),
            (
                "BGPPeer",
                "r2",
                "{myASN: 64512, peerASN: 64512, peerAddress: 10.1.0.2, nodeSelectors: [{matchLabels: {rack: a}}]}",
            ),
        ];
        objects.extend(
            advertisements
                .iter()
                .map(|(name, spec)| ("BGPAdvertisement", *name, *spec)),
        );
        config(&objects)
    }

    fn service(name: &str, ips: &[&str], local: bool, endpoints_on: &[&str]) -> Arc<ServiceInfo> {
        Arc::new(ServiceInfo {
            key: ServiceKey::new("ns", name),
            uid: None,
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            local,
            labels: BTreeMap::from([("app".to_string(), name.to_string())]),
            endpoints: endpoints_on
                .iter()
                .map(|n| Endpoint {
                    node: Some(n.to_string()),
                    ready: Some(true),
                    serving: None,
                })
                .collect(),
            ports: Vec::new(),
        })
    }

    fn prefixes(plan: &BgpPlan, peer: &str) -> Vec<String> {
        plan.peers[peer].routes.keys().map(ToString::to_string).collect()
    }

    fn names<'p>(plan: &'p BgpPlan, peer: &str) -> Vec<&'p str> {
        plan.peers[peer]
            .services
            .iter()
            .map(|s| s.key.name.as_str())
            .collect()
    }

    #[test]
    fn every_eligible_node_announces_to_the_peers_that_select_it() {
        let cfg = base(&[("all", "{}")]);
        let services = [service("web", &["10.0.0.5", "fd00::5"], false, &["n9"])];
        let in_rack = node("n1", &[("rack", "a")]);
        let plan = plan(&cfg, &services, &in_rack);
        assert_eq!(plan.peers.keys().copied().collect::<Vec<_>>(), ["r1", "r2"]);
        assert_eq!(prefixes(&plan, "r1"), ["10.0.0.5/32", "fd00::5/128"]);
        assert_eq!(prefixes(&plan, "r2"), ["10.0.0.5/32", "fd00::5/128"]);
        for peer in ["r1", "r2"] {
            assert_eq!(names(&plan, peer), ["web"]);
        }
        // A node r2 does not select has no session with it.
        let elsewhere = node("n2", &[]);
        let plan = super::plan(&cfg, &services, &elsewhere);
        assert_eq!(plan.peers.keys().copied().collect::<Vec<_>>(), ["r1"]);
    }

    #[test]
    fn local_policy_needs_an_endpoint_on_the_node_and_cluster_one_anywhere() {
        let cfg = base(&[("all", "{}")]);
        let services = [
            service("local", &["10.0.0.5"], true, &["n1"]),
            service("cluster", &["10.0.0.6"], false, &["n2"]),
            service("empty", &["10.0.0.7"], false, &[]),
        ];
        let on_n1 = plan(&cfg, &services, &node("n1", &[]));
        assert_eq!(prefixes(&on_n1, "r1"), ["10.0.0.5/32", "10.0.0.6/32"]);
        let on_n2 = plan(&cfg, &services, &node("n2", &[]));
        assert_eq!(prefixes(&on_n2, "r1"), ["10.0.0.6/32"]);
    }

    #[test]
    fn excluded_unavailable_and_cordoned_nodes_keep_sessions_and_announce_nothing() {
        let cfg = base(&[("all", "{}")]);
        let services = [service("web", &["10.0.0.5"], false, &["n9"])];
        let mut cordoned = node("n1", &[]);
        cordoned.unschedulable = true;
        let mut unavailable = node("n1", &[]);
        unavailable.network_unavailable = true;
        let excluded = node("n1", &[(EXCLUDE_LABEL, "")]);
        for n in [cordoned, unavailable, excluded] {
            let plan = plan(&cfg, &services, &n);
            assert_eq!(plan.peers.len(), 1, "the session stays");
            assert_eq!(plan.peers["r1"], PeerPlan::default(), "{n:?}");
        }
        // Readiness is not a condition: a NotReady node whose speaker runs still routes.
        let mut not_ready = node("n1", &[]);
        not_ready.ready = false;
        assert_eq!(
            prefixes(&plan(&cfg, &services, &not_ready), "r1"),
            ["10.0.0.5/32"]
        );
    }

    #[test]
    fn advertisements_select_pools_peers_nodes_and_services() {
        let cfg = base(&[
            ("to-r2", "{peers: [r2], communities: ['65535:666']}"),
            (
                "web-only",
                "{serviceSelectors: [{matchLabels: {app: web}}], nodeSelectors: [{matchLabels: {rack: a}}]}",
            ),
        ]);
        let services = [
            service("web", &["10.0.0.5"], false, &["n9"]),
            service("db", &["10.0.0.6"], false, &["n9"]),
        ];
        let plan = plan(&cfg, &services, &node("n1", &[("rack", "a")]));
        // r1 gets only web-only's Service; r2 gets both, to-r2's community on each.
        assert_eq!(prefixes(&plan, "r1"), ["10.0.0.5/32"]);
        assert_eq!(prefixes(&plan, "r2"), ["10.0.0.5/32", "10.0.0.6/32"]);
        assert_eq!(names(&plan, "r2"), ["web", "db"], "in the input's order");
        let db = &plan.peers["r2"].routes[&"10.0.0.6/32".parse().unwrap()];
        assert_eq!(
            db.communities,
            BTreeSet::from([CommunityValue::Standard(65535, 666)])
        );
        // On a node outside rack a, web-only does not apply and r2 has no session.
        let plan = super::plan(&cfg, &services, &node("n2", &[]));
        assert_eq!(plan.peers.keys().copied().collect::<Vec<_>>(), ["r1"]);
        assert_eq!(plan.peers["r1"], PeerPlan::default());
    }

    #[test]
    fn aggregation_announces_the_covering_prefix_and_merges_communities() {
        let cfg = base(&[
            (
                "agg",
                "{aggregationLength: 24, aggregationLengthV6: 120, communities: ['1:1'], localPref: 50}",
            ),
            (
                "tag",
                "{aggregationLength: 24, communities: ['large:1:2:3'], localPref: 50}",
            ),
        ]);
        let services = [
            service("a", &["10.0.0.5", "fd00::5"], false, &["n9"]),
            service("b", &["10.0.0.6"], false, &["n9"]),
        ];
        let plan = plan(&cfg, &services, &node("n1", &[("rack", "a")]));
        assert_eq!(
            prefixes(&plan, "r1"),
            ["10.0.0.0/24", "fd00::/120", "fd00::5/128"]
        );
        assert_eq!(
            names(&plan, "r1"),
            ["a", "b"],
            "both Services behind the aggregate"
        );
        let route = &plan.peers["r2"].routes[&"10.0.0.0/24".parse().unwrap()];
        assert_eq!(route.local_pref, Some(50));
        assert_eq!(
            route.communities,
            BTreeSet::from([CommunityValue::Standard(1, 1), CommunityValue::Large(1, 2, 3)])
        );
    }

    #[test]
    fn addresses_outside_the_pools_or_without_advertisement_are_not_announced() {
        let cfg = base(&[("web-only", "{serviceSelectors: [{matchLabels: {app: web}}]}")]);
        let services = [
            service("outside", &["192.168.1.1"], false, &["n9"]),
            service("db", &["10.0.0.6"], false, &["n9"]),
        ];
        let plan = plan(&cfg, &services, &node("n1", &[]));
        assert_eq!(plan.peers["r1"], PeerPlan::default());
        // Shared address: every Service on it must match the selectors.
        let shared = [
            service("web", &["10.0.0.7"], false, &["n9"]),
            service("db", &["10.0.0.7"], false, &["n9"]),
        ];
        assert_eq!(
            super::plan(&cfg, &shared, &node("n1", &[])).peers["r1"],
            PeerPlan::default()
        );
    }
}
