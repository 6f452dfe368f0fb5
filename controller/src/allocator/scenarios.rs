//! The allocator's rules, one scenario each.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_crds::config::{self, Family, Pool};

use super::*;

const NS: &str = "ferrolb-system";

/// Pools from YAML `spec` bodies: `("name", "spec: {...}")`.
pub(super) fn pools(specs: &[(&str, &str)]) -> BTreeMap<String, Pool> {
    let text: String = specs
        .iter()
        .enumerate()
        .map(|(i, (name, spec))| {
            format!(
                "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  \
                 namespace: {NS}\n  creationTimestamp: \"2026-01-01T00:00:{i:02}Z\"\nspec: {spec}\n"
            )
        })
        .collect();
    let objects = config::parse_manifests(&text).expect("manifest");
    let outcome = config::build(NS, &objects);
    assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
    outcome.config.pools
}

/// A single-stack IPv4 request of Service `default/<name>`.
pub(super) fn req(name: &str) -> Request {
    Request {
        key: ServiceKey::new("default", name),
        labels: BTreeMap::new(),
        namespace_labels: BTreeMap::new(),
        families: Families::Single(Family::V4),
        pool: None,
        ips: Vec::new(),
        sharing: Sharing::default(),
    }
}

impl Request {
    fn ns(mut self, ns: &str) -> Self {
        self.key.namespace = ns.into();
        self
    }
    fn fam(mut self, families: Families) -> Self {
        self.families = families;
        self
    }
    fn pool(mut self, pool: &str) -> Self {
        self.pool = Some(pool.into());
        self
    }
    fn ips(mut self, ips: &str) -> Self {
        self.ips = ips.split(',').map(|s| s.parse().unwrap()).collect();
        self
    }
    fn share(mut self, key: &str, ports: &[(&str, i32)]) -> Self {
        self.sharing.key = Some(key.into());
        self.sharing.ports = ports.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        self
    }
    fn local(mut self, backend: &str) -> Self {
        self.sharing.backend = backend.into();
        self
    }
    fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
    fn ns_label(mut self, k: &str, v: &str) -> Self {
        self.namespace_labels.insert(k.into(), v.into());
        self
    }
}

fn with(specs: &[(&str, &str)]) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(&pools(specs));
    a
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

/// Ensures and returns the addresses, panicking on error.
fn got(a: &mut Allocator, r: &Request) -> Vec<IpAddr> {
    match a.ensure(r).result {
        Ok(assignment) => assignment.ips,
        Err(e) => panic!("{}: {e}", r.key),
    }
}

fn err(a: &mut Allocator, r: &Request) -> AllocError {
    a.ensure(r).result.expect_err("allocation should fail")
}

const V6: Families = Families::Single(Family::V6);
const PREFER4: Families = Families::PreferDual(Family::V4);
const PREFER6: Families = Families::PreferDual(Family::V6);
const REQUIRE4: Families = Families::RequireDual(Family::V4);

// --- pool selection -------------------------------------------------------------------

#[test]
fn lowest_free_in_the_order_the_pool_lists_ranges() {
    let mut a = with(&[("p", "{addresses: [10.0.1.0/30, 10.0.0.0/30]}")]);
    assert_eq!(got(&mut a, &req("a")), ips(&["10.0.1.0"]));
    assert_eq!(got(&mut a, &req("b")), ips(&["10.0.1.1"]));
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut a = with(&[("p", "{addresses: [10.0.0.255-10.0.1.1], avoidBuggyIPs: true}")]);
    assert_eq!(got(&mut a, &req("a")), ips(&["10.0.1.1"]));
    assert_eq!(
        err(&mut a, &req("b")),
        AllocError::PoolExhausted {
            pools: vec!["p".into()]
        }
    );
}

#[test]
fn requested_pool_is_used_even_without_auto_assign() {
    let mut a = with(&[
        ("manual", "{addresses: [10.0.9.0/30], autoAssign: false}"),
        ("open", "{addresses: [10.0.0.0/30]}"),
    ]);
    assert_eq!(got(&mut a, &req("a").pool("manual")), ips(&["10.0.9.0"]));
    assert_eq!(got(&mut a, &req("b")), ips(&["10.0.0.0"]));
}

