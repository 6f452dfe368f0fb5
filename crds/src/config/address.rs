//! Pool address entries: parsing `CIDR` and `first-last` strings into ranges,
//! summarising ranges into CIDRs, and finding overlaps without scanning addresses.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Why an address entry did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Neither a CIDR nor a range.
    #[error("{0:?} is neither a CIDR (10.0.0.0/24) nor a range (10.0.0.1-10.0.0.9)")]
    Syntax(String),
    /// A CIDR whose address or prefix length is wrong.
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
    /// One end of a range is not an IP address.
    #[error("invalid IP range {0:?}: {1:?} is not an IP address")]
    RangeEnd(String, String),
    /// A range mixing IPv4 and IPv6.
    #[error("invalid IP range {0:?}: first and last address are of different families")]
    MixedFamilies(String),
    /// A range whose first address comes after its last.
    #[error("invalid IP range {0:?}: the first address is after the last")]
    Reversed(String),
}

/// An inclusive range of addresses of one family, stored as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    family: Family,
    first: u128,
    last: u128,
}

impl IpRange {
    /// A range from two addresses of one family, first not after last.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<Self> {
        let family = Family::of(first);
        (family == Family::of(last) && to_int(first) <= to_int(last)).then(|| Self {
            family,
            first: to_int(first),
            last: to_int(last),
        })
    }

    /// The range a CIDR covers (host bits of the address are ignored, as Go's ParseCIDR does).
    pub fn from_net(net: IpNet) -> Self {
        let net = net.trunc();
        Self {
            family: Family::of(net.addr()),
            first: to_int(net.network()),
            last: to_int(net.broadcast()),
        }
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// First address.
    pub fn first(&self) -> IpAddr {
        from_int(self.family, self.first)
    }

    /// Last address.
    pub fn last(&self) -> IpAddr {
        from_int(self.family, self.last)
    }

    /// First address as an integer.
    pub fn first_int(&self) -> u128 {
        self.first
    }

    /// Last address as an integer.
    pub fn last_int(&self) -> u128 {
        self.last
    }

    /// Number of addresses, saturating at `u128::MAX` for the whole IPv6 space.
    pub fn len(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether the range holds `addr`.
    pub fn contains(&self, addr: IpAddr) -> bool {
        Family::of(addr) == self.family && (self.first..=self.last).contains(&to_int(addr))
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }

    /// The smallest list of CIDRs covering exactly this range, in ascending order.
    pub fn cidrs(&self) -> Vec<IpNet> {
        match (self.first(), self.last()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
            (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
            _ => unreachable!("an IpRange never mixes families"),
        }
    }

    /// The shortest prefix length among [`IpRange::cidrs`] (at most ~2×bits of them).
    pub fn shortest_prefix(&self) -> u8 {
        self.cidrs()
            .iter()
            .map(IpNet::prefix_len)
            .min()
            .unwrap_or(self.family.bits())
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cidrs().as_slice() {
            [single] => write!(f, "{single}"),
            _ => write!(f, "{}-{}", self.first(), self.last()),
        }
    }
}

impl FromStr for IpRange {
    type Err = AddressError;

    /// Parses a pool entry: `10.0.0.0/24`, `fd00::/120`, or `first-last` with optional
    /// white space around either end.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        if entry.contains('/') {
            return IpNet::from_str(entry.trim())
                .map(IpRange::from_net)
                .map_err(|_| AddressError::Cidr(entry.to_string()));
        }
        let Some((first, last)) = entry.split_once('-') else {
            return Err(AddressError::Syntax(entry.to_string()));
        };
        let parse = |end: &str| {
            IpAddr::from_str(end.trim())
                .map_err(|_| AddressError::RangeEnd(entry.to_string(), end.trim().to_string()))
        };
        let (first, last) = (parse(first)?, parse(last)?);
        if Family::of(first) != Family::of(last) {
            return Err(AddressError::MixedFamilies(entry.to_string()));
        }
        IpRange::new(first, last).ok_or_else(|| AddressError::Reversed(entry.to_string()))
    }
}

/// Disjoint ranges with their owners, answering "what does this range overlap" in
/// O(log n). Owners are whatever the caller needs to name in an error.
#[derive(Debug, Clone)]
pub struct RangeIndex<T> {
    by_start: BTreeMap<(Family, u128), (IpRange, T)>,
}

impl<T> Default for RangeIndex<T> {
    fn default() -> Self {
        Self {
            by_start: BTreeMap::new(),
        }
    }
}

impl<T> RangeIndex<T> {
    /// An accepted range that overlaps `range`, if any.
    pub fn overlapping(&self, range: &IpRange) -> Option<(&IpRange, &T)> {
        // Accepted ranges are disjoint, so only the last one starting at or before
        // `range`'s end can reach into it.
        let (_, (found, owner)) = self
            .by_start
            .range((range.family, 0)..=(range.family, range.last))
            .next_back()?;
        found.overlaps(range).then_some((found, owner))
    }

