//! UPDATE layouts byte by byte, packing, and the Adj-RIB-Out's differences.

use super::*;
use crate::message::Message;
use crate::wire;

fn terms() -> Terms {
    Terms {
        local_asn: 64512,
        internal: false,
        four_octet: true,
        next_hop_v4: Some(Ipv4Addr::new(10, 0, 0, 1)),
        next_hop_v6: Some("fd00::1".parse().unwrap()),
        families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// An UPDATE taken apart, checked for framing and size first.
fn parse(update: &[u8]) -> Routes {
    assert_eq!(wire::decode(update), Ok(Message::Update), "well framed");
    assert!(update.len() <= wire::MAX_LEN);
    read(update).expect("readable")
}

#[test]
fn an_ipv4_announcement_to_an_external_peer() {
    let attributes = Attributes {
        local_pref: Some(200),
        communities: BTreeSet::from([Community::Standard(65535, 65282), Community::Large(1, 2, 3)]),
    };
    let updates = announce(
        &terms(),
        Family::Ipv4Unicast,
        &attributes,
        &[net("10.77.0.200/32")],
    );
    assert_eq!(updates.len(), 1);
    let p = parse(&updates[0]);
    assert_eq!(p.announced, [net("10.77.0.200/32")]);
    assert_eq!(p.attributes[&attr::ORIGIN], [0], "IGP");
    assert_eq!(
        p.attributes[&attr::AS_PATH],
        [2, 1, 0, 0, 0xfc, 0x00],
        "one AS_SEQUENCE of 64512"
    );
    assert_eq!(p.attributes[&attr::NEXT_HOP], [10, 0, 0, 1]);
    assert!(
        !p.attributes.contains_key(&attr::LOCAL_PREF),
        "LOCAL_PREF is for internal peers"
    );
    assert_eq!(p.attributes[&attr::COMMUNITIES], [0xff, 0xff, 0xff, 0x02]);
    assert_eq!(
        p.attributes[&attr::LARGE_COMMUNITY],
        [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
    );
    // The exact bytes of the whole message, once.
    let expected: Vec<u8> = [
        &[0xff; 16][..],
        &[0, 70, 2], // length, UPDATE
        &[0, 0],     // no withdrawn routes
        &[0, 42],    // attributes length
        &[0x40, 1, 1, 0],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0],
        &[0xc0, 8, 4, 0xff, 0xff, 0xff, 0x02],
        &[0xc0, 32, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
        &[0x40, 3, 4, 10, 0, 0, 1],
        &[32, 10, 77, 0, 200],
    ]
    .concat();
    assert_eq!(updates[0], expected);
}

#[test]
fn internal_peers_get_an_empty_as_path_and_local_pref() {
    let internal = Terms {
        internal: true,
        ..terms()
    };
    let attributes = Attributes {
        local_pref: Some(200),
        ..Attributes::default()
    };
    let p = parse(&announce(&internal, Family::Ipv4Unicast, &attributes, &[net("10.0.0.5/32")])[0]);
    assert_eq!(p.attributes[&attr::AS_PATH], Vec::<u8>::new());
    assert_eq!(p.attributes[&attr::LOCAL_PREF], 200u32.to_be_bytes());
}

#[test]
fn a_two_octet_peer_gets_as_trans_and_the_real_as_in_as4_path() {
    let old = Terms {
        local_asn: 4_200_000_000,
        four_octet: false,
        ..terms()
    };
    let p = parse(
        &announce(
            &old,
            Family::Ipv4Unicast,
            &Attributes::default(),
            &[net("10.0.0.5/32")],
        )[0],
    );
    assert_eq!(p.attributes[&attr::AS_PATH], [2, 1, 0x5b, 0xa0], "AS_TRANS");
    assert_eq!(p.attributes[&attr::AS4_PATH], [2, 1, 0xfa, 0x56, 0xea, 0x00]);
    // A 2-octet AS needs no AS4_PATH.
    let small = Terms {
        four_octet: false,
        ..terms()
    };
    let p = parse(
        &announce(
            &small,
            Family::Ipv4Unicast,
            &Attributes::default(),
            &[net("10.0.0.5/32")],
        )[0],
    );
    assert_eq!(p.attributes[&attr::AS_PATH], [2, 1, 0xfc, 0x00]);
    assert!(!p.attributes.contains_key(&attr::AS4_PATH));
}

#[test]
fn ipv6_travels_in_mp_reach_and_mp_unreach() {
    let updates = announce(
        &terms(),
        Family::Ipv6Unicast,
        &Attributes::default(),
        &[net("fd00:77::200/128"), net("fd00:78::/64")],
    );
    let p = parse(&updates[0]);
    assert_eq!(p.announced, [net("fd00:77::200/128"), net("fd00:78::/64")]);
    let mp = &p.attributes[&attr::MP_REACH_NLRI];
    assert_eq!(&mp[..4], &[0, 2, 1, 16], "AFI 2, SAFI 1, a 16-octet next hop");
    assert_eq!(&mp[4..20], &"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
    assert!(
        !p.attributes.contains_key(&attr::NEXT_HOP),
        "no IPv4 NEXT_HOP for IPv6 routes"
    );
    let p = parse(&withdraw(Family::Ipv6Unicast, &[net("fd00:77::200/128")])[0]);
    assert_eq!(p.withdrawn, [net("fd00:77::200/128")]);
}

#[test]
fn end_of_rib_markers_are_the_empty_updates_of_rfc_4724() {
    assert_eq!(end_of_rib(Family::Ipv4Unicast), wire::encode(&Message::Update));
    let p = parse(&end_of_rib(Family::Ipv6Unicast));
    assert_eq!(p.attributes[&attr::MP_UNREACH_NLRI], [0, 2, 1]);
    assert!(p.withdrawn.is_empty() && p.announced.is_empty());
}

#[test]
fn ten_thousand_routes_pack_into_few_full_updates() {
    let nets: Vec<IpNet> = (0..10_000u32)
        .map(|i| IpNet::new(IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i)), 32).unwrap())
        .collect();
    let updates = announce(&terms(), Family::Ipv4Unicast, &Attributes::default(), &nets);
    let mut seen = Vec::new();
    for u in &updates {
        assert!(u.len() <= wire::MAX_LEN);
        seen.extend(parse(u).announced);
    }
    assert_eq!(seen, nets, "every route once, in order");
    assert_eq!(
        updates.len(),
        10_000usize.div_ceil((wire::MAX_LEN - 19 - 4 - 25) / 5),
        "full messages"
    );
    let v6: Vec<IpNet> = (0..3_000u128)
        .map(|i| IpNet::new(IpAddr::from(Ipv6Addr::from(0xfd00_u128 << 112 | i)), 128).unwrap())
        .collect();
    let withdrawals = withdraw(Family::Ipv6Unicast, &v6);
    let back: Vec<IpNet> = withdrawals.iter().flat_map(|u| parse(u).withdrawn).collect();
    assert_eq!(back, v6);
    assert!(withdrawals.len() < 20);
}

fn wanted(list: &[(&str, Option<u32>)]) -> BTreeMap<IpNet, Attributes> {
    list.iter()
        .map(|(n, pref)| {
            (
                net(n),
                Attributes {
                    local_pref: *pref,
                    ..Attributes::default()
                },
            )
        })
        .collect()
}

#[test]
fn the_adj_rib_out_sends_differences_and_end_of_rib_once() {
    let mut rib = AdjRibOut::default();
    let first = rib.sync(
        &wanted(&[
            ("10.0.0.1/32", None),
            ("10.0.0.2/32", None),
            ("fd00::1/128", None),
        ]),
        &terms(),
    );
    // One UPDATE per family (same attributes), then each End-of-RIB.
    assert_eq!(first.len(), 4);
    assert_eq!(first[1], end_of_rib(Family::Ipv4Unicast));
    assert_eq!(first[3], end_of_rib(Family::Ipv6Unicast));
    assert_eq!(
        parse(&first[0]).announced,
        [net("10.0.0.1/32"), net("10.0.0.2/32")]
    );
    // The same again: nothing.
    let same = wanted(&[
        ("10.0.0.1/32", None),
        ("10.0.0.2/32", None),
        ("fd00::1/128", None),
    ]);
    assert!(rib.sync(&same, &terms()).is_empty());
    // One route's attributes change, one route goes: one announcement, one withdrawal.
    let changed = rib.sync(
        &wanted(&[("10.0.0.1/32", Some(50)), ("fd00::1/128", None)]),
        &terms(),
    );
    assert_eq!(changed.len(), 2);
    assert_eq!(parse(&changed[0]).withdrawn, [net("10.0.0.2/32")]);
    assert_eq!(parse(&changed[1]).announced, [net("10.0.0.1/32")]);
    assert_eq!(rib.sent().len(), 2);
    // A ROUTE-REFRESH sends a family again.
    let again = rib.refresh(Family::Ipv6Unicast, &terms());
    assert_eq!(parse(&again[0]).announced, [net("fd00::1/128")]);
    assert_eq!(again.last(), Some(&end_of_rib(Family::Ipv6Unicast)));
    // The session went down: everything again, with End-of-RIB.
    rib.clear();
    let resent = rib.sync(
        &wanted(&[("10.0.0.1/32", Some(50)), ("fd00::1/128", None)]),
        &terms(),
    );
    assert_eq!(resent.len(), 4);
}

#[test]
fn families_not_negotiated_or_without_next_hop_carry_nothing() {
    let v4_only = Terms {
        families: BTreeSet::from([Family::Ipv4Unicast]),
        ..terms()
    };
    let mut rib = AdjRibOut::default();
    let out = rib.sync(&wanted(&[("10.0.0.1/32", None), ("fd00::1/128", None)]), &v4_only);
    assert_eq!(out.len(), 2, "the IPv4 route and IPv4's End-of-RIB");
    assert_eq!(rib.sent().len(), 1);
    let no_v6_next_hop = Terms {
        next_hop_v6: None,
        ..terms()
    };
    let mut rib = AdjRibOut::default();
    let out = rib.sync(&wanted(&[("fd00::1/128", None)]), &no_v6_next_hop);
    assert_eq!(
        out,
        [end_of_rib(Family::Ipv4Unicast), end_of_rib(Family::Ipv6Unicast)]
    );
    assert!(rib.sent().is_empty(), "nothing recorded as sent that was not");
}

proptest::proptest! {
    /// Reading arbitrary bytes as an UPDATE never panics.
    #[test]
    fn reading_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = read(&bytes);
    }
}
