//! Allocation cost by pool size and occupancy:
//! `cargo bench -p ferrolb-controller --bench allocator`.
//!
//! One allocation = find the lowest free address, take it, and (to keep occupancy
//! constant) release it again. "90 %" takes every address but every tenth, the most
//! fragmented layout at that occupancy; for the IPv6 /64 that pattern covers its first
//! 2^20 addresses (filling 90 % of a /64 is not possible), so the free set still holds
//! ~10^5 intervals.

use std::hint::black_box;
use std::time::Instant;

use ferrolb_controller::allocator::FreeSet;
use ferrolb_crds::config::{Family, IpRange, from_int};

const ALLOCATIONS: usize = 200_000;

fn fragmented(free: &mut FreeSet, range: &IpRange, count: u128) {
    for i in 0..count {
        if i % 10 != 9 {
            free.take(from_int(range.family(), range.first_int() + i));
        }
    }
}

fn main() {
    println!("allocator: lowest free + take + release, {ALLOCATIONS} allocations per row");
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
