//! Which interfaces announce an address (pure), decided from the [`Links`] snapshot the
//! netlink shell keeps.
//!
//! - An advertisement that lists `interfaces` announces on those of them that exist and
//!   are up; the listed ones the node lacks are reported (the speaker warns).
//! - Otherwise the default: usable interfaces (up, broadcast-capable, ARP-capable, not a
//!   bond or bridge member, not matching the exclude list) whose subnet contains the
//!   address; when none does (a pool outside every node subnet), every usable one, as
//!   MetalLB answers on every interface.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::host::links::{Link, Links};

/// Interface name patterns skipped by default: `*` at the end matches any suffix.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "lo",
    "docker*",
    "cni*",
    "veth*",
    "cali*",
    "flannel*",
    "kube-ipvs*",
    "cilium*",
    "vxlan*",
    "tunl*",
    "weave*",
    "kube-bridge",
    "nodelocaldns",
    "lxc*",
    "virbr*",
    "br-*",
];

/// The interfaces chosen for one address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    /// Interface names to announce on.
    pub interfaces: Vec<String>,
    /// Listed interfaces the node does not have (or that are down).
    pub missing: Vec<String>,
}

impl Links {
    /// Chooses the interfaces for `ip`: the `listed` ones, or the default choice.
    pub fn choose(&self, ip: IpAddr, listed: &BTreeSet<&str>, excludes: &[String]) -> Choice {
        let ethernet = |l: &&Link| l.up && l.mac.is_some();
        if !listed.is_empty() {
            let mut choice = Choice::default();
            for name in listed {
                match self.by_name(name).filter(ethernet) {
                    Some(_) => choice.interfaces.push(name.to_string()),
                    None => choice.missing.push(name.to_string()),
                }
            }
            return choice;
        }
        let usable: Vec<&Link> = self
            .links
            .values()
            .filter(ethernet)
            .filter(|l| l.broadcast && !l.noarp && !l.enslaved && !excluded(&l.name, excludes))
            .collect();
        let on_subnet: Vec<String> = usable
            .iter()
            .filter(|l| {
                self.addresses
                    .get(&l.index)
                    .is_some_and(|nets| nets.iter().any(|n| n.contains(&ip)))
            })
            .map(|l| l.name.clone())
            .collect();
        Choice {
            interfaces: if on_subnet.is_empty() {
                usable.iter().map(|l| l.name.clone()).collect()
            } else {
                on_subnet
            },
            missing: Vec::new(),
        }
    }
}

/// Whether `name` matches an exclude pattern (`*` at the end: any suffix).
pub fn excluded(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2::packet::Mac;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(Mac([2, 0, 0, 0, 0, index as u8])),
            up: true,
            broadcast: true,
            noarp: false,
            enslaved: false,
        }
    }

    fn links() -> Links {
        let mut l = Links::default();
        for (i, name) in ["lo", "eth0", "eth1", "veth12", "bond-member", "tun0", "down0"]
            .iter()
            .enumerate()
        {
            l.links.insert(i as u32 + 1, link(i as u32 + 1, name));
        }
        l.links.get_mut(&1).unwrap().mac = None;
        l.links.get_mut(&5).unwrap().enslaved = true;
        l.links.get_mut(&6).unwrap().noarp = true;
        l.links.get_mut(&7).unwrap().up = false;
        l.addresses.insert(
            2,
            vec!["10.0.0.2/24".parse().unwrap(), "fe80::1/64".parse().unwrap()],
        );
        l.addresses.insert(
            3,
            vec!["10.1.0.2/24".parse().unwrap(), "fd00:1::2/64".parse().unwrap()],
        );
        l.addresses.insert(4, vec!["10.0.0.9/24".parse().unwrap()]);
        l
    }

    fn names(set: &[String]) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    fn defaults() -> Vec<String> {
        DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_is_the_usable_interface_on_the_subnet() {
        let l = links();
        let c = l.choose("10.0.0.100".parse().unwrap(), &BTreeSet::new(), &defaults());
        assert_eq!(
            names(&c.interfaces),
            ["eth0"],
            "veth12 is on the subnet but excluded"
        );
        let c = l.choose("fd00:1::100".parse().unwrap(), &BTreeSet::new(), &defaults());
        assert_eq!(names(&c.interfaces), ["eth1"]);
    }

    #[test]
    fn off_subnet_addresses_use_every_usable_interface() {
        let c = links().choose("192.168.5.5".parse().unwrap(), &BTreeSet::new(), &defaults());
        assert_eq!(
            names(&c.interfaces),
            ["eth0", "eth1"],
            "not lo, veth, enslaved, NOARP or down"
        );
    }

    #[test]
    fn listed_interfaces_are_taken_as_given_and_missing_ones_reported() {
        let listed = BTreeSet::from(["eth1", "veth12", "down0", "wlan0"]);
        let c = links().choose("10.0.0.100".parse().unwrap(), &listed, &defaults());
        assert_eq!(names(&c.interfaces), ["eth1", "veth12"]);
        assert_eq!(names(&c.missing), ["down0", "wlan0"]);
    }

    #[test]
    fn addresses_of_a_link() {
        let l = links();
        assert_eq!(l.primary(2, true), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(l.primary(2, false), None);
        assert_eq!(l.primary(3, false), Some("fd00:1::2".parse().unwrap()));
        assert!(excluded("cali123", &defaults()) && !excluded("eth0", &defaults()));
    }
}
