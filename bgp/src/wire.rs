//! BGP messages on the wire (RFC 4271 §4): the 19-octet header, then OPEN, UPDATE,
//! NOTIFICATION, KEEPALIVE or ROUTE-REFRESH. Decoding never panics and never trusts a
//! length it has not checked: anything malformed comes back as the NOTIFICATION the
//! peer must receive (RFC 4271 §6), which the session sends before it closes.
//!
//! Written by hand rather than with a general BGP crate: the speaker exports routes and
//! imports none, so of what it receives only OPEN, NOTIFICATION and ROUTE-REFRESH are
//! read whole; an UPDATE is checked for framing only (RFC 7606: errors inside its
//! attributes would be "treat-as-withdraw", and there is nothing to withdraw).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::message::{AfiSafi, GracefulRestart, Message, Notification, Open, code};

/// The header's length.
pub const HEADER_LEN: usize = 19;
/// The largest message (RFC 4271; the extended-message capability is not offered).
pub const MAX_LEN: usize = 4096;

/// Message types (RFC 4271 §4.1, RFC 2918).
mod kind {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
mod header_error {
    pub const NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_LENGTH: u8 = 2;
    pub const BAD_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes this module finds (RFC 4271 §6.2, RFC 5492).
mod open_error {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
}

/// Capability codes read or written (IANA "Capability Codes").
mod capability {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// The optional parameter that carries capabilities (RFC 5492).
const CAPABILITIES_PARAMETER: u8 = 2;

/// The check of the fuzz target `bgp/fuzz/fuzz_targets/decode.rs`, shared with the
/// property tests: decoding any bytes never panics, and what decodes encodes to what
/// decodes the same (after one pass that drops what FerroLB does not keep: unknown
/// capabilities, UPDATE contents).
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing {
    use super::{decode, encode, message_len};

    /// Panics when decoding misbehaves on `bytes`.
    pub fn check(bytes: &[u8]) {
        if let Ok(Some(len)) = message_len(bytes)
            && let Some(whole) = bytes.get(..len)
            && let Ok(message) = decode(whole)
        {
            let once = decode(&encode(&message)).expect("our encoding decodes");
            assert_eq!(decode(&encode(&once)), Ok(once));
        }
    }
}

/// How many octets the next message takes, once `buf` holds its header; `Ok(None)`
/// while it does not. A header that cannot start a valid message is an error at once,
/// so a peer sending garbage never makes the reader wait for 64 KiB.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, Notification> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16].iter().any(|b| *b != 0xff) {
        return Err(Notification::new(code::HEADER, header_error::NOT_SYNCHRONIZED));
    }
    let len = u16::from_be_bytes([header[16], header[17]]);
    if !(HEADER_LEN..=MAX_LEN).contains(&usize::from(len)) {
        return Err(bad_length(len));
    }
    Ok(Some(usize::from(len)))
}

fn bad_length(len: u16) -> Notification {
    Notification {
        data: len.to_be_bytes().to_vec(),
        ..Notification::new(code::HEADER, header_error::BAD_LENGTH)
    }
}

/// Decodes one whole message (`bytes` is exactly as long as its header says).
pub fn decode(bytes: &[u8]) -> Result<Message, Notification> {
    let len = message_len(bytes)?.ok_or_else(|| bad_length(bytes.len() as u16))?;
    if len != bytes.len() {
        return Err(bad_length(len as u16));
    }
    let body = &bytes[HEADER_LEN..];
    let length_error = || bad_length(len as u16);
    match bytes[18] {
        kind::OPEN if body.len() >= 10 => decode_open(body),
        kind::UPDATE if body.len() >= 4 => check_update(body).map(|()| Message::Update),
        kind::NOTIFICATION if body.len() >= 2 => Ok(Message::Notification(Notification {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        })),
        kind::KEEPALIVE if body.is_empty() => Ok(Message::Keepalive),
        kind::ROUTE_REFRESH if body.len() == 4 => Ok(Message::RouteRefresh(AfiSafi(
            u16::from_be_bytes([body[0], body[1]]),
            body[3],
        ))),
        kind::OPEN | kind::UPDATE | kind::NOTIFICATION | kind::KEEPALIVE | kind::ROUTE_REFRESH => {
            Err(length_error())
        }
        other => Err(Notification {
            data: vec![other],
            ..Notification::new(code::HEADER, header_error::BAD_TYPE)
        }),
    }
}

fn decode_open(body: &[u8]) -> Result<Message, Notification> {
    let malformed = || Notification::new(code::OPEN, open_error::UNSPECIFIC);
    let version = body[0];
    let my_as = u16::from_be_bytes([body[1], body[2]]);
    let hold_time = u16::from_be_bytes([body[3], body[4]]);
    let router_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
    let params_len = usize::from(body[9]);
    let mut params = body
        .get(10..)
        .filter(|p| p.len() == params_len)
        .ok_or_else(malformed)?;
    let mut open = Open {
        version,
        asn: u32::from(my_as),
        hold_time,
        router_id,
        families: None,
        four_octet: false,
        route_refresh: false,
        graceful_restart: None,
    };
    while let [kind, len, rest @ ..] = params {
        let value = rest.get(..usize::from(*len)).ok_or_else(malformed)?;
        if *kind != CAPABILITIES_PARAMETER {
            return Err(Notification::new(
                code::OPEN,
                open_error::UNSUPPORTED_OPTIONAL_PARAMETER,
            ));
        }
        read_capabilities(value, &mut open).ok_or_else(malformed)?;
        params = &rest[usize::from(*len)..];
    }
    if !params.is_empty() {
        return Err(malformed());
    }
    Ok(Message::Open(open))
}

/// Reads the capabilities of one parameter into `open`; `None` when they are malformed.
/// Unknown capabilities are skipped (RFC 5492 §3).
fn read_capabilities(mut value: &[u8], open: &mut Open) -> Option<()> {
    while let [code, len, rest @ ..] = value {
        let data = rest.get(..usize::from(*len))?;
        match (*code, data) {
            (capability::MULTIPROTOCOL, [a, b, _, safi]) => {
                if let Some(f) = AfiSafi(u16::from_be_bytes([*a, *b]), *safi).family() {
                    open.families.get_or_insert_with(BTreeSet::new).insert(f);
                } else {
                    // Offered, but not one of ours: still "has multiprotocol capabilities".
                    open.families.get_or_insert_with(BTreeSet::new);
                }
            }
            (capability::MULTIPROTOCOL, _) => return None,
            (capability::ROUTE_REFRESH, _) => open.route_refresh = true,
            (capability::GRACEFUL_RESTART, data) => {
                open.graceful_restart = Some(read_graceful_restart(data)?)
            }
            (capability::FOUR_OCTET_AS, [a, b, c, d]) => {
                open.four_octet = true;
                open.asn = u32::from_be_bytes([*a, *b, *c, *d]);
            }
            (capability::FOUR_OCTET_AS, _) => return None,
            _ => {}
        }
        value = &rest[usize::from(*len)..];
    }
    value.is_empty().then_some(())
}

/// Flag bits of the graceful restart capability (RFC 4724 §3, RFC 8538 §2).
mod restart_flags {
    /// Restart State, in the first octet.
    pub const RESTARTING: u8 = 0x80;
    /// Graceful Notification, in the first octet.
    pub const NOTIFICATION: u8 = 0x40;
    /// Forwarding State, in a family's flags.
    pub const FORWARDING: u8 = 0x80;
}

/// Reads a graceful restart capability; families not ours are skipped.
fn read_graceful_restart(data: &[u8]) -> Option<GracefulRestart> {
    let [flags, low, rest @ ..] = data else {
        return None;
    };
    let mut families = rest;
    let mut gr = GracefulRestart {
        restarting: flags & restart_flags::RESTARTING != 0,
        notification: flags & restart_flags::NOTIFICATION != 0,
        restart_time: u16::from_be_bytes([flags & 0x0f, *low]),
        families: BTreeMap::new(),
    };
    while let [a, b, safi, family_flags, rest @ ..] = families {
        if let Some(f) = AfiSafi(u16::from_be_bytes([*a, *b]), *safi).family() {
            gr.families
                .insert(f, family_flags & restart_flags::FORWARDING != 0);
        }
        families = rest;
    }
    families.is_empty().then_some(gr)
}

fn encode_graceful_restart(gr: &GracefulRestart, caps: &mut Vec<u8>) {
    caps.extend_from_slice(&[capability::GRACEFUL_RESTART, (2 + 4 * gr.families.len()) as u8]);
    let time = gr
        .restart_time
        .min(GracefulRestart::MAX_RESTART_TIME)
        .to_be_bytes();
    let mut flags = time[0];
    if gr.restarting {
        flags |= restart_flags::RESTARTING;
    }
    if gr.notification {
        flags |= restart_flags::NOTIFICATION;
    }
    caps.extend_from_slice(&[flags, time[1]]);
    for (family, forwarding) in &gr.families {
        let AfiSafi(afi, safi) = AfiSafi::from(*family);
        caps.extend_from_slice(&afi.to_be_bytes());
        let f = if *forwarding { restart_flags::FORWARDING } else { 0 };
        caps.extend_from_slice(&[safi, f]);
    }
}

/// Checks an UPDATE's framing: the withdrawn routes and the path attributes must fit.
fn check_update(body: &[u8]) -> Result<(), Notification> {
    // Malformed Attribute List (RFC 4271 §6.3; RFC 7606 §5.3: a session reset).
    let malformed = || Notification::new(code::UPDATE, 1);
    let withdrawn = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let rest = body.get(2 + withdrawn..).ok_or_else(malformed)?;
    let [a, b, attributes @ ..] = rest else {
        return Err(malformed());
    };
    let attributes_len = usize::from(u16::from_be_bytes([*a, *b]));
    if attributes_len > attributes.len() {
        return Err(malformed());
    }
    Ok(())
}

/// Encodes a message. An UPDATE has no contents here (the speaker builds its UPDATEs
/// with their routes elsewhere); this one is empty, which is an End-of-RIB for IPv4
/// unicast (RFC 4724 §2).
pub fn encode(message: &Message) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&[0, 0, 0]);
    match message {
        Message::Open(open) => {
            out[18] = kind::OPEN;
            encode_open(open, &mut out);
        }
        Message::Update => {
            out[18] = kind::UPDATE;
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        Message::Notification(n) => {
            out[18] = kind::NOTIFICATION;
            out.extend_from_slice(&[n.code, n.subcode]);
            // Bounded so the message fits.
            let room = MAX_LEN - HEADER_LEN - 2;
            out.extend_from_slice(&n.data[..n.data.len().min(room)]);
        }
        Message::Keepalive => out[18] = kind::KEEPALIVE,
        Message::RouteRefresh(AfiSafi(afi, safi)) => {
            out[18] = kind::ROUTE_REFRESH;
            out.extend_from_slice(&afi.to_be_bytes());
            out.extend_from_slice(&[0, *safi]);
        }
    }
    let len = out.len() as u16;
    out[16..18].copy_from_slice(&len.to_be_bytes());
    out
}

