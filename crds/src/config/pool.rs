//! IPAddressPool → [`Pool`].

use std::collections::{BTreeMap, BTreeSet};

use crate::api::IPAddressPool;

use super::address::{Family, IpRange, RangeIndex};
use super::issue::Findings;
use super::selector::{self, AnySelector};

/// A valid pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// The pool's labels (for advertisements' pool selectors).
    pub labels: BTreeMap<String, String>,
    /// Address ranges in the order the pool lists them: allocation goes in this order.
    pub ranges: Vec<IpRange>,
    /// Whether automatic allocation may use the pool.
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in .0 or .255.
    pub avoid_buggy_ips: bool,
    /// Restrictions on which Services may use the pool; `None` admits every Service.
    pub allocation: Option<Allocation>,
}

/// A pool's `serviceAllocation`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Lower is tried first; 0 means after every prioritised pool.
    pub priority: i32,
    /// Namespaces named outright.
    pub namespaces: BTreeSet<String>,
    /// Namespaces selected by label.
    pub namespace_selectors: AnySelector,
    /// Services selected by label.
    pub service_selectors: AnySelector,
}

impl Allocation {
    /// Whether a Service in `namespace` (with `namespace_labels`) carrying
    /// `service_labels` may use the pool: the namespace condition and the Service
    /// condition must both hold, and an absent condition holds.
    pub fn admits(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        service_labels: &BTreeMap<String, String>,
    ) -> bool {
        let namespace_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(namespace)
            || self.namespace_selectors.matches(namespace_labels);
        namespace_ok && self.service_selectors.matches_or_empty(service_labels)
    }
}

impl Pool {
    /// Whether the pool has addresses of `family`.
    pub fn has_family(&self, family: Family) -> bool {
        self.ranges.iter().any(|r| r.family() == family)
    }

    /// The range of the pool holding `addr`, if any (ignores `avoidBuggyIPs`).
    pub fn range_of(&self, addr: std::net::IpAddr) -> Option<&IpRange> {
        self.ranges.iter().find(|r| r.contains(addr))
    }
}

/// Checks one pool on its own; overlaps with other pools are checked by the caller.
pub(crate) fn check(pool: &IPAddressPool, findings: &mut Findings) -> Option<Pool> {
    let spec = &pool.spec;
    if spec.addresses.is_empty() {
        findings.invalid("spec.addresses", "the pool has no addresses");
    }
    let mut ranges = Vec::new();
    let mut own = RangeIndex::default();
    for (i, entry) in spec.addresses.iter().enumerate() {
        let field = format!("spec.addresses[{i}]");
        match entry.parse::<IpRange>() {
            Err(err) => findings.invalid(field, err.to_string()),
            Ok(range) => match own.overlapping(&range) {
                Some((_, j)) => findings.invalid(
                    field,
                    format!(
                        "{entry:?} overlaps {:?} (spec.addresses[{j}]) of the same pool",
                        spec.addresses[*j]
                    ),
                ),
                None => {
                    own.insert(range, i);
                    ranges.push(range);
                }
            },
        }
    }
    let allocation = spec.service_allocation.as_ref().map(|alloc| {
        let priority = alloc.priority.unwrap_or(0);
        if priority < 0 {
            findings.invalid("spec.serviceAllocation.priority", "must not be negative");
        }
        let mut namespaces = BTreeSet::new();
        for (i, ns) in alloc.namespaces.iter().enumerate() {
            let field = format!("spec.serviceAllocation.namespaces[{i}]");
            if let Some(why) = selector::dns_label_error(ns) {
                findings.invalid(field, format!("namespace name {ns:?} {why}"));
            } else if !namespaces.insert(ns.clone()) {
                findings.invalid(field, format!("duplicate namespace {ns:?}"));
            }
        }
        Allocation {
            priority,
            namespaces,
            namespace_selectors: selector::compile_list(
                &alloc.namespace_selectors,
                "spec.serviceAllocation.namespaceSelectors",
                findings,
            ),
            service_selectors: selector::compile_list(
                &alloc.service_selectors,
                "spec.serviceAllocation.serviceSelectors",
                findings,
            ),
        }
    });
    (!findings.is_blocked()).then(|| Pool {
        name: pool.metadata.name.clone().unwrap_or_default(),
        labels: pool.metadata.labels.clone().unwrap_or_default(),
        ranges,
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        allocation,
    })
}
