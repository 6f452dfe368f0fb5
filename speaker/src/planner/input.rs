//! The planner's inputs, read from Kubernetes objects.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_crds::service::{ClassPolicy, ServiceKey, ingress_ips};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label of an EndpointSlice naming its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

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
    /// Its namespace and name.
    pub key: ServiceKey,
    /// Its uid (Events name it: `kubectl describe` shows only Events that do).
    pub uid: Option<String>,
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
    /// Cordoned (`spec.unschedulable`): being drained.
    pub unschedulable: bool,
}

/// The endpoints of one EndpointSlice, with the Service they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The Service (label `kubernetes.io/service-name`, in the slice's namespace).
    pub service: ServiceKey,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// Reads a Service of type LoadBalancer of our class with ingress addresses (`None`
/// for any other: a Service of another class is never announced, even with an address
/// inside our pools), its endpoints left for [`slice_info`] to supply.
pub fn service_info(service: &Service, class: &ClassPolicy) -> Option<ServiceInfo> {
    let spec = service.spec.as_ref()?;
    if !class.is_ours(service) {
        return None;
    }
    let ips = ingress_ips(service);
    if ips.is_empty() {
        return None;
    }
    let meta = &service.metadata;
    Some(ServiceInfo {
        key: ServiceKey::of(service),
        uid: meta.uid.clone(),
        ips,
        local: spec.external_traffic_policy.as_deref() == Some("Local"),
        labels: meta.labels.clone().unwrap_or_default(),
        endpoints: Vec::new(),
        ports: spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(ServicePort {
                    protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                    port: u16::try_from(p.port).ok()?,
                    node_port: u16::try_from(p.node_port?).ok()?,
                })
            })
            .collect(),
    })
}

/// Reads an EndpointSlice that names its Service (`None` for one that does not).
pub fn slice_info(slice: &EndpointSlice) -> Option<SliceInfo> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(SliceInfo {
        service: ServiceKey::new(
            slice.metadata.namespace.clone().unwrap_or_default(),
            service.clone(),
        ),
        endpoints: slice
            .endpoints
            .iter()
            .map(|e| Endpoint {
                node: e.node_name.clone(),
                ready: e.conditions.as_ref().and_then(|c| c.ready),
                serving: e.conditions.as_ref().and_then(|c| c.serving),
            })
            .collect(),
    })
}

/// The last join's Services, each with the records it was made of: a Service whose
/// record and slices are the same objects is not joined again (a view of 10,000
/// Services is read after every change, and most changes touch one).
#[derive(Debug, Default)]
pub struct Joined {
    /// Sorted by key.
    entries: Vec<JoinedService>,
}

#[derive(Debug)]
struct JoinedService {
    service: Arc<ServiceInfo>,
    slices: Vec<Arc<SliceInfo>>,
    joined: Arc<ServiceInfo>,
}

/// Gives each Service the endpoints of its slices (reusing the joins in `last` whose
/// records did not change), sorted by key.
pub fn join<'a>(
    services: impl IntoIterator<Item = &'a Arc<ServiceInfo>>,
    slices: impl IntoIterator<Item = &'a Arc<SliceInfo>>,
    last: &mut Joined,
) -> Vec<Arc<ServiceInfo>> {
    // Three sequences sorted by key, walked together: the Services, their slices and
    // the last join. Stable sorts: a Service's slices keep their order, so an unchanged
    // set compares equal (and the records come nearly sorted).
    let mut services: Vec<&Arc<ServiceInfo>> = services.into_iter().collect();
    services.sort_by(|a, b| a.key.cmp(&b.key));
    let mut slices: Vec<&Arc<SliceInfo>> = slices.into_iter().collect();
    slices.sort_by(|a, b| a.service.cmp(&b.service));
    let mut rest = &slices[..];
    let mut before = std::mem::take(&mut last.entries).into_iter().peekable();
    let mut out = Vec::with_capacity(services.len());
    for service in services {
        let orphans = rest.iter().take_while(|s| s.service < service.key).count();
        let count = rest[orphans..]
            .iter()
            .take_while(|s| s.service == service.key)
            .count();
        let (mine, tail) = rest[orphans..].split_at(count);
        rest = tail;
        while before.next_if(|e| e.service.key < service.key).is_some() {}
        let unchanged = before.next_if(|e| {
            Arc::ptr_eq(&e.service, service)
                && e.slices.len() == mine.len()
                && e.slices.iter().zip(mine).all(|(a, b)| Arc::ptr_eq(a, b))
        });
        let entry = match unchanged {
            Some(e) => e,
            None => {
                let joined = match mine.is_empty() {
                    true => service.clone(),
                    false => {
                        let mut joined = ServiceInfo::clone(service);
                        joined
                            .endpoints
                            .extend(mine.iter().flat_map(|s| s.endpoints.iter().cloned()));
                        Arc::new(joined)
                    }
                };
                JoinedService {
                    service: service.clone(),
                    slices: mine.iter().map(|s| Arc::clone(s)).collect(),
                    joined,
                }
            }
        };
        out.push(entry.joined.clone());
        last.entries.push(entry);
    }
    out
}

