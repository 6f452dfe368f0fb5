//! Valid configurations: what the model resolves, defaults, precedence, pending
//! references, and that one broken object leaves the healthy rest in force.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_crds::config::{self, CommunityValue, PeerAddress, PeerAsn, Severity};
use support::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn build(yaml: &str) -> config::Outcome {
    config::build(NS, &parse(yaml))
}

/// Every object of a valid case passes the CRD's CEL rules too.
fn assert_cel_accepts(yaml: &str) {
    let objects = parse(yaml);
    let named = |kind: &str, metas: Vec<Option<String>>| {
        metas
            .into_iter()
            .flatten()
            .map(|n| (kind.to_string(), n))
            .collect::<Vec<_>>()
    };
    let mut all = named(
        "IPAddressPool",
        objects.pools.iter().map(|o| o.metadata.name.clone()).collect(),
    );
    all.extend(named(
        "L2Advertisement",
        objects
            .l2_advertisements
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect(),
    ));
    all.extend(named(
        "BGPAdvertisement",
        objects
            .bgp_advertisements
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect(),
    ));
    all.extend(named(
        "BGPPeer",
        objects
            .bgp_peers
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect(),
    ));
    all.extend(named(
        "Community",
        objects
            .communities
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect(),
    ));
    all.extend(named(
        "BFDProfile",
        objects
            .bfd_profiles
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect(),
    ));
    for (kind, name) in all {
        let json = object_json(&objects, &kind, &name);
        if let Err(why) = cel_check(&kind, &json) {
            panic!("CEL rejects valid {kind} {name}: {why}\n{json}");
        }
    }
}

#[test]
fn a_full_configuration_resolves() {
    let yaml = [
        pool("web", "{addresses: [10.0.0.0/24, \"fd00::10-fd00::1f\"], autoAssign: false, avoidBuggyIPs: true}"),
        pool("lab", "{addresses: [\" 10.0.1.10 - 10.0.1.20 \"], serviceAllocation: {priority: 10, namespaces: [lab], serviceSelectors: [{matchLabels: {tier: edge}}]}}"),
        l2("l2", "{ipAddressPools: [web], interfaces: [eth0], preferredNodeSelectors: [{weight: 30, preference: {matchLabels: {zone: a}}}, {weight: 20, preference: {}}]}"),
        community("aliases", "{communities: [{name: no-advertise, value: \"65535:65282\"}, {name: big, value: \"large:1:2:3\"}]}"),
        bfd("fast", "{receiveInterval: 100, transmitInterval: 100}"),
        secret("bgp-auth", "kubernetes.io/basic-auth", "{password: czNjcmV0}"),
        peer("r1", "{myASN: 64500, peerASN: 64501, peerAddress: 10.0.2.1, bfdProfile: fast, passwordSecret: {name: bgp-auth}, holdTime: 9s, connectTime: 5s, routerID: 10.0.2.9}"),
        peer("r2", "{myASN: 64500, dynamicASN: external, interface: eth1, vrf: red, dualStackAddressFamily: true, disableMP: true, enableGracefulRestart: true, ebgpMultiHop: true, localASN: 64999, sourceAddress: \"fd00::2\", peerPort: 1179}"),
        bgpadv("bgp", "{ipAddressPools: [web], aggregationLength: 24, aggregationLengthV6: 124, localPref: 50, communities: [no-advertise, big, \"1:1\"], peers: [r1]}"),
    ]
    .concat();
    let outcome = build(&yaml);
    assert!(outcome.issues.is_empty(), "{:#?}", outcome.issues);
    assert_cel_accepts(&yaml);
    let cfg = &outcome.config;

    let web = &cfg.pools["web"];
    assert_eq!(web.ranges.len(), 2);
    assert!(!web.auto_assign && web.avoid_buggy_ips);
    let lab = &cfg.pools["lab"];
    assert_eq!(lab.ranges[0].len(), 11);
    let alloc = lab.allocation.as_ref().unwrap();
    assert_eq!(alloc.priority, 10);
    assert!(alloc.admits("lab", &labels(&[]), &labels(&[("tier", "edge")])));
    assert!(
        !alloc.admits("lab", &labels(&[]), &labels(&[("tier", "core")])),
        "both conditions must hold"
    );
    assert!(!alloc.admits("prod", &labels(&[]), &labels(&[("tier", "edge")])));

    let l2 = &cfg.l2_advertisements["l2"];
    assert_eq!(l2.pools.iter().collect::<Vec<_>>(), ["web"]);
    assert_eq!(
        l2.preference(&labels(&[("zone", "a")])),
        50,
        "weights of matching preferences sum"
    );
    assert_eq!(l2.preference(&labels(&[])), 20);

    let r1 = &cfg.peers["r1"];
    assert_eq!(r1.password.as_deref(), Some("s3cret"));
    assert_eq!(
        (r1.hold_time, r1.keepalive_time),
        (Duration::from_secs(9), Duration::from_secs(3))
    );
    assert_eq!(r1.connect_time, Some(Duration::from_secs(5)));
    assert_eq!(r1.peer_asn, PeerAsn::Fixed(64501));
    assert_eq!(r1.port, 179);
    let r2 = &cfg.peers["r2"];
    assert_eq!(
        (r2.peer_asn, &r2.address),
        (PeerAsn::External, &PeerAddress::Interface("eth1".into()))
    );
    assert_eq!(
        (r2.hold_time, r2.keepalive_time),
        (Duration::from_secs(90), Duration::from_secs(30))
    );

    let bgp = &cfg.bgp_advertisements["bgp"];
    assert_eq!(bgp.local_pref, Some(50));
    assert!(bgp.communities.contains(&CommunityValue::Standard(65535, 65282)));
    assert!(bgp.communities.contains(&CommunityValue::Large(1, 2, 3)));
    assert!(bgp.targets_peer("r1") && !bgp.targets_peer("r2"));

    let fast = &cfg.bfd_profiles["fast"];
    assert_eq!(
        (
            fast.receive_interval_ms,
            fast.detect_multiplier,
            fast.echo_interval_ms
        ),
        (100, 3, 50)
    );
}

