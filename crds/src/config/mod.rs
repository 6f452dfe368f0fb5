//! The configuration model: every FerroLB object (and the Secrets and Nodes they
//! depend on) in, a validated [`Config`] plus a list of [`Issue`]s out.
//!
//! Pure: no client, no clock, no I/O. The controller, the speakers, the offline
//! `validate` command and the tests all call [`build`].
//!
//! An invalid object is left out and reported; the valid rest still forms a
//! [`Config`]. When two objects conflict (overlapping pools, duplicate peers,
//! clashing advertisements), the older one (by creation time, then name) stays and
//! the newer one is rejected, so adding an object can never take addresses away
//! from Services of a healthy pool.

mod address;
mod bgpadv;
mod community;
mod issue;
mod l2;
mod manifest;
mod peer;
mod pool;
mod selector;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::Resource;

use crate::api;

pub use address::{AddressError, Family, IpRange, RangeIndex, from_int, to_int};
pub use bgpadv::BgpAdvertisement;
pub use community::CommunityValue;
pub use issue::{Issue, ObjectRef, Severity};
pub use l2::L2Advertisement;
pub use manifest::{ManifestError, parse_manifests};
pub use peer::{BfdProfile, DEFAULT_HOLD_TIME, Peer, PeerAddress, PeerAsn};
pub use pool::{Allocation, Pool};
pub use selector::AnySelector;

use issue::Findings;

/// Everything the model reads.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// IPAddressPools.
    pub pools: Vec<api::IPAddressPool>,
    /// L2Advertisements.
    pub l2_advertisements: Vec<api::L2Advertisement>,
    /// BGPAdvertisements.
    pub bgp_advertisements: Vec<api::BGPAdvertisement>,
    /// BGPPeers.
    pub bgp_peers: Vec<api::BGPPeer>,
    /// Communities.
    pub communities: Vec<api::Community>,
    /// BFDProfiles.
    pub bfd_profiles: Vec<api::BFDProfile>,
    /// Secrets of the FerroLB namespace (BGP passwords).
    pub secrets: Vec<Secret>,
    /// Nodes, to tell whether two node selectors can pick the same node. With no
    /// nodes, any two selectors are assumed to overlap.
    pub nodes: Vec<Node>,
}

impl Objects {
    /// Moves every object of `other` into `self`.
    pub fn append(&mut self, mut other: Objects) {
        self.pools.append(&mut other.pools);
        self.l2_advertisements.append(&mut other.l2_advertisements);
        self.bgp_advertisements.append(&mut other.bgp_advertisements);
        self.bgp_peers.append(&mut other.bgp_peers);
        self.communities.append(&mut other.communities);
        self.bfd_profiles.append(&mut other.bfd_profiles);
        self.secrets.append(&mut other.secrets);
        self.nodes.append(&mut other.nodes);
    }

    /// Number of FerroLB objects (Secrets and Nodes not counted).
    pub fn len(&self) -> usize {
        self.pools.len()
            + self.l2_advertisements.len()
            + self.bgp_advertisements.len()
            + self.bgp_peers.len()
            + self.communities.len()
            + self.bfd_profiles.len()
    }

    /// Whether there is no FerroLB object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The valid configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Pools by name.
    pub pools: BTreeMap<String, Pool>,
    /// Layer 2 advertisements by name.
    pub l2_advertisements: BTreeMap<String, L2Advertisement>,
    /// BGP advertisements by name.
    pub bgp_advertisements: BTreeMap<String, BgpAdvertisement>,
    /// BGP peers by name.
    pub peers: BTreeMap<String, Peer>,
    /// BFD profiles by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
}

/// The result of [`build`]: the valid configuration and what was wrong with the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Every valid object, resolved.
    pub config: Config,
    /// Every finding, sorted by object then field.
    pub issues: Vec<Issue>,
}

impl Outcome {
    /// Whether any object was rejected.
    pub fn has_invalid(&self) -> bool {
        self.issues.iter().any(|i| i.severity == Severity::Invalid)
    }

    /// The findings about one object.
    pub fn issues_of<'a>(&'a self, kind: &'a str, name: &'a str) -> impl Iterator<Item = &'a Issue> + 'a {
        self.issues
            .iter()
            .filter(move |i| i.object.kind == kind && i.object.name == name)
    }
}

