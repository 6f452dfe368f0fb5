//! The deterministic order of nodes for one address.

use std::net::IpAddr;

/// A well-mixed 64-bit hash of (node, address), the same on every speaker, every
/// architecture and every Rust version (std's hashers promise none of that): FNV-1a
/// over the bytes, then SplitMix64's finaliser so that similar names spread apart.
pub fn rank(node: &str, ip: IpAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let octets = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    for byte in node.as_bytes().iter().chain([0u8].iter()).chain(octets.iter()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Changing these changes which node announces what in a mixed-version cluster.
        assert_eq!(
            rank("node-a", "10.0.0.1".parse().unwrap()),
            15_731_203_242_211_510_141
        );
        assert_ne!(
            rank("node-a", "10.0.0.1".parse().unwrap()),
            rank("node-b", "10.0.0.1".parse().unwrap())
        );
        assert_ne!(
            rank("node-a1", "0.0.0.1".parse().unwrap()),
            rank("node-a", "10.0.0.1".parse().unwrap())
        );
    }
}
