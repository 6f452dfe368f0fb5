//! IPv6 Neighbor Discovery (RFC 4861): Neighbor Solicitations in, Neighbor
//! Advertisements out, inside IPv6 and Ethernet.

use std::net::Ipv6Addr;

use super::{ETHERTYPE_IPV6, Frame, Mac, ParseError, frame};

const IPV6_HEADER: usize = 40;
const ICMPV6: u8 = 58;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Option types: source and target link-layer address.
const SOURCE_LINK_LAYER: u8 = 1;
const TARGET_LINK_LAYER: u8 = 2;
/// All-nodes multicast.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A valid Neighbor Solicitation (the checks of RFC 4861 §7.1.1 passed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// Ethernet source of the frame.
    pub src_mac: Mac,
    /// IPv6 source; unspecified (`::`) for duplicate address detection.
    pub src_ip: Ipv6Addr,
    /// IPv6 destination (the target's solicited-node group, or the target itself).
    pub dst_ip: Ipv6Addr,
    /// The address asked about.
    pub target: Ipv6Addr,
    /// The source link-layer address option, if present.
    pub source_link_layer: Option<Mac>,
}

/// A Neighbor Advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    /// IPv6 source.
    pub src_ip: Ipv6Addr,
    /// IPv6 destination.
    pub dst_ip: Ipv6Addr,
    /// Answer to a solicitation (S flag).
    pub solicited: bool,
    /// Replace existing cache entries (O flag).
    pub override_: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The target link-layer address option.
    pub target_link_layer: Option<Mac>,
}

/// The solicited-node multicast group of an address (ff02::1:ffXX:XXXX).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast group (33:33 + its last 32 bits).
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// An ICMPv6 message as carried by IPv6: header fields and body.
struct Icmp<'a> {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    body: &'a [u8],
}

fn parse_ipv6_icmp<'a>(frame: &Frame<'a>) -> Result<Icmp<'a>, ParseError> {
    if frame.ethertype != ETHERTYPE_IPV6 {
        return Err(ParseError::Foreign);
    }
    let p = frame.payload;
    if p.len() < IPV6_HEADER {
        return Err(ParseError::Truncated);
    }
    if p[0] >> 4 != 6 {
        return Err(ParseError::Malformed);
    }
    // Extension headers never precede NDP messages that matter here (RFC 4861 says
    // nodes must handle them, but no stack sends NS behind one); treat them as foreign.
    if p[6] != ICMPV6 {
        return Err(ParseError::Foreign);
    }
    let length = usize::from(u16::from_be_bytes([p[4], p[5]]));
    let body = p
        .get(IPV6_HEADER..IPV6_HEADER + length)
        .ok_or(ParseError::Truncated)?;
    let address = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&p[at..at + 16]).expect("sixteen bytes"));
    Ok(Icmp {
        src: address(8),
        dst: address(24),
        hop_limit: p[7],
        body,
    })
}

/// The ICMPv6 checksum over the pseudo-header and `body` (with its checksum field as is).
fn checksum(src: Ipv6Addr, dst: Ipv6Addr, body: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(body);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An NS or NA of type `kind` that passes the checks common to both (RFC 4861 §7.1):
/// hop limit 255, code 0, valid checksum, at least 24 bytes; with its target address.
fn parse_ndp<'a>(frame: &Frame<'a>, kind: u8) -> Result<(Icmp<'a>, Ipv6Addr), ParseError> {
    let icmp = parse_ipv6_icmp(frame)?;
    let body = icmp.body;
    if body.first() != Some(&kind) {
        return Err(ParseError::Foreign);
    }
    if body.len() < 24 {
        return Err(ParseError::Truncated);
    }
    if icmp.hop_limit != 255 || body[1] != 0 || checksum(icmp.src, icmp.dst, body) != 0 {
        return Err(ParseError::Malformed);
    }
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(&body[8..24]).expect("sixteen bytes"));
    Ok((icmp, target))
}

