//! How long `config::build` takes for configurations of growing size: it runs on
//! every configuration change in the controller and in every speaker.
//!
//! `cargo bench -p ferrolb-crds --bench config_build` prints one line per size.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferrolb_crds::api::{
    BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec, IPAddressPool, IPAddressPoolSpec,
    L2Advertisement, L2AdvertisementSpec,
};
use ferrolb_crds::config::{self, Objects};

const NS: &str = "ferrolb-system";

fn objects(pools: usize) -> Objects {
    let named = |name: String| kube::api::ObjectMeta {
        name: Some(name),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    let mut objects = Objects::default();
    for i in 0..pools {
        let addresses = vec![
            format!("10.{}.{}.0/24", i / 256, i % 256),
            format!("fd00:{i:x}::-fd00:{i:x}::ffff"),
        ];
        let mut pool = IPAddressPool::new(
            "",
            IPAddressPoolSpec {
                addresses,
                auto_assign: true,
                ..Default::default()
            },
        );
        pool.metadata = named(format!("pool-{i}"));
        objects.pools.push(pool);
        let mut l2 = L2Advertisement::new(
            "",
            L2AdvertisementSpec {
                ip_address_pools: vec![format!("pool-{i}")],
                ..Default::default()
            },
        );
        l2.metadata = named(format!("l2-{i}"));
        objects.l2_advertisements.push(l2);
    }
    for i in 0..pools / 10 {
        let mut peer = BGPPeer::new(
            "",
            BGPPeerSpec {
                my_asn: 64500,
                peer_asn: Some(64501),
                peer_address: Some(format!("192.168.{}.{}", i / 256, i % 256)),
                peer_port: 179,
                ..Default::default()
            },
        );
        peer.metadata = named(format!("peer-{i}"));
        objects.bgp_peers.push(peer);
        let mut adv = BGPAdvertisement::new(
            "",
            BGPAdvertisementSpec {
                ip_address_pools: (0..10).map(|k| format!("pool-{}", i * 10 + k)).collect(),
                aggregation_length: 24,
                local_pref: i as u32,
                ..Default::default()
            },
        );
        adv.metadata = named(format!("bgp-{i}"));
        objects.bgp_advertisements.push(adv);
    }
    objects
}

fn main() {
    println!(
        "config::build — pools (each a /24 and an IPv6 range) + one L2Advertisement per pool + pools/10 peers and BGPAdvertisements"
    );
    for pools in [10, 100, 1_000, 5_000] {
        let input = objects(pools);
        let mut times: Vec<Duration> = (0..9)
            .map(|_| {
                let start = Instant::now();
                let outcome = black_box(config::build(NS, black_box(&input)));
                assert!(outcome.issues.is_empty(), "{:?}", outcome.issues.first());
                start.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "pools={pools:>5} objects={:>6}  median={:>9.3} ms  worst={:>9.3} ms",
            input.len(),
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );
    }
}
