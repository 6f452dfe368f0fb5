//! Who announces what; BGP's rules are in [`bgp`]. Layer 2 (this file): which node
//! announces which address, a pure function of the configuration, the Services, their
//! endpoints, the Nodes and the set of live speakers. Every speaker computes the same plan from the same inputs, so they agree
//! on one announcer per address without talking to the API or to each other.
//!
//! Rules, per address (all the Services sharing it together):
//! - the address must lie in a valid pool that some L2Advertisement announces, and the
//!   advertisement's serviceSelectors (if any) must match every Service on it;
//! - a node is eligible when an applicable advertisement's nodeSelectors admit it, it
//!   does not carry `node.kubernetes.io/exclude-from-external-load-balancers`, it is
//!   Ready and not NetworkUnavailable, its speaker is alive, and some Service on the
//!   address can be served from it: with `externalTrafficPolicy: Local` the node has a
//!   usable endpoint of the Service, with `Cluster` the Service has a usable endpoint
//!   anywhere (an endpoint is usable when `ready` is unset or true, or `serving` is true);
//! - among the eligible nodes the announcer is the one with the highest summed
//!   preferredNodeSelectors weight, then the lowest hash of (node name, address) — so
//!   addresses spread over nodes and a node's death moves only its own addresses.

pub mod bgp;
mod input;
mod order;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_crds::config::Config;
use ferrolb_crds::service::ServiceKey;

pub use input::{
    Endpoint, Joined, NodeInfo, ServiceInfo, ServicePort, SliceInfo, find, join, node_info, service_info,
    slice_info,
};
pub use order::rank;

/// The label that keeps a node from announcing anything.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Everything the planner reads (the plan borrows names from all but `live`).
#[derive(Clone, Copy, Debug)]
pub struct Input<'a, 'l> {
    /// The valid configuration.
    pub config: &'a Config,
    /// Services of ours that show addresses, with their endpoints.
    pub services: &'a [Arc<ServiceInfo>],
    /// Every Node.
    pub nodes: &'a [NodeInfo],
    /// Nodes whose speaker is alive.
    pub live: &'l BTreeSet<String>,
}

/// Who announces one address, and how (borrowing names from the input: a plan is
/// made for thousands of addresses at every change, and used at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement<'a> {
    /// The announcing node.
    pub node: &'a str,
    /// The Services on the address that the node serves.
    pub services: Vec<&'a ServiceKey>,
    /// Interfaces to announce on, from the advertisements; empty: the default choice.
    pub interfaces: BTreeSet<&'a str>,
}

/// Why an address is announced by no node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unannounced {
    /// The address is in no valid pool.
    NoPool,
    /// No L2Advertisement announces its pool (and matches its Services).
    NoAdvertisement,
    /// No node qualifies (selectors, exclusions, readiness, liveness, endpoints).
    NoEligibleNode,
}

/// The plan: every address and its announcer, or why it has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    /// Address → announcement.
    pub announced: BTreeMap<IpAddr, Announcement<'a>>,
    /// Address → why nobody announces it.
    pub unannounced: BTreeMap<IpAddr, Unannounced>,
}

impl<'a> Plan<'a> {
    /// The addresses `node` must announce.
    pub fn of_node<'p>(
        &'p self,
        node: &'p str,
    ) -> impl Iterator<Item = (&'p IpAddr, &'p Announcement<'a>)> + 'p {
        self.announced.iter().filter(move |(_, a)| a.node == node)
    }
}

/// Computes the plan.
pub fn plan<'a>(input: Input<'a, '_>) -> Plan<'a> {
    let nodes: BTreeMap<&str, &NodeInfo> = input.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut plan = Plan::default();
    let mut services = Vec::new();
    for (ip, on_ip) in ByAddress::of(input.services).runs() {
        services.clear();
        services.extend(on_ip.iter().map(|i| &*input.services[*i]));
        match plan_one(&input, &nodes, ip, &services) {
            Ok(announcement) => {
                plan.announced.insert(ip, announcement);
            }
            Err(why) => {
                plan.unannounced.insert(ip, why);
            }
        }
    }
    plan
}

