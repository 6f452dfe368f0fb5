//! Allocation cost by pool size and occupancy:
//! `cargo bench -p ferrolb-controller --bench allocator`.
//!
//! Two levels: the free-address set alone, and the whole allocator (a Service request
//! through pool selection, sharing checks and bookkeeping).
//!
//! One allocation = find the lowest free address, take it, and (to keep occupancy
//! constant) release it again. "90 %" takes every address but every tenth, the most
//! fragmented layout at that occupancy; for the IPv6 /64 that pattern covers its first
//! 2^20 addresses for the free set (filling 90 % of a /64 is not possible), so the set
//! still holds ~10^5 intervals, and its first 2^16 for the whole allocator (59,000
//! Services holding addresses).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_controller::allocator::{Allocator, Families, FreeSet, Request, ServiceKey, Sharing};
use ferrolb_crds::config::{Family, IpRange, Pool, from_int};

const ALLOCATIONS: usize = 200_000;
const POOLS: [(&str, &str, Family); 3] = [
    ("IPv4 /24", "10.0.0.0/24", Family::V4),
    ("IPv4 /16", "10.0.0.0/16", Family::V4),
    ("IPv6 /64", "fd00::/64", Family::V6),
];

fn main() {
    println!("free-address set: lowest free + take + release, {ALLOCATIONS} allocations per row");
    each_row(|range, family, occupied| {
        let mut free = FreeSet::new(&[range], false);
        if occupied {
            for ip in fragmented(&range, 1 << 20) {
                free.take(ip);
            }
        }
        let start = Instant::now();
        for _ in 0..ALLOCATIONS {
            let addr = free.lowest_free(family).expect("a free address");
            assert!(free.take(black_box(addr)));
            assert!(free.release(addr));
        }
        start.elapsed()
    });

    println!("allocator: a Service request (ensure + release), {ALLOCATIONS} per row");
    each_row(|range, family, occupied| {
        let pool = Pool {
            name: "bench".into(),
            labels: BTreeMap::new(),
            ranges: vec![range],
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        };
        let mut allocator = Allocator::new();
        allocator.set_pools(&BTreeMap::from([("bench".to_string(), pool)]));
        if occupied {
            for ip in fragmented(&range, 1 << 16) {
                allocator
                    .ensure(&request(format!("held-{ip}"), family, vec![ip]))
                    .result
                    .unwrap();
            }
        }
        let probes: Vec<Request> = (0..64)
            .map(|i| request(format!("probe-{i}"), family, vec![]))
            .collect();
        let start = Instant::now();
        for probe in probes.iter().cycle().take(ALLOCATIONS) {
            black_box(allocator.ensure(probe).result.unwrap());
            allocator.release(&probe.key);
        }
        start.elapsed()
    });
}

/// Runs `measure(range, family, occupied)` for every pool at 0 and 90 % and prints a row.
fn each_row(mut measure: impl FnMut(IpRange, Family, bool) -> Duration) {
    for (label, cidr, family) in POOLS {
        for occupied in [false, true] {
            let elapsed = measure(cidr.parse().unwrap(), family, occupied);
            println!(
                "{label:<9} occupancy {:>3}: {:>12.0} allocations/s ({:.0} ns each)",
                if occupied { "90%" } else { "0%" },
                ALLOCATIONS as f64 / elapsed.as_secs_f64(),
                elapsed.as_nanos() as f64 / ALLOCATIONS as f64
            );
        }
    }
}

/// Every address of the first `limit` of `range` but every tenth.
fn fragmented(range: &IpRange, limit: u128) -> impl Iterator<Item = IpAddr> + '_ {
    (0..range.len().min(limit))
        .filter(|i| i % 10 != 9)
        .map(|i| from_int(range.family(), range.first_int() + i))
}

fn request(name: String, family: Family, ips: Vec<IpAddr>) -> Request {
    Request {
        key: ServiceKey::new("bench", name),
        labels: BTreeMap::new(),
        namespace_labels: BTreeMap::new(),
        families: Families::Single(family),
        pool: None,
        ips,
        sharing: Sharing::default(),
    }
}
