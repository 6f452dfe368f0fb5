//! UPDATE messages the speaker sends (RFC 4271 §4.3, RFC 4760 for IPv6, RFC 1997 and
//! RFC 8092 communities, RFC 6793 for 2-octet peers), and the Adj-RIB-Out: what this
//! session has told its peer, so that a change sends only the difference.
//!
//! Routes that share their attributes travel together: one UPDATE carries as many
//! prefixes as fit in 4,096 octets (about 800 IPv4 host routes), where MetalLB's
//! native speaker sends one UPDATE per prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::message::{AS_TRANS, AfiSafi, Family};
use crate::wire::{HEADER_LEN, MAX_LEN};

/// A community attached to routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Community {
    /// RFC 1997 `A:B`.
    Standard(u16, u16),
    /// RFC 8092 `A:B:C`.
    Large(u32, u32, u32),
}

/// The attributes of announced routes that vary per advertisement.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attributes {
    /// LOCAL_PREF (sent to internal peers only).
    pub local_pref: Option<u32>,
    /// Communities, standard and large.
    pub communities: BTreeSet<Community>,
}

/// What shapes every UPDATE of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// Our AS.
    pub local_asn: u32,
    /// The peer is in our AS: empty AS_PATH, LOCAL_PREF sent.
    pub internal: bool,
    /// The peer speaks 4-octet AS numbers.
    pub four_octet: bool,
    /// The IPv4 next hop (the session's local address, or the node's).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// The IPv6 next hop (global; RFC 2545).
    pub next_hop_v6: Option<Ipv6Addr>,
    /// The families negotiated.
    pub families: BTreeSet<Family>,
}

/// Path attribute type codes.
mod attr {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const LOCAL_PREF: u8 = 5;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Attribute flags.
const WELL_KNOWN: u8 = 0x40;
const OPTIONAL_TRANSITIVE: u8 = 0xc0;
const OPTIONAL: u8 = 0x80;
const EXTENDED_LENGTH: u8 = 0x10;
const AS_SEQUENCE: u8 = 2;

/// The family of a prefix.
pub fn family_of(net: &IpNet) -> Family {
    match net {
        IpNet::V4(_) => Family::Ipv4Unicast,
        IpNet::V6(_) => Family::Ipv6Unicast,
    }
}

/// A prefix as NLRI: its length, then as many octets as the length needs.
fn push_prefix(out: &mut Vec<u8>, net: &IpNet) {
    let len = net.prefix_len();
    out.push(len);
    let octets = usize::from(len).div_ceil(8);
    match net.network() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..octets]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..octets]),
    }
}

fn prefix_len_on_wire(net: &IpNet) -> usize {
    1 + usize::from(net.prefix_len()).div_ceil(8)
}

fn push_attribute(out: &mut Vec<u8>, flags: u8, kind: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | EXTENDED_LENGTH, kind]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, kind, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

/// Wraps withdrawn routes, attributes and NLRI into a whole UPDATE.
fn message(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + 4 + withdrawn.len() + attributes.len() + nlri.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    out.extend_from_slice(withdrawn);
    out.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    out.extend_from_slice(attributes);
    out.extend_from_slice(nlri);
    out
}

