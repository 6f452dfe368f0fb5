//! TCP MD5 signatures (RFC 2385) on a BGP session's socket: the kernel signs every
//! segment to the peer and drops unsigned or wrongly signed ones. No crate covers the
//! `TCP_MD5SIG` option, so this module holds the speaker's second piece of unsafe code:
//! one `setsockopt` with the kernel's `struct tcp_md5sig`.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// The longest key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

/// Makes the kernel sign the segments `socket` exchanges with `peer` with `key`.
pub fn set(socket: &impl AsRawFd, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a TCP MD5 key holds at most {MAX_KEY_LEN} bytes"),
        ));
    }
    let address = socket2::SockAddr::from(peer);
    // SAFETY: an all-zero `tcp_md5sig` is valid (plain integers and bytes).
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    // SAFETY: `SockAddr` holds a `sockaddr_storage`, the same type as `sig.addr`.
    sig.addr = unsafe { std::ptr::read(address.as_ptr().cast::<libc::sockaddr_storage>()) };
    sig.key_len = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a valid `tcp_md5sig` of the size given, alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_takes_a_key_and_refuses_one_too_long() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer: SocketAddr = "127.0.0.1:179".parse().unwrap();
        set(&socket, peer, b"s3cret").expect("a key for the peer");
        let v6 = std::net::TcpListener::bind("[::1]:0");
        if let Ok(v6) = v6 {
            set(&v6, "[::1]:179".parse().unwrap(), b"s3cret").expect("an IPv6 peer");
        }
        assert!(set(&socket, peer, &[b'x'; 81]).is_err());
    }
}
