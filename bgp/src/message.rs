//! BGP messages as the session sees them (RFC 4271 §4): what it must know of an OPEN to
//! negotiate, a NOTIFICATION's code and data, and that an UPDATE or KEEPALIVE arrived.
//! The wire codec maps bytes to and from these.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

/// `AS_TRANS` (RFC 6793): the 2-octet AS an OPEN carries when the real one needs 4 octets.
pub const AS_TRANS: u16 = 23456;

/// An address family the speaker advertises (AFI/SAFI unicast only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 unicast (AFI 1, SAFI 1).
    Ipv4Unicast,
    /// IPv6 unicast (AFI 2, SAFI 1).
    Ipv6Unicast,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// An address family and subsequent address family as numbered on the wire (AFI, SAFI),
/// known to FerroLB or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfiSafi(pub u16, pub u8);

impl AfiSafi {
    /// The family, when it is one of ours.
    pub fn family(self) -> Option<Family> {
        match self {
            AfiSafi(1, 1) => Some(Family::Ipv4Unicast),
            AfiSafi(2, 1) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }
}

impl From<Family> for AfiSafi {
    fn from(family: Family) -> Self {
        match family {
            Family::Ipv4Unicast => AfiSafi(1, 1),
            Family::Ipv6Unicast => AfiSafi(2, 1),
        }
    }
}

/// What an OPEN says (RFC 4271 §4.2, capabilities RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The BGP version (4).
    pub version: u8,
    /// The sender's AS: the 4-octet capability's value when present, else the 2-octet field.
    pub asn: u32,
    /// Proposed hold time in seconds (0, or 3 and more).
    pub hold_time: u16,
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Multiprotocol capabilities (RFC 4760); `None`: the OPEN carries none, which means
    /// IPv4 unicast only.
    pub families: Option<BTreeSet<Family>>,
    /// The 4-octet AS capability (RFC 6793) is present.
    pub four_octet: bool,
    /// The route refresh capability (RFC 2918) is present.
    pub route_refresh: bool,
    /// The graceful restart capability (RFC 4724), when present.
    pub graceful_restart: Option<GracefulRestart>,
}

/// The graceful restart capability (RFC 4724 §3, with RFC 8538's N bit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Restart State (R): the sender has just restarted; its peer must not wait for its
    /// End-of-RIB before sending its own routes.
    pub restarting: bool,
    /// Graceful Notification (N, RFC 8538): a NOTIFICATION other than Hard Reset keeps
    /// the routes through a restart too.
    pub notification: bool,
    /// How long the peer should keep the sender's routes after the session drops, in
    /// seconds (12 bits: at most 4095).
    pub restart_time: u16,
    /// The families whose routes the sender restarts gracefully, each with its
    /// Forwarding State (F) bit: forwarding went on through the restart. Empty: the
    /// sender only helps a restarting peer.
    pub families: BTreeMap<Family, bool>,
}

impl GracefulRestart {
    /// The largest restart time the capability can carry.
    pub const MAX_RESTART_TIME: u16 = 0x0fff;
}

impl Open {
    /// The families this OPEN offers.
    pub fn offered(&self) -> BTreeSet<Family> {
        self.families
            .clone()
            .unwrap_or_else(|| BTreeSet::from([Family::Ipv4Unicast]))
    }

    /// The 2-octet "My Autonomous System" field for this OPEN's AS.
    pub fn my_as_field(&self) -> u16 {
        u16::try_from(self.asn).unwrap_or(AS_TRANS)
    }
}

/// A NOTIFICATION (RFC 4271 §4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data (for Cease / Administrative Shutdown and Reset: the shutdown communication).
    pub data: Vec<u8>,
}

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 6608).
pub mod code {
    /// Message Header Error.
    pub const HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2).
pub mod open_error {
    /// Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
}