#[test]
fn pools_without_auto_assign_are_never_used_automatically() {
    let mut a = with(&[("manual", "{addresses: [10.0.9.0/30], autoAssign: false}")]);
    assert_eq!(
        err(&mut a, &req("a")),
        AllocError::NotAutoAssign {
            pools: vec!["manual".into()]
        }
    );
}

#[test]
fn unknown_requested_pool() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    assert_eq!(
        err(&mut a, &req("a").pool("nope")),
        AllocError::UnknownPool("nope".into())
    );
}

#[test]
fn requested_pool_must_admit_the_service() {
    let mut a = with(&[(
        "p",
        "{addresses: [10.0.0.0/30], serviceAllocation: {namespaces: [team-a]}}",
    )]);
    assert_eq!(
        err(&mut a, &req("a").pool("p")),
        AllocError::PoolRejects {
            pool: "p".into(),
            service: ServiceKey::new("default", "a")
        }
    );
    assert_eq!(got(&mut a, &req("a").ns("team-a").pool("p")), ips(&["10.0.0.0"]));
}

#[test]
fn pinned_pools_by_priority_then_zero_then_open_pools() {
    let mut a = with(&[
        ("a-open", "{addresses: [10.0.0.0/32]}"),
        (
            "b-zero",
            "{addresses: [10.0.1.0/32], serviceAllocation: {namespaces: [default]}}",
        ),
        (
            "c-two",
            "{addresses: [10.0.2.0/32], serviceAllocation: {priority: 2, namespaces: [default]}}",
        ),
        (
            "d-one",
            "{addresses: [10.0.3.0/32], serviceAllocation: {priority: 1, namespaces: [default]}}",
        ),
    ]);
    let order: Vec<_> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|n| got(&mut a, &req(n))[0])
        .collect();
    assert_eq!(order, ips(&["10.0.3.0", "10.0.2.0", "10.0.1.0", "10.0.0.0"]));
}

#[test]
fn pools_pinned_to_other_namespaces_are_skipped() {
    let mut a = with(&[
        (
            "a-team",
            "{addresses: [10.0.1.0/30], serviceAllocation: {namespaces: [team-a]}}",
        ),
        ("b-open", "{addresses: [10.0.0.0/30]}"),
    ]);
    assert_eq!(got(&mut a, &req("x")), ips(&["10.0.0.0"]));
    assert_eq!(got(&mut a, &req("y").ns("team-a")), ips(&["10.0.1.0"]));
}

#[test]
fn namespace_selectors_match_namespace_labels() {
    let mut a = with(&[
        (
            "a-tier",
            "{addresses: [10.0.1.0/30], serviceAllocation: {namespaceSelectors: [{matchLabels: {tier: gold}}]}}",
        ),
        ("b-open", "{addresses: [10.0.0.0/30]}"),
    ]);
    assert_eq!(
        got(&mut a, &req("x").ns_label("tier", "gold")),
        ips(&["10.0.1.0"])
    );
    assert_eq!(
        got(&mut a, &req("y").ns_label("tier", "lead")),
        ips(&["10.0.0.0"])
    );
}

#[test]
fn namespace_and_service_selector_must_both_hold() {
    let mut a = with(&[(
        "p",
        "{addresses: [10.0.0.0/30], serviceAllocation: {namespaces: [default], \
         serviceSelectors: [{matchLabels: {app: web}}]}}",
    )]);
    assert_eq!(
        err(&mut a, &req("x")),
        AllocError::NoPoolMatches(ServiceKey::new("default", "x"))
    );
    assert_eq!(
        err(&mut a, &req("y").ns("other").label("app", "web")).reason(),
        "NoPoolMatches"
    );
    assert_eq!(got(&mut a, &req("z").label("app", "web")), ips(&["10.0.0.0"]));
}

