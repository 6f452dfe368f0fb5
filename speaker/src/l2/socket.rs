//! Raw Ethernet I/O: one AF_PACKET socket per interface and protocol, bound to the
//! interface's index, never promiscuous. The ARP socket receives only ARP; the NDP
//! socket receives IPv6 but a kernel filter passes only ICMPv6 Neighbor Solicitations,
//! so a busy node's IPv6 traffic never wakes the speaker.
//!
//! The only unsafe code of the speaker lives here: the socket calls libc offers and
//! no maintained crate wraps for AF_PACKET with a filter.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::packet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, Mac};

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
    fd: OwnedFd,
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
        // SAFETY: plain syscall; the result is checked before it is owned.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if kind == Kind::Ndp {
            attach_filter(&fd, &NEIGHBOR_SOLICITATIONS)?;
        }
        set_opt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &(1 as libc::c_int))?;
        let timeval = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeval)?;
        let addr = link_addr(ifindex, protocol, Mac::ZERO);
        // SAFETY: `addr` is a valid sockaddr_ll and its size is passed.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(Self { fd })
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
        set_opt(&self.fd, libc::SOL_PACKET, op, &mreq)
    }

    /// Waits for one frame into `buf` (longer frames are truncated), returning its
    /// length, or `None` when the timeout passed first.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(err),
        }
    }

    /// Sends one whole Ethernet frame; a full queue is an error (the caller counts it).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is valid for `frame.len()` bytes.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
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
const NEIGHBOR_SOLICITATIONS: [libc::sock_filter; 6] = [
    bpf(0x30, 0, 0, 20),     // ldb [20]
    bpf(0x15, 0, 3, 58),     // jeq #58, next, drop
    bpf(0x30, 0, 0, 54),     // ldb [54]
    bpf(0x15, 0, 1, 135),    // jeq #135, accept, drop
    bpf(0x06, 0, 0, 0xffff), // ret #65535
    bpf(0x06, 0, 0, 0),      // ret #0
];

const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn attach_filter(fd: &OwnedFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    // The kernel copies the program during the call; `program` outlives it.
    set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// `setsockopt` with a plain-data option value.
fn set_opt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
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