/// Finite State Machine Error subcodes (RFC 6608): the state the message was unexpected in.
pub mod fsm_error {
    /// Receive an unexpected message in OpenSent.
    pub const IN_OPEN_SENT: u8 = 1;
    /// Receive an unexpected message in OpenConfirm.
    pub const IN_OPEN_CONFIRM: u8 = 2;
    /// Receive an unexpected message in Established.
    pub const IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
pub mod cease {
    /// Administrative Shutdown (a shutdown communication may follow, RFC 9003).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset (a shutdown communication may follow).
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Hard Reset (RFC 8538): flush the routes even in graceful restart.
    pub const HARD_RESET: u8 = 9;
    /// BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: u8, subcode: u8) -> Self {
        Self {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A Cease with a shutdown communication (RFC 9003: a length octet, then at most 255
    /// octets of UTF-8, cut at a character boundary).
    pub fn cease(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&message.as_bytes()[..end]);
        Self {
            code: code::CEASE,
            subcode,
            data,
        }
    }

    /// A Cease / Hard Reset carrying `inner` (RFC 8538 §3: its code, subcode and data):
    /// the way to make a peer that negotiated the N bit drop the routes now.
    pub fn hard_reset(inner: &Notification) -> Self {
        let mut data = Vec::with_capacity(inner.data.len() + 2);
        data.extend_from_slice(&[inner.code, inner.subcode]);
        data.extend_from_slice(&inner.data);
        Self {
            code: code::CEASE,
            subcode: cease::HARD_RESET,
            data,
        }
    }

    /// The shutdown communication of a Cease (also inside a Hard Reset), when it carries
    /// a valid one.
    pub fn communication(&self) -> Option<&str> {
        let shutdown = [cease::ADMINISTRATIVE_SHUTDOWN, cease::ADMINISTRATIVE_RESET];
        if self.code != code::CEASE {
            return None;
        }
        let data = match (self.subcode, self.data.as_slice()) {
            (cease::HARD_RESET, [code::CEASE, subcode, inner @ ..]) if shutdown.contains(subcode) => inner,
            (subcode, data) if shutdown.contains(&subcode) => data,
            _ => return None,
        };
        let (len, text) = data.split_first()?;
        std::str::from_utf8(text.get(..usize::from(*len))?).ok()
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match (self.code, self.subcode) {
            (code::HEADER, _) => "message header error",
            (code::OPEN, open_error::UNSUPPORTED_VERSION) => "OPEN error: unsupported version",
            (code::OPEN, open_error::BAD_PEER_AS) => "OPEN error: bad peer AS",
            (code::OPEN, open_error::BAD_BGP_IDENTIFIER) => "OPEN error: bad BGP identifier",
            (code::OPEN, open_error::UNACCEPTABLE_HOLD_TIME) => "OPEN error: unacceptable hold time",
            (code::OPEN, _) => "OPEN message error",
            (code::UPDATE, _) => "UPDATE message error",
            (code::HOLD_TIMER_EXPIRED, _) => "hold timer expired",
            (code::FSM, _) => "finite state machine error",
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "cease: administrative shutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "cease: peer de-configured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "cease: administrative reset",
            (code::CEASE, cease::HARD_RESET) => "cease: hard reset",
            (code::CEASE, cease::BFD_DOWN) => "cease: BFD down",
            (code::CEASE, _) => "cease",
            _ => "unknown error",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)?;
        if let Some(text) = self.communication() {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

/// A message of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE; what it carries does not concern the session (the speaker imports nothing).
    Update,
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH for a family (RFC 2918), perhaps one we do not speak.
    RouteRefresh(AfiSafi),
}

impl Message {
    /// The message's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "OPEN",
            Message::Update => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communications_are_bounded_and_read_back() {
        let n = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN, "node drained");
        assert_eq!(n.data[0], 12);
        assert_eq!(n.communication(), Some("node drained"));
        assert_eq!(
            n.to_string(),
            "cease: administrative shutdown (6/2): \"node drained\""
        );
        // 300 two-octet characters: cut to 254 octets, never inside a character.
        let long = "é".repeat(300);
        let n = Notification::cease(cease::ADMINISTRATIVE_RESET, &long);
        assert_eq!(usize::from(n.data[0]), 254);
        assert_eq!(n.communication().map(str::len), Some(254));
        // A length beyond the data, or bad UTF-8, is no communication.
        let bad = Notification {
            data: vec![9, b'a'],
            ..Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)
        };
        assert_eq!(bad.communication(), None);
        assert_eq!(
            Notification::new(code::CEASE, cease::HARD_RESET).communication(),
            None
        );
        // A Hard Reset carries the Cease it stands for, communication included.
        let bye = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN, "bye");
        let hard = Notification::hard_reset(&bye);
        assert_eq!((hard.code, hard.subcode), (code::CEASE, cease::HARD_RESET));
        assert_eq!(&hard.data[..2], &[code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN]);
        assert_eq!(hard.communication(), Some("bye"));
    }

    #[test]
    fn four_octet_ases_travel_as_as_trans() {
        let open = Open {
            version: 4,
            asn: 4_200_000_000,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            families: None,
            four_octet: true,
            route_refresh: true,
            graceful_restart: None,
        };
        assert_eq!(open.my_as_field(), AS_TRANS);
        assert_eq!(
            Open {
                asn: 64512,
                ..open.clone()
            }
            .my_as_field(),
            64512
        );
        assert_eq!(open.offered(), BTreeSet::from([Family::Ipv4Unicast]));
    }
}
