//! BFD beside the BGP sessions, carried out: one task, on its own thread, owns the UDP
//! sockets and every [`Session`] of `ferrolb-bfd`, feeds them packets and the time,
//! sends what they say, reports their state, and tells a BGP session's task when BFD
//! finds its peer gone.
//!
//! ```text
//!   Peers: add / remove ──────────┐
//!   UDP 3784, 4784 (listeners) ───┼─► Session::handle ─┬─► UDP send (own port ≥ 49152, TTL 255)
//!   the earliest deadline ────────┘                    ├─► report (BFD state, down events)
//!                                                      └─► failures (watch) ─► BGP task: BfdDown
//! ```
//!
//! Single-hop sessions (RFC 5881) listen on 3784 and accept only packets that arrive
//! with TTL (hop limit) 255, so nothing from beyond the link can reach them (GTSM, RFC
//! 5082: the kernel hands each packet's TTL over with it); multihop sessions (RFC 5883)
//! listen on 4784 and accept the lowest `minimumTtl` among them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use ferrolb_bfd::packet::{Packet, State};
use ferrolb_bfd::session::{Input, Output, Session};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};
use rand::RngExt;
use rand::rngs::StdRng;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::report::{BfdStatus, Reporter};
use crate::engine::BfdSpec;

/// The UDP ports (RFC 5881, RFC 5883).
const SINGLE_HOP_PORT: u16 = 3784;
const MULTIHOP_PORT: u16 = 4784;
/// The source ports a session may send from (RFC 5881 §4).
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// AdminDown packets sent when a session is removed: a lost one must not leave the peer
/// to time out (which it would treat as a failure).
const GOODBYES: usize = 3;

/// The handle on the BFD task.
#[derive(Clone)]
pub struct Bfd {
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    Add {
        name: String,
        peer: IpAddr,
        spec: BfdSpec,
        reporter: Reporter,
        failures: watch::Sender<u64>,
    },
    Remove {
        name: String,
        done: oneshot::Sender<()>,
    },
    Configure {
        name: String,
        timers: ferrolb_bfd::session::Config,
    },
}

impl Bfd {
    /// Starts the task on a thread of its own (it opens sockets only for the sessions
    /// it is given): BFD's tens of milliseconds must not wait behind the speaker's own
    /// work, whose one thread spends a hundred milliseconds on a plan of ten thousand
    /// Services.
    pub fn start() -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new().name("bfd".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(run(rx)),
                Err(err) => tracing::error!(error = %err, "BFD: cannot start its runtime"),
            }
        });
        if let Err(err) = thread {
            tracing::error!(error = %err, "BFD: cannot start its thread");
        }
        Self { commands }
    }

    /// Runs a BFD session to `peer` for BGPPeer `name`, reporting through `reporter`;
    /// the receiver counts the failures BFD finds (each one should end the BGP session).
    pub fn add(&self, name: &str, peer: IpAddr, spec: BfdSpec, reporter: Reporter) -> watch::Receiver<u64> {
        let (failures, rx) = watch::channel(0);
        let _ = self.commands.send(Command::Add {
            name: name.into(),
            peer,
            spec,
            reporter,
            failures,
        });
        rx
    }

    /// Gives BGPPeer `name`'s session new timers (applied through a Poll sequence).
    pub fn configure(&self, name: &str, timers: ferrolb_bfd::session::Config) {
        let _ = self.commands.send(Command::Configure {
            name: name.into(),
            timers,
        });
    }

    /// Ends BGPPeer `name`'s session, telling the peer AdminDown (not a failure for it).
    pub async fn remove(&self, name: &str) {
        let (done, wait) = oneshot::channel();
        let sent = self.commands.send(Command::Remove {
            name: name.into(),
            done,
        });
        if sent.is_ok() {
            let _ = wait.await;
        }
    }
}

/// A running session.
struct Running {
    session: Session,
    /// The state last reported.
    state: State,
    /// The peer's address and BFD port.
    peer: SocketAddr,
    multihop: bool,
    socket: UdpSocket,
    reporter: Reporter,
    failures: watch::Sender<u64>,
}

/// A packet that arrived on a listener.
struct Arrived {
    bytes: Vec<u8>,
    from: IpAddr,
    multihop: bool,
}

/// The task's state.
struct Task {
    sessions: BTreeMap<String, Running>,
    /// Listeners by (IPv6, multihop), with the minimum TTL they accept.
    listeners: BTreeMap<(bool, bool), Arc<AtomicU8>>,
    arrived: mpsc::Sender<Arrived>,
    next_discr: u32,
}