#[test]
fn open_pools_are_tried_by_name() {
    let mut a = with(&[
        ("zeta", "{addresses: [10.0.0.0/32]}"),
        ("alpha", "{addresses: [10.0.5.0/32]}"),
    ]);
    assert_eq!(got(&mut a, &req("x")), ips(&["10.0.5.0"]));
    assert_eq!(got(&mut a, &req("y")), ips(&["10.0.0.0"]));
}

#[test]
fn exhausted_pool_then_a_freed_address() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/31]}")]);
    got(&mut a, &req("a"));
    got(&mut a, &req("b"));
    assert_eq!(
        err(&mut a, &req("c")),
        AllocError::PoolExhausted {
            pools: vec!["p".into()]
        }
    );
    assert_eq!(a.release(&ServiceKey::new("default", "a")), ips(&["10.0.0.0"]));
    assert_eq!(got(&mut a, &req("c")), ips(&["10.0.0.0"]));
}

#[test]
fn no_pools_at_all() {
    let mut a = Allocator::new();
    assert_eq!(err(&mut a, &req("a")), AllocError::NoPools);
}

#[test]
fn a_full_pinned_pool_falls_back_to_the_next() {
    let mut a = with(&[
        ("a-open", "{addresses: [10.0.0.0/30]}"),
        (
            "b-pinned",
            "{addresses: [10.0.1.0/32], serviceAllocation: {priority: 1, namespaces: [default]}}",
        ),
    ]);
    assert_eq!(got(&mut a, &req("x")), ips(&["10.0.1.0"]));
    assert_eq!(got(&mut a, &req("y")), ips(&["10.0.0.0"]));
}

// --- families -------------------------------------------------------------------------

#[test]
fn single_stack_ipv6_from_a_dual_pool() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30, 'fd00::/126']}")]);
    assert_eq!(got(&mut a, &req("a").fam(V6)), ips(&["fd00::"]));
}

#[test]
fn family_unavailable() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    assert_eq!(
        err(&mut a, &req("a").fam(V6)),
        AllocError::FamilyUnavailable {
            pools: vec!["p".into()],
            family: Family::V6
        }
    );
}

#[test]
fn require_dual_stack_gets_both_primary_first() {
    let mut a = with(&[("p", "{addresses: ['fd00::/126', 10.0.0.0/30]}")]);
    assert_eq!(got(&mut a, &req("a").fam(REQUIRE4)), ips(&["10.0.0.0", "fd00::"]));
    assert_eq!(
        got(&mut a, &req("b").fam(Families::RequireDual(Family::V6))),
        ips(&["fd00::1", "10.0.0.1"])
    );
}

#[test]
fn require_dual_stack_without_a_dual_pool() {
    let mut a = with(&[
        ("v4", "{addresses: [10.0.0.0/30]}"),
        ("v6", "{addresses: ['fd00::/126']}"),
    ]);
    assert_eq!(err(&mut a, &req("a").fam(REQUIRE4)).reason(), "FamilyUnavailable");
}

#[test]
fn require_dual_stack_skips_a_single_family_pool() {
    let mut a = with(&[
        ("a-v4", "{addresses: [10.0.0.0/30]}"),
        ("b-dual", "{addresses: [10.0.1.0/30, 'fd00::/126']}"),
    ]);
    assert_eq!(got(&mut a, &req("a").fam(REQUIRE4)), ips(&["10.0.1.0", "fd00::"]));
}

#[test]
fn prefer_dual_stack_gets_both_when_a_pool_has_both() {
    let mut a = with(&[
        ("a-v4", "{addresses: [10.0.0.0/30]}"),
        ("b-dual", "{addresses: [10.0.1.0/30, 'fd00::/126']}"),
    ]);
    assert_eq!(got(&mut a, &req("a").fam(PREFER4)), ips(&["10.0.1.0", "fd00::"]));
}

#[test]
fn prefer_dual_stack_settles_for_one_and_adds_the_other_later() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    let r = req("a").fam(PREFER4);
    assert_eq!(got(&mut a, &r), ips(&["10.0.0.0"]));
    a.set_pools(&pools(&[("p", "{addresses: [10.0.0.0/30, 'fd00::/126']}")]));
    let e = a.ensure(&r);
    assert_eq!(e.cleared, None);
    assert_eq!(e.result.unwrap().ips, ips(&["10.0.0.0", "fd00::"]));
}

