//! What a Service asks of the allocator, read from its spec and annotations.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_crds::annotations::{self, LoadBalancerIpsError};
use ferrolb_crds::config::Family;
pub use ferrolb_crds::service::ServiceKey;
use k8s_openapi::api::core::v1::Service;

use super::error::RequestError;

/// Which address families the Service wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Families {
    /// One address of this family.
    Single(Family),
    /// Both families if one pool can give both, else one, the primary family first.
    PreferDual(Family),
    /// Both families, from one pool; the primary family comes first in the status.
    RequireDual(Family),
}

impl Families {
    /// The families wanted, primary first.
    pub fn wanted(self) -> Vec<Family> {
        match self {
            Families::Single(f) => vec![f],
            Families::PreferDual(f) | Families::RequireDual(f) => vec![f, other(f)],
        }
    }

    /// Whether an address of `family` may be part of the assignment.
    pub fn allows(self, family: Family) -> bool {
        match self {
            Families::Single(f) => f == family,
            Families::PreferDual(_) | Families::RequireDual(_) => true,
        }
    }

    /// Whether holding addresses of exactly `held` leaves nothing to add.
    pub fn complete(self, held: &BTreeSet<Family>) -> bool {
        self.wanted().iter().all(|f| held.contains(f))
    }
}

/// The other family.
pub fn other(family: Family) -> Family {
    match family {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

/// A (protocol, port) pair the Service exposes, for sharing checks.
pub type Port = (String, i32);

/// What decides whether the Service may share an address with another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sharing {
    /// The allow-shared-ip key; `None` never shares.
    pub key: Option<String>,
    /// The pods behind the Service when its traffic policy is Local (its selector,
    /// rendered), empty for Cluster: two Local Services must select the same pods.
    pub backend: String,
    /// The Service's ports, sorted, without duplicates.
    pub ports: Vec<Port>,
}

/// One Service's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The Service.
    pub key: ServiceKey,
    /// The Service's labels (for pools' serviceSelectors).
    pub labels: BTreeMap<String, String>,
    /// The labels of the Service's namespace (for pools' namespaceSelectors).
    pub namespace_labels: BTreeMap<String, String>,
    /// Families wanted.
    pub families: Families,
    /// The pool named by the address-pool annotation.
    pub pool: Option<String>,
    /// Addresses asked for, in the order given (annotation or `spec.loadBalancerIP`).
    pub ips: Vec<IpAddr>,
    /// Sharing key, backends and ports.
    pub sharing: Sharing,
}

/// Reads the request of a Service that [`ferrolb_crds::service::ClassPolicy::is_ours`] accepted.
pub fn read(service: &Service, namespace_labels: &BTreeMap<String, String>) -> Result<Request, RequestError> {
    let empty = BTreeMap::new();
    let annotations = service.metadata.annotations.as_ref().unwrap_or(&empty);
    let spec = service.spec.clone().unwrap_or_default();
    let families = families(&spec)?;

    let annotated = annotations::LOAD_BALANCER_IPS.get(annotations);
    let legacy = spec
        .load_balancer_ip
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let ips = match (annotated, legacy) {
        (Some(found), Some(_)) => {
            return Err(RequestError::BothRequests {
                annotation: found.key.to_string(),
            });
        }
        (Some(found), None) => annotations::parse_load_balancer_ips(found.value).map_err(|error| {
            RequestError::BadAnnotation {
                key: found.key.to_string(),
                error,
            }
        })?,
        (None, Some(text)) => vec![text.parse().map_err(|_| RequestError::BadLoadBalancerIp {
            error: LoadBalancerIpsError::NotAnAddress(text.to_string()),
        })?],
        (None, None) => Vec::new(),
    };
    check_requested_families(&ips, families)?;

    let local = spec.external_traffic_policy.as_deref() == Some("Local");
    let backend = if local {
        spec.selector
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let mut ports: Vec<Port> = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.protocol.unwrap_or_else(|| "TCP".into()), p.port))
        .collect();
    ports.sort();
    ports.dedup();

    Ok(Request {
        key: ServiceKey::of(service),
        labels: service.metadata.labels.clone().unwrap_or_default(),
        namespace_labels: namespace_labels.clone(),
        families,
        pool: annotations::ADDRESS_POOL
            .get(annotations)
            .map(|f| f.value.trim().to_string()),
        ips,
        sharing: Sharing {
            key: annotations::ALLOW_SHARED_IP
                .get(annotations)
                .map(|f| f.value.to_string())
                .filter(|k| !k.is_empty()),
            backend,
            ports,
        },
    })
}

