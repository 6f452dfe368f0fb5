//! The dataplane's rules: which VIP traffic this node steers to its NodePorts.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use crate::host::links::Links;
use crate::host::nftables::Steer;
use crate::l2::Owned;
use crate::planner::{self, Plan, ServiceInfo};

/// Every port with a NodePort of every Service `plan` gives `node` (on the addresses
/// `owned` announces), to the node's address of the VIP's family: from the API
/// (`api_ips`), or else from the announcing interface. `services` are sorted by key.
pub fn rules(
    node: &str,
    plan: &Plan,
    services: &[Arc<ServiceInfo>],
    api_ips: &[IpAddr],
    links: &Links,
    owned: &Owned,
) -> BTreeSet<Steer> {
    let mut rules = BTreeSet::new();
    for (ip, a) in plan.of_node(node) {
        let Some(ifaces) = owned.get(ip) else { continue };
        let node_ip = api_ips
            .iter()
            .copied()
            .find(|n| n.is_ipv4() == ip.is_ipv4())
            .or_else(|| {
                ifaces
                    .iter()
                    .filter_map(|name| links.by_name(name))
                    .find_map(|l| links.primary(l.index, ip.is_ipv4()))
            });
        let Some(node_ip) = node_ip else { continue };
        for port in a
            .services
            .iter()
            .filter_map(|s| planner::find(services, s))
            .flat_map(|s| &s.ports)
        {
            rules.insert(Steer {
                protocol: port.protocol.clone(),
                vip: *ip,
                port: port.port,
                node: node_ip,
                node_port: port.node_port,
            });
        }
    }
    rules
}

/// The rules of Services whose addresses reach this node by routing (BGP): every port
/// with a NodePort, to the node's address of the VIP's family.
pub fn routed<'a>(services: impl Iterator<Item = &'a ServiceInfo>, node_ips: &[IpAddr]) -> BTreeSet<Steer> {
    let mut rules = BTreeSet::new();
    for service in services {
        for vip in &service.ips {
            let Some(node) = node_ips.iter().find(|n| n.is_ipv4() == vip.is_ipv4()) else {
                continue;
            };
            for port in &service.ports {
                rules.insert(Steer {
                    protocol: port.protocol.clone(),
                    vip: *vip,
                    port: port.port,
                    node: *node,
                    node_port: port.node_port,
                });
            }
        }
    }
    rules
}