#[test]
fn prefer_dual_stack_with_ipv6_primary() {
    let mut a = with(&[("p", "{addresses: ['fd00::/126']}")]);
    assert_eq!(got(&mut a, &req("a").fam(PREFER6)), ips(&["fd00::"]));
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    assert_eq!(got(&mut a, &req("a").fam(PREFER6)), ips(&["10.0.0.0"]));
}

#[test]
fn require_dual_stack_with_one_family_exhausted() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30, 'fd00::/128']}")]);
    got(&mut a, &req("a").fam(V6));
    assert_eq!(
        err(&mut a, &req("b").fam(REQUIRE4)),
        AllocError::PoolExhausted {
            pools: vec!["p".into()]
        }
    );
}

// --- requested addresses --------------------------------------------------------------

#[test]
fn requested_address_from_a_manual_pool() {
    let mut a = with(&[("manual", "{addresses: [10.0.9.0/30], autoAssign: false}")]);
    assert_eq!(got(&mut a, &req("a").ips("10.0.9.2")), ips(&["10.0.9.2"]));
}

#[test]
fn requested_address_outside_every_pool() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    assert_eq!(
        err(&mut a, &req("a").ips("10.9.9.9")),
        AllocError::OutsidePools(ip("10.9.9.9"))
    );
}

#[test]
fn requested_address_in_use() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a"));
    assert_eq!(
        err(&mut a, &req("b").ips("10.0.0.0")),
        AllocError::InUse {
            ip: ip("10.0.0.0"),
            owner: ServiceKey::new("default", "a")
        }
    );
}

#[test]
fn requested_address_outside_the_requested_pool() {
    let mut a = with(&[
        ("p", "{addresses: [10.0.0.0/30]}"),
        ("q", "{addresses: [10.0.1.0/30]}"),
    ]);
    assert_eq!(
        err(&mut a, &req("a").ips("10.0.0.1").pool("q")),
        AllocError::NotInRequestedPool {
            ip: ip("10.0.0.1"),
            pool: "q".into()
        }
    );
    assert_eq!(
        got(&mut a, &req("a").ips("10.0.1.1").pool("q")),
        ips(&["10.0.1.1"])
    );
}

#[test]
fn requested_addresses_in_different_pools() {
    let mut a = with(&[
        ("p", "{addresses: [10.0.0.0/30]}"),
        ("q", "{addresses: ['fd00::/126']}"),
    ]);
    assert_eq!(
        err(&mut a, &req("a").fam(REQUIRE4).ips("10.0.0.1,fd00::1")).reason(),
        "DifferentPools"
    );
}

#[test]
fn requested_buggy_address_is_refused() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/24], avoidBuggyIPs: true}")]);
    assert_eq!(
        err(&mut a, &req("a").ips("10.0.0.255")),
        AllocError::OutsidePools(ip("10.0.0.255"))
    );
}

#[test]
fn changing_the_requested_address_moves_the_service() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a").ips("10.0.0.1"));
    let e = a.ensure(&req("a").ips("10.0.0.2"));
    assert_eq!(e.result.unwrap().ips, ips(&["10.0.0.2"]));
    let cleared = e.cleared.unwrap();
    assert_eq!(cleared.ips, ips(&["10.0.0.1"]));
    assert_eq!(cleared.why, HoldingError::AddressesChanged(ips(&["10.0.0.2"])));
    assert_eq!(cleared.why.to_string(), "the Service now asks for 10.0.0.2");
    assert_eq!(cleared.why.reason(), "RequestedAddressesChanged");
}

#[test]
fn requested_address_in_a_pool_that_excludes_the_service() {
    let mut a = with(&[(
        "p",
        "{addresses: [10.0.0.0/30], serviceAllocation: {namespaces: [other]}}",
    )]);
    assert_eq!(
        err(&mut a, &req("a").ips("10.0.0.1")).reason(),
        "PoolRejectsService"
    );
}

