//! BGPAdvertisement → [`BgpAdvertisement`], and the rules between advertisements.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;

use crate::api;

use super::address::Family;
use super::community::{Aliases, CommunityValue};
use super::issue::Findings;
use super::peer::Peer;
use super::pool::Pool;
use super::selector::{self, AnySelector};

/// A valid BGP advertisement, resolved to pools and community values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// The advertisement's name.
    pub name: String,
    /// Names of the valid pools it announces.
    pub pools: BTreeSet<String>,
    /// IPv4 prefix length announced.
    pub aggregation_length: u8,
    /// IPv6 prefix length announced.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP peers, if set.
    pub local_pref: Option<u32>,
    /// Communities attached, aliases resolved.
    pub communities: BTreeSet<CommunityValue>,
    /// Nodes that announce (all when empty).
    pub node_selectors: AnySelector,
    /// Peers announced to by name; every peer when empty.
    pub peers: BTreeSet<String>,
    /// Services announced (all when empty).
    pub service_selectors: AnySelector,
}

impl BgpAdvertisement {
    /// Whether the advertisement announces to the peer named `peer`.
    pub fn targets_peer(&self, peer: &str) -> bool {
        self.peers.is_empty() || self.peers.contains(peer)
    }

    /// The aggregation length for a family.
    pub fn aggregation_for(&self, family: Family) -> u8 {
        match family {
            Family::V4 => self.aggregation_length,
            Family::V6 => self.aggregation_length_v6,
        }
    }
}

/// Checks one BGPAdvertisement against valid pools, community aliases and peers.
pub(crate) fn check(
    adv: &api::BGPAdvertisement,
    pools: &BTreeMap<String, Pool>,
    aliases: &Aliases,
    peers: &BTreeMap<String, Peer>,
    findings: &mut Findings,
) -> Option<BgpAdvertisement> {
    let spec = &adv.spec;
    let selected = super::select_pools(
        &spec.ip_address_pools,
        &spec.ip_address_pool_selectors,
        pools,
        findings,
    );
    let length = |value: i32, max: i32, field: &str, findings: &mut Findings| {
        if !(1..=max).contains(&value) {
            findings.invalid(format!("spec.{field}"), format!("{value} is outside 1..{max}"));
        }
        value.clamp(0, max) as u8
    };
    let aggregation_length = length(spec.aggregation_length, 32, "aggregationLength", findings);
    let aggregation_length_v6 = length(spec.aggregation_length_v6, 128, "aggregationLengthV6", findings);
    let service_selectors =
        selector::compile_list(&spec.service_selectors, "spec.serviceSelectors", findings);
    if !spec.service_selectors.is_empty() && (aggregation_length != 32 || aggregation_length_v6 != 128) {
        findings.invalid(
            "spec.serviceSelectors",
            "can only be used with aggregationLength 32 and aggregationLengthV6 128",
        );
    }
    for name in &selected {
        for range in &pools[name].ranges {
            let (field, aggregation) = match range.family() {
                Family::V4 => ("spec.aggregationLength", aggregation_length),
                Family::V6 => ("spec.aggregationLengthV6", aggregation_length_v6),
            };
            let shortest = range.shortest_prefix();
            if aggregation < shortest {
                findings.invalid(
                    field,
                    format!(
                        "/{aggregation} is shorter than the /{shortest} prefix of {range} in IPAddressPool {name:?}: \
                         the route would cover addresses outside the pool"
                    ),
                );
            }
        }
    }
    let mut communities = BTreeSet::new();
    let mut alias_missing = false;
    for (i, text) in spec.communities.iter().enumerate() {
        let field = format!("spec.communities[{i}]");
        let value = match CommunityValue::parse_literal(text) {
            Some(Ok(value)) => value,
            Some(Err(why)) => {
                findings.invalid(field, why);
                continue;
            }
            None => match aliases.get(text) {
                Some(value) => *value,
                None => {
                    findings.pending(field, format!("no Community defines the alias {text:?}"));
                    alias_missing = true;
                    continue;
                }
            },
        };
        if !communities.insert(value) {
            findings.invalid(field, format!("duplicate community {value}"));
        }
    }
    let mut peer_names = BTreeSet::new();
    for (i, peer) in spec.peers.iter().enumerate() {
        let field = format!("spec.peers[{i}]");
        if !peer_names.insert(peer.clone()) {
            findings.invalid(field, format!("duplicate peer {peer:?}"));
        } else if !peers.contains_key(peer) {
            findings.pending(field, format!("BGPPeer {peer:?} does not exist or is invalid"));
        }
    }
    let node_selectors = selector::compile_list(&spec.node_selectors, "spec.nodeSelectors", findings);
    (!findings.is_invalid() && !alias_missing).then(|| BgpAdvertisement {
        name: findings.object().name.clone(),
        pools: selected,
        aggregation_length,
        aggregation_length_v6,
        local_pref: (spec.local_pref != 0).then_some(spec.local_pref),
        communities,
        node_selectors,
        peers: peer_names,
        service_selectors,
    })
}

/// Why `newer` cannot coexist with the older `older`, if it cannot: different
/// LOCAL_PREF for the same prefixes to the same peers from the same nodes. Exempt, as
/// in MetalLB: different aggregation lengths (for every family of the pool), disjoint
/// peer lists, disjoint nodes, or service selectors (checked per Service instead).
pub(crate) fn local_pref_conflict(
    older: &BgpAdvertisement,
    newer: &BgpAdvertisement,
    pools: &BTreeMap<String, Pool>,
    nodes: &[Node],
) -> Option<String> {
    if older.local_pref == newer.local_pref
        || !older.service_selectors.is_empty()
        || !newer.service_selectors.is_empty()
        || (!older.peers.is_empty() && !newer.peers.is_empty() && older.peers.is_disjoint(&newer.peers))
    {
        return None;
    }
    let pool = older.pools.intersection(&newer.pools).find(|name| {
        let pool = &pools[*name];
        let families: Vec<Family> = [Family::V4, Family::V6]
            .into_iter()
            .filter(|f| pool.has_family(*f))
            .collect();
        families.is_empty()
            || !families
                .iter()
                .all(|f| older.aggregation_for(*f) != newer.aggregation_for(*f))
    })?;
    super::may_share_node(&older.node_selectors, &newer.node_selectors, nodes).then(|| {
        format!(
            "localPref {} conflicts with localPref {} of BGPAdvertisement {:?} for the same prefixes of IPAddressPool {pool:?}",
            newer.local_pref.unwrap_or(0),
            older.local_pref.unwrap_or(0),
            older.name
        )
    })
}
