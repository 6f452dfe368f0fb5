use serde_json::{Value, json};

use super::*;

const NS: &str = "ferrolb-system";

fn time(s: &str) -> Time {
    serde_json::from_value(json!(s)).unwrap()
}

fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"addresses": addresses},
    }))
    .unwrap()
}

fn service(name: &str, ingress: &[&str], created: &str) -> Service {
    let ingress: Vec<_> = ingress.iter().map(|ip| json!({"ip": ip})).collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name, "uid": format!("uid-{name}"),
                     "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": ingress}},
    }))
    .unwrap()
}

fn started(pools: &[IPAddressPool], services: &[Service]) -> Engine {
    let mut e = Engine::new(NS, ClassPolicy::default(), time("2026-11-23T10:00:00Z"));
    for p in pools {
        e.pool_applied(p.clone());
    }
    for s in services {
        e.service_applied(s);
    }
    e.start();
    e
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn ingress_written(actions: &[Action], name: &str) -> Option<Value> {
    actions.iter().find_map(|a| match a {
        Action::Service {
            key: k,
            status: Some(s),
            ..
        } if *k == key(name) => {
            Some(serde_json::to_value(s).unwrap()["status"]["loadBalancer"]["ingress"].clone())
        }
        _ => None,
    })
}

fn events(actions: &[Action]) -> Vec<(String, &'static str, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(n) => Some((n.key.name.clone(), n.reason, n.message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn start_restores_before_it_allocates() {
    let mut e = started(
        &[pool("p", &["10.0.0.0/30"])],
        &[
            service("new", &[], "2026-01-02T00:00:00Z"),
            service("old", &["10.0.0.0"], "2026-01-01T00:00:00Z"),
        ],
    );
    let actions = e.take_actions();
    assert_eq!(
        ingress_written(&actions, "new"),
        Some(json!([{"ip": "10.0.0.1"}]))
    );
    // The old Service keeps its address; only its condition and annotation are added.
    let old = actions
        .iter()
        .find(|a| matches!(a, Action::Service { key: k, .. } if *k == key("old")));
    let Some(Action::Service {
        status: Some(status),
        metadata: Some(metadata),
        ..
    }) = old
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        serde_json::to_value(status).unwrap()["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "10.0.0.0"}])
    );
    assert_eq!(
        serde_json::to_value(metadata).unwrap()["metadata"]["annotations"]["ferrolb.io/ip-allocated-from-pool"],
        "p"
    );
    assert_eq!(
        events(&actions),
        vec![(
            "new".into(),
            "IPAllocated",
            "Assigned IP 10.0.0.1 from pool p".into()
        )]
    );
}

#[test]
fn a_pending_service_gets_the_freed_address_without_any_edit() {
    let mut e = started(
        &[pool("p", &["10.0.0.0/32"])],
        &[
            service("a", &[], "2026-01-01T00:00:00Z"),
            service("b", &[], "2026-01-02T00:00:00Z"),
        ],
    );
    let actions = e.take_actions();
    assert_eq!(ingress_written(&actions, "a"), Some(json!([{"ip": "10.0.0.0"}])));
    assert_eq!(ingress_written(&actions, "b"), Some(Value::Null));
    let failed = events(&actions)
        .into_iter()
        .find(|e| e.1 == "AllocationFailed")
        .unwrap();
    assert_eq!(
        failed.2,
        "Failed to allocate IP for default/b: no free address in pool p"
    );
    assert_eq!(e.pending(), 1);

    // The same lagging view again changes nothing and repeats no Event.
    e.service_applied(&service("b", &[], "2026-01-02T00:00:00Z"));
    assert!(
        e.take_actions()
            .iter()
            .all(|a| !matches!(a, Action::Service { .. } | Action::Event(_)))
    );

    e.service_deleted(&key("a"));
    let actions = e.take_actions();
    assert_eq!(ingress_written(&actions, "b"), Some(json!([{"ip": "10.0.0.0"}])));
    assert_eq!(e.pending(), 0);
}

#[test]
fn pool_status_counts_and_invalid_pools() {
    let mut e = started(
        &[pool("p", &["10.0.0.0/30"]), pool("z-bad", &["10.0.0.2/31"])],
        &[service("a", &[], "2026-01-01T00:00:00Z")],
    );
    let actions = e.take_actions();
    let status = |name: &str| {
        actions.iter().find_map(|a| match a {
            Action::PoolStatus { name: n, status } if n == name => Some(status.clone()),
            _ => None,
        })
    };
    let p = status("p").unwrap();
    assert_eq!((p.assigned_ipv4, p.available_ipv4), (1, 3));
    let bad = status("z-bad").unwrap();
    assert_eq!(bad.conditions[0].status, "False");
    assert_eq!(bad.conditions[1].type_, "Overlapping");
    assert_eq!(bad.conditions[1].status, "True");
    let state = actions.iter().find_map(|a| match a {
        Action::ConfigState(s) => Some(s.clone()),
        _ => None,
    });
    assert!(state.unwrap().error_summary.contains("IPAddressPool \"z-bad\""));
}

#[test]
fn a_class_change_releases_and_clears() {
    let mut e = started(
        &[pool("p", &["10.0.0.0/30"])],
        &[service("a", &[], "2026-01-01T00:00:00Z")],
    );
    e.take_actions();
    let mut svc = service("a", &["10.0.0.0"], "2026-01-01T00:00:00Z");
    svc.metadata.annotations =
        Some([("ferrolb.io/ip-allocated-from-pool".to_string(), "p".to_string())].into());
    svc.spec.as_mut().unwrap().load_balancer_class = Some("other.io/lb".into());
    e.service_applied(&svc);
    let actions = e.take_actions();
    assert_eq!(ingress_written(&actions, "a"), Some(Value::Null));
    assert_eq!(events(&actions)[0].1, "ClearAssignment");
    assert_eq!(e.allocator().usage("p").unwrap().assigned, [0, 0]);
    assert_eq!(
        e.tally().releases,
        [("NotServed", 1)].into(),
        "the reason reaches the metrics"
    );
}

#[test]
fn a_malformed_request_is_reported() {
    let mut svc = service("a", &[], "2026-01-01T00:00:00Z");
    svc.spec.as_mut().unwrap().load_balancer_ip = Some("not-an-ip".into());
    let mut e = started(&[pool("p", &["10.0.0.0/30"])], &[svc]);
    let actions = e.take_actions();
    let Some(Action::Service {
        status: Some(status), ..
    }) = actions.iter().find(|a| matches!(a, Action::Service { .. }))
    else {
        panic!()
    };
    assert_eq!(
        serde_json::to_value(status).unwrap()["status"]["conditions"][0]["reason"],
        "InvalidRequest"
    );
    assert!(events(&actions)[0].2.contains("spec.loadBalancerIP"));
}

#[test]
fn shrinking_the_pool_moves_the_service_and_says_why() {
    let mut e = started(
        &[pool("p", &["10.0.0.0/30"])],
        &[service("a", &["10.0.0.3"], "2026-01-01T00:00:00Z")],
    );
    e.take_actions();
    e.pool_applied(pool("p", &["10.0.0.0/31"]));
    let actions = e.take_actions();
    assert_eq!(ingress_written(&actions, "a"), Some(json!([{"ip": "10.0.0.0"}])));
    let reasons: Vec<_> = events(&actions).into_iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(
        reasons,
        vec![
            (
                "ClearAssignment",
                "released 10.0.0.3: no pool contains it any more".to_string()
            ),
            (
                "IPAllocated",
                "Assigned IP 10.0.0.0 from pool p (was 10.0.0.3)".to_string()
            ),
        ]
    );
}

#[test]
fn nothing_happens_before_start() {
    let mut e = Engine::new(NS, ClassPolicy::default(), time("2026-11-23T10:00:00Z"));
    e.pool_applied(pool("p", &["10.0.0.0/30"]));
    e.service_applied(&service("a", &[], "2026-01-01T00:00:00Z"));
    assert!(e.take_actions().is_empty());
}

#[test]
fn a_namespace_label_change_reconciles_its_services() {
    let mut restricted = pool("gold", &["10.0.0.0/30"]);
    restricted.spec.service_allocation = Some(
        serde_json::from_value(json!({"namespaceSelectors": [{"matchLabels": {"tier": "gold"}}]})).unwrap(),
    );
    let mut e = started(&[restricted], &[service("a", &[], "2026-01-01T00:00:00Z")]);
    let actions = e.take_actions();
    assert_eq!(events(&actions)[0].1, "AllocationFailed");
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "default", "labels": {"tier": "gold"}}})).unwrap();
    e.namespace_applied(&ns);
    assert_eq!(
        ingress_written(&e.take_actions(), "a"),
        Some(json!([{"ip": "10.0.0.0"}]))
    );
    // The same labels again change nothing.
    e.namespace_applied(&ns);
    assert!(e.take_actions().is_empty());
}
