use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_crds::config::{self, Config};
use proptest::prelude::*;

use super::*;

const NS: &str = "ferrolb-system";

/// A config from `(kind, name, spec)` triples.
fn config(objects: &[(&str, &str, &str)]) -> Config {
    let text: String = objects
        .iter()
        .map(|(kind, name, spec)| {
            format!("---\napiVersion: ferrolb.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {spec}\n")
        })
        .collect();
    let outcome = config::build(NS, &config::parse_manifests(&text).unwrap());
    assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
    outcome.config
}

fn basic() -> Config {
    config(&[
        ("IPAddressPool", "p", "{addresses: [10.0.0.0/22, 'fd00::/120']}"),
        ("L2Advertisement", "all", "{}"),
    ])
}

/// A Ready node with `labels`.
pub(super) fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ready: true,
        network_unavailable: false,
        unschedulable: false,
    }
}

fn ready_on(nodes: &[&str]) -> Vec<Endpoint> {
    nodes
        .iter()
        .map(|n| Endpoint {
            node: Some(n.to_string()),
            ready: Some(true),
            serving: None,
        })
        .collect()
}

/// The key of `namespace/name`.
fn key(text: &str) -> ServiceKey {
    let (namespace, name) = text.split_once('/').expect("namespace/name");
    ServiceKey::new(namespace, name)
}

fn svc(text: &str, ips: &[&str], local: bool, endpoints: Vec<Endpoint>) -> Arc<ServiceInfo> {
    Arc::new(ServiceInfo {
        key: key(text),
        uid: None,
        ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        local,
        labels: BTreeMap::new(),
        endpoints,
        ports: Vec::new(),
    })
}

/// Services `a/s{i}` for `i` in `range`, one address each (10.0.i/256.i%256), served from `on`.
fn many(range: std::ops::Range<usize>, on: &str) -> Vec<Arc<ServiceInfo>> {
    range
        .map(|i| {
            svc(
                &format!("a/s{i}"),
                &[&format!("10.0.{}.{}", i / 256, i % 256)],
                false,
                ready_on(&[on]),
            )
        })
        .collect()
}

/// The plan with every node's speaker alive.
fn plan_all<'a>(cfg: &'a Config, services: &'a [Arc<ServiceInfo>], nodes: &'a [NodeInfo]) -> Plan<'a> {
    plan(Input {
        config: cfg,
        services,
        nodes,
        live: &live(nodes),
    })
}

fn live(nodes: &[NodeInfo]) -> BTreeSet<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn announcer(plan: &Plan, addr: &str) -> Option<String> {
    plan.announced.get(&ip(addr)).map(|a| a.node.to_string())
}

fn three() -> Vec<NodeInfo> {
    vec![node("n1", &[]), node("n2", &[]), node("n3", &[])]
}

#[test]
fn exactly_one_announcer_per_address_whoever_computes_it() {
    let cfg = basic();
    let nodes = three();
    let services = [svc("a/x", &["10.0.0.1", "fd00::1"], false, ready_on(&["n1"]))];
    let live = live(&nodes);
    let p = plan(Input {
        config: &cfg,
        services: &services,
        nodes: &nodes,
        live: &live,
    });
    assert_eq!(p.announced.len(), 2);
    let mut shuffled = nodes.clone();
    shuffled.reverse();
    let again = super::plan(Input {
        config: &cfg,
        services: &services,
        nodes: &shuffled,
        live: &live,
    });
    assert_eq!(p, again, "input order does not matter");
    let count: usize = nodes.iter().map(|n| p.of_node(&n.name).count()).sum();
    assert_eq!(count, 2);
}

#[test]
fn addresses_outside_pools_or_advertisements_are_not_announced() {
    let cfg = config(&[
        ("IPAddressPool", "p", "{addresses: [10.0.0.0/24]}"),
        ("IPAddressPool", "q", "{addresses: [10.0.1.0/24]}"),
        ("L2Advertisement", "only-p", "{ipAddressPools: [p]}"),
    ]);
    let nodes = three();
    let services = [svc(
        "a/x",
        &["10.0.0.1", "10.0.1.1", "10.9.9.9"],
        false,
        ready_on(&["n1"]),
    )];
    let p = plan_all(&cfg, &services, &nodes);
    assert!(p.announced.contains_key(&ip("10.0.0.1")));
    assert_eq!(p.unannounced[&ip("10.0.1.1")], Unannounced::NoAdvertisement);
    assert_eq!(p.unannounced[&ip("10.9.9.9")], Unannounced::NoPool);
}