/// The attributes every announcement carries, except the family's next hop.
fn common_attributes(terms: &Terms, attributes: &Attributes) -> Vec<u8> {
    let mut out = Vec::new();
    push_attribute(&mut out, WELL_KNOWN, attr::ORIGIN, &[0]); // IGP
    let mut path = Vec::new();
    let mut as4_path = None;
    if !terms.internal {
        path.extend_from_slice(&[AS_SEQUENCE, 1]);
        if terms.four_octet {
            path.extend_from_slice(&terms.local_asn.to_be_bytes());
        } else {
            let short = u16::try_from(terms.local_asn).unwrap_or(AS_TRANS);
            path.extend_from_slice(&short.to_be_bytes());
            if short == AS_TRANS {
                // The real AS travels in AS4_PATH for the peers after this one (RFC 6793).
                let mut four = vec![AS_SEQUENCE, 1];
                four.extend_from_slice(&terms.local_asn.to_be_bytes());
                as4_path = Some(four);
            }
        }
    }
    push_attribute(&mut out, WELL_KNOWN, attr::AS_PATH, &path);
    if let (true, Some(pref)) = (terms.internal, attributes.local_pref) {
        push_attribute(&mut out, WELL_KNOWN, attr::LOCAL_PREF, &pref.to_be_bytes());
    }
    let mut standard = Vec::new();
    let mut large = Vec::new();
    for c in &attributes.communities {
        match *c {
            Community::Standard(a, b) => {
                standard.extend_from_slice(&a.to_be_bytes());
                standard.extend_from_slice(&b.to_be_bytes());
            }
            Community::Large(a, b, c) => {
                for part in [a, b, c] {
                    large.extend_from_slice(&part.to_be_bytes());
                }
            }
        }
    }
    if !standard.is_empty() {
        push_attribute(&mut out, OPTIONAL_TRANSITIVE, attr::COMMUNITIES, &standard);
    }
    if !large.is_empty() {
        push_attribute(&mut out, OPTIONAL_TRANSITIVE, attr::LARGE_COMMUNITY, &large);
    }
    if let Some(four) = as4_path {
        push_attribute(&mut out, OPTIONAL_TRANSITIVE, attr::AS4_PATH, &four);
    }
    out
}

/// UPDATEs announcing `nets` (all of one family) with `attributes`, packed to the limit.
/// Nothing for a family without a next hop.
fn announce(terms: &Terms, family: Family, attributes: &Attributes, nets: &[IpNet]) -> Vec<Vec<u8>> {
    let common = common_attributes(terms, attributes);
    let mut out = Vec::new();
    match family {
        Family::Ipv4Unicast => {
            let Some(next_hop) = terms.next_hop_v4 else {
                return out;
            };
            let mut attrs = common;
            push_attribute(&mut attrs, WELL_KNOWN, attr::NEXT_HOP, &next_hop.octets());
            let room = MAX_LEN - HEADER_LEN - 4 - attrs.len();
            for chunk in pack(nets, room) {
                let mut nlri = Vec::new();
                chunk.iter().for_each(|n| push_prefix(&mut nlri, n));
                out.push(message(&[], &attrs, &nlri));
            }
        }
        Family::Ipv6Unicast => {
            let Some(next_hop) = terms.next_hop_v6 else {
                return out;
            };
            // MP_REACH_NLRI: AFI, SAFI, next hop, a reserved octet, then the NLRI; the
            // attribute's own header is 4 octets (extended length).
            let head_len = 2 + 1 + 1 + 16 + 1;
            let room = MAX_LEN - HEADER_LEN - 4 - common.len() - 4 - head_len;
            for chunk in pack(nets, room) {
                let AfiSafi(afi, safi) = family.into();
                let mut value = afi.to_be_bytes().to_vec();
                value.extend_from_slice(&[safi, 16]);
                value.extend_from_slice(&next_hop.octets());
                value.push(0);
                chunk.iter().for_each(|n| push_prefix(&mut value, n));
                let mut attrs = common.clone();
                push_attribute(&mut attrs, OPTIONAL, attr::MP_REACH_NLRI, &value);
                out.push(message(&[], &attrs, &[]));
            }
        }
    }
    out
}

/// UPDATEs withdrawing `nets` (all of one family), packed to the limit.
fn withdraw(family: Family, nets: &[IpNet]) -> Vec<Vec<u8>> {
    match family {
        Family::Ipv4Unicast => pack(nets, MAX_LEN - HEADER_LEN - 4)
            .map(|chunk| {
                let mut withdrawn = Vec::new();
                chunk.iter().for_each(|n| push_prefix(&mut withdrawn, n));
                message(&withdrawn, &[], &[])
            })
            .collect(),
        Family::Ipv6Unicast => pack(nets, MAX_LEN - HEADER_LEN - 4 - 4 - 3)
            .map(|chunk| message(&[], &mp_unreach(chunk), &[]))
            .collect(),
    }
}