#[test]
fn keepalive_alone_sets_hold_to_three_times() {
    let outcome = build(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, keepaliveTime: 10s}",
    ));
    let r = &outcome.config.peers["r"];
    assert_eq!(
        (r.hold_time, r.keepalive_time),
        (Duration::from_secs(30), Duration::from_secs(10))
    );
    let outcome = build(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, holdTime: 0s, keepaliveTime: 0s}",
    ));
    assert!(outcome.config.peers["r"].hold_time.is_zero());
}

#[test]
fn a_broken_pool_leaves_the_healthy_ones_in_force() {
    let yaml = pool("good", "{addresses: [10.0.0.0/24]}") + &pool("bad", "{addresses: [nonsense]}");
    let outcome = build(&yaml);
    assert!(outcome.config.pools.contains_key("good"));
    assert!(!outcome.config.pools.contains_key("bad"));
    assert!(outcome.has_invalid());
}

#[test]
fn the_older_of_two_overlapping_pools_stays() {
    let older = pool("zz-old", "{addresses: [10.0.0.0/24]}").replace(
        "name: zz-old,",
        "name: zz-old, creationTimestamp: \"2026-01-01T00:00:00Z\",",
    );
    let newer = pool("aa-new", "{addresses: [10.0.0.128/25]}").replace(
        "name: aa-new,",
        "name: aa-new, creationTimestamp: \"2026-06-01T00:00:00Z\",",
    );
    // Input order must not matter.
    for yaml in [older.clone() + &newer, newer.clone() + &older] {
        let outcome = build(&yaml);
        assert!(outcome.config.pools.contains_key("zz-old"));
        assert!(!outcome.config.pools.contains_key("aa-new"));
        let issue = outcome.issues_of("IPAddressPool", "aa-new").next().unwrap();
        assert!(issue.message.contains("zz-old"), "{issue}");
    }
}

#[test]
fn missing_references_are_pending_not_invalid() {
    let yaml = [
        pool("p", "{addresses: [10.0.0.0/24]}"),
        l2("l2", "{ipAddressPools: [p, later]}"),
        bgpadv("needs-alias", "{communities: [not-yet]}"),
        bgpadv("needs-peer", "{peers: [r-later], aggregationLength: 30}"),
        peer(
            "needs-bfd",
            "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, bfdProfile: not-yet}",
        ),
        peer(
            "needs-secret",
            "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.2, passwordSecret: {name: not-yet}}",
        ),
    ]
    .concat();
    let outcome = build(&yaml);
    assert!(!outcome.has_invalid(), "{:#?}", outcome.issues);
    assert!(outcome.issues.iter().all(|i| i.severity == Severity::Pending));
    let cfg = &outcome.config;
    // A missing pool or peer name does not stop the rest of the advertisement.
    assert_eq!(cfg.l2_advertisements["l2"].pools.len(), 1);
    assert!(cfg.bgp_advertisements.contains_key("needs-peer"));
    // Missing aliases, BFD profiles and Secrets would change what is sent: wait for them.
    assert!(!cfg.bgp_advertisements.contains_key("needs-alias"));
    assert!(!cfg.peers.contains_key("needs-bfd"));
    assert!(!cfg.peers.contains_key("needs-secret"));
    // Once the objects exist, everything resolves.
    let complete = yaml
        + &pool("later", "{addresses: [10.0.1.0/24]}")
        + &community("c", "{communities: [{name: not-yet, value: \"1:1\"}]}")
        + &bfd("not-yet", "{}")
        + &secret("not-yet", "kubernetes.io/basic-auth", "{password: czNjcmV0}")
        + &peer("r-later", "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.3}");
    let outcome = build(&complete);
    assert!(outcome.issues.is_empty(), "{:#?}", outcome.issues);
    assert_eq!(outcome.config.l2_advertisements["l2"].pools.len(), 2);
}

