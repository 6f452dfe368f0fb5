//! The node's links and their addresses, as the netlink shell keeps them: plain data
//! that the engine (steering targets) and the Layer 2 interface choice read.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::l2::packet::Mac;

/// A network link of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Kernel interface index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its MAC address (links without one are not Ethernet and never used).
    pub mac: Option<Mac>,
    /// Administratively up and with carrier.
    pub up: bool,
    /// IFF_BROADCAST.
    pub broadcast: bool,
    /// IFF_NOARP.
    pub noarp: bool,
    /// Enslaved to a bond or bridge.
    pub enslaved: bool,
}

/// The node's links and their addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    /// Links by index.
    pub links: BTreeMap<u32, Link>,
    /// Addresses (with prefix) by link index.
    pub addresses: BTreeMap<u32, Vec<IpNet>>,
}

impl Links {
    /// A link by name.
    pub fn by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// The first address of `family`'s kind (v4 when `v4`) on a link, skipping
    /// link-local ones: the node address the dataplane steers to.
    pub fn primary(&self, index: u32, v4: bool) -> Option<IpAddr> {
        self.addresses
            .get(&index)?
            .iter()
            .map(|n| n.addr())
            .find(|a| match a {
                IpAddr::V4(_) => v4,
                IpAddr::V6(v6) => !v4 && !v6.is_unicast_link_local(),
            })
    }
}
