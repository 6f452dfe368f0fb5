//! The watches the speaker keeps (Services, EndpointSlices, Nodes, and FerroLB's
//! configuration: pools, advertisements, BGP peers, communities, BFD profiles, and the
//! namespace's basic-auth Secrets that hold BGP passwords), each into an in-memory store
//! of what the speaker reads of it, and the [`View`] the engine plans from, read from
//! those stores after each API change.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use ferrolb_crds::api::{BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};
use ferrolb_crds::config::{self, Objects};
use ferrolb_crds::service::ClassPolicy;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{Notify, watch};

use crate::api::watch::{Listed, Records, WatchEnded};
use crate::engine::View;
use crate::planner::{self, Joined, ServiceInfo, SliceInfo};

/// The records the watches keep.
pub struct Stores {
    services: Records<Arc<ServiceInfo>>,
    slices: Records<Arc<SliceInfo>>,
    /// The last view's Services with their endpoints.
    joined: Mutex<Joined>,
    nodes: Records<Node>,
    pools: Records<IPAddressPool>,
    ads: Records<L2Advertisement>,
    bgp_ads: Records<BGPAdvertisement>,
    peers: Records<BGPPeer>,
    communities: Records<Community>,
    bfd_profiles: Records<BFDProfile>,
    secrets: Records<Secret>,
}

impl Stores {
    /// Starts the watches: cluster-wide Services (of `class`), EndpointSlices and Nodes,
    /// and FerroLB's objects in `namespace`; each change notifies `dirty`.
    pub fn watch(client: &Client, namespace: &str, class: &ClassPolicy, dirty: &Arc<Notify>) -> Self {
        let class = class.clone();
        Self {
            services: Records::watch(Api::all(client.clone()), dirty, move |s: Service| {
                planner::service_info(&s, &class).map(Arc::new)
            }),
            slices: Records::watch(Api::all(client.clone()), dirty, |s: EndpointSlice| {
                planner::slice_info(&s).map(Arc::new)
            }),
            joined: Mutex::default(),
            nodes: Records::watch(Api::all(client.clone()), dirty, |n| Some(prune_node(n))),
            // Without its status: the controller writes the pool's usage at each change.
            pools: Records::watch(
                Api::namespaced(client.clone(), namespace),
                dirty,
                |mut p: IPAddressPool| {
                    p.status = None;
                    Some(unannotated(p))
                },
            ),
            ads: Records::watch(
                Api::namespaced(client.clone(), namespace),
                dirty,
                |a: L2Advertisement| Some(unannotated(a)),
            ),
            bgp_ads: Records::watch(
                Api::namespaced(client.clone(), namespace),
                dirty,
                |a: BGPAdvertisement| Some(unannotated(a)),
            ),
            peers: Records::watch(Api::namespaced(client.clone(), namespace), dirty, |p: BGPPeer| {
                Some(unannotated(p))
            }),
            communities: Records::watch(
                Api::namespaced(client.clone(), namespace),
                dirty,
                |c: Community| Some(unannotated(c)),
            ),
            bfd_profiles: Records::watch(
                Api::namespaced(client.clone(), namespace),
                dirty,
                |b: BFDProfile| Some(unannotated(b)),
            ),
            // Only the type a BGPPeer's passwordSecret may name is kept (MetalLB's rule).
            secrets: Records::watch(Api::namespaced(client.clone(), namespace), dirty, |s: Secret| {
                (s.type_.as_deref() == Some("kubernetes.io/basic-auth")).then(|| unannotated(s))
            }),
        }
    }

    /// Waits for every first list, or until `stop` turns true.
    pub async fn listed(&self, stop: &mut watch::Receiver<bool>) -> Result<Listed, WatchEnded> {
        // Once `stop` is true, each wait after the first returns at once.
        let all = [
            self.services.listed(stop).await?,
            self.slices.listed(stop).await?,
            self.nodes.listed(stop).await?,
            self.pools.listed(stop).await?,
            self.ads.listed(stop).await?,
            self.bgp_ads.listed(stop).await?,
            self.peers.listed(stop).await?,
            self.communities.listed(stop).await?,
            self.bfd_profiles.listed(stop).await?,
            self.secrets.listed(stop).await?,
        ];
        Ok(if all.contains(&Listed::Stopped) {
            Listed::Stopped
        } else {
            Listed::Complete
        })
    }