/// Validates every object of the FerroLB namespace `namespace` and resolves the valid ones.
pub fn build(namespace: &str, objects: &Objects) -> Outcome {
    let mut issues = Vec::new();
    let mut config = Config::default();

    let mut accepted = RangeIndex::default();
    for (obj, mut findings) in ordered(&objects.pools, "IPAddressPool", namespace) {
        if let Some(pool) = pool::check(obj, &mut findings) {
            let clash = pool
                .ranges
                .iter()
                .enumerate()
                .find_map(|(i, r)| accepted.overlapping(r).map(|o| (i, o)));
            match clash {
                Some((i, (theirs, owner))) => findings.invalid(
                    format!("spec.addresses[{i}]"),
                    format!("{} overlaps {theirs} of IPAddressPool {owner:?}", pool.ranges[i]),
                ),
                None => {
                    for range in &pool.ranges {
                        accepted.insert(*range, pool.name.clone());
                    }
                    config.pools.insert(pool.name.clone(), pool);
                }
            }
        }
        issues.extend(findings.into_issues());
    }

    let mut aliases = community::Aliases::new();
    for (obj, mut findings) in ordered(&objects.communities, "Community", namespace) {
        let defined = community::check(obj, &aliases, &mut findings);
        if !findings.is_invalid() {
            aliases.extend(defined);
        }
        issues.extend(findings.into_issues());
    }

    for (obj, mut findings) in ordered(&objects.bfd_profiles, "BFDProfile", namespace) {
        if let Some(profile) = peer::check_bfd(obj, &mut findings) {
            config.bfd_profiles.insert(profile.name.clone(), profile);
        }
        issues.extend(findings.into_issues());
    }

    let ctx = peer::PeerContext {
        namespace,
        secrets: &objects.secrets,
        bfd_profiles: &config.bfd_profiles,
    };
    let mut peers: Vec<(&api::BGPPeerSpec, Peer)> = Vec::new();
    for (obj, mut findings) in ordered(&objects.bgp_peers, "BGPPeer", namespace) {
        if let Some(peer) = peer::check(obj, &ctx, &mut findings) {
            let clash = peers.iter().find_map(|(spec, older)| {
                if **spec == obj.spec {
                    return Some(format!("duplicates BGPPeer {:?}", older.name));
                }
                same_session(older, &peer, &objects.nodes).then(|| {
                    format!(
                        "BGPPeer {:?} already peers with this address and port from the same nodes",
                        older.name
                    )
                })
            });
            match clash {
                Some(why) => findings.invalid("spec.peerAddress", why),
                None => peers.push((&obj.spec, peer)),
            }
        }
        issues.extend(findings.into_issues());
    }
    config.peers = peers.into_iter().map(|(_, p)| (p.name.clone(), p)).collect();

    for (obj, mut findings) in ordered(&objects.l2_advertisements, "L2Advertisement", namespace) {
        if let Some(adv) = l2::check(obj, &config.pools, &mut findings) {
            config.l2_advertisements.insert(adv.name.clone(), adv);
        }
        issues.extend(findings.into_issues());
    }

    let mut advertisements: Vec<(&api::BGPAdvertisementSpec, BgpAdvertisement)> = Vec::new();
    for (obj, mut findings) in ordered(&objects.bgp_advertisements, "BGPAdvertisement", namespace) {
        if let Some(adv) = bgpadv::check(obj, &config.pools, &aliases, &config.peers, &mut findings) {
            let clash = advertisements.iter().find_map(|(spec, older)| {
                if **spec == obj.spec {
                    return Some(("spec", format!("duplicates BGPAdvertisement {:?}", older.name)));
                }
                bgpadv::local_pref_conflict(older, &adv, &config.pools, &objects.nodes)
                    .map(|why| ("spec.localPref", why))
            });
            match clash {
                Some((field, why)) => findings.invalid(field, why),
                None => advertisements.push((&obj.spec, adv)),
            }
        }
        issues.extend(findings.into_issues());
    }
    config.bgp_advertisements = advertisements
        .into_iter()
        .map(|(_, a)| (a.name.clone(), a))
        .collect();

    issues.extend(reject_echo_over_ipv6(&mut config));
    issues.sort();
    Outcome { config, issues }
}