#[test]
fn requested_dual_stack_addresses_keep_their_order() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30, 'fd00::/126']}")]);
    assert_eq!(
        got(&mut a, &req("a").fam(REQUIRE4).ips("fd00::2,10.0.0.2")),
        ips(&["fd00::2", "10.0.0.2"])
    );
}

// --- sharing --------------------------------------------------------------------------

#[test]
fn same_key_different_ports_share() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    let first = got(&mut a, &req("a").share("k", &[("TCP", 80)]));
    got(&mut a, &req("filler"));
    let second = got(&mut a, &req("b").share("k", &[("TCP", 443)]));
    assert_eq!(first, second);
    assert_eq!(a.usage("p").unwrap().assigned, [2, 0]);
}

#[test]
fn same_key_same_port_does_not_share() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a").share("k", &[("TCP", 80)]));
    assert_eq!(
        got(&mut a, &req("b").share("k", &[("TCP", 80)])),
        ips(&["10.0.0.1"])
    );
    assert_eq!(
        err(&mut a, &req("c").share("k", &[("TCP", 80)]).ips("10.0.0.0")),
        AllocError::PortConflict {
            ip: ip("10.0.0.0"),
            owner: ServiceKey::new("default", "a"),
            port: ("TCP".into(), 80)
        }
    );
}

#[test]
fn tcp_and_udp_on_one_port_share() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    let dns_tcp = got(&mut a, &req("dns-tcp").share("dns", &[("TCP", 53)]));
    let dns_udp = got(&mut a, &req("dns-udp").share("dns", &[("UDP", 53)]));
    assert_eq!(dns_tcp, dns_udp);
}

#[test]
fn different_keys_never_share() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a").share("k1", &[("TCP", 80)]));
    assert_eq!(
        got(&mut a, &req("b").share("k2", &[("TCP", 443)])),
        ips(&["10.0.0.1"])
    );
    assert_eq!(
        err(&mut a, &req("c").share("k2", &[("TCP", 8)]).ips("10.0.0.0")).reason(),
        "IPInUse"
    );
}

#[test]
fn local_policy_services_must_select_the_same_pods() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a").share("k", &[("TCP", 80)]).local("app=web"));
    assert_eq!(
        err(
            &mut a,
            &req("b")
                .share("k", &[("TCP", 81)])
                .local("app=api")
                .ips("10.0.0.0")
        ),
        AllocError::BackendMismatch {
            ip: ip("10.0.0.0"),
            owner: ServiceKey::new("default", "a")
        }
    );
    assert_eq!(
        got(&mut a, &req("c").share("k", &[("TCP", 82)]).local("app=web")),
        ips(&["10.0.0.0"])
    );
}

#[test]
fn a_service_without_a_key_shares_nothing() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a"));
    assert_eq!(
        err(&mut a, &req("b").share("k", &[("TCP", 1)]).ips("10.0.0.0")).reason(),
        "IPInUse"
    );
    got(&mut a, &req("c").share("k", &[("TCP", 1)]));
    assert_eq!(err(&mut a, &req("d").ips("10.0.0.1")).reason(), "IPInUse");
}

#[test]
fn a_shared_address_is_freed_with_its_last_user() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/32]}")]);
    got(&mut a, &req("a").share("k", &[("TCP", 1)]));
    got(&mut a, &req("b").share("k", &[("TCP", 2)]));
    a.release(&ServiceKey::new("default", "a"));
    assert_eq!(err(&mut a, &req("c")).reason(), "PoolExhausted");
    a.release(&ServiceKey::new("default", "b"));
    assert_eq!(got(&mut a, &req("c")), ips(&["10.0.0.0"]));
}

#[test]
fn the_only_user_may_change_its_key_in_place() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a").share("k1", &[("TCP", 1)]));
    let e = a.ensure(&req("a").share("k2", &[("TCP", 1)]));
    assert_eq!((e.result.unwrap().ips, e.cleared), (ips(&["10.0.0.0"]), None));
    // The old key no longer attracts anyone.
    assert_eq!(
        got(&mut a, &req("b").share("k1", &[("TCP", 2)])),
        ips(&["10.0.0.1"])
    );
}

