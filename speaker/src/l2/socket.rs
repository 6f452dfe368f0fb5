//! Raw Ethernet I/O: one AF_PACKET socket per interface and protocol, bound to the
//! interface's index, never promiscuous. The ARP socket receives only ARP; the NDP
//! socket receives IPv6 but a kernel filter passes only ICMPv6 Neighbor Solicitations,
//! so a busy node's IPv6 traffic never wakes the speaker.
//!
//! socket2 creates the socket and covers the filter, the timeout, receiving and
//! sending; the only unsafe code of the speaker lives here, for what it does not cover:
//! binding to a link-layer address and the two AF_PACKET options.
#![allow(unsafe_code)]

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, SockFilter, Socket, Type};

use crate::l2::packet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, Mac};

/// Which frames a socket receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ARP.
    Arp,
    /// ICMPv6 Neighbor Solicitations.
    Ndp,
}

/// `PACKET_IGNORE_OUTGOING` (Linux ≥ 4.20): our own frames are not looped back to us.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// An AF_PACKET socket bound to one interface. Receiving blocks (for a dedicated
/// thread, up to a timeout); sending never does.
#[derive(Debug)]
pub struct PacketSocket {
    socket: Socket,
}

impl PacketSocket {
    /// Opens a socket for `kind` on the interface with index `ifindex`; a receive waits
    /// at most `timeout`.
    pub fn open(ifindex: u32, kind: Kind, timeout: Duration) -> io::Result<Self> {
        let protocol = match kind {
            Kind::Arp => ETHERTYPE_ARP,
            Kind::Ndp => ETHERTYPE_IPV6,
        }
        .to_be();
        // Protocol 0 here and the real one at bind: a socket created with a protocol is
        // hooked to every interface at once, and rebinding it waits for an RCU grace
        // period (synchronize_net, about 10 ms), which lay on the takeover path.
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
        if kind == Kind::Ndp {
            socket.attach_filter(&NEIGHBOR_SOLICITATIONS)?;
        }
        set_opt(
            &socket,
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &(1 as libc::c_int),
        )?;
        socket.set_read_timeout(Some(timeout))?;
        let addr = link_addr(ifindex, protocol, Mac::ZERO);
        // SAFETY: `addr` is a valid sockaddr_ll and its size is passed.
        check(unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(Self { socket })
    }

    /// Receives frames with destination `mac` too (a multicast group's MAC).
    pub fn join(&self, ifindex: u32, mac: Mac) -> io::Result<()> {
        self.membership(ifindex, mac, libc::PACKET_ADD_MEMBERSHIP)
    }

    /// Stops receiving frames for `mac`.
    pub fn leave(&self, ifindex: u32, mac: Mac) -> io::Result<()> {
        self.membership(ifindex, mac, libc::PACKET_DROP_MEMBERSHIP)
    }

    fn membership(&self, ifindex: u32, mac: Mac, op: libc::c_int) -> io::Result<()> {
        let mut mreq = libc::packet_mreq {
            mr_ifindex: ifindex as libc::c_int,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address: [0; 8],
        };
        mreq.mr_address[..6].copy_from_slice(&mac.0);
        set_opt(&self.socket, libc::SOL_PACKET, op, &mreq)
    }

    /// Waits for one frame into `buf` (longer frames are truncated), returning its
    /// length, or `None` when the timeout passed first.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match (&self.socket).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Sends one whole Ethernet frame; a full queue is an error (the caller counts it).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.socket.send_with_flags(frame, libc::MSG_DONTWAIT).map(|_| ())
    }
}

fn link_addr(ifindex: u32, protocol_be: u16, mac: Mac) -> libc::sockaddr_ll {
    let mut addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol_be,
        sll_ifindex: ifindex as libc::c_int,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0; 8],
    };
    addr.sll_addr[..6].copy_from_slice(&mac.0);
    addr
}

/// Classic BPF: IPv6 next header ICMPv6 (offset 20) and ICMPv6 type 135 (offset 54).
/// Solicitations with extension headers are not passed; RFC 4861 senders use none.
const NEIGHBOR_SOLICITATIONS: [SockFilter; 6] = [
    SockFilter::new(0x30, 0, 0, 20),     // ldb [20]
    SockFilter::new(0x15, 0, 3, 58),     // jeq #58, next, drop
    SockFilter::new(0x30, 0, 0, 54),     // ldb [54]
    SockFilter::new(0x15, 0, 1, 135),    // jeq #135, accept, drop
    SockFilter::new(0x06, 0, 0, 0xffff), // ret #65535
    SockFilter::new(0x06, 0, 0, 0),      // ret #0
];

/// `setsockopt` with a plain-data option value.
fn set_opt<T>(fd: &Socket, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points at a `T` and its size is passed; callers pass the C type the
    // option expects.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