fn mp_unreach(nets: &[IpNet]) -> Vec<u8> {
    let AfiSafi(afi, safi) = Family::Ipv6Unicast.into();
    let mut value = afi.to_be_bytes().to_vec();
    value.push(safi);
    nets.iter().for_each(|n| push_prefix(&mut value, n));
    let mut attrs = Vec::new();
    push_attribute(&mut attrs, OPTIONAL, attr::MP_UNREACH_NLRI, &value);
    attrs
}

/// The End-of-RIB marker of a family (RFC 4724 §2): an empty UPDATE for IPv4, an empty
/// MP_UNREACH_NLRI for IPv6.
pub fn end_of_rib(family: Family) -> Vec<u8> {
    match family {
        Family::Ipv4Unicast => message(&[], &[], &[]),
        Family::Ipv6Unicast => message(&[], &mp_unreach(&[]), &[]),
    }
}

/// Splits `nets` into runs whose NLRI encodings fit in `room` octets.
fn pack(nets: &[IpNet], room: usize) -> impl Iterator<Item = &[IpNet]> {
    let mut rest = nets;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut used = 0;
        let mut n = 0;
        while n < rest.len() && used + prefix_len_on_wire(&rest[n]) <= room {
            used += prefix_len_on_wire(&rest[n]);
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n.max(1));
        rest = tail;
        Some(chunk)
    })
}

/// What this session has told its peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdjRibOut {
    sent: BTreeMap<IpNet, Attributes>,
    end_of_rib: BTreeSet<Family>,
}

impl AdjRibOut {
    /// The routes the peer has from us.
    pub fn sent(&self) -> &BTreeMap<IpNet, Attributes> {
        &self.sent
    }

    /// Forgets everything: the session went down, the peer dropped our routes.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The UPDATEs that make the peer's routes from us equal `wanted` (routes of families
    /// not negotiated are left out), then each negotiated family's End-of-RIB once per
    /// session.
    pub fn sync(&mut self, wanted: &BTreeMap<IpNet, Attributes>, terms: &Terms) -> Vec<Vec<u8>> {
        // A family negotiated but without a next hop (no address of that family on the
        // node) carries nothing.
        let routable = |f: Family| match f {
            Family::Ipv4Unicast => terms.next_hop_v4.is_some(),
            Family::Ipv6Unicast => terms.next_hop_v6.is_some(),
        };
        let wanted: BTreeMap<&IpNet, &Attributes> = wanted
            .iter()
            .filter(|(net, _)| terms.families.contains(&family_of(net)) && routable(family_of(net)))
            .collect();
        let mut out = Vec::new();
        for family in &terms.families {
            let gone: Vec<IpNet> = self
                .sent
                .keys()
                .filter(|n| family_of(n) == *family && !wanted.contains_key(n))
                .copied()
                .collect();
            out.extend(withdraw(*family, &gone));
            for net in &gone {
                self.sent.remove(net);
            }
            let mut groups: BTreeMap<&Attributes, Vec<IpNet>> = BTreeMap::new();
            for (net, attributes) in wanted.iter().filter(|(n, _)| family_of(n) == *family) {
                if self.sent.get(*net) != Some(*attributes) {
                    groups.entry(*attributes).or_default().push(**net);
                }
            }
            for (attributes, nets) in groups {
                out.extend(announce(terms, *family, attributes, &nets));
                for net in nets {
                    self.sent.insert(net, attributes.clone());
                }
            }
            if self.end_of_rib.insert(*family) {
                out.push(end_of_rib(*family));
            }
        }
        out
    }

    /// The UPDATEs that send a family's routes again (ROUTE-REFRESH), with End-of-RIB.
    pub fn refresh(&self, family: Family, terms: &Terms) -> Vec<Vec<u8>> {
        let mut groups: BTreeMap<&Attributes, Vec<IpNet>> = BTreeMap::new();
        for (net, attributes) in self.sent.iter().filter(|(n, _)| family_of(n) == family) {
            groups.entry(attributes).or_default().push(*net);
        }
        let mut out: Vec<Vec<u8>> = groups
            .into_iter()
            .flat_map(|(attributes, nets)| announce(terms, family, attributes, &nets))
            .collect();
        out.push(end_of_rib(family));
        out
    }
}

mod read;
#[cfg(test)]
mod tests;

pub use read::{Routes, read};