/// The families a Service wants, from its ClusterIPs (what the API server actually
/// gave it), falling back to `spec.ipFamilies`.
fn families(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Result<Families, RequestError> {
    let mut from_ips: Vec<Family> = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(Family::of)
        .collect();
    from_ips.dedup();
    let declared: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    let known = if from_ips.is_empty() { declared } else { from_ips };
    let Some(&primary) = known.first() else {
        return Err(RequestError::NoClusterIp);
    };
    let dual_capable = known.iter().any(|f| *f != primary);
    Ok(match spec.ip_family_policy.as_deref() {
        Some("RequireDualStack") if dual_capable => Families::RequireDual(primary),
        Some("RequireDualStack") => return Err(RequestError::NotEnoughClusterIps),
        Some("PreferDualStack") if dual_capable => Families::PreferDual(primary),
        _ => Families::Single(primary),
    })
}

/// Requested addresses must fit the Service's families: one of its family when single
/// stack, both when dual stack is required, one or both when it is preferred.
fn check_requested_families(ips: &[IpAddr], families: Families) -> Result<(), RequestError> {
    if ips.is_empty() {
        return Ok(());
    }
    let requested: BTreeSet<Family> = ips.iter().map(|ip| Family::of(*ip)).collect();
    let fits = match families {
        Families::Single(f) => requested == BTreeSet::from([f]),
        Families::PreferDual(_) => true,
        Families::RequireDual(_) => requested.len() == 2,
    };
    if fits {
        Ok(())
    } else {
        Err(RequestError::FamilyMismatch {
            ips: ips.to_vec(),
            families,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value, annotations: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web", "annotations": annotations},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn reads_families_from_cluster_ips() {
        let svc = service(
            json!({"type": "LoadBalancer", "clusterIPs": ["fd00::1", "10.96.0.1"],
                   "ipFamilyPolicy": "PreferDualStack"}),
            json!({}),
        );
        let req = read(&svc, &BTreeMap::new()).unwrap();
        assert_eq!(req.families, Families::PreferDual(Family::V6));
        assert_eq!(req.families.wanted(), vec![Family::V6, Family::V4]);
    }

    #[test]
    fn require_dual_stack_needs_two_cluster_ips() {
        let svc = service(
            json!({"clusterIPs": ["10.96.0.1"], "ipFamilyPolicy": "RequireDualStack"}),
            json!({}),
        );
        assert_eq!(
            read(&svc, &BTreeMap::new()),
            Err(RequestError::NotEnoughClusterIps)
        );
    }

    #[test]
    fn annotation_aliases_and_both_requests() {
        let svc = service(
            json!({"clusterIP": "10.96.0.1", "loadBalancerIP": "10.0.0.5"}),
            json!({"metallb.io/loadBalancerIPs": "10.0.0.6"}),
        );
        assert_eq!(
            read(&svc, &BTreeMap::new()),
            Err(RequestError::BothRequests {
                annotation: "metallb.io/loadBalancerIPs".into()
            })
        );
        let svc = service(
            json!({"clusterIP": "10.96.0.1", "externalTrafficPolicy": "Local",
                   "selector": {"app": "web"}, "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}]}),
            json!({"metallb.universe.tf/allow-shared-ip": "k", "ferrolb.io/address-pool": " blue "}),
        );
        let req = read(&svc, &BTreeMap::new()).unwrap();
        assert_eq!(req.sharing.key.as_deref(), Some("k"));
        assert_eq!(req.sharing.backend, "app=web");
        assert_eq!(
            req.sharing.ports,
            vec![("TCP".to_string(), 80), ("UDP".to_string(), 53)]
        );
        assert_eq!(req.pool.as_deref(), Some("blue"));
    }

    #[test]
    fn requested_family_must_match() {
        let svc = service(
            json!({"clusterIP": "10.96.0.1", "loadBalancerIP": "fd00::5"}),
            json!({}),
        );
        assert!(matches!(
            read(&svc, &BTreeMap::new()),
            Err(RequestError::FamilyMismatch { .. })
        ));
        let svc = service(
            json!({"clusterIP": "10.96.0.1", "loadBalancerIP": "bogus"}),
            json!({}),
        );
        assert!(matches!(
            read(&svc, &BTreeMap::new()),
            Err(RequestError::BadLoadBalancerIp { .. })
        ));
    }
}