fn encode_open(open: &Open, out: &mut Vec<u8>) {
    out.push(open.version);
    out.extend_from_slice(&open.my_as_field().to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.router_id.octets());
    let mut caps = Vec::new();
    for family in open.families.iter().flatten() {
        let AfiSafi(afi, safi) = AfiSafi::from(*family);
        caps.extend_from_slice(&[capability::MULTIPROTOCOL, 4]);
        caps.extend_from_slice(&afi.to_be_bytes());
        caps.extend_from_slice(&[0, safi]);
    }
    if open.route_refresh {
        caps.extend_from_slice(&[capability::ROUTE_REFRESH, 0]);
    }
    if open.four_octet {
        caps.extend_from_slice(&[capability::FOUR_OCTET_AS, 4]);
        caps.extend_from_slice(&open.asn.to_be_bytes());
    }
    if let Some(gr) = &open.graceful_restart {
        encode_graceful_restart(gr, &mut caps);
    }
    // One parameter holding every capability (at most 255 octets; ours take 32).
    out.push(caps.len() as u8 + 2);
    out.extend_from_slice(&[CAPABILITIES_PARAMETER, caps.len() as u8]);
    out.extend_from_slice(&caps);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::{Family, cease};

    fn open() -> Open {
        Open {
            version: 4,
            asn: 4_200_000_001,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            families: Some(BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast])),
            four_octet: true,
            route_refresh: true,
            graceful_restart: None,
        }
    }

    #[test]
    fn every_message_survives_a_round_trip() {
        for message in [
            Message::Open(open()),
            Message::Keepalive,
            Message::Update,
            Message::RouteRefresh(Family::Ipv6Unicast.into()),
            Message::RouteRefresh(AfiSafi(25, 70)),
            Message::Notification(Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN, "bye")),
        ] {
            let bytes = encode(&message);
            assert_eq!(message_len(&bytes), Ok(Some(bytes.len())));
            assert_eq!(decode(&bytes), Ok(message));
        }
    }

    #[test]
    fn an_open_is_laid_out_as_rfc_4271_and_5492_say() {
        let bytes = encode(&Message::Open(open()));
        assert_eq!(&bytes[..16], &[0xff; 16]);
        assert_eq!(bytes[18], 1, "type OPEN");
        assert_eq!(bytes[19], 4, "version");
        assert_eq!(
            &bytes[20..22],
            &23456u16.to_be_bytes(),
            "AS_TRANS for a 4-octet AS"
        );
        assert_eq!(&bytes[22..24], &90u16.to_be_bytes());
        assert_eq!(&bytes[24..28], &[10, 0, 0, 1]);
        assert_eq!(
            usize::from(bytes[28]),
            bytes.len() - 29,
            "optional parameters length"
        );
        assert_eq!(
            &bytes[29..],
            &[
                2, 20, // capabilities parameter
                1, 4, 0, 1, 0, 1, // MP IPv4 unicast
                1, 4, 0, 2, 0, 1, // MP IPv6 unicast
                2, 0, // route refresh
                65, 4, 0xfa, 0x56, 0xea, 0x01, // 4-octet AS 4200000001
            ]
        );
        // A peer that offers no multiprotocol capability offers IPv4 unicast only.
        let plain = Open {
            families: None,
            ..open()
        };
        let Ok(Message::Open(back)) = decode(&encode(&Message::Open(plain))) else {
            panic!()
        };
        assert_eq!(back.families, None);
        assert_eq!(back.offered(), BTreeSet::from([Family::Ipv4Unicast]));
    }

    #[test]
    fn the_graceful_restart_capability_carries_its_flags_time_and_families() {
        let gr = GracefulRestart {
            restarting: true,
            notification: true,
            restart_time: 120,
            families: BTreeMap::from([(Family::Ipv4Unicast, true), (Family::Ipv6Unicast, false)]),
        };
        let with = Open {
            graceful_restart: Some(gr.clone()),
            ..open()
        };
        let bytes = encode(&Message::Open(with.clone()));
        assert_eq!(
            &bytes[bytes.len() - 12..],
            &[
                64, 10, // graceful restart, 2 + 2 × 4 octets
                0xc0, 120, // R and N, restart time 120 s
                0, 1, 1, 0x80, // IPv4 unicast, forwarding kept
                0, 2, 1, 0, // IPv6 unicast, not kept
            ]
        );
        assert_eq!(decode(&bytes), Ok(Message::Open(with.clone())));
        // A helper's capability: no families; a time beyond 12 bits is cut to 4095.
        let helper = GracefulRestart {
            restart_time: 5000,
            families: BTreeMap::new(),
            ..gr
        };
        let bytes = encode(&Message::Open(Open {
            graceful_restart: Some(helper),
            ..open()
        }));
        assert_eq!(&bytes[bytes.len() - 4..], &[64, 2, 0xcf, 0xff]);
        let Ok(Message::Open(back)) = decode(&bytes) else {
            panic!()
        };
        assert_eq!(back.graceful_restart.map(|g| g.restart_time), Some(4095));
        // A family tuple cut short is malformed; an unknown family is skipped.
        let mut bytes = encode(&Message::Open(with));
        let at = bytes.len() - 11;
        assert_eq!(bytes[at], 10);
        bytes[at] = 9;
        bytes.pop();
        bytes[28] -= 1;
        bytes[30] -= 1;
        let len = bytes.len() as u16;
        bytes[16..18].copy_from_slice(&len.to_be_bytes());
        assert_eq!(decode(&bytes).unwrap_err(), Notification::new(code::OPEN, 0));
        let mut bytes = encode(&Message::Open(Open {
            graceful_restart: Some(GracefulRestart {
                families: BTreeMap::from([(Family::Ipv4Unicast, true)]),
                ..GracefulRestart::default()
            }),
            ..open()
        }));
        let at = bytes.len() - 3;
        bytes[at] = 25; // AFI 25 (L2VPN)
        let Ok(Message::Open(back)) = decode(&bytes) else {
            panic!()
        };
        assert_eq!(back.graceful_restart.map(|g| g.families), Some(BTreeMap::new()));
    }

    #[test]
    fn headers_that_cannot_start_a_message_are_refused_at_once() {
        let mut bytes = encode(&Message::Keepalive);
        assert_eq!(message_len(&bytes[..18]), Ok(None), "not a whole header yet");
        bytes[3] = 0;
        assert_eq!(
            message_len(&bytes).unwrap_err(),
            Notification::new(code::HEADER, 1)
        );
        let mut bytes = encode(&Message::Keepalive);
        bytes[16..18].copy_from_slice(&5000u16.to_be_bytes());
        let n = message_len(&bytes).unwrap_err();
        assert_eq!((n.code, n.subcode, n.data), (code::HEADER, 2, vec![0x13, 0x88]));
        bytes[16..18].copy_from_slice(&18u16.to_be_bytes());
        assert_eq!(message_len(&bytes).unwrap_err().subcode, 2);
    }

    #[test]
    fn bad_types_and_lengths_get_header_errors() {
        let mut bytes = encode(&Message::Keepalive);
        bytes[18] = 9;
        let n = decode(&bytes).unwrap_err();
        assert_eq!((n.code, n.subcode, n.data), (code::HEADER, 3, vec![9]));
        // A KEEPALIVE with a body, a ROUTE-REFRESH too short.
        let mut long = encode(&Message::Keepalive);
        long.push(0);
        long[16..18].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(decode(&long).unwrap_err().subcode, 2);
        let mut short = encode(&Message::RouteRefresh(Family::Ipv4Unicast.into()));
        short.pop();
        short[16..18].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(decode(&short).unwrap_err().subcode, 2);
        // A slice longer than the header says.
        let mut extra = encode(&Message::Keepalive);
        extra.push(0);
        assert_eq!(decode(&extra).unwrap_err().subcode, 2);
    }

    #[test]
    fn malformed_opens_get_open_errors() {
        let good = encode(&Message::Open(open()));
        // Optional parameters length beyond the message.
        let mut bytes = good.clone();
        bytes[28] += 1;
        assert_eq!(decode(&bytes).unwrap_err(), Notification::new(code::OPEN, 0));
        // A parameter that is not capabilities (the deprecated authentication one).
        let mut bytes = good.clone();
        bytes[29] = 1;
        assert_eq!(decode(&bytes).unwrap_err(), Notification::new(code::OPEN, 4));
        // A 4-octet AS capability of the wrong length.
        let mut bytes = good.clone();
        let at = bytes.len() - 5;
        assert_eq!(bytes[at], 4);
        bytes[at] = 3;
        assert_eq!(decode(&bytes).unwrap_err(), Notification::new(code::OPEN, 0));
        // Unknown capabilities and families are skipped; the version is the session's to check.
        let mut bytes = good;
        bytes[19] = 3;
        bytes[31] = 73; // the first MP capability becomes an unknown one
        let Ok(Message::Open(o)) = decode(&bytes) else {
            panic!()
        };
        assert_eq!(o.version, 3);
        assert_eq!(o.families, Some(BTreeSet::from([Family::Ipv6Unicast])));
    }

    #[test]
    fn update_framing_is_checked_and_contents_ignored() {
        // Withdrawn length 2 with one withdrawn /8, attributes length 0: fine.
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&[0, 0, 2, 0, 2, 8, 10, 0, 0]);
        let len = bytes.len() as u16;
        bytes[16..18].copy_from_slice(&len.to_be_bytes());
        assert_eq!(decode(&bytes), Ok(Message::Update));
        // Withdrawn routes running past the message.
        bytes[20] = 9;
        assert_eq!(decode(&bytes).unwrap_err(), Notification::new(code::UPDATE, 1));
        bytes[20] = 2;
        // Attributes longer than what is left.
        bytes[24] = 1;
        assert_eq!(decode(&bytes).unwrap_err(), Notification::new(code::UPDATE, 1));
    }

    #[test]
    fn notifications_are_cut_to_fit_a_message() {
        let n = Notification {
            data: vec![7; 5000],
            ..Notification::new(code::CEASE, cease::ADMINISTRATIVE_RESET)
        };
        let bytes = encode(&Message::Notification(n));
        assert_eq!(bytes.len(), MAX_LEN);
        assert!(decode(&bytes).is_ok());
    }

    proptest! {
        /// Any bytes after a valid-looking header (the marker, the true length, a type
        /// around the valid ones): see [`fuzzing::check`].
        #[test]
        fn any_bytes_decode_without_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), kind in 0u8..7) {
            if bytes.len() >= HEADER_LEN {
                bytes[..16].fill(0xff);
                let len = bytes.len() as u16;
                bytes[16..18].copy_from_slice(&len.to_be_bytes());
                bytes[18] = kind;
            }
            fuzzing::check(&bytes);
        }
    }
}
