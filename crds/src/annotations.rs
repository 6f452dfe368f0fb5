//! Service annotations FerroLB reads and writes, with MetalLB's names as aliases.
//!
//! Each annotation is read under `ferrolb.io/`, then MetalLB's `metallb.io/`, then
//! MetalLB's deprecated `metallb.universe.tf/`; the first one present wins.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::Family;

/// Prefixes an annotation is read under, in order of precedence.
pub const PREFIXES: [&str; 3] = ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"];

/// An annotation, by its name without prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Annotation(&'static str);

/// Read: allocate from the pool with this name.
pub const ADDRESS_POOL: Annotation = Annotation("address-pool");
/// Read: the addresses the Service asks for, comma-separated, at most one per family.
pub const LOAD_BALANCER_IPS: Annotation = Annotation("loadBalancerIPs");
/// Read: Services with the same key may share an address.
pub const ALLOW_SHARED_IP: Annotation = Annotation("allow-shared-ip");
/// Written by the controller: the pool the Service's addresses came from.
pub const IP_ALLOCATED_FROM_POOL: Annotation = Annotation("ip-allocated-from-pool");

impl Annotation {
    /// The name without prefix.
    pub fn name(self) -> &'static str {
        self.0
    }

    /// The key FerroLB writes: `ferrolb.io/<name>`.
    pub fn key(self) -> String {
        format!("{}{}", PREFIXES[0], self.0)
    }

    /// Reads the annotation from a Service's annotations, honouring the aliases.
    pub fn get(self, annotations: &BTreeMap<String, String>) -> Option<Found<'_>> {
        PREFIXES.iter().find_map(|prefix| {
            let (key, value) = annotations.get_key_value(&format!("{prefix}{}", self.0))?;
            Some(Found { key, value })
        })
    }
}

/// An annotation value and the key it was found under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// The full key, e.g. `metallb.io/address-pool`.
    pub key: &'a str,
    /// The value.
    pub value: &'a str,
}

impl Found<'_> {
    /// Whether it was found under MetalLB's deprecated `metallb.universe.tf/` prefix
    /// (the controller warns about those).
    pub fn is_deprecated(&self) -> bool {
        self.key.starts_with(PREFIXES[2])
    }
}

/// Why a `loadBalancerIPs` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadBalancerIpsError {
    /// An entry is not an IP address.
    #[error("{0:?} is not an IP address")]
    NotAnAddress(String),
    /// More than one address of a family.
    #[error("more than one {0} address requested; ask for at most one per family")]
    SameFamilyTwice(Family),
    /// Nothing requested.
    #[error("the list of addresses is empty")]
    Empty,
}

/// Parses a `loadBalancerIPs` value: comma-separated addresses, white space ignored,
/// at most one IPv4 and one IPv6, in the order given.
pub fn parse_load_balancer_ips(value: &str) -> Result<Vec<IpAddr>, LoadBalancerIpsError> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let addr: IpAddr = entry
            .parse()
            .map_err(|_| LoadBalancerIpsError::NotAnAddress(entry.to_string()))?;
        if addrs.iter().any(|a| Family::of(*a) == Family::of(addr)) {
            return Err(LoadBalancerIpsError::SameFamilyTwice(Family::of(addr)));
        }
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(LoadBalancerIpsError::Empty);
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ours_win_over_metallb_names() {
        let a = annotations(&[
            ("metallb.universe.tf/address-pool", "old"),
            ("metallb.io/address-pool", "metallb"),
            ("ferrolb.io/address-pool", "ours"),
        ]);
        assert_eq!(ADDRESS_POOL.get(&a).unwrap().value, "ours");
    }

    #[test]
    fn metallb_names_are_aliases() {
        let a = annotations(&[
            ("metallb.universe.tf/allow-shared-ip", "k"),
            ("metallb.io/allow-shared-ip", "new"),
        ]);
        let found = ALLOW_SHARED_IP.get(&a).unwrap();
        assert_eq!(
            (found.key, found.value, found.is_deprecated()),
            ("metallb.io/allow-shared-ip", "new", false)
        );
        let a = annotations(&[("metallb.universe.tf/loadBalancerIPs", "10.0.0.1")]);
        assert!(LOAD_BALANCER_IPS.get(&a).unwrap().is_deprecated());
        assert_eq!(IP_ALLOCATED_FROM_POOL.key(), "ferrolb.io/ip-allocated-from-pool");
        assert!(ADDRESS_POOL.get(&BTreeMap::new()).is_none());
    }

    #[test]
    fn load_balancer_ips() {
        let parsed = parse_load_balancer_ips(" fd00::5 , 10.0.0.5 ").unwrap();
        assert_eq!(
            parsed,
            vec!["fd00::5".parse::<IpAddr>().unwrap(), "10.0.0.5".parse().unwrap()]
        );
        assert_eq!(
            parse_load_balancer_ips("10.0.0.1,10.0.0.2"),
            Err(LoadBalancerIpsError::SameFamilyTwice(Family::V4))
        );
        assert_eq!(
            parse_load_balancer_ips("10.0.0.300"),
            Err(LoadBalancerIpsError::NotAnAddress("10.0.0.300".into()))
        );
        assert_eq!(parse_load_balancer_ips(" , "), Err(LoadBalancerIpsError::Empty));
    }
}
