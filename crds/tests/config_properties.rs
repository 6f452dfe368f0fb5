//! Properties of the config model over generated pools.

mod support;

use ferrolb_crds::api::{IPAddressPool, IPAddressPoolSpec};
use ferrolb_crds::config::{self, Objects};
use proptest::prelude::*;
use support::NS;

fn pool(name: String, addresses: Vec<String>) -> IPAddressPool {
    let mut pool = IPAddressPool::new(
        &name,
        IPAddressPoolSpec {
            addresses,
            auto_assign: true,
            ..Default::default()
        },
    );
    pool.metadata.namespace = Some(NS.to_string());
    pool
}

/// Small IPv4 entries in 10.0.0.0/22 as CIDRs or ranges, so that overlaps are common.
fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..1024, 26u8..=32).prop_map(|(n, len)| format!("10.0.{}.{}/{len}", n / 256, n % 256)),
        (0u32..1024, 0u32..40).prop_map(|(n, span)| {
            let last = (n + span).min(1023);
            format!("10.0.{}.{}-10.0.{}.{}", n / 256, n % 256, last / 256, last % 256)
        }),
    ]
}

fn pools() -> impl Strategy<Value = Vec<IPAddressPool>> {
    proptest::collection::vec(proptest::collection::vec(entry(), 1..4), 1..8).prop_map(|lists| {
        lists
            .into_iter()
            .enumerate()
            .map(|(i, addresses)| pool(format!("pool-{i}"), addresses))
            .collect()
    })
}

proptest! {
    #[test]
    fn accepted_pools_never_overlap_and_each_rejection_is_explained(pools in pools()) {
        let outcome = config::build(NS, &Objects { pools: pools.clone(), ..Default::default() });
        let ranges: Vec<_> = outcome.config.pools.values().flat_map(|p| p.ranges.iter().copied()).collect();
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                prop_assert!(!a.overlaps(b), "{a} and {b} are both in force");
            }
        }
        for p in &pools {
            let name = p.metadata.name.as_deref().unwrap();
            let kept = outcome.config.pools.contains_key(name);
            let explained = outcome.issues_of("IPAddressPool", name).next().is_some();
            prop_assert!(kept != explained, "{name}: kept={kept} explained={explained}");
        }
    }

    #[test]
    fn the_outcome_does_not_depend_on_input_order(pools in pools()) {
        let forward = config::build(NS, &Objects { pools: pools.clone(), ..Default::default() });
        let mut reversed = pools;
        reversed.reverse();
        let backward = config::build(NS, &Objects { pools: reversed, ..Default::default() });
        prop_assert_eq!(forward, backward);
    }

    #[test]
    fn arbitrary_text_never_panics(entries in proptest::collection::vec("\\PC{0,40}", 0..5)) {
        let objects = Objects { pools: vec![pool("p".into(), entries)], ..Default::default() };
        let _ = config::build(NS, &objects);
    }
}