fn plan_one<'a>(
    input: &Input<'a, '_>,
    nodes: &BTreeMap<&'a str, &'a NodeInfo>,
    ip: IpAddr,
    services: &[&'a ServiceInfo],
) -> Result<Announcement<'a>, Unannounced> {
    let (pool, _) = input
        .config
        .pools
        .iter()
        .find(|(_, p)| p.range_of(ip).is_some())
        .ok_or(Unannounced::NoPool)?;
    let ads: Vec<_> = input
        .config
        .l2_advertisements
        .values()
        .filter(|ad| ad.pools.contains(pool))
        .filter(|ad| {
            services
                .iter()
                .all(|s| ad.service_selectors.matches_or_empty(&s.labels))
        })
        .collect();
    if ads.is_empty() {
        return Err(Unannounced::NoAdvertisement);
    }
    let mut best: Option<((u32, std::cmp::Reverse<u64>), &NodeInfo)> = None;
    for node in nodes.values() {
        if !node_usable(node, input.live) {
            continue;
        }
        let applicable: Vec<_> = ads
            .iter()
            .filter(|ad| ad.node_selectors.matches_or_empty(&node.labels))
            .collect();
        if applicable.is_empty() || !services.iter().any(|s| s.servable_from(&node.name)) {
            continue;
        }
        let weight: u32 = applicable.iter().map(|ad| ad.preference(&node.labels)).sum();
        let key = (weight, std::cmp::Reverse(rank(&node.name, ip)));
        if best.as_ref().is_none_or(|(b, _)| key > *b) {
            best = Some((key, node));
        }
    }
    let (_, node) = best.ok_or(Unannounced::NoEligibleNode)?;
    let applicable: Vec<_> = ads
        .iter()
        .filter(|ad| ad.node_selectors.matches_or_empty(&node.labels))
        .collect();
    Ok(Announcement {
        node: &node.name,
        services: services
            .iter()
            .filter(|s| s.servable_from(&node.name))
            .map(|s| &s.key)
            .collect(),
        interfaces: applicable
            .iter()
            .flat_map(|ad| ad.interfaces.iter().map(String::as_str))
            .collect(),
    })
}

/// The addresses of some Services, sorted, each with the positions of the Services on
/// it: two vectors for all of them rather than a map of vectors (an allocation per
/// address at every plan).
pub(crate) struct ByAddress {
    /// Each address, with where its run of `positions` ends.
    ends: Vec<(IpAddr, usize)>,
    positions: Vec<usize>,
}

impl ByAddress {
    /// Groups `services` by address.
    pub(crate) fn of(services: &[Arc<ServiceInfo>]) -> Self {
        let mut pairs: Vec<(IpAddr, usize)> = services
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.ips.iter().map(move |ip| (*ip, i)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut ends: Vec<(IpAddr, usize)> = Vec::new();
        for (n, (ip, _)) in pairs.iter().enumerate() {
            match ends.last_mut() {
                Some((last, end)) if last == ip => *end = n + 1,
                _ => ends.push((*ip, n + 1)),
            }
        }
        let positions = pairs.into_iter().map(|(_, i)| i).collect();
        Self { ends, positions }
    }

    /// Each address, in order, with the positions of its Services.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (IpAddr, &[usize])> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|(_, end)| *end));
        self.ends
            .iter()
            .zip(starts)
            .map(|((ip, end), start)| (*ip, &self.positions[start..*end]))
    }
}

/// Whether a node may announce at all.
fn node_usable(node: &NodeInfo, live: &BTreeSet<String>) -> bool {
    node.ready
        && !node.network_unavailable
        && !node.labels.contains_key(EXCLUDE_LABEL)
        && live.contains(&node.name)
}

#[cfg(test)]
pub(crate) mod tests;