#[test]
fn node_selectors_restrict_the_announcers() {
    let cfg = config(&[
        ("IPAddressPool", "p", "{addresses: [10.0.0.0/24]}"),
        (
            "L2Advertisement",
            "edge",
            "{nodeSelectors: [{matchLabels: {edge: 'true'}}]}",
        ),
    ]);
    let nodes = vec![node("n1", &[]), node("n2", &[("edge", "true")]), node("n3", &[])];
    let services = many(1..50, "n1");
    let p = plan_all(&cfg, &services, &nodes);
    assert!(p.announced.values().all(|a| a.node == "n2"));
}

#[test]
fn excluded_unready_unreachable_and_dead_nodes_never_announce() {
    let cfg = basic();
    let mut nodes = vec![
        node("excluded", &[(EXCLUDE_LABEL, "")]),
        node("unready", &[]),
        node("netdown", &[]),
        node("dead", &[]),
        node("ok", &[]),
    ];
    nodes[1].ready = false;
    nodes[2].network_unavailable = true;
    let mut alive = live(&nodes);
    alive.remove("dead");
    let services = many(1..100, "ok");
    let p = plan(Input {
        config: &cfg,
        services: &services,
        nodes: &nodes,
        live: &alive,
    });
    assert!(p.announced.values().all(|a| a.node == "ok"));
}

#[test]
fn local_policy_follows_the_endpoint() {
    let cfg = basic();
    let nodes = three();
    let on = |n: &str| [svc("a/x", &["10.0.0.7"], true, ready_on(&[n]))];
    for n in ["n1", "n2", "n3"] {
        let services = on(n);
        let p = plan_all(&cfg, &services, &nodes);
        assert_eq!(announcer(&p, "10.0.0.7").as_deref(), Some(n));
    }
    let services = [svc("a/x", &["10.0.0.7"], true, vec![])];
    let p = plan_all(&cfg, &services, &nodes);
    assert_eq!(p.unannounced[&ip("10.0.0.7")], Unannounced::NoEligibleNode);
}

#[test]
fn cluster_policy_needs_a_usable_endpoint_somewhere() {
    let cfg = basic();
    let nodes = three();
    let not_ready = vec![Endpoint {
        node: Some("n1".into()),
        ready: Some(false),
        serving: Some(false),
    }];
    let services = [svc("a/x", &["10.0.0.7"], false, not_ready)];
    let p = plan_all(&cfg, &services, &nodes);
    assert_eq!(p.unannounced[&ip("10.0.0.7")], Unannounced::NoEligibleNode);
    let terminating = vec![Endpoint {
        node: Some("n1".into()),
        ready: Some(false),
        serving: Some(true),
    }];
    let unknown = vec![Endpoint {
        node: None,
        ready: None,
        serving: None,
    }];
    for endpoints in [terminating, unknown] {
        let services = [svc("a/x", &["10.0.0.7"], false, endpoints)];
        let p = plan_all(&cfg, &services, &nodes);
        assert!(p.announced.contains_key(&ip("10.0.0.7")));
    }
}

#[test]
fn preferred_nodes_win_over_the_hash() {
    let cfg = config(&[
        ("IPAddressPool", "p", "{addresses: [10.0.0.0/24]}"),
        (
            "L2Advertisement",
            "pref",
            "{preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {zone: a}}}]}",
        ),
    ]);
    let nodes = vec![node("n1", &[]), node("n2", &[("zone", "a")]), node("n3", &[])];
    let services = many(1..100, "n1");
    let mut alive = live(&nodes);
    let all = plan(Input {
        config: &cfg,
        services: &services,
        nodes: &nodes,
        live: &alive,
    });
    assert!(all.announced.values().all(|a| a.node == "n2"));
    alive.remove("n2");
    let without = plan(Input {
        config: &cfg,
        services: &services,
        nodes: &nodes,
        live: &alive,
    });
    let users: BTreeSet<_> = without.announced.values().map(|a| a.node).collect();
    assert_eq!(users, BTreeSet::from(["n1", "n3"]), "the others share the load");
}

#[test]
fn services_sharing_an_address_are_announced_from_one_node() {
    let cfg = basic();
    let nodes = three();
    let services = [
        svc("a/tcp", &["10.0.0.53"], false, ready_on(&["n1"])),
        svc("a/udp", &["10.0.0.53"], false, ready_on(&["n2"])),
    ];
    let p = plan_all(&cfg, &services, &nodes);
    assert_eq!(
        p.announced[&ip("10.0.0.53")].services,
        [&key("a/tcp"), &key("a/udp")]
    );
}