#[test]
fn a_port_edit_that_collides_moves_the_edited_service() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a").share("k", &[("TCP", 80)]));
    got(&mut a, &req("b").share("k", &[("TCP", 81)]));
    let e = a.ensure(&req("b").share("k", &[("TCP", 80)]));
    assert_eq!(e.result.unwrap().ips, ips(&["10.0.0.1"]));
    let why = e.cleared.unwrap().why;
    assert!(why.to_string().contains("port 80/TCP"), "{why}");
    assert_eq!(
        why.reason(),
        "SharingPortConflict",
        "the allocation rule's reason"
    );
}

// --- stability and restart ------------------------------------------------------------

#[test]
fn a_held_address_is_kept_even_when_a_lower_one_is_freed() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a"));
    got(&mut a, &req("b"));
    a.release(&ServiceKey::new("default", "a"));
    assert_eq!(got(&mut a, &req("b")), ips(&["10.0.0.1"]));
}

#[test]
fn restore_before_allocating_keeps_every_address() {
    let specs = [("p", "{addresses: [10.0.0.0/29]}")];
    let mut before = with(&specs);
    let names = ["a", "b", "c", "d"];
    let held: Vec<_> = names.iter().map(|n| got(&mut before, &req(n))).collect();
    before.release(&ServiceKey::new("default", "a"));
    // A restart: restore in another order, then a new Service.
    let mut after = with(&specs);
    for (n, ips) in names.iter().zip(&held).skip(1).rev() {
        after.restore(&req(n), ips).unwrap();
    }
    assert_eq!(got(&mut after, &req("new")), ips(&["10.0.0.0"]));
    for (n, ips) in names.iter().zip(&held).skip(1) {
        assert_eq!(&got(&mut after, &req(n)), ips);
    }
}

#[test]
fn restore_claims_nothing_when_invalid() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30, 'fd00::/126']}")]);
    let outside = a.restore(&req("a"), &ips(&["10.0.0.1", "10.9.9.9"])).unwrap_err();
    assert_eq!(outside.reason(), "OutsidePools");
    let family = a.restore(&req("a"), &ips(&["fd00::1"])).unwrap_err();
    assert_eq!(
        family,
        HoldingError::FamilyChanged(ips(&["fd00::1"])[0]),
        "wrong family"
    );
    assert_eq!(
        a.restore(&req("a"), &[]).unwrap_err(),
        HoldingError::NothingToRestore
    );
    assert_eq!(a.usage("p").unwrap().assigned, [0, 0]);
    assert_eq!(got(&mut a, &req("a")), ips(&["10.0.0.0"]));
}

#[test]
fn restore_refuses_a_second_incompatible_claim() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    a.restore(&req("a"), &ips(&["10.0.0.2"])).unwrap();
    let why = a.restore(&req("b"), &ips(&["10.0.0.2"])).unwrap_err();
    assert!(why.to_string().contains("in use by Service default/a"), "{why}");
    assert_eq!(why.reason(), "IPInUse");
}

#[test]
fn changing_the_pool_annotation_moves_the_address() {
    let mut a = with(&[
        ("p", "{addresses: [10.0.0.0/30]}"),
        ("q", "{addresses: [10.0.1.0/30]}"),
    ]);
    assert_eq!(got(&mut a, &req("a")), ips(&["10.0.0.0"]));
    let e = a.ensure(&req("a").pool("q"));
    assert_eq!(e.result.unwrap().pools, vec!["q".to_string()]);
    assert!(e.cleared.is_some());
}

// --- pool edits -----------------------------------------------------------------------

