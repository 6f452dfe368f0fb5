//! ARP for IPv4 over Ethernet (RFC 826), and gratuitous ARP (RFC 5227 announcements).

use std::net::Ipv4Addr;

use super::{ETHERTYPE_ARP, Frame, Mac, ParseError, frame};

/// Length of an Ethernet/IPv4 ARP packet.
const ARP_LEN: usize = 28;

/// Request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`?
    Request,
    /// `sender_ip` is at `sender_mac`.
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// Reads an ARP packet from an Ethernet frame.
    pub fn parse(frame: &Frame<'_>) -> Result<Self, ParseError> {
        if frame.ethertype != ETHERTYPE_ARP {
            return Err(ParseError::Foreign);
        }
        let p = frame.payload;
        if p.len() < ARP_LEN {
            return Err(ParseError::Truncated);
        }
        // Hardware Ethernet (1), protocol IPv4, lengths 6 and 4.
        if p[0..2] != [0, 1] || p[2..4] != [0x08, 0x00] {
            return Err(ParseError::Foreign);
        }
        if p[4] != 6 || p[5] != 4 {
            return Err(ParseError::Malformed);
        }
        let op = match u16::from_be_bytes([p[6], p[7]]) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return Err(ParseError::Foreign),
        };
        let mac = |at: usize| Mac(p[at..at + 6].try_into().expect("six bytes"));
        let ip = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
        Ok(Arp {
            op,
            sender_mac: mac(8),
            sender_ip: ip(14),
            target_mac: mac(18),
            target_ip: ip(24),
        })
    }

    /// The 28 bytes of the packet.
    pub fn bytes(&self) -> [u8; ARP_LEN] {
        let mut p = [0u8; ARP_LEN];
        p[0..8].copy_from_slice(&[
            0,
            1,
            0x08,
            0x00,
            6,
            4,
            0,
            if self.op == ArpOp::Request { 1 } else { 2 },
        ]);
        p[8..14].copy_from_slice(&self.sender_mac.0);
        p[14..18].copy_from_slice(&self.sender_ip.octets());
        p[18..24].copy_from_slice(&self.target_mac.0);
        p[24..28].copy_from_slice(&self.target_ip.octets());
        p
    }

    /// The answer to this request when `mac` owns the target address: a unicast reply.
    pub fn reply_from(&self, mac: Mac) -> Vec<u8> {
        let reply = Arp {
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        };
        frame(self.sender_mac, mac, ETHERTYPE_ARP, &reply.bytes())
    }

    /// Gratuitous ARP for `ip` at `mac`, both forms (some stacks only heed one): a
    /// broadcast request and a broadcast reply, each with sender and target address `ip`.
    pub fn gratuitous(ip: Ipv4Addr, mac: Mac) -> [Vec<u8>; 2] {
        let request = Arp {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: ip,
        };
        let reply = Arp {
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::BROADCAST,
            target_ip: ip,
        };
        [
            frame(Mac::BROADCAST, mac, ETHERTYPE_ARP, &request.bytes()),
            frame(Mac::BROADCAST, mac, ETHERTYPE_ARP, &reply.bytes()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const CLIENT: Mac = Mac([0x02, 0, 0, 0, 0, 2]);

    #[test]
    fn request_reply_round_trip() {
        let request = Arp {
            op: ArpOp::Request,
            sender_mac: CLIENT,
            sender_ip: Ipv4Addr::new(10, 0, 0, 2),
            target_mac: Mac::ZERO,
            target_ip: Ipv4Addr::new(10, 0, 0, 100),
        };
        let bytes = frame(Mac::BROADCAST, CLIENT, ETHERTYPE_ARP, &request.bytes());
        let parsed = Arp::parse(&Frame::parse(&bytes).unwrap()).unwrap();
        assert_eq!(parsed, request);
        let reply_bytes = parsed.reply_from(ME);
        let reply_frame = Frame::parse(&reply_bytes).unwrap();
        assert_eq!((reply_frame.dst, reply_frame.src), (CLIENT, ME));
        let reply = Arp::parse(&reply_frame).unwrap();
        assert_eq!(reply.op, ArpOp::Reply);
        assert_eq!(
            (reply.sender_mac, reply.sender_ip),
            (ME, Ipv4Addr::new(10, 0, 0, 100))
        );
        assert_eq!(
            (reply.target_mac, reply.target_ip),
            (CLIENT, Ipv4Addr::new(10, 0, 0, 2))
        );
    }

    #[test]
    fn gratuitous_forms() {
        let ip = Ipv4Addr::new(10, 0, 0, 100);
        for bytes in Arp::gratuitous(ip, ME) {
            let f = Frame::parse(&bytes).unwrap();
            assert_eq!(f.dst, Mac::BROADCAST);
            let arp = Arp::parse(&f).unwrap();
            assert_eq!((arp.sender_ip, arp.target_ip, arp.sender_mac), (ip, ip, ME));
        }
    }

    #[test]
    fn rejects_short_foreign_and_odd_packets() {
        let good = frame(
            Mac::BROADCAST,
            CLIENT,
            ETHERTYPE_ARP,
            &Arp::gratuitous(Ipv4Addr::LOCALHOST, ME)[0][14..],
        );
        assert_eq!(
            Arp::parse(&Frame::parse(&good[..20]).unwrap()),
            Err(ParseError::Truncated)
        );
        let mut other = good.clone();
        other[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(
            Arp::parse(&Frame::parse(&other).unwrap()),
            Err(ParseError::Foreign)
        );
        let mut lengths = good.clone();
        lengths[14 + 4] = 8;
        assert_eq!(
            Arp::parse(&Frame::parse(&lengths).unwrap()),
            Err(ParseError::Malformed)
        );
        let mut op = good;
        op[14 + 7] = 9;
        assert_eq!(Arp::parse(&Frame::parse(&op).unwrap()), Err(ParseError::Foreign));
    }
}
