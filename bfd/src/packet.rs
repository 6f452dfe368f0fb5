//! BFD control packets (RFC 5880 §4.1): the 24 octets of the mandatory section, read
//! with the checks of §6.8.6 that need no session (a packet failing them is discarded,
//! never answered). Authentication is not supported: a packet with the A bit is
//! discarded, as §6.8.6 requires of a session without authentication.

use std::fmt;
use std::time::Duration;

/// The length of a control packet without authentication.
pub const LEN: usize = 24;

/// A session state as the packets carry it (RFC 5880 §4.1, "Sta").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Administratively down: not a failure (RFC 5882 §3.2).
    AdminDown = 0,
    /// Down.
    Down = 1,
    /// Init: the peer's Down was heard.
    Init = 2,
    /// Up.
    Up = 3,
}

impl State {
    fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why the session last left Up (RFC 5880 §4.1, "Diag"), as far as FerroLB sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Diag {
    /// No diagnostic.
    None,
    /// Control Detection Time Expired.
    TimeExpired,
    /// Neighbor Signaled Session Down.
    NeighborDown,
    /// Administratively Down.
    AdminDown,
    /// Any other code, kept as received.
    Other(u8),
}

impl Diag {
    fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::TimeExpired => 1,
            Diag::NeighborDown => 3,
            Diag::AdminDown => 7,
            Diag::Other(code) => code & 0x1f,
        }
    }

    fn from_code(code: u8) -> Self {
        match code & 0x1f {
            0 => Diag::None,
            1 => Diag::TimeExpired,
            3 => Diag::NeighborDown,
            7 => Diag::AdminDown,
            other => Diag::Other(other),
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::None => f.write_str("none"),
            Diag::TimeExpired => f.write_str("control detection time expired"),
            Diag::NeighborDown => f.write_str("neighbor signaled session down"),
            Diag::AdminDown => f.write_str("administratively down"),
            Diag::Other(code) => write!(f, "diagnostic {code}"),
        }
    }
}

/// A control packet, without authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The sender's diagnostic.
    pub diag: Diag,
    /// The sender's state.
    pub state: State,
    /// Poll: the sender asks for a Final.
    pub poll: bool,
    /// Final: the answer to a Poll.
    pub final_: bool,
    /// Control Plane Independent (FerroLB's BFD runs in the speaker: always 0 when sent).
    pub control_plane_independent: bool,
    /// Demand mode.
    pub demand: bool,
    /// Detection time multiplier.
    pub detect_mult: u8,
    /// The sender's discriminator (never 0).
    pub my_discriminator: u32,
    /// The receiver's discriminator as the sender knows it (0: not yet).
    pub your_discriminator: u32,
    /// Desired Min TX Interval.
    pub desired_min_tx: Duration,
    /// Required Min RX Interval (0: send me no periodic packets).
    pub required_min_rx: Duration,
    /// Required Min Echo RX Interval (0: no echo).
    pub required_min_echo_rx: Duration,
}

/// Why a packet is discarded (RFC 5880 §6.8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    /// Fewer octets than a control packet, or than its Length field says.
    #[error("shorter than its length")]
    Short,
    /// A version other than 1.
    #[error("version {0}, not 1")]
    Version(u8),
    /// A Length field below 24 or above what arrived.
    #[error("length field {0}")]
    Length(u8),
    /// A Detect Mult of zero.
    #[error("detect multiplier 0")]
    DetectMult,
    /// The Multipoint bit (reserved).
    #[error("multipoint bit set")]
    Multipoint,
    /// A My Discriminator of zero.
    #[error("my discriminator 0")]
    Discriminator,
    /// Authentication, which FerroLB does not do.
    #[error("authentication present")]
    Authentication,
}

