//! The Layer 2 shell around the [`Announcer`]: opens a raw socket pair (ARP, NDP) on
//! each interface some owned address uses, joins the solicited-node groups of owned
//! IPv6 addresses, answers on the receiving thread, and sends the repeated
//! announcements from a timer task.
//!
//! Each socket has a thread of its own blocked in `recv`: the answer costs one thread
//! wake-up, one lock and one `send`, and never waits behind the async runtime's other
//! work (watches, gossip, planning), which had tripled the median answer time and put
//! its tail above 100 µs.
//!
//! ```text
//!   apply(owned, links) ──► State { Announcer, ports } ◄── reader thread per socket ──► answer
//!                                     ▲
//!                    ticker task ─────┘ (repeated gratuitous announcements)
//! ```

pub mod announcer;
pub mod interfaces;
pub mod membership;
pub mod packet;
mod socket;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::host::links::Links;
pub use crate::l2::announcer::Owned;
use crate::l2::announcer::{Announcer, Counters, Interface, Outgoing, Schedule};
use crate::l2::packet::{ETHERTYPE_IPV6, Frame, Mac, multicast_mac, solicited_node};
pub use socket::{Kind, PacketSocket};

/// The running Layer 2 announcer.
#[derive(Clone)]
pub struct L2 {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

struct State {
    announcer: Announcer,
    ports: BTreeMap<String, Port>,
    send_errors: u64,
}

/// The sockets of one interface.
struct Port {
    index: u32,
    mac: Mac,
    arp: Arc<PacketSocket>,
    ndp: Arc<PacketSocket>,
    groups: BTreeSet<Mac>,
    /// Tells the reader threads to end (they notice within [`READ_TIMEOUT`]).
    stop: Arc<AtomicBool>,
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long a reader thread blocks before looking whether its port was closed.
const READ_TIMEOUT: Duration = Duration::from_millis(250);

impl L2 {
    /// Starts the announcer (its timer task runs until the process ends).
    pub fn start(schedule: Schedule) -> Self {
        let l2 = Self {
            state: Arc::new(Mutex::new(State {
                announcer: Announcer::new(schedule),
                ports: BTreeMap::new(),
                send_errors: 0,
            })),
            wake: Arc::new(Notify::new()),
        };
        tokio::spawn(l2.clone().ticker());
        l2
    }

    /// Announces `owned` on the interfaces of `links`: opens and closes sockets, joins
    /// groups, and sends the announcements of newly owned addresses at once.
    pub fn apply(&self, owned: &Owned, links: &Links) {
        let mut state = self.lock();
        let wanted: BTreeSet<&String> = owned.values().flatten().collect();
        state.ports.retain(|name, port| {
            wanted.contains(name)
                && links
                    .by_name(name)
                    .is_some_and(|l| l.index == port.index && l.mac == Some(port.mac))
        });
        for name in wanted {
            let Some(link) = links.by_name(name) else { continue };
            let Some(mac) = link.mac else { continue };
            if state.ports.contains_key(name.as_str()) {
                continue;
            }
            match self.open(name, link.index, mac) {
                Ok(port) => {
                    tracing::info!(interface = %name, index = link.index, %mac, "listening for ARP and NDP");
                    state.ports.insert(name.clone(), port);
                }
                Err(err) => tracing::error!(interface = %name, error = %err, "cannot open raw sockets"),
            }
        }
        let interfaces = state
            .ports
            .iter()
            .map(|(name, p)| Interface {
                name: name.clone(),
                mac: p.mac,
            })
            .collect();
        let now = Instant::now();
        let mut out = state.announcer.set_interfaces(interfaces, now);
        out.extend(state.announcer.set_owned(owned.clone(), now));
        state.join_groups(owned);
        state.send(&out);
        drop(state);
        self.wake.notify_one();
    }