async fn run(mut commands: mpsc::UnboundedReceiver<Command>) {
    let (arrived, mut packets) = mpsc::channel(256);
    let mut task = Task {
        sessions: BTreeMap::new(),
        listeners: BTreeMap::new(),
        arrived,
        // Discriminators start somewhere new at each start, so a peer never mistakes a
        // restarted speaker's session for the old one.
        next_discr: rand::random::<u32>() | 1,
    };
    loop {
        let deadline = task
            .sessions
            .values()
            .filter_map(|r| r.session.deadline())
            .min()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Add { name, peer, spec, reporter, failures }) => {
                    task.add(name, peer, spec, reporter, failures).await;
                }
                Some(Command::Remove { name, done }) => {
                    task.remove(&name).await;
                    let _ = done.send(());
                }
                Some(Command::Configure { name, timers }) => {
                    if let Some(running) = task.sessions.get_mut(&name) {
                        let out = running.session.handle(Input::Configure(timers), Instant::now());
                        running.carry_out(&out).await;
                    }
                }
                None => break,
            },
            Some(packet) = packets.recv() => task.received(packet).await,
            _ = sleep_until(deadline) => task.tick().await,
        }
    }
    let names: Vec<String> = task.sessions.keys().cloned().collect();
    for name in names {
        task.remove(&name).await;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn add(
        &mut self,
        name: String,
        peer: IpAddr,
        spec: BfdSpec,
        reporter: Reporter,
        failures: watch::Sender<u64>,
    ) {
        self.remove(&name).await;
        let mut problems = Vec::new();
        if spec.echo {
            problems.push("echo mode is not supported: asynchronous mode only".to_string());
        }
        let min_ttl = if spec.multihop { spec.minimum_ttl } else { 255 };
        if let Err(err) = self.listen(peer.is_ipv6(), spec.multihop, min_ttl) {
            problems.push(err);
        }
        let socket = source_socket(peer, self.next_discr)
            .inspect_err(|err| {
                tracing::warn!(%peer, error = %err, "BFD: no source port");
                problems.push(format!("no source port to send from: {err}"));
            })
            .ok();
        reporter.update(|s| {
            s.bfd = Some(BfdStatus {
                state: State::Down,
                down_events: 0,
                problems,
            });
            true
        });
        let Some(socket) = socket else { return };
        let discr = self.discriminator();
        let mut rng: StdRng = rand::make_rng();
        let random = Box::new(move || rng.random::<f64>());
        let port = if spec.multihop {
            MULTIHOP_PORT
        } else {
            SINGLE_HOP_PORT
        };
        tracing::info!(peer = %name, address = %peer, multihop = spec.multihop, "starting BFD session");
        let session = Session::new(spec.timers, discr, Instant::now(), random);
        self.sessions.insert(
            name,
            Running {
                session,
                state: State::Down,
                peer: SocketAddr::new(peer, port),
                multihop: spec.multihop,
                socket,
                reporter,
                failures,
            },
        );
    }

    /// A new discriminator, never 0 and not in use.
    fn discriminator(&mut self) -> u32 {
        loop {
            let d = self.next_discr;
            self.next_discr = self.next_discr.wrapping_add(1);
            if d != 0 && self.sessions.values().all(|r| r.session.local_discr() != d) {
                return d;
            }
        }
    }

    /// Makes sure a listener of this kind runs and accepts packets with `min_ttl`.
    fn listen(&mut self, ipv6: bool, multihop: bool, min_ttl: u8) -> Result<(), String> {
        if let Some(min) = self.listeners.get(&(ipv6, multihop)) {
            min.fetch_min(min_ttl, Ordering::Relaxed);
            return Ok(());
        }
        let port = if multihop { MULTIHOP_PORT } else { SINGLE_HOP_PORT };
        let address = match ipv6 {
            false => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            true => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
        };
        let socket = bind(address, |s| {
            // Each packet comes with the TTL it arrived with.
            match ipv6 {
                false => setsockopt(s, sockopt::Ipv4RecvTtl, &true)?,
                true => {
                    s.set_only_v6(true)?;
                    setsockopt(s, sockopt::Ipv6RecvHopLimit, &true)?;
                }
            }
            Ok(())
        })
        .map_err(|e| format!("cannot listen on UDP {address}: {e}"))?;
        let min = Arc::new(AtomicU8::new(min_ttl));
        tokio::spawn(read(socket, multihop, min.clone(), self.arrived.clone()));
        self.listeners.insert((ipv6, multihop), min);
        Ok(())
    }

    async fn remove(&mut self, name: &str) {
        let Some(mut running) = self.sessions.remove(name) else {
            return;
        };
        tracing::info!(peer = %name, "stopping BFD session");
        let out = running.session.handle(Input::AdminDown, Instant::now());
        for _ in 0..GOODBYES {
            running.carry_out(&out).await;
        }
    }

    async fn received(&mut self, arrived: Arrived) {
        let packet = match Packet::decode(&arrived.bytes) {
            Ok(p) => p,
            Err(why) => {
                tracing::debug!(from = %arrived.from, %why, "BFD packet discarded");
                return;
            }
        };
        // RFC 5880 §6.8.6: by our discriminator when the peer knows it, else by where
        // the packet came from.
        let found = self
            .sessions
            .values_mut()
            .find(|r| match packet.your_discriminator {
                0 => r.peer.ip() == arrived.from && r.multihop == arrived.multihop,
                d => r.session.local_discr() == d,
            });
        if let Some(running) = found {
            let out = running.session.handle(Input::Received(packet), Instant::now());
            running.carry_out(&out).await;
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        for running in self.sessions.values_mut() {
            if running.session.deadline().is_some_and(|d| d <= now) {
                let out = running.session.handle(Input::Tick, now);
                running.carry_out(&out).await;
            }
        }
    }
}

impl Running {
    async fn carry_out(&mut self, out: &[Output]) {
        for output in out {
            match output {
                Output::Send(packet) => {
                    if let Err(err) = self.socket.send_to(&packet.encode(), self.peer).await {
                        tracing::debug!(peer = %self.peer, error = %err, "BFD send failed");
                    }
                }
                Output::Changed(change) => {
                    let failure = change.is_failure() && self.state == State::Up;
                    self.state = change.state;
                    tracing::info!(peer = %self.peer, state = %change.state, diag = %change.diag, remote = %change.remote, "BFD session");
                    self.reporter.update(|s| {
                        let Some(bfd) = &mut s.bfd else { return false };
                        bfd.state = change.state;
                        bfd.down_events += u64::from(failure);
                        true
                    });
                    if failure {
                        tracing::warn!(peer = %self.peer, diag = %change.diag, "BFD: the peer is gone");
                        self.failures.send_modify(|n| *n += 1);
                    }
                }
            }
        }
    }
}

/// Reads `socket` into `arrived` until the task is gone, dropping what arrives with a
/// TTL below `min_ttl`.
async fn read(socket: UdpSocket, multihop: bool, min_ttl: Arc<AtomicU8>, arrived: mpsc::Sender<Arrived>) {
    let mut buf = [0u8; 512];
    loop {
        let received = socket
            .async_io(Interest::READABLE, || {
                receive(&socket, &mut buf).map_err(std::io::Error::from)
            })
            .await;
        let Ok((len, from, ttl)) = received else {
            continue;
        };
        if ttl.is_none_or(|ttl| ttl < min_ttl.load(Ordering::Relaxed)) {
            tracing::debug!(%from, ?ttl, "BFD packet dropped: TTL below the minimum");
            continue;
        }
        let packet = Arrived {
            bytes: buf[..len].to_vec(),
            from,
            multihop,
        };
        if arrived.send(packet).await.is_err() {
            return;
        }
    }
}

/// One datagram: its length, its source, the TTL (hop limit) it arrived with.
fn receive(socket: &UdpSocket, buf: &mut [u8]) -> nix::Result<(usize, IpAddr, Option<u8>)> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(libc::c_int);
    let msg = recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())?;
    let ttl = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => u8::try_from(t).ok(),
        _ => None,
    });
    let from = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| IpAddr::V4(v4.ip()))
            .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
    });
    let from = from.ok_or(nix::errno::Errno::EAFNOSUPPORT)?;
    Ok((msg.bytes, from, ttl))
}