/// BFD echo mode works over IPv4 only: a peer using it must not receive IPv6 prefixes.
fn reject_echo_over_ipv6(config: &mut Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    let echo_peers: Vec<String> = config
        .peers
        .values()
        .filter(|p| {
            p.bfd_profile
                .as_ref()
                .and_then(|b| config.bfd_profiles.get(b))
                .is_some_and(|b| b.echo_mode)
        })
        .map(|p| p.name.clone())
        .collect();
    for name in echo_peers {
        let offending = config.bgp_advertisements.values().find_map(|adv| {
            let v6_pool = adv
                .pools
                .iter()
                .find(|p| config.pools[*p].has_family(Family::V6))?;
            adv.targets_peer(&name)
                .then(|| (adv.name.clone(), v6_pool.clone()))
        });
        if let Some((adv, pool)) = offending {
            let peer = config.peers.remove(&name).expect("name taken from the map");
            let mut findings = Findings::new("BGPPeer", &peer.name);
            findings.invalid(
                "spec.bfdProfile",
                format!(
                    "BFDProfile {:?} uses echo mode, which is IPv4-only, but BGPAdvertisement {adv:?} \
                     announces IPv6 addresses of IPAddressPool {pool:?} to this peer",
                    peer.bfd_profile.unwrap_or_default()
                ),
            );
            issues.extend(findings.into_issues());
        }
    }
    issues
}

/// Whether two peers open the same session (address, port, VRF) from a common node.
fn same_session(older: &Peer, newer: &Peer, nodes: &[Node]) -> bool {
    older.address == newer.address
        && older.port == newer.port
        && older.vrf == newer.vrf
        && may_share_node(&older.node_selectors, &newer.node_selectors, nodes)
}

/// Whether some node can be selected by both selector lists (empty = every node).
fn may_share_node(a: &AnySelector, b: &AnySelector, nodes: &[Node]) -> bool {
    if nodes.is_empty() {
        return true;
    }
    let empty = BTreeMap::new();
    nodes.iter().any(|node| {
        let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
        a.matches_or_empty(labels) && b.matches_or_empty(labels)
    })
}

/// Names of the valid pools an advertisement selects by name and by label; every
/// valid pool when it names none and selects none.
fn select_pools(
    names: &[String],
    selectors: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector],
    pools: &BTreeMap<String, Pool>,
    findings: &mut Findings,
) -> BTreeSet<String> {
    let compiled = selector::compile_list(selectors, "spec.ipAddressPoolSelectors", findings);
    if names.is_empty() && selectors.is_empty() {
        return pools.keys().cloned().collect();
    }
    let mut selected = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let field = format!("spec.ipAddressPools[{i}]");
        if !seen.insert(name) {
            findings.invalid(field, format!("duplicate pool {name:?}"));
        } else if pools.contains_key(name) {
            selected.insert(name.clone());
        } else {
            findings.pending(
                field,
                format!(
                    "IPAddressPool {name:?} does not exist or is invalid; it is announced once it is valid"
                ),
            );
        }
    }
    if !compiled.is_empty() {
        selected.extend(
            pools
                .values()
                .filter(|p| compiled.matches(&p.labels))
                .map(|p| p.name.clone()),
        );
    }
    selected
}

/// The objects of one kind, oldest first (ties and missing timestamps by name), each
/// with its findings started: wrong namespace and repeated names are caught here.
fn ordered<'a, K>(objects: &'a [K], kind: &'static str, namespace: &str) -> Vec<(&'a K, Findings)>
where
    K: Resource<DynamicType = ()>,
{
    let mut sorted: Vec<&K> = objects.iter().collect();
    sorted.sort_by_cached_key(|o| {
        let meta = o.meta();
        let created = meta.creation_timestamp.as_ref().map(|t| t.0);
        (created.is_none(), created, meta.name.clone())
    });
    let mut names = BTreeSet::new();
    sorted
        .into_iter()
        .map(|obj| {
            let meta = obj.meta();
            let name = meta.name.clone().unwrap_or_default();
            let mut findings = Findings::new(kind, &name);
            if name.is_empty() {
                findings.invalid("metadata.name", "missing");
            } else if !names.insert(name.clone()) {
                findings.invalid("metadata.name", "another object of this kind has the same name");
            }
            if let Some(ns) = meta.namespace.as_deref().filter(|ns| *ns != namespace) {
                findings.invalid(
                    "metadata.namespace",
                    format!("must be created in the FerroLB namespace {namespace:?}, not {ns:?}"),
                );
            }
            (obj, findings)
        })
        .collect()
}
