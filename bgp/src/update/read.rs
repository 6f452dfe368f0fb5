//! Reading an UPDATE's routes back: what a test router, a diagnostic tool or a log needs
//! to see of the UPDATEs this crate builds. Never panics: `None` for anything malformed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{EXTENDED_LENGTH, attr};
use crate::wire::HEADER_LEN;

/// The routes and attributes of one UPDATE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    /// Prefixes withdrawn (IPv4 field and MP_UNREACH_NLRI).
    pub withdrawn: Vec<IpNet>,
    /// Prefixes announced (IPv4 NLRI and MP_REACH_NLRI).
    pub announced: Vec<IpNet>,
    /// Path attributes: type code → value.
    pub attributes: BTreeMap<u8, Vec<u8>>,
}

fn prefixes(mut bytes: &[u8], v6: bool) -> Option<Vec<IpNet>> {
    let mut out = Vec::new();
    while let [len, rest @ ..] = bytes {
        let n = usize::from(*len).div_ceil(8);
        let mut octets = [0u8; 16];
        octets.get_mut(..n)?.copy_from_slice(rest.get(..n)?);
        let ip = if v6 {
            IpAddr::from(octets)
        } else {
            IpAddr::from([octets[0], octets[1], octets[2], octets[3]])
        };
        out.push(IpNet::new(ip, *len).ok()?);
        bytes = &rest[n..];
    }
    Some(out)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *bytes.get(at)?,
        *bytes.get(at + 1)?,
    ])))
}

/// Reads the routes of a whole UPDATE message.
pub fn read(update: &[u8]) -> Option<Routes> {
    let body = update.get(HEADER_LEN..)?;
    let withdrawn_len = u16_at(body, 0)?;
    let mut routes = Routes {
        withdrawn: prefixes(body.get(2..2 + withdrawn_len)?, false)?,
        ..Routes::default()
    };
    let rest = body.get(2 + withdrawn_len..)?;
    let attributes_len = u16_at(rest, 0)?;
    let mut attrs = rest.get(2..2 + attributes_len)?;
    while let [flags, kind, tail @ ..] = attrs {
        let (len, tail) = if flags & EXTENDED_LENGTH != 0 {
            (u16_at(tail, 0)?, tail.get(2..)?)
        } else {
            (usize::from(*tail.first()?), tail.get(1..)?)
        };
        let value = tail.get(..len)?;
        match *kind {
            attr::MP_REACH_NLRI => {
                let next_hop_len = usize::from(*value.get(3)?);
                let nlri = value.get(4 + next_hop_len + 1..)?;
                routes.announced.extend(prefixes(nlri, true)?);
            }
            attr::MP_UNREACH_NLRI => routes.withdrawn.extend(prefixes(value.get(3..)?, true)?),
            _ => {}
        }
        routes.attributes.insert(*kind, value.to_vec());
        attrs = &tail[len..];
    }
    routes
        .announced
        .extend(prefixes(rest.get(2 + attributes_len..)?, false)?);
    Some(routes)
}
