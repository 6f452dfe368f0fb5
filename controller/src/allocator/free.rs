//! The free addresses of one pool, kept as disjoint intervals per pool range, so that
//! finding the lowest free address costs O(log n) in the number of intervals, whatever
//! the size of the range: a /64 costs what a /24 costs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_crds::config::{Family, IpRange, from_int, to_int};

/// Free addresses of a pool's ranges, in the order the pool lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeSet {
    ranges: Vec<IpRange>,
    /// Per range: free intervals, start → end (inclusive), as integers.
    free: Vec<BTreeMap<u128, u128>>,
    avoid_buggy: bool,
    /// Allocatable free addresses per family (v4, v6), saturating for huge IPv6 ranges.
    counts: [u128; 2],
    /// Allocatable addresses per family when nothing is taken.
    capacity: [u128; 2],
}

impl FreeSet {
    /// Every address of `ranges` free; with `avoid_buggy`, IPv4 addresses ending in .0
    /// or .255 are never handed out.
    pub fn new(ranges: &[IpRange], avoid_buggy: bool) -> Self {
        let mut counts = [0u128; 2];
        for r in ranges {
            let buggy = if avoid_buggy && r.family() == Family::V4 {
                buggy_in(r.first_int(), r.last_int())
            } else {
                0
            };
            let slot = &mut counts[family_index(r.family())];
            *slot = slot.saturating_add(r.len() - buggy);
        }
        Self {
            ranges: ranges.to_vec(),
            free: ranges
                .iter()
                .map(|r| BTreeMap::from([(r.first_int(), r.last_int())]))
                .collect(),
            avoid_buggy,
            counts,
            capacity: counts,
        }
    }

    /// Whether the pool may hand out `addr` at all (in a range, and not a buggy address).
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.range_index(addr).is_some() && !self.is_buggy(addr)
    }

    /// Whether `addr` is allowed and currently free.
    pub fn is_free(&self, addr: IpAddr) -> bool {
        let Some(i) = self.range_index(addr).filter(|_| !self.is_buggy(addr)) else {
            return false;
        };
        let x = to_int(addr);
        self.free[i]
            .range(..=x)
            .next_back()
            .is_some_and(|(_, end)| *end >= x)
    }

    /// The lowest free address of `family`, trying ranges in the pool's order.
    pub fn lowest_free(&self, family: Family) -> Option<IpAddr> {
        self.ranges
            .iter()
            .zip(&self.free)
            .filter(|(r, _)| r.family() == family)
            .find_map(|(_, intervals)| {
                intervals.iter().find_map(|(start, end)| {
                    let first = self.first_allowed(family, *start);
                    (first <= *end).then(|| from_int(family, first))
                })
            })
    }

    /// Marks `addr` used; false when it is not allowed or not free.
    pub fn take(&mut self, addr: IpAddr) -> bool {
        if !self.is_free(addr) {
            return false;
        }
        let i = self.range_index(addr).expect("is_free checked the range");
        let x = to_int(addr);
        let (&start, &end) = self.free[i]
            .range(..=x)
            .next_back()
            .expect("is_free found the interval");
        self.free[i].remove(&start);
        if start < x {
            self.free[i].insert(start, x - 1);
        }
        if x < end {
            self.free[i].insert(x + 1, end);
        }
        self.counts[family_index(Family::of(addr))] -= 1;
        true
    }

    /// Marks `addr` free again; false when it is not allowed or already free.
    pub fn release(&mut self, addr: IpAddr) -> bool {
        if !self.allows(addr) || self.is_free(addr) {
            return false;
        }
        let i = self.range_index(addr).expect("allows checked the range");
        let x = to_int(addr);
        let mut start = x;
        let mut end = x;
        // Merge with the interval just before and the one just after.
        if let Some((&s, &e)) = self.free[i].range(..x).next_back()
            && e.checked_add(1) == Some(x)
        {
            self.free[i].remove(&s);
            start = s;
        }
        if let Some(next) = x.checked_add(1)
            && let Some(e) = self.free[i].remove(&next)
        {
            end = e;
        }
        self.free[i].insert(start, end);
        self.counts[family_index(Family::of(addr))] += 1;
        true
    }

    /// Free allocatable addresses of a family (saturating at `u128::MAX`).
    pub fn free_count(&self, family: Family) -> u128 {
        self.counts[family_index(family)]
    }

    /// Allocatable addresses of a family when nothing is taken (saturating).
    pub fn capacity(&self, family: Family) -> u128 {
        self.capacity[family_index(family)]
    }

    /// Where `addr` comes in the pool's order (range, then address), if in a range.
    pub fn position(&self, addr: IpAddr) -> Option<(usize, u128)> {
        self.range_index(addr).map(|i| (i, to_int(addr)))
    }

    fn range_index(&self, addr: IpAddr) -> Option<usize> {
        self.ranges.iter().position(|r| r.contains(addr))
    }

    fn is_buggy(&self, addr: IpAddr) -> bool {
        self.avoid_buggy && matches!(addr, IpAddr::V4(a) if matches!(a.octets()[3], 0 | 255))
    }

    /// The first address at or after `x` that is not a buggy one.
    fn first_allowed(&self, family: Family, x: u128) -> u128 {
        if !self.avoid_buggy || family != Family::V4 {
            return x;
        }
        match x % 256 {
            0 => x + 1,
            255 => x + 2,
            _ => x,
        }
    }
}