#[test]
fn shrinking_a_pool_moves_only_the_services_outside_it() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    for n in ["a", "b", "c"] {
        got(&mut a, &req(n));
    }
    let lost = a.set_pools(&pools(&[("p", "{addresses: [10.0.0.0/31, 10.0.0.3/32]}")]));
    assert_eq!(lost, vec![(ServiceKey::new("default", "c"), ips(&["10.0.0.2"]))]);
    assert_eq!(got(&mut a, &req("c")), ips(&["10.0.0.3"]));
    assert_eq!(got(&mut a, &req("a")), ips(&["10.0.0.0"]));
}

#[test]
fn deleting_the_only_pool() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a"));
    assert_eq!(a.set_pools(&BTreeMap::new()).len(), 1);
    assert_eq!(err(&mut a, &req("a")), AllocError::NoPools);
}

#[test]
fn renaming_a_pool_keeps_the_address() {
    let mut a = with(&[("old", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a"));
    assert!(
        a.set_pools(&pools(&[("new", "{addresses: [10.0.0.0/30]}")]))
            .is_empty()
    );
    let e = a.ensure(&req("a"));
    assert_eq!(e.cleared, None);
    assert_eq!(e.result.unwrap().pools, vec!["new".to_string()]);
    assert_eq!(a.usage("new").unwrap().assigned, [1, 0]);
}

#[test]
fn splitting_a_pool_keeps_both_addresses() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30, 'fd00::/126']}")]);
    got(&mut a, &req("a").fam(REQUIRE4));
    a.set_pools(&pools(&[
        ("p4", "{addresses: [10.0.0.0/30]}"),
        ("p6", "{addresses: ['fd00::/126']}"),
    ]));
    let e = a.ensure(&req("a").fam(REQUIRE4));
    assert_eq!(e.cleared, None);
    assert_eq!(e.result.unwrap().pools, vec!["p4".to_string(), "p6".to_string()]);
}

#[test]
fn turning_on_avoid_buggy_ips_moves_the_dot_zero_holder() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30]}")]);
    got(&mut a, &req("a"));
    got(&mut a, &req("b"));
    let lost = a.set_pools(&pools(&[(
        "p",
        "{addresses: [10.0.0.0/30], avoidBuggyIPs: true}",
    )]));
    assert_eq!(lost, vec![(ServiceKey::new("default", "a"), ips(&["10.0.0.0"]))]);
    assert_eq!(got(&mut a, &req("a")), ips(&["10.0.0.2"]));
}

#[test]
fn narrowing_service_allocation_moves_excluded_services() {
    let mut a = with(&[
        ("a-p", "{addresses: [10.0.0.0/30]}"),
        ("b-q", "{addresses: [10.0.1.0/30]}"),
    ]);
    assert_eq!(got(&mut a, &req("x")), ips(&["10.0.0.0"]));
    a.set_pools(&pools(&[
        (
            "a-p",
            "{addresses: [10.0.0.0/30], serviceAllocation: {namespaces: [other]}}",
        ),
        ("b-q", "{addresses: [10.0.1.0/30]}"),
    ]));
    let e = a.ensure(&req("x"));
    assert_eq!(e.result.unwrap().ips, ips(&["10.0.1.0"]));
    assert_eq!(e.cleared.unwrap().ips, ips(&["10.0.0.0"]));
}

#[test]
fn losing_one_family_keeps_the_other() {
    let mut a = with(&[("p", "{addresses: [10.0.0.0/30, 'fd00::/126']}")]);
    got(&mut a, &req("a").fam(PREFER4));
    a.set_pools(&pools(&[("p", "{addresses: [10.0.0.0/30]}")]));
    let e = a.ensure(&req("a").fam(PREFER4));
    assert_eq!((e.result.unwrap().ips, e.cleared), (ips(&["10.0.0.0"]), None));
}

#[test]
fn usage_counts_huge_ranges_without_scanning() {
    let mut a = with(&[("big", "{addresses: [10.0.0.0/8, 'fd00::/64']}")]);
    got(&mut a, &req("a").fam(REQUIRE4));
    let usage = a.usage("big").unwrap();
    assert_eq!(usage.assigned, [1, 1]);
    assert_eq!(usage.available, [(1 << 24) - 1, (1u128 << 64) - 1]);
}