/// A UDP socket bound to `address` after `prepare`, for tokio.
fn bind(
    address: SocketAddr,
    prepare: impl FnOnce(&socket2::Socket) -> std::io::Result<()>,
) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    prepare(&socket)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// The socket a session to `peer` sends from: a port of 49152–65535 (tried from a
/// point `hint` picks), TTL (hop limit) 255.
fn source_socket(peer: IpAddr, hint: u32) -> std::io::Result<UdpSocket> {
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let mut last = std::io::Error::other("no port tried");
    for i in 0..64 {
        let port = SOURCE_PORTS.start() + ((hint.wrapping_add(i * 7919)) % span) as u16;
        let local = match peer {
            IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
        };
        let ttl = |s: &socket2::Socket| match peer {
            IpAddr::V4(_) => s.set_ttl_v4(255),
            IpAddr::V6(_) => s.set_unicast_hops_v6(255),
        };
        match bind(local, ttl) {
            Ok(socket) => return Ok(socket),
            Err(err) => last = err,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_datagram_comes_with_the_ttl_it_arrived_with() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), |s| {
            setsockopt(s, sockopt::Ipv4RecvTtl, &true)?;
            Ok(())
        })
        .unwrap();
        let to = listener.local_addr().unwrap();
        let sender = source_socket(to.ip(), 1).expect("a source port");
        let port = sender.local_addr().unwrap().port();
        assert!(SOURCE_PORTS.contains(&port), "{port}");
        sender.send_to(b"hello", to).await.unwrap();
        let mut buf = [0u8; 16];
        let (len, from, ttl) = listener
            .async_io(Interest::READABLE, || {
                receive(&listener, &mut buf).map_err(std::io::Error::from)
            })
            .await
            .unwrap();
        assert_eq!((len, from), (5, IpAddr::from([127, 0, 0, 1])));
        assert_eq!(ttl, Some(255), "sent with TTL 255");
        let low = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        low.set_ttl(64).unwrap();
        low.send_to(b"x", to).unwrap();
        let (_, _, ttl) = listener
            .async_io(Interest::READABLE, || {
                receive(&listener, &mut buf).map_err(std::io::Error::from)
            })
            .await
            .unwrap();
        assert_eq!(ttl, Some(64), "a packet from further away shows it");
    }
}