/// An Ethernet frame carrying IPv6 with the ICMPv6 message `body`, whose checksum
/// field is filled in here; hop limit 255 as NDP requires.
fn icmp_frame(eth_dst: Mac, eth_src: Mac, src: Ipv6Addr, dst: Ipv6Addr, mut body: Vec<u8>) -> Vec<u8> {
    let sum = checksum(src, dst, &body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut packet = Vec::with_capacity(IPV6_HEADER + body.len());
    packet.extend_from_slice(&[0x60, 0, 0, 0]);
    packet.extend_from_slice(&(body.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[ICMPV6, 255]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(&body);
    frame(eth_dst, eth_src, ETHERTYPE_IPV6, &packet)
}

/// Walks NDP options; `Err` when one has length zero or overruns the message.
fn link_layer_option(mut options: &[u8], wanted: u8) -> Result<Option<Mac>, ParseError> {
    let mut found = None;
    while !options.is_empty() {
        let (kind, units) = match options {
            [kind, units, ..] => (*kind, usize::from(*units)),
            _ => return Err(ParseError::Malformed),
        };
        let len = units * 8;
        if len == 0 || len > options.len() {
            return Err(ParseError::Malformed);
        }
        if kind == wanted && len >= 8 && found.is_none() {
            found = Some(Mac(options[2..8].try_into().expect("six bytes")));
        }
        options = &options[len..];
    }
    Ok(found)
}

impl NeighborSolicitation {
    /// Reads a Neighbor Solicitation from an Ethernet frame.
    pub fn parse(frame: &Frame<'_>) -> Result<Self, ParseError> {
        let (icmp, target) = parse_ndp(frame, NEIGHBOR_SOLICITATION)?;
        let body = icmp.body;
        if target.is_multicast() {
            return Err(ParseError::Malformed);
        }
        let source_link_layer = link_layer_option(&body[24..], SOURCE_LINK_LAYER)?;
        if icmp.src.is_unspecified() && (icmp.dst != solicited_node(target) || source_link_layer.is_some()) {
            return Err(ParseError::Malformed);
        }
        Ok(NeighborSolicitation {
            src_mac: frame.src,
            src_ip: icmp.src,
            dst_ip: icmp.dst,
            target,
            source_link_layer,
        })
    }

    /// The answer when `mac` owns the target, sent from `from` (an address of the
    /// interface): to the asker, or to all nodes when it was a duplicate address check.
    pub fn reply_from(&self, mac: Mac, from: Ipv6Addr) -> Vec<u8> {
        let (dst_ip, eth_dst, solicited) = if self.src_ip.is_unspecified() {
            (ALL_NODES, multicast_mac(ALL_NODES), false)
        } else {
            (self.src_ip, self.source_link_layer.unwrap_or(self.src_mac), true)
        };
        let na = NeighborAdvertisement {
            src_ip: from,
            dst_ip,
            solicited,
            override_: true,
            target: self.target,
            target_link_layer: Some(mac),
        };
        na.frame(eth_dst, mac)
    }
}

impl NeighborAdvertisement {
    /// An unsolicited advertisement of `target` at `mac` to all nodes, overriding caches.
    pub fn unsolicited(target: Ipv6Addr, mac: Mac, from: Ipv6Addr) -> Vec<u8> {
        let na = NeighborAdvertisement {
            src_ip: from,
            dst_ip: ALL_NODES,
            solicited: false,
            override_: true,
            target,
            target_link_layer: Some(mac),
        };
        na.frame(multicast_mac(ALL_NODES), mac)
    }

    /// The whole Ethernet frame.
    pub fn frame(&self, eth_dst: Mac, eth_src: Mac) -> Vec<u8> {
        let mut body = vec![NEIGHBOR_ADVERTISEMENT, 0, 0, 0];
        body.push(if self.solicited { 0x40 } else { 0 } | if self.override_ { 0x20 } else { 0 });
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.target_link_layer {
            body.extend_from_slice(&[TARGET_LINK_LAYER, 1]);
            body.extend_from_slice(&mac.0);
        }
        icmp_frame(eth_dst, eth_src, self.src_ip, self.dst_ip, body)
    }

    /// Reads a Neighbor Advertisement (for tests and the lab's checks).
    pub fn parse(frame: &Frame<'_>) -> Result<Self, ParseError> {
        let (icmp, target) = parse_ndp(frame, NEIGHBOR_ADVERTISEMENT)?;
        let body = icmp.body;
        Ok(NeighborAdvertisement {
            src_ip: icmp.src,
            dst_ip: icmp.dst,
            solicited: body[4] & 0x40 != 0,
            override_: body[4] & 0x20 != 0,
            target,
            target_link_layer: link_layer_option(&body[24..], TARGET_LINK_LAYER)?,
        })
    }
}

/// Builds a Neighbor Solicitation frame (the lab's and the tests' client side).
pub fn solicitation(src_mac: Mac, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst = solicited_node(target);
    let mut body = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    if !src_ip.is_unspecified() {
        body.extend_from_slice(&[SOURCE_LINK_LAYER, 1]);
        body.extend_from_slice(&src_mac.0);
    }
    icmp_frame(multicast_mac(dst), src_mac, src_ip, dst, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const CLIENT: Mac = Mac([0x02, 0, 0, 0, 0, 2]);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn solicitation_and_answer_round_trip() {
        let ns_bytes = solicitation(CLIENT, v6("fd00::2"), v6("fd00::100"));
        let ns = NeighborSolicitation::parse(&Frame::parse(&ns_bytes).unwrap()).unwrap();
        assert_eq!(ns.target, v6("fd00::100"));
        assert_eq!(ns.dst_ip, v6("ff02::1:ff00:100"));
        assert_eq!(ns.source_link_layer, Some(CLIENT));
        let reply = ns.reply_from(ME, v6("fe80::1"));
        let f = Frame::parse(&reply).unwrap();
        assert_eq!((f.dst, f.src), (CLIENT, ME));
        let na = NeighborAdvertisement::parse(&f).unwrap();
        assert!(na.solicited && na.override_);
        assert_eq!(
            (na.target, na.target_link_layer, na.dst_ip),
            (v6("fd00::100"), Some(ME), v6("fd00::2"))
        );
    }

    #[test]
    fn duplicate_address_detection_is_answered_to_all_nodes() {
        let ns_bytes = solicitation(CLIENT, Ipv6Addr::UNSPECIFIED, v6("fd00::100"));
        let ns = NeighborSolicitation::parse(&Frame::parse(&ns_bytes).unwrap()).unwrap();
        let reply = ns.reply_from(ME, v6("fe80::1"));
        let f = Frame::parse(&reply).unwrap();
        assert_eq!(f.dst, Mac([0x33, 0x33, 0, 0, 0, 1]));
        let na = NeighborAdvertisement::parse(&f).unwrap();
        assert!(!na.solicited && na.override_);
        assert_eq!(na.dst_ip, ALL_NODES);
    }

    #[test]
    fn unsolicited_advertisement() {
        let f_bytes = NeighborAdvertisement::unsolicited(v6("fd00::100"), ME, v6("fe80::1"));
        let na = NeighborAdvertisement::parse(&Frame::parse(&f_bytes).unwrap()).unwrap();
        assert!(!na.solicited && na.override_);
        assert_eq!(na.target_link_layer, Some(ME));
    }

    #[test]
    fn rejects_what_rfc_4861_says_to_drop() {
        let good = solicitation(CLIENT, v6("fd00::2"), v6("fd00::100"));
        let parse = |bytes: &[u8]| NeighborSolicitation::parse(&Frame::parse(bytes).unwrap());
        assert!(parse(&good).is_ok());
        let mut hop = good.clone();
        hop[14 + 7] = 64;
        assert_eq!(parse(&hop), Err(ParseError::Malformed));
        let mut sum = good.clone();
        sum[14 + 40 + 2] ^= 0xff;
        assert_eq!(parse(&sum), Err(ParseError::Malformed));
        let mut option = good.clone();
        let last = option.len() - 7;
        option[last] = 0; // option length zero
        assert_eq!(parse(&option), Err(ParseError::Malformed));
        assert_eq!(parse(&good[..good.len() - 10]), Err(ParseError::Truncated));
        let mut long = good.clone();
        long[14 + 4..14 + 6].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(parse(&long), Err(ParseError::Truncated));
        let arp = super::super::frame(Mac::BROADCAST, CLIENT, super::super::ETHERTYPE_ARP, &[0; 28]);
        assert_eq!(parse(&arp), Err(ParseError::Foreign));
    }
}
