//! The fuzz target's check ([`super::fuzzing::check`]), on stable Rust in every test
//! run: over arbitrary bytes and over mutations of valid frames.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::fuzzing::check;
use super::*;

fn valid_frames() -> Vec<Vec<u8>> {
    let client = Mac([0x02, 0, 0, 0, 0, 2]);
    let request = Arp {
        op: ArpOp::Request,
        sender_mac: client,
        sender_ip: Ipv4Addr::new(10, 0, 0, 2),
        target_mac: Mac::ZERO,
        target_ip: Ipv4Addr::new(10, 0, 0, 100),
    };
    let mut frames = vec![
        frame(Mac::BROADCAST, client, ETHERTYPE_ARP, &request.bytes()),
        solicitation(client, "fd00::2".parse().unwrap(), "fd00::100".parse().unwrap()),
        solicitation(client, Ipv6Addr::UNSPECIFIED, "fd00::100".parse().unwrap()),
    ];
    frames.extend(Arp::gratuitous(Ipv4Addr::new(10, 0, 0, 100), client));
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        which in 0..5usize,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = valid_frames()[which].clone();
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        check(&bytes);
        let cut = cut % (bytes.len() + 1);
        check(&bytes[..cut]);
    }
}

#[test]
fn the_valid_frames_parse() {
    for bytes in valid_frames() {
        assert!(receive(&bytes).is_ok());
        check(&bytes);
    }
}