#[test]
fn advertisements_select_pools_by_name_label_or_all() {
    let yaml = [
        pool("a", "{addresses: [10.0.0.0/24]}"),
        pool("b", "{addresses: [10.0.1.0/24]}").replace("name: b,", "name: b, labels: {tier: gold},"),
        l2("all", "{}"),
        l2(
            "by-label",
            "{ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]}",
        ),
        l2(
            "by-both",
            "{ipAddressPools: [a], ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]}",
        ),
    ]
    .concat();
    let outcome = build(&yaml);
    assert!(outcome.issues.is_empty(), "{:#?}", outcome.issues);
    let pools = |name: &str| {
        outcome.config.l2_advertisements[name]
            .pools
            .iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(pools("all"), ["a", "b"]);
    assert_eq!(pools("by-label"), ["b"]);
    assert_eq!(pools("by-both"), ["a", "b"]);
}

#[test]
fn local_pref_conflicts_have_metallbs_exemptions() {
    let base = pool("p", "{addresses: [10.0.0.0/24]}")
        + &peer("r1", "{myASN: 1, peerASN: 2, peerAddress: 10.1.0.1}")
        + &peer("r2", "{myASN: 1, peerASN: 2, peerAddress: 10.1.0.2}");
    for (why, second) in [
        ("different aggregation", "{localPref: 200, aggregationLength: 30}"),
        ("disjoint peers", "{localPref: 200, peers: [r2]}"),
        (
            "service selectors",
            "{localPref: 200, serviceSelectors: [{matchLabels: {a: b}}]}",
        ),
        (
            "disjoint nodes",
            "{localPref: 200, nodeSelectors: [{matchLabels: {rack: b}}]}",
        ),
    ] {
        let first = if why == "disjoint peers" {
            "{localPref: 100, peers: [r1]}"
        } else {
            "{localPref: 100, nodeSelectors: [{matchLabels: {rack: a}}]}"
        };
        let yaml = base.clone()
            + &node("n1", "{rack: a}")
            + &node("n2", "{rack: b}")
            + &bgpadv("first", first)
            + &bgpadv("second", second);
        let outcome = build(&yaml);
        assert!(!outcome.has_invalid(), "{why}: {:#?}", outcome.issues);
    }
}

#[test]
fn same_peer_address_from_disjoint_nodes_is_fine() {
    let yaml = node("n1", "{rack: a}")
        + &node("n2", "{rack: b}")
        + &peer(
            "ra",
            "{myASN: 1, peerASN: 2, peerAddress: 10.1.0.1, nodeSelectors: [{matchLabels: {rack: a}}]}",
        )
        + &peer(
            "rb",
            "{myASN: 1, peerASN: 2, peerAddress: 10.1.0.1, nodeSelectors: [{matchLabels: {rack: b}}]}",
        );
    let outcome = build(&yaml);
    assert!(outcome.issues.is_empty(), "{:#?}", outcome.issues);
    // Without Nodes the model cannot tell the selectors apart, and assumes they overlap.
    let without_nodes = yaml
        .split("---\n")
        .filter(|d| !d.contains("kind: Node"))
        .collect::<Vec<_>>()
        .join("---\n");
    assert!(build(&without_nodes).has_invalid());
}

#[test]
fn metallb_api_versions_get_a_pointed_error() {
    let yaml = pool("p", "{addresses: [10.0.0.0/24]}").replace("ferrolb.io/v1beta1", "metallb.io/v1beta1");
    let err = config::parse_manifests(&yaml).unwrap_err().to_string();
    assert!(err.contains("change it to ferrolb.io/v1beta1"), "{err}");
    let err = config::parse_manifests(&peer("r", "{myASN: 1}").replace("v1beta2", "v1beta1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("v1beta2"), "{err}");
    let err =
        config::parse_manifests("apiVersion: ferrolb.io/v1beta1\nkind: Nonsense\nmetadata: {name: x}\n")
            .unwrap_err();
    assert!(err.to_string().contains("not a FerroLB configuration kind"));
    // YAML 1.1 booleans, as kubectl reads them: `n` is false, not a name.
    let err =
        config::parse_manifests("apiVersion: ferrolb.io/v1beta1\nkind: Nonsense\nmetadata: {name: n}\n")
            .unwrap_err();
    assert!(err.to_string().contains("not a Kubernetes object"), "{err}");
    let err = config::parse_manifests("a: [unclosed\n").unwrap_err().to_string();
    assert!(
        err.starts_with("not valid YAML") && err.contains("line 1"),
        "{err}"
    );
    let err = config::parse_manifests(&pool("p", "{addresses: 5}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("IPAddressPool \"p\""), "{err}");
    // Other kinds pass through untouched.
    let objects = config::parse_manifests("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n").unwrap();
    assert!(objects.pools.is_empty());
}

#[test]
fn issues_read_as_sentences() {
    let outcome = build(&pool("p", "{addresses: [10.0.0.9-10.0.0.1]}"));
    assert_eq!(
        outcome.issues[0].to_string(),
        "IPAddressPool \"p\" invalid: spec.addresses[0]: invalid IP range \"10.0.0.9-10.0.0.1\": the first address is after the last"
    );
}
