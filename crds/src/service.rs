//! What FerroLB's components read from a Service's status.

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
}
