//! Layer 2 wire formats the speaker reads and writes: ARP (RFC 826) and IPv6 Neighbor
//! Discovery (RFC 4861), each inside an Ethernet II frame. Pure: bytes in, values out,
//! and back. Parsing never panics and never allocates in proportion to its input;
//! anything malformed or not for us comes back as an error the caller counts and drops.

mod arp;
mod ndp;
#[cfg(test)]
mod properties;

/// The check of the fuzz target `speaker/fuzz/fuzz_targets/receive.rs`, shared with the
/// property tests: parsing never panics, and whatever parses is answered with a frame
/// that parses back to the same facts.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing {
    use std::net::Ipv6Addr;

    use super::{Frame, Mac, NeighborAdvertisement, Received, receive};

    /// Panics when the receive path misbehaves on `bytes`.
    pub fn check(bytes: &[u8]) {
        const ME: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
        match receive(bytes) {
            Ok(Received::Arp(arp)) => {
                let reply = arp.reply_from(ME);
                let Ok(Received::Arp(back)) = receive(&reply) else {
                    panic!("reply does not parse")
                };
                assert_eq!((back.sender_ip, back.target_ip), (arp.target_ip, arp.sender_ip));
            }
            Ok(Received::Solicitation(ns)) => {
                let reply = ns.reply_from(ME, Ipv6Addr::LOCALHOST);
                let na =
                    NeighborAdvertisement::parse(&Frame::parse(&reply).expect("a frame")).expect("an NA");
                assert_eq!((na.target, na.target_link_layer), (ns.target, Some(ME)));
            }
            Err(_) => {}
        }
    }
}

use std::fmt;

pub use arp::{Arp, ArpOp};
pub use ndp::{NeighborAdvertisement, NeighborSolicitation, multicast_mac, solicitation, solicited_node};

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: Mac = Mac([0; 6]);

    /// Whether the group bit is set (broadcast or multicast).
    pub fn is_group(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of an Ethernet II header.
pub const ETHERNET_HEADER: usize = 14;

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than its headers say.
    #[error("truncated")]
    Truncated,
    /// Not the protocol asked for (another EtherType, ARP for another protocol, another ICMPv6 type).
    #[error("not for us")]
    Foreign,
    /// Fields that RFC 826 / RFC 4861 say to drop (bad lengths, hop limit, checksum, code).
    #[error("malformed")]
    Malformed,
}

/// An Ethernet II frame's header and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Destination.
    pub dst: Mac,
    /// Source.
    pub src: Mac,
    /// EtherType.
    pub ethertype: u16,
    /// What follows the header.
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Splits a frame.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        if bytes.len() < ETHERNET_HEADER {
            return Err(ParseError::Truncated);
        }
        Ok(Frame {
            dst: Mac(bytes[0..6].try_into().expect("six bytes")),
            src: Mac(bytes[6..12].try_into().expect("six bytes")),
            ethertype: u16::from_be_bytes([bytes[12], bytes[13]]),
            payload: &bytes[ETHERNET_HEADER..],
        })
    }
}

/// A frame the announcer may have to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// An ARP packet (requests are answered, replies reveal conflicts).
    Arp(Arp),
    /// A Neighbor Solicitation.
    Solicitation(NeighborSolicitation),
}

/// Reads a frame from an ARP or IPv6 socket: the whole receive path's parsing.
pub fn receive(bytes: &[u8]) -> Result<Received, ParseError> {
    let frame = Frame::parse(bytes)?;
    match frame.ethertype {
        ETHERTYPE_ARP => Arp::parse(&frame).map(Received::Arp),
        ETHERTYPE_IPV6 => NeighborSolicitation::parse(&frame).map(Received::Solicitation),
        _ => Err(ParseError::Foreign),
    }
}

/// Writes an Ethernet II header followed by `payload`.
pub fn frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ETHERNET_HEADER + payload.len());
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    out
}
