//! The planner's inputs, read from Kubernetes objects.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_crds::service::ingress_ips;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// One endpoint of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The node it runs on, if known.
    pub node: Option<String>,
    /// `conditions.ready`.
    pub ready: Option<bool>,
    /// `conditions.serving`.
    pub serving: Option<bool>,
}

impl Endpoint {
    /// Usable for Layer 2: `ready` unset or true, or `serving` true (MetalLB's rule).
    pub fn usable(&self) -> bool {
        self.ready != Some(false) || self.serving == Some(true)
    }
}

/// A Service with addresses, as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `namespace/name`.
    pub key: String,
    /// Its ingress addresses.
    pub ips: Vec<IpAddr>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// Labels, for advertisements' serviceSelectors.
    pub labels: BTreeMap<String, String>,
    /// Endpoints from all its EndpointSlices.
    pub endpoints: Vec<Endpoint>,
    /// Its ports that have a NodePort, for the dataplane.
    pub ports: Vec<ServicePort>,
}

/// A Service port with its NodePort.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The Service port.
    pub port: u16,
    /// Its NodePort.
    pub node_port: u16,
}

impl ServiceInfo {
    /// Whether traffic for the Service can be served when it arrives at `node`.
    pub fn servable_from(&self, node: &str) -> bool {
        let mut usable = self.endpoints.iter().filter(|e| e.usable());
        if self.local {
            usable.any(|e| e.node.as_deref() == Some(node))
        } else {
            usable.next().is_some()
        }
    }
}

/// A Node, as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The Ready condition is True.
    pub ready: bool,
    /// The NetworkUnavailable condition is True.
    pub network_unavailable: bool,
}

/// Reads a Service and its EndpointSlices (those labelled `kubernetes.io/service-name`
/// with its name, in its namespace).
pub fn service_info(service: &Service, slices: &[&EndpointSlice]) -> ServiceInfo {
    let meta = &service.metadata;
    let ips = ingress_ips(service);
    let endpoints = slices
        .iter()
        .flat_map(|slice| slice.endpoints.iter())
        .map(|e| Endpoint {
            node: e.node_name.clone(),
            ready: e.conditions.as_ref().and_then(|c| c.ready),
            serving: e.conditions.as_ref().and_then(|c| c.serving),
        })
        .collect();
    ServiceInfo {
        key: format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        ),
        ips,
        local: service
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local"),
        labels: meta.labels.clone().unwrap_or_default(),
        endpoints,
        ports: service
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .filter_map(|p| {
                Some(ServicePort {
                    protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                    port: u16::try_from(p.port).ok()?,
                    node_port: u16::try_from(p.node_port?).ok()?,
                })
            })
            .collect(),
    }
}

/// Reads a Node.
pub fn node_info(node: &Node) -> NodeInfo {
    let condition = |kind: &str| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|list| list.iter().find(|c| c.type_ == kind))
            .is_some_and(|c| c.status == "True")
    };
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        ready: condition("Ready"),
        network_unavailable: condition("NetworkUnavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_services_slices_and_nodes() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web", "labels": {"app": "web"}},
            "spec": {"externalTrafficPolicy": "Local", "ports": [
                {"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP", "nodePort": 30053}, {"port": 9}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"hostname": "x"}]}},
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.1.0.1"], "nodeName": "n1", "conditions": {"ready": false, "serving": true}},
                {"addresses": ["10.1.0.2"], "nodeName": "n2", "conditions": {"ready": false}},
            ],
        }))
        .unwrap();
        let info = service_info(&svc, &[&slice]);
        assert_eq!(info.key, "ns/web");
        let ports: Vec<_> = info
            .ports
            .iter()
            .map(|p| (p.protocol.as_str(), p.port, p.node_port))
            .collect();
        assert_eq!(
            ports,
            [("tcp", 80, 30080), ("udp", 53, 30053)],
            "ports without a NodePort are skipped"
        );
        assert_eq!(info.ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(info.servable_from("n1"), "serving counts");
        assert!(!info.servable_from("n2"), "not ready and not serving");

        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "NetworkUnavailable", "status": "False"}]},
        }))
        .unwrap();
        let info = node_info(&node);
        assert!(info.ready && !info.network_unavailable);
    }
}