/// The Service of `key` in `services` sorted by key.
pub fn find<'s>(services: &'s [Arc<ServiceInfo>], key: &ServiceKey) -> Option<&'s ServiceInfo> {
    let i = services.binary_search_by(|s| s.key.cmp(key)).ok()?;
    Some(&services[i])
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
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(name: &str, ip: &str) -> Arc<ServiceInfo> {
        Arc::new(ServiceInfo {
            key: ServiceKey::new("ns", name),
            uid: None,
            ips: vec![ip.parse().unwrap()],
            local: false,
            labels: BTreeMap::new(),
            endpoints: Vec::new(),
            ports: Vec::new(),
        })
    }

    fn slice(service: &str, node: &str) -> Arc<SliceInfo> {
        Arc::new(SliceInfo {
            service: ServiceKey::new("ns", service),
            endpoints: vec![Endpoint {
                node: Some(node.into()),
                ready: None,
                serving: None,
            }],
        })
    }

    #[test]
    fn a_join_is_reused_until_its_service_or_slices_change() {
        let (a, b, c) = (
            record("a", "10.0.0.1"),
            record("b", "10.0.0.2"),
            record("c", "10.0.0.3"),
        );
        let (a1, a2, b1) = (slice("a", "n1"), slice("a", "n2"), slice("b", "n1"));
        let orphan = slice("gone", "n1");
        let mut last = Joined::default();
        // Given out of key order, as the stores' `namespace/name` keys may be.
        let first = join([&c, &a, &b], [&b1, &orphan, &a1, &a2], &mut last);
        let keys: Vec<&str> = first.iter().map(|s| s.key.name.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"], "sorted by key");
        let nodes =
            |s: &ServiceInfo| -> Vec<String> { s.endpoints.iter().filter_map(|e| e.node.clone()).collect() };
        assert_eq!(nodes(&first[0]), ["n1", "n2"]);
        assert!(Arc::ptr_eq(&first[2], &c), "no slices: the record itself");
        let again = join([&a, &b, &c], [&a1, &a2, &b1], &mut last);
        for (x, y) in first.iter().zip(&again) {
            assert!(Arc::ptr_eq(x, y), "nothing changed: {} reused", x.key);
        }
        // b's slice replaced, c's record replaced, a gone.
        let b2 = slice("b", "n3");
        let c2 = record("c", "10.0.0.4");
        let third = join([&b, &c2], [&a1, &b2], &mut last);
        assert_eq!(third.len(), 2);
        assert_eq!(nodes(&third[0]), ["n3"]);
        assert!(!Arc::ptr_eq(&third[0], &again[1]));
        assert_eq!(third[1].ips, c2.ips);
    }

    #[test]
    fn reads_services_slices_and_nodes() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web", "labels": {"app": "web"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [
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
        let info = &join(
            [&Arc::new(service_info(&svc, &ClassPolicy::default()).unwrap())],
            [&Arc::new(slice_info(&slice).unwrap())],
            &mut Joined::default(),
        )[0];
        assert_eq!(info.key, ServiceKey::new("ns", "web"));
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

    #[test]
    fn leaves_out_what_the_planner_never_reads() {
        let service = |spec: serde_json::Value, ingress: serde_json::Value| -> Service {
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": "web"},
                "spec": spec,
                "status": {"loadBalancer": {"ingress": ingress}},
            }))
            .unwrap()
        };
        let ours = ClassPolicy::default();
        let service_info = |s: &Service| service_info(s, &ours);
        let lb = json!({"type": "LoadBalancer"});
        assert!(service_info(&service(lb.clone(), json!([{"ip": "10.0.0.1"}]))).is_some());
        assert!(service_info(&service(lb, json!([]))).is_none(), "no address yet");
        assert!(
            service_info(&service(
                json!({"type": "ClusterIP"}),
                json!([{"ip": "10.0.0.1"}])
            ))
            .is_none(),
            "not a LoadBalancer (any more)"
        );
        let other_class = json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/other"});
        assert!(
            service_info(&service(other_class.clone(), json!([{"ip": "10.0.0.1"}]))).is_none(),
            "another implementation's Service is never announced, whatever its address"
        );
        let named = ClassPolicy {
            class: Some("example.com/other".into()),
        };
        assert!(super::service_info(&service(other_class, json!([{"ip": "10.0.0.1"}])), &named).is_some());
        assert!(
            super::service_info(
                &service(json!({"type": "LoadBalancer"}), json!([{"ip": "10.0.0.1"}])),
                &named
            )
            .is_none(),
            "with --lb-class, Services without a class are another implementation's"
        );
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "orphan"},
            "addressType": "IPv4",
            "endpoints": [],
        }))
        .unwrap();
        assert!(slice_info(&slice).is_none(), "no service-name label");
        let other = SliceInfo {
            service: ServiceKey::new("ns", "other"),
            endpoints: vec![Endpoint {
                node: Some("n1".into()),
                ready: None,
                serving: None,
            }],
        };
        let web = Arc::new(
            service_info(&service(
                json!({"type": "LoadBalancer"}),
                json!([{"ip": "10.0.0.1"}]),
            ))
            .unwrap(),
        );
        assert!(
            join([&web], [&Arc::new(other)], &mut Joined::default())[0]
                .endpoints
                .is_empty(),
            "a slice of another Service is not joined"
        );
    }
}
