//! Invariants under random sequences of requests, releases and pool edits.

use std::collections::{BTreeMap, HashMap};

use ferrolb_crds::config::{Family, Pool};
use proptest::prelude::*;

use super::scenarios::{pools, req};
use super::*;

#[derive(Clone, Debug)]
enum Op {
    Ensure(Box<Request>),
    Release(usize),
    SetPools(usize),
}

fn configs() -> Vec<BTreeMap<String, Pool>> {
    vec![
        pools(&[
            (
                "a",
                "{addresses: [10.0.0.254-10.0.1.2, 'fd00::/127'], avoidBuggyIPs: true}",
            ),
            (
                "b",
                "{addresses: [10.0.2.0/31], serviceAllocation: {priority: 1, namespaces: [team]}}",
            ),
            ("c", "{addresses: ['fd00:1::/127'], autoAssign: false}"),
        ]),
        pools(&[
            ("a", "{addresses: [10.0.0.254-10.0.1.0, 'fd00::/128']}"),
            ("b2", "{addresses: [10.0.2.0/30, 'fd00:1::/127']}"),
        ]),
        pools(&[("z", "{addresses: [10.0.1.1/32, 'fd00::1/128']}")]),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        0..8usize,
        prop_oneof![
            Just(Families::Single(Family::V4)),
            Just(Families::Single(Family::V6)),
            Just(Families::PreferDual(Family::V4)),
            Just(Families::RequireDual(Family::V6)),
        ],
        prop_oneof![Just(None), Just(Some("k1")), Just(Some("k2"))],
        proptest::sample::subsequence(vec![("TCP", 80), ("TCP", 443), ("UDP", 53)], 0..=2),
        prop_oneof![Just(""), Just("app=x")],
        prop_oneof![Just(None), Just(Some("a")), Just(Some("c"))],
        prop_oneof![Just("default"), Just("team")],
    )
        .prop_map(|(i, families, key, ports, backend, pool, ns)| {
            let mut r = req(&format!("s{i}"));
            r.key.namespace = ns.into();
            r.families = families;
            r.sharing = Sharing {
                key: key.map(String::from),
                backend: backend.into(),
                ports: ports.into_iter().map(|(p, n)| (p.to_string(), n)).collect(),
            };
            r.pool = pool.map(String::from);
            r
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => request().prop_map(|r| Op::Ensure(Box::new(r))),
        2 => (0..8usize).prop_map(Op::Release),
        1 => (0..3usize).prop_map(Op::SetPools),
    ]
}

/// Applies the ops the way the reconciler does: after a pool edit, every Service
/// holding addresses is ensured again. Returns the last request of each Service.
fn run(a: &mut Allocator, ops: &[Op]) -> HashMap<ServiceKey, Request> {
    let configs = configs();
    let mut last: HashMap<ServiceKey, Request> = HashMap::new();
    a.set_pools(&configs[0]);
    for op in ops {
        match op {
            Op::Ensure(r) => {
                // A Service may move namespace between draws: that is another Service.
                let _ = a.ensure(r);
                last.insert(r.key.clone(), (**r).clone());
            }
            Op::Release(i) => {
                for ns in ["default", "team"] {
                    let key = ServiceKey::new(ns, format!("s{i}"));
                    a.release(&key);
                    last.remove(&key);
                }
            }
            Op::SetPools(i) => {
                a.set_pools(&configs[*i]);
                let mut keys: Vec<_> = last.keys().cloned().collect();
                keys.sort();
                for k in keys {
                    let _ = a.ensure(&last[&k]);
                }
            }
        }
    }
    last
}

fn check_invariants(a: &Allocator, last: &HashMap<ServiceKey, Request>) -> Result<(), TestCaseError> {
    let mut users: HashMap<IpAddr, Vec<&ServiceKey>> = HashMap::new();
    for (key, ips) in a.holdings() {
        let r = &last[key];
        for ip in ips {
            users.entry(*ip).or_default().push(key);
            let pool = a.pool_of(*ip);
            prop_assert!(pool.is_some(), "{key} holds {ip} outside every pool");
            let pool = pool.unwrap();
            prop_assert!(
                a.admits(pool, r),
                "{key} holds {ip} of pool {pool} that does not admit it"
            );
            prop_assert!(r.families.allows(Family::of(*ip)));
        }
    }
    for (ip, owners) in &users {
        for (i, x) in owners.iter().enumerate() {
            for y in &owners[i + 1..] {
                let (sx, sy) = (&last[*x].sharing, &last[*y].sharing);
                prop_assert!(
                    sx.key.is_some()
                        && sx.key == sy.key
                        && sx.backend == sy.backend
                        && sx.ports.iter().all(|p| !sy.ports.contains(p)),
                    "{ip} held by incompatible {x} and {y}"
                );
            }
        }
    }
    let mut per_pool: HashMap<&str, [u128; 2]> = HashMap::new();
    for ip in users.keys() {
        let slot = per_pool.entry(a.pool_of(*ip).unwrap()).or_default();
        slot[usize::from(ip.is_ipv6())] += 1;
    }
    for name in a.pools.keys() {
        let counted = per_pool.get(name.as_str()).copied().unwrap_or_default();
        prop_assert_eq!(a.usage(name).unwrap().assigned, counted, "usage of {}", name);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..60)) {
        let mut a = Allocator::new();
        let last = run(&mut a, &ops);
        check_invariants(&a, &last)?;
    }

    #[test]
    fn the_same_sequence_gives_the_same_addresses(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut a, mut b) = (Allocator::new(), Allocator::new());
        run(&mut a, &ops);
        run(&mut b, &ops);
        let mut ha: Vec<_> = a.holdings().collect();
        let mut hb: Vec<_> = b.holdings().collect();
        ha.sort();
        hb.sort();
        prop_assert_eq!(ha, hb);
    }

    #[test]
    fn release_then_allocate_gives_the_same_addresses(
        ops in proptest::collection::vec(op(), 1..40),
        probe in request(),
    ) {
        let mut a = Allocator::new();
        run(&mut a, &ops);
        a.release(&probe.key);
        let first = a.ensure(&probe).result;
        a.release(&probe.key);
        let second = a.ensure(&probe).result;
        prop_assert_eq!(first, second);
    }

    #[test]
    fn a_held_address_survives_a_restart(ops in proptest::collection::vec(op(), 1..40)) {
        let mut a = Allocator::new();
        let last = run(&mut a, &ops);
        // The restarted allocator sees the same pools and every Service's status.
        let mut restarted = Allocator::new();
        restarted.pools = a.pools.clone();
        for slot in restarted.pools.values_mut() {
            slot.free = FreeSet::new(&slot.pool.ranges, slot.pool.avoid_buggy_ips);
        }
        let mut held: Vec<_> = a.holdings().map(|(k, ips)| (k.clone(), ips.clone())).collect();
        held.sort();
        for (key, ips) in &held {
            prop_assert!(restarted.restore(&last[key], ips).is_ok(), "{key} could not restore {ips:?}");
        }
        for (key, ips) in &held {
            // Kept, though a PreferDualStack Service may gain its missing family.
            let again = restarted.ensure(&last[key]).result.map(|x| x.ips).unwrap_or_default();
            prop_assert!(ips.iter().all(|ip| again.contains(ip)), "{key}: {ips:?} became {again:?}");
        }
    }
}
