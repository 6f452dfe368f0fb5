//! What FerroLB's components read from a Service: whether it is theirs by class, and
//! the addresses in its status.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

/// The addresses in `status.loadBalancer.ingress` (hostname entries and unparsable
/// text are skipped).
pub fn ingress_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| {
            list.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Which Services FerroLB handles, by `spec.loadBalancerClass`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassPolicy {
    /// `--lb-class`: when set, only Services of exactly this class are ours; when
    /// unset, only Services without a class are (we are the cluster's default).
    pub class: Option<String>,
}

impl ClassPolicy {
    /// Whether the Service is a LoadBalancer FerroLB must serve.
    pub fn is_ours(&self, service: &Service) -> bool {
        let Some(spec) = &service.spec else { return false };
        spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class == self.class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_hostnames_and_garbage() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"hostname": "lb"}, {"ip": "x"}, {"ip": "fd00::1"}]}},
        }))
        .unwrap();
        assert_eq!(
            ingress_ips(&svc),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap(), "fd00::1".parse().unwrap()]
        );
        assert!(ingress_ips(&Service::default()).is_empty());
    }

    #[test]
    fn class_policy() {
        let mut svc: Service =
            serde_json::from_value(serde_json::json!({"spec": {"type": "LoadBalancer"}})).unwrap();
        let default = ClassPolicy::default();
        let named = ClassPolicy {
            class: Some("ferrolb.io/lb".into()),
        };
        assert!(default.is_ours(&svc));
        assert!(!named.is_ours(&svc));
        svc.spec.as_mut().unwrap().load_balancer_class = Some("ferrolb.io/lb".into());
        assert!(!default.is_ours(&svc));
        assert!(named.is_ours(&svc));
        svc.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(!named.is_ours(&svc));
    }
}

/// A Service's namespace and name: how both components key Services (its `Display` is
/// `namespace/name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Service object (empty parts when metadata lacks them).
    pub fn of(service: &Service) -> Self {
        Self::new(
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        )
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An events.k8s.io/v1 Event about a Service, as both components record them: one
/// Event per change, so there is nothing to aggregate into series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEvent {
    /// The Service.
    pub key: ServiceKey,
    /// Its uid, when known.
    pub uid: Option<String>,
    /// Warning rather than Normal.
    pub warning: bool,
    /// What was done (`Allocate`, `Announce`).
    pub action: &'static str,
    /// Why, in MetalLB's vocabulary where it has a word.
    pub reason: &'static str,
    /// For a human.
    pub message: String,
}

impl ServiceEvent {
    /// The Event object, reported by `controller` (e.g. `ferrolb.io/speaker`) instance `instance`.
    pub fn object(&self, controller: &str, instance: &str) -> k8s_openapi::api::events::v1::Event {
        use k8s_openapi::api::core::v1::ObjectReference;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
        let now = k8s_openapi::jiff::Timestamp::now();
        k8s_openapi::api::events::v1::Event {
            metadata: ObjectMeta {
                namespace: Some(self.key.namespace.clone()),
                name: Some(format!("{}.{:x}", self.key.name, now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(self.action.into()),
            reason: Some(self.reason.into()),
            note: Some(self.message.clone()),
            type_: Some(if self.warning { "Warning" } else { "Normal" }.into()),
            regarding: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(self.key.namespace.clone()),
                name: Some(self.key.name.clone()),
                uid: self.uid.clone(),
                ..ObjectReference::default()
            }),
            reporting_controller: Some(controller.into()),
            reporting_instance: Some(instance.into()),
            ..Default::default()
        }
    }
}