    /// Adds a range that overlaps nothing in the index (check with `overlapping` first).
    pub fn insert(&mut self, range: IpRange, owner: T) {
        debug_assert!(self.overlapping(&range).is_none());
        self.by_start.insert((range.family, range.first), (range, owner));
    }
}

/// An address as an integer (IPv4 in the low 32 bits).
pub fn to_int(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of `family` with integer value `value` (the inverse of [`to_int`]).
pub fn from_int(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(s: &str) -> IpRange {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs_and_ranges() {
        assert_eq!(range("10.0.0.0/24").len(), 256);
        assert_eq!(
            range("10.0.0.7/24").first(),
            "10.0.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(range(" 10.0.0.1 - 10.0.0.9 ").len(), 9);
        assert_eq!(range("fd00::/64").len(), 1 << 64);
        assert_eq!(range("::/0").len(), u128::MAX);
        assert_eq!(range("10.0.0.5-10.0.0.5").len(), 1);
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(matches!(
            "10.0.0.1".parse::<IpRange>(),
            Err(AddressError::Syntax(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<IpRange>(),
            Err(AddressError::Cidr(_))
        ));
        assert!(matches!(
            "10.0.0.x-10.0.0.9".parse::<IpRange>(),
            Err(AddressError::RangeEnd(..))
        ));
        assert!(matches!(
            "10.0.0.1-fd00::1".parse::<IpRange>(),
            Err(AddressError::MixedFamilies(_))
        ));
        assert!(matches!(
            "10.0.0.9-10.0.0.1".parse::<IpRange>(),
            Err(AddressError::Reversed(_))
        ));
    }

    #[test]
    fn summarises_like_metallb() {
        // MetalLB's documented example: this range's shortest summarised prefix is /26.
        let r = range("3.3.3.2-3.3.3.254");
        assert_eq!(r.shortest_prefix(), 26);
        assert_eq!(range("10.0.0.0/24").shortest_prefix(), 24);
        assert_eq!(range("::/0").shortest_prefix(), 0);
        assert_eq!(range("0.0.0.0/0").shortest_prefix(), 0);
    }

    fn small_v4() -> impl Strategy<Value = IpRange> {
        (0u32..512, 0u32..64).prop_map(|(start, len)| {
            let first = Ipv4Addr::from(0x0a00_0000 + start);
            let last = Ipv4Addr::from(0x0a00_0000 + start + len);
            IpRange::new(first.into(), last.into()).unwrap()
        })
    }

    fn any_range() -> impl Strategy<Value = IpRange> {
        prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(a, b)| {
                IpRange::new(Ipv4Addr::from(a.min(b)).into(), Ipv4Addr::from(a.max(b)).into()).unwrap()
            }),
            (any::<u128>(), any::<u128>()).prop_map(|(a, b)| {
                IpRange::new(Ipv6Addr::from(a.min(b)).into(), Ipv6Addr::from(a.max(b)).into()).unwrap()
            }),
        ]
    }

    proptest! {
        #[test]
        fn range_text_round_trips(r in any_range()) {
            let text = format!("{}-{}", r.first(), r.last());
            prop_assert_eq!(text.parse::<IpRange>().unwrap(), r);
        }

        #[test]
        fn cidrs_cover_the_range_exactly(r in any_range()) {
            let cidrs = r.cidrs();
            // Contiguous, ascending, starting and ending where the range does.
            prop_assert_eq!(IpRange::from_net(cidrs[0]).first_int(), r.first_int());
            prop_assert_eq!(IpRange::from_net(*cidrs.last().unwrap()).last_int(), r.last_int());
            for pair in cidrs.windows(2) {
                prop_assert_eq!(IpRange::from_net(pair[0]).last_int() + 1, IpRange::from_net(pair[1]).first_int());
            }
            // Each CIDR parses back to itself from its text form.
            for net in &cidrs {
                prop_assert_eq!(net.to_string().parse::<IpRange>().unwrap(), IpRange::from_net(*net));
            }
        }

        #[test]
        fn overlap_agrees_with_brute_force(a in small_v4(), b in small_v4()) {
            let brute = (a.first_int()..=a.last_int()).any(|x| (b.first_int()..=b.last_int()).contains(&x));
            prop_assert_eq!(a.overlaps(&b), brute);
        }

        #[test]
        fn index_finds_every_overlap(ranges in proptest::collection::vec(small_v4(), 1..30), probe in small_v4()) {
            let mut index = RangeIndex::default();
            let mut accepted = Vec::new();
            for (i, r) in ranges.iter().enumerate() {
                if index.overlapping(r).is_none() {
                    index.insert(*r, i);
                    accepted.push(*r);
                }
            }
            let brute = accepted.iter().any(|r| r.overlaps(&probe));
            prop_assert_eq!(index.overlapping(&probe).is_some(), brute);
        }
    }
}
