//! L2Advertisement → [`L2Advertisement`].

use std::collections::{BTreeMap, BTreeSet};

use crate::api;

use super::issue::Findings;
use super::pool::Pool;
use super::selector::{self, AnySelector};

/// A valid Layer 2 advertisement, resolved to the pools it announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Advertisement {
    /// The advertisement's name.
    pub name: String,
    /// Names of the valid pools it announces.
    pub pools: BTreeSet<String>,
    /// Nodes that may announce (any node when empty).
    pub node_selectors: AnySelector,
    /// Interfaces to announce on; empty means "the interface whose subnet holds the address".
    pub interfaces: BTreeSet<String>,
    /// Services announced (any Service when empty).
    pub service_selectors: AnySelector,
    /// Weighted node preferences.
    pub preferred_nodes: Vec<(u32, AnySelector)>,
}

impl L2Advertisement {
    /// The summed preference weight of a node with these labels.
    pub fn preference(&self, node_labels: &BTreeMap<String, String>) -> u32 {
        self.preferred_nodes
            .iter()
            .filter(|(_, selector)| selector.matches_or_empty(node_labels))
            .map(|(weight, _)| weight)
            .sum()
    }
}

/// Checks one L2Advertisement against the valid pools.
pub(crate) fn check(
    adv: &api::L2Advertisement,
    pools: &BTreeMap<String, Pool>,
    findings: &mut Findings,
) -> Option<L2Advertisement> {
    let spec = &adv.spec;
    let pools = super::select_pools(
        &spec.ip_address_pools,
        &spec.ip_address_pool_selectors,
        pools,
        findings,
    );
    let node_selectors = selector::compile_list(&spec.node_selectors, "spec.nodeSelectors", findings);
    let service_selectors =
        selector::compile_list(&spec.service_selectors, "spec.serviceSelectors", findings);
    let mut interfaces = BTreeSet::new();
    for (i, name) in spec.interfaces.iter().enumerate() {
        let field = format!("spec.interfaces[{i}]");
        if let Some(why) = interface_name_error(name) {
            findings.invalid(field, format!("interface name {name:?} {why}"));
        } else if !interfaces.insert(name.clone()) {
            findings.invalid(field, format!("duplicate interface {name:?}"));
        }
    }
    let mut preferred_nodes = Vec::new();
    for (i, pref) in spec.preferred_node_selectors.iter().enumerate() {
        let field = format!("spec.preferredNodeSelectors[{i}]");
        if !(1..=100).contains(&pref.weight) {
            findings.invalid(
                format!("{field}.weight"),
                format!("weight {} is outside 1..100", pref.weight),
            );
        }
        if let Some(selector) = selector::compile(&pref.preference, &format!("{field}.preference"), findings)
        {
            preferred_nodes.push((pref.weight.clamp(1, 100) as u32, AnySelector::from(selector)));
        }
    }
    (!findings.is_invalid()).then(|| L2Advertisement {
        name: findings.object().name.clone(),
        pools,
        node_selectors,
        interfaces,
        service_selectors,
        preferred_nodes,
    })
}

/// Why `name` cannot be a Linux interface name, if it cannot.
fn interface_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 15 {
        return Some("must be 1 to 15 characters");
    }
    (name.contains('/') || name.chars().any(char::is_whitespace) || name == "." || name == "..")
        .then_some("must not contain '/' or white space")
}
