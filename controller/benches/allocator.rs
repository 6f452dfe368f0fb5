//! Allocation cost by pool size and occupancy:
//! `cargo bench -p ferrolb-controller --bench allocator`.
//!
//! Two levels: the free-address set alone, and the whole allocator (a Service request
//! through pool selection, sharing checks and bookkeeping).
//!
//! One allocation = find the lowest free address, take it, and (to keep occupancy
//! constant) release it again. "90 %" takes every address but every tenth, the most
//! fragmented layout at that occupancy; for the IPv6 /64 that pattern covers its first
//! 2^20 addresses (filling 90 % of a /64 is not possible), so the free set still holds
//! ~10^5 intervals.

use std::hint::black_box;
use std::time::Instant;

use std::collections::{BTreeMap, HashMap};

use ferrolb_controller::allocator::{Allocator, Families, FreeSet, Request, ServiceKey, Sharing};
use ferrolb_crds::config::{Family, IpRange, Pool, from_int};

const ALLOCATIONS: usize = 200_000;

fn fragmented(free: &mut FreeSet, range: &IpRange, count: u128) {
    for i in 0..count {
        if i % 10 != 9 {
            free.take(from_int(range.family(), range.first_int() + i));
        }
    }
}

fn request(name: String, family: Family, ips: Vec<std::net::IpAddr>) -> Request {
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

/// The whole allocator: ensure a new Service, release it. Occupancy is made of Services
/// holding every address but every tenth (for the /16 and /64: of the first 2^16).
fn whole_allocator() {
    println!("allocator: a Service request (ensure + release), {ALLOCATIONS} per row");
    for (label, cidr, family) in [
        ("IPv4 /24", "10.0.0.0/24", Family::V4),
        ("IPv4 /16", "10.0.0.0/16", Family::V4),
        ("IPv6 /64", "fd00::/64", Family::V6),
    ] {
        for occupied in [false, true] {
            let range: IpRange = cidr.parse().unwrap();
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
                for i in (0..range.len().min(1 << 16)).filter(|i| i % 10 != 9) {
                    let ip = from_int(family, range.first_int() + i);
                    allocator
                        .ensure(&request(format!("held-{i}"), family, vec![ip]))
                        .result
                        .unwrap();
                }
            }
            let probes: HashMap<usize, Request> = (0..64)
                .map(|i| (i, request(format!("probe-{i}"), family, vec![])))
                .collect();
            let start = Instant::now();
            for i in 0..ALLOCATIONS {
                let probe = &probes[&(i % 64)];
                black_box(allocator.ensure(probe).result.unwrap());
                allocator.release(&probe.key);
            }
            let elapsed = start.elapsed();
            println!(
                "{label:<9} occupancy {:>3}: {:>12.0} allocations/s ({:.0} ns each)",
                if occupied { "90%" } else { "0%" },
                ALLOCATIONS as f64 / elapsed.as_secs_f64(),
                elapsed.as_nanos() as f64 / ALLOCATIONS as f64
            );
        }
    }
}

fn main() {
    free_set();
    whole_allocator();
}

fn free_set() {
    println!("free-address set: lowest free + take + release, {ALLOCATIONS} allocations per row");
    for (label, cidr, family) in [
        ("IPv4 /24", "10.0.0.0/24", Family::V4),
        ("IPv4 /16", "10.0.0.0/16", Family::V4),
        ("IPv6 /64", "fd00::/64", Family::V6),
    ] {
        for occupied in [false, true] {
            let range: IpRange = cidr.parse().unwrap();
            let mut free = FreeSet::new(&[range], false);
            if occupied {
                fragmented(&mut free, &range, range.len().min(1 << 20));
            }
            let start = Instant::now();
            for _ in 0..ALLOCATIONS {
                let addr = free.lowest_free(family).expect("a free address");
                assert!(free.take(black_box(addr)));
                assert!(free.release(addr));
            }
            let elapsed = start.elapsed();
            println!(
                "{label:<9} occupancy {:>3}: {:>12.0} allocations/s ({:.0} ns each)",
                if occupied { "90%" } else { "0%" },
                ALLOCATIONS as f64 / elapsed.as_secs_f64(),
                elapsed.as_nanos() as f64 / ALLOCATIONS as f64
            );
        }
    }
}
