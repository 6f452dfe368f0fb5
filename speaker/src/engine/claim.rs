//! This node's share of a plan: the addresses it announces, on which interfaces, and the
//! Services whose listed interfaces it lacks.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_crds::service::ServiceKey;

use crate::host::links::Links;
use crate::l2::Owned;
use crate::planner::Plan;

/// This node's share of a plan.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mine {
    /// Address → interfaces to announce it on.
    pub owned: Owned,
    /// Service → interfaces it is announced on.
    pub announced: BTreeMap<ServiceKey, Vec<String>>,
    /// Service → listed interfaces this node lacks.
    pub missing: BTreeMap<ServiceKey, BTreeSet<String>>,
}

/// What `node` announces of `plan`, choosing interfaces from `links` (skipping
/// `excludes` in the default choice).
pub fn claim(node: &str, plan: &Plan, links: &Links, excludes: &[String]) -> Mine {
    let mut mine = Mine::default();
    for (ip, a) in plan.of_node(node) {
        let choice = links.choose(*ip, &a.interfaces, excludes);
        for service in &a.services {
            mine.announced
                .entry((*service).clone())
                .or_default()
                .extend(choice.interfaces.iter().cloned());
            if !choice.missing.is_empty() {
                mine.missing
                    .entry((*service).clone())
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