/// IPv4 addresses ending in .0 or .255 in [first, last].
fn buggy_in(first: u128, last: u128) -> u128 {
    let upto = |n: u128, octet: u128| if n < octet { 0 } else { (n - octet) / 256 + 1 };
    let count = |octet: u128| upto(last, octet) - if first == 0 { 0 } else { upto(first - 1, octet) };
    count(0) + count(255)
}

fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn set(ranges: &[&str], avoid_buggy: bool) -> FreeSet {
        let ranges: Vec<IpRange> = ranges.iter().map(|r| r.parse().unwrap()).collect();
        FreeSet::new(&ranges, avoid_buggy)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lowest_free_follows_pool_order_and_skips_buggy_addresses() {
        let mut free = set(&["10.0.1.0/24", "10.0.0.0/24", "fd00::/120"], true);
        assert_eq!(
            free.lowest_free(Family::V4),
            Some(ip("10.0.1.1")),
            "pool order, not address order"
        );
        assert_eq!(free.free_count(Family::V4), 2 * 254);
        assert!(!free.allows(ip("10.0.1.255")) && !free.take(ip("10.0.1.0")));
        for n in 1..=254 {
            assert!(free.take(ip(&format!("10.0.1.{n}"))));
        }
        assert_eq!(free.lowest_free(Family::V4), Some(ip("10.0.0.1")));
        assert_eq!(free.lowest_free(Family::V6), Some(ip("fd00::")));
        assert!(free.release(ip("10.0.1.7")) && !free.release(ip("10.0.1.7")));
        assert_eq!(free.lowest_free(Family::V4), Some(ip("10.0.1.7")));
    }

    #[test]
    fn huge_ranges_cost_nothing_special() {
        let mut free = set(&["fd00::/64", "0.0.0.0/0"], false);
        assert_eq!(free.free_count(Family::V6), 1 << 64);
        assert!(free.take(ip("fd00::")));
        assert_eq!(free.lowest_free(Family::V6), Some(ip("fd00::1")));
        assert!(free.take(ip("255.255.255.255")) && free.release(ip("255.255.255.255")));
        assert_eq!(free.free_count(Family::V4), 1 << 32);
        let everything = set(&["::/0"], false);
        assert_eq!(everything.free_count(Family::V6), u128::MAX);
    }

    #[test]
    fn counts_buggy_addresses_arithmetically() {
        assert_eq!(buggy_in(0, 255), 2);
        assert_eq!(buggy_in(1, 254), 0);
        assert_eq!(buggy_in(255, 256), 2);
        assert_eq!(buggy_in(0, (1 << 16) - 1), 512);
        assert_eq!(set(&["10.0.0.0/16"], true).free_count(Family::V4), 65536 - 512);
        assert_eq!(set(&["10.0.0.255/32"], true).lowest_free(Family::V4), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take(u32),
        Release(u32),
        TakeLowest,
    }

    proptest! {
        /// Any sequence of operations agrees with a brute-force set of free addresses.
        #[test]
        fn agrees_with_a_brute_force_model(
            avoid_buggy in any::<bool>(),
            ops in proptest::collection::vec(prop_oneof![
                (0u32..600).prop_map(Op::Take),
                (0u32..600).prop_map(Op::Release),
                Just(Op::TakeLowest),
            ], 0..300),
        ) {
            // Two ranges listed out of address order: 10.0.1.0-10.0.1.143 then 10.0.0.0/24.
            let mut free = set(&["10.0.1.0-10.0.1.143", "10.0.0.0/24"], avoid_buggy);
            let order: Vec<u32> = (0x0a00_0100..=0x0a00_018f).chain(0x0a00_0000..=0x0a00_00ff).collect();
            let allowed = |x: u32| !(avoid_buggy && matches!(x & 0xff, 0 | 255));
            let mut model: BTreeSet<u32> = order.iter().copied().filter(|x| allowed(*x)).collect();
            for op in ops {
                match op {
                    Op::Take(n) => {
                        let x = 0x0a00_0000 + n;
                        prop_assert_eq!(free.take(IpAddr::V4(x.into())), model.remove(&x));
                    }
                    Op::Release(n) => {
                        let x = 0x0a00_0000 + n;
                        let expected = order.contains(&x) && allowed(x) && model.insert(x);
                        prop_assert_eq!(free.release(IpAddr::V4(x.into())), expected);
                    }
                    Op::TakeLowest => {
                        let expected = order.iter().copied().find(|x| model.contains(x));
                        let got = free.lowest_free(Family::V4);
                        prop_assert_eq!(got, expected.map(|x| IpAddr::V4(x.into())));
                        if let Some(x) = expected {
                            prop_assert!(free.take(IpAddr::V4(x.into())));
                            model.remove(&x);
                        }
                    }
                }
                prop_assert_eq!(free.free_count(Family::V4), model.len() as u128);
            }
        }
    }
}