const VERSION: u8 = 1;
const POLL: u8 = 0x20;
const FINAL: u8 = 0x10;
const CPI: u8 = 0x08;
const AUTH: u8 = 0x04;
const DEMAND: u8 = 0x02;
const MULTIPOINT: u8 = 0x01;

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Packet {
    /// Encodes the packet (24 octets).
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = (VERSION << 5) | self.diag.code();
        let mut flags = (self.state as u8) << 6;
        for (set, bit) in [
            (self.poll, POLL),
            (self.final_, FINAL),
            (self.control_plane_independent, CPI),
            (self.demand, DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        out[1] = flags;
        out[2] = self.detect_mult;
        out[3] = LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        out[12..16].copy_from_slice(&micros(self.desired_min_tx).to_be_bytes());
        out[16..20].copy_from_slice(&micros(self.required_min_rx).to_be_bytes());
        out[20..24].copy_from_slice(&micros(self.required_min_echo_rx).to_be_bytes());
        out
    }

    /// Decodes a datagram's payload, or says why it must be discarded.
    pub fn decode(bytes: &[u8]) -> Result<Self, Discard> {
        let Some(head) = bytes.get(..LEN) else {
            return Err(Discard::Short);
        };
        let version = head[0] >> 5;
        if version != VERSION {
            return Err(Discard::Version(version));
        }
        let flags = head[1];
        let length = head[3];
        if usize::from(length) > bytes.len() {
            return Err(Discard::Short);
        }
        if flags & AUTH != 0 {
            return Err(Discard::Authentication);
        }
        if usize::from(length) < LEN {
            return Err(Discard::Length(length));
        }
        if head[2] == 0 {
            return Err(Discard::DetectMult);
        }
        if flags & MULTIPOINT != 0 {
            return Err(Discard::Multipoint);
        }
        let word = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let interval = |at: usize| Duration::from_micros(u64::from(word(at)));
        if word(4) == 0 {
            return Err(Discard::Discriminator);
        }
        Ok(Packet {
            diag: Diag::from_code(head[0]),
            state: State::from_bits(flags >> 6),
            poll: flags & POLL != 0,
            final_: flags & FINAL != 0,
            control_plane_independent: flags & CPI != 0,
            demand: flags & DEMAND != 0,
            detect_mult: head[2],
            my_discriminator: word(4),
            your_discriminator: word(8),
            desired_min_tx: interval(12),
            required_min_rx: interval(16),
            required_min_echo_rx: interval(20),
        })
    }
}

/// The check of the fuzz target `bfd/fuzz/fuzz_targets/decode.rs`, shared with the
/// property tests: decoding any bytes never panics, and what decodes encodes to what
/// decodes the same.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing {
    use super::Packet;

    /// Panics when decoding misbehaves on `bytes`.
    pub fn check(bytes: &[u8]) {
        if let Ok(packet) = Packet::decode(bytes) {
            let again = Packet::decode(&packet.encode()).expect("our encoding decodes");
            assert_eq!(again, packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn packet() -> Packet {
        Packet {
            diag: Diag::TimeExpired,
            state: State::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 0x0a0b_0c0d,
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(50),
            required_min_echo_rx: Duration::ZERO,
        }
    }

    #[test]
    fn a_packet_is_laid_out_as_rfc_5880_says() {
        let bytes = packet().encode();
        assert_eq!(
            bytes,
            [
                0x21, // version 1, diag 1
                0xe0, // state Up (3 << 6), P
                3, 24, // detect mult, length
                1, 2, 3, 4, // my discriminator
                0x0a, 0x0b, 0x0c, 0x0d, // your discriminator
                0x00, 0x04, 0x93, 0xe0, // 300,000 µs
                0x00, 0x00, 0xc3, 0x50, // 50,000 µs
                0, 0, 0, 0, // no echo
            ]
        );
        assert_eq!(Packet::decode(&bytes), Ok(packet()));
        // Final and the other flags travel too; trailing octets past Length are ignored.
        let answer = Packet {
            poll: false,
            final_: true,
            demand: true,
            state: State::AdminDown,
            diag: Diag::AdminDown,
            ..packet()
        };
        let mut bytes = answer.encode().to_vec();
        assert_eq!(bytes[1], 0x12);
        bytes.push(0);
        assert_eq!(Packet::decode(&bytes), Ok(answer));
    }

    #[test]
    fn packets_the_rfc_says_to_discard_are_discarded() {
        let good = packet().encode();
        let with = |at: usize, value: u8| {
            let mut bytes = good;
            bytes[at] = value;
            Packet::decode(&bytes)
        };
        assert_eq!(Packet::decode(&good[..23]), Err(Discard::Short));
        assert_eq!(with(0, 0x41), Err(Discard::Version(2)));
        assert_eq!(with(3, 25), Err(Discard::Short), "a length beyond the datagram");
        assert_eq!(with(3, 20), Err(Discard::Length(20)));
        assert_eq!(with(2, 0), Err(Discard::DetectMult));
        assert_eq!(with(1, 0xc1), Err(Discard::Multipoint));
        assert_eq!(with(1, 0xc4), Err(Discard::Authentication));
        let mut zero = good;
        zero[4..8].fill(0);
        assert_eq!(Packet::decode(&zero), Err(Discard::Discriminator));
        // Unknown diagnostics are kept.
        assert_eq!(with(0, 0x29).map(|p| p.diag), Ok(Diag::Other(9)));
    }

    proptest! {
        /// Any bytes, and valid packets with any octet changed: see [`fuzzing::check`].
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            fuzzing::check(&bytes);
        }

        #[test]
        fn mutated_packets_decode_without_panic(at in 0usize..24, value in any::<u8>()) {
            let mut bytes = packet().encode();
            bytes[at] = value;
            fuzzing::check(&bytes);
        }
    }
}