#[test]
fn service_selectors_must_match_every_service_on_the_address() {
    let cfg = config(&[
        ("IPAddressPool", "p", "{addresses: [10.0.0.0/24]}"),
        (
            "L2Advertisement",
            "web",
            "{serviceSelectors: [{matchLabels: {app: web}}]}",
        ),
    ]);
    let nodes = three();
    let mut web = svc("a/web", &["10.0.0.1"], false, ready_on(&["n1"]));
    Arc::make_mut(&mut web).labels.insert("app".into(), "web".into());
    let other = svc("a/other", &["10.0.0.1"], false, ready_on(&["n1"]));
    let services = [web.clone()];
    let p1 = plan_all(&cfg, &services, &nodes);
    assert!(p1.announced.contains_key(&ip("10.0.0.1")));
    let services = [web, other];
    let p2 = plan_all(&cfg, &services, &nodes);
    assert_eq!(p2.unannounced[&ip("10.0.0.1")], Unannounced::NoAdvertisement);
}

#[test]
fn interfaces_come_from_the_applicable_advertisements() {
    let cfg = config(&[
        ("IPAddressPool", "p", "{addresses: [10.0.0.0/24]}"),
        ("L2Advertisement", "a", "{interfaces: [eth1]}"),
        (
            "L2Advertisement",
            "b",
            "{interfaces: [eth2], nodeSelectors: [{matchLabels: {zone: a}}]}",
        ),
    ]);
    let nodes = vec![node("n1", &[])];
    let services = [svc("a/x", &["10.0.0.1"], false, ready_on(&["n1"]))];
    let p = plan_all(&cfg, &services, &nodes);
    let a = &p.announced[&ip("10.0.0.1")];
    assert_eq!(
        a.interfaces,
        BTreeSet::from(["eth1"]),
        "b's node selector does not admit n1"
    );
}

#[test]
fn a_thousand_addresses_spread_over_five_nodes() {
    let cfg = basic();
    let nodes: Vec<_> = (1..=5).map(|i| node(&format!("node-{i}"), &[])).collect();
    let services = many(0..1000, "node-1");
    let p = plan_all(&cfg, &services, &nodes);
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for a in p.announced.values() {
        *per.entry(a.node).or_default() += 1;
    }
    assert_eq!(per.values().sum::<usize>(), 1000);
    assert!(
        per.values().all(|n| *n <= 400),
        "no node above 2× the mean of 200: {per:?}"
    );
    assert_eq!(per.len(), 5);
}

#[test]
fn addresses_are_grouped_in_order_with_their_services() {
    let services = [
        svc("a/x", &["10.0.0.2", "10.0.0.1"], false, vec![]),
        svc("a/y", &["10.0.0.2"], false, vec![]),
        svc("a/z", &["fd00::1", "fd00::1"], false, vec![]),
    ];
    let grouped = ByAddress::of(&services);
    let runs: Vec<(IpAddr, &[usize])> = grouped.runs().collect();
    assert_eq!(
        runs,
        [
            (ip("10.0.0.1"), &[0][..]),
            (ip("10.0.0.2"), &[0, 1][..]),
            (ip("fd00::1"), &[2][..]),
        ]
    );
    assert_eq!(ByAddress::of(&[]).runs().count(), 0);
}

proptest! {
    /// A node's death moves only the addresses it announced.
    #[test]
    fn a_death_moves_only_the_dead_nodes_addresses(dead in 0..5usize, count in 1..200usize) {
        let cfg = basic();
        let nodes: Vec<_> = (0..5).map(|i| node(&format!("n{i}"), &[])).collect();
        let services = many(0..count, "n0");
        let mut alive = live(&nodes);
        let before = plan(Input { config: &cfg, services: &services, nodes: &nodes, live: &alive });
        let dead = format!("n{dead}");
        alive.remove(&dead);
        let after = plan(Input { config: &cfg, services: &services, nodes: &nodes, live: &alive });
        for (ip, a) in &before.announced {
            let now = &after.announced[ip];
            if a.node == dead {
                prop_assert_ne!(now.node, dead.as_str());
            } else {
                prop_assert_eq!(now.node, a.node);
            }
        }
    }
}