    /// What node `me` plans from now, in FerroLB's `namespace`; with gossip at
    /// `gossip_at`, the other speakers' gossip addresses too.
    pub fn view(&self, namespace: &str, me: &str, gossip_at: Option<SocketAddr>) -> View {
        let objects = Objects {
            pools: self.pools.read(|m| m.values().cloned().collect()),
            l2_advertisements: self.ads.read(|m| m.values().cloned().collect()),
            bgp_advertisements: self.bgp_ads.read(|m| m.values().cloned().collect()),
            bgp_peers: self.peers.read(|m| m.values().cloned().collect()),
            communities: self.communities.read(|m| m.values().cloned().collect()),
            bfd_profiles: self.bfd_profiles.read(|m| m.values().cloned().collect()),
            nodes: self.nodes.read(|m| m.values().cloned().collect()),
            secrets: self.secrets.read(|m| m.values().cloned().collect()),
        };
        View {
            services: self.services.read(|services| {
                self.slices.read(|slices| {
                    let mut joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
                    planner::join(services.values(), slices.values(), &mut joined)
                })
            }),
            // Invalid objects are left out, as the controller reports them.
            config: config::build(namespace, &objects).config,
            nodes: objects.nodes.iter().map(planner::node_info).collect(),
            node_ips: objects
                .nodes
                .iter()
                .find(|n| n.name_any() == me)
                .map(node_ips)
                .unwrap_or_default(),
            seeds: gossip_at
                .map(|at| seeds(objects.nodes.iter(), me, at))
                .unwrap_or_default(),
        }
    }
}

/// The gossip addresses of the other nodes: their InternalIP of the family of this
/// speaker's own gossip address (its socket reaches no other), on the same port.
fn seeds<'a>(nodes: impl Iterator<Item = &'a Node>, me: &str, mine: SocketAddr) -> Vec<SocketAddr> {
    nodes
        .filter(|n| n.name_any() != me)
        .filter_map(|n| node_ips(n).into_iter().find(|ip| ip.is_ipv4() == mine.is_ipv4()))
        .map(|ip| SocketAddr::new(ip, mine.port()))
        .collect()
}

/// An object without its field-manager records and annotations, often most of its size
/// (kubectl's last-applied copy, controllers' bookkeeping), and without its
/// resourceVersion, so that an update of what the speaker does not read leaves the
/// record equal.
fn unannotated<K: Resource>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.resource_version = None;
    object
}

/// Keeps of a Node its labels, the type and status of its conditions, its addresses and
/// whether it is cordoned (a Node's image list alone can be tens of kilobytes).
fn prune_node(node: Node) -> Node {
    let mut node = unannotated(node);
    if let Some(status) = node.status.take() {
        node.status = Some(NodeStatus {
            addresses: status.addresses,
            conditions: status.conditions.map(|list| {
                list.into_iter()
                    .map(|c| NodeCondition {
                        type_: c.type_,
                        status: c.status,
                        ..NodeCondition::default()
                    })
                    .collect()
            }),
            ..NodeStatus::default()
        });
    }
    node.spec = node.spec.take().map(|spec| NodeSpec {
        unschedulable: spec.unschedulable,
        ..NodeSpec::default()
    });
    node
}

/// A Node's InternalIP addresses.
fn node_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ips: &[&str]) -> Node {
        let addresses: Vec<_> = ips
            .iter()
            .map(|ip| serde_json::json!({"type": "InternalIP", "address": ip}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"addresses": addresses},
        }))
        .unwrap()
    }

    #[test]
    fn seeds_are_the_other_nodes_of_the_gossip_family() {
        let nodes = [
            node("me", &["10.0.0.1", "fd00::1"]),
            node("dual", &["fd00::2", "10.0.0.2"]),
            node("v6only", &["fd00::3"]),
            node("none", &[]),
        ];
        let v4: SocketAddr = "10.0.0.1:7946".parse().unwrap();
        let v6: SocketAddr = "[fd00::1]:7946".parse().unwrap();
        let list = |mine| seeds(nodes.iter(), "me", mine);
        assert_eq!(list(v4), ["10.0.0.2:7946".parse().unwrap()]);
        assert_eq!(
            list(v6),
            [
                "[fd00::2]:7946".parse::<SocketAddr>().unwrap(),
                "[fd00::3]:7946".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_pruned_node_keeps_what_the_planner_reads() {
        let mut n = node("n1", &["10.0.0.1"]);
        n.metadata.labels = Some([("zone".to_string(), "a".to_string())].into());
        n.metadata.annotations = Some([("big".to_string(), "x".repeat(1000))].into());
        let pruned = prune_node(n.clone());
        assert_eq!(pruned.metadata.labels, n.metadata.labels);
        assert_eq!(pruned.metadata.annotations, None);
        assert_eq!(node_ips(&pruned), ["10.0.0.1".parse::<IpAddr>().unwrap()]);
    }
}