    /// Announces every owned address again (see [`Announcer::reannounce`]).
    pub fn reannounce(&self) {
        let mut state = self.lock();
        let out = state.announcer.reannounce(Instant::now());
        state.send(&out);
        drop(state);
        self.wake.notify_one();
    }

    /// The announcer's counters and the frames that could not be sent.
    pub fn counters(&self) -> (Counters, u64) {
        let state = self.lock();
        (state.announcer.counters().clone(), state.send_errors)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not stop the answers: the state stays consistent
        // between calls, so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self, name: &str, index: u32, mac: Mac) -> std::io::Result<Port> {
        let arp = Arc::new(PacketSocket::open(index, Kind::Arp, READ_TIMEOUT)?);
        let ndp = Arc::new(PacketSocket::open(index, Kind::Ndp, READ_TIMEOUT)?);
        // The port exists before its threads: if one fails to start, dropping the port
        // stops the other.
        let port = Port {
            index,
            mac,
            arp: arp.clone(),
            ndp: ndp.clone(),
            groups: BTreeSet::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        for (socket, kind) in [(arp, "arp"), (ndp, "ndp")] {
            let (l2, name, stop) = (self.clone(), name.to_string(), port.stop.clone());
            std::thread::Builder::new()
                .name(format!("{kind}-{name}"))
                .spawn(move || l2.read(&name, &socket, &stop))?;
        }
        Ok(port)
    }

    fn read(&self, name: &str, socket: &PacketSocket, stop: &AtomicBool) {
        let mut buf = [0u8; 1600];
        while !stop.load(Ordering::Relaxed) {
            match socket.recv(&mut buf) {
                Ok(Some(n)) => {
                    let mut state = self.lock();
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(answer) = state.announcer.receive(name, &buf[..n]) {
                        state.send(&[answer]);
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(interface = %name, error = %err, "raw socket receive failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    async fn ticker(self) {
        loop {
            let deadline = self.lock().announcer.next_deadline();
            let wake = self.wake.notified();
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = wake => continue,
                    }
                }
                None => {
                    wake.await;
                    continue;
                }
            }
            let mut state = self.lock();
            let out = state.announcer.tick(Instant::now());
            state.send(&out);
        }
    }
}

impl State {
    fn send(&mut self, frames: &[Outgoing]) {
        for frame in frames {
            let Some(port) = self.ports.get(&frame.interface) else {
                continue;
            };
            // Each frame leaves through the socket of its protocol, so the kernel's
            // packet taps see NDP as IPv6 and ARP as ARP.
            let ipv6 = Frame::parse(&frame.bytes).is_ok_and(|f| f.ethertype == ETHERTYPE_IPV6);
            let socket = if ipv6 { &port.ndp } else { &port.arp };
            if let Err(err) = socket.send(&frame.bytes) {
                self.send_errors += 1;
                tracing::debug!(interface = %frame.interface, error = %err, "send failed");
            }
        }
    }

    /// Joins the solicited-node group of every owned IPv6 address on its interfaces
    /// and leaves the groups no owned address needs.
    fn join_groups(&mut self, owned: &Owned) {
        let mut wanted: BTreeMap<&str, BTreeSet<Mac>> = BTreeMap::new();
        for (ip, names) in owned {
            if let IpAddr::V6(v6) = ip {
                for name in names {
                    wanted
                        .entry(name)
                        .or_default()
                        .insert(multicast_mac(solicited_node(*v6)));
                }
            }
        }
        for (name, port) in &mut self.ports {
            let want = wanted.remove(name.as_str()).unwrap_or_default();
            for mac in want.difference(&port.groups) {
                if let Err(err) = port.ndp.join(port.index, *mac) {
                    tracing::warn!(interface = %name, group = %mac, error = %err, "cannot join multicast group");
                }
            }
            for mac in port.groups.difference(&want) {
                let _ = port.ndp.leave(port.index, *mac);
            }
            port.groups = want;
        }
    }
}
