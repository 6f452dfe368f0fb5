//! The Layer 2 announcer as a sans-IO state machine: the addresses this node owns and
//! the frames received go in; frames to send come out. The socket shell feeds it and
//! sends what it returns, so every rule here is tested without a network.
//!
//! - Owning an address on an interface: announce at once (IPv4: gratuitous ARP in both
//!   the request and the reply form; IPv6: an unsolicited Neighbor Advertisement with
//!   the Override flag), then again on a schedule (MetalLB's: every 1.1 s for 5 s) so
//!   that caches of routers on other subnets move too.
//! - Giving an address up: stop answering for it at once.
//! - Answer ARP requests and Neighbor Solicitations only for owned addresses, only on
//!   the interfaces they are owned on; count everything else and drop it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::l2::packet::{Arp, ArpOp, Mac, NeighborAdvertisement, ParseError, Received, receive};

/// An interface the announcer may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address.
    pub mac: Mac,
}

/// When to repeat the announcements of a newly owned address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Time between rounds.
    pub interval: Duration,
    /// Rounds after the first one.
    pub repeats: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(1100),
            repeats: 4,
        }
    }
}

/// Counters for the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// ARP requests answered.
    pub arp_answered: u64,
    /// Neighbor Solicitations answered.
    pub ndp_answered: u64,
    /// Gratuitous ARP and unsolicited NA frames sent.
    pub gratuitous: u64,
    /// Requests for addresses we do not own (or not on that interface).
    pub not_ours: u64,
    /// Frames dropped as malformed, truncated or foreign.
    pub dropped: u64,
    /// ARP from another host claiming an address we own.
    pub conflicts: u64,
}

/// A frame to send on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The interface.
    pub interface: String,
    /// The whole Ethernet frame.
    pub bytes: Vec<u8>,
}

/// What a node owns: address → names of the interfaces it is announced on. A short
/// list rather than a set: thousands of addresses each on one or two interfaces.
pub type Owned = BTreeMap<IpAddr, Vec<String>>;

/// The announcer's state.
#[derive(Debug, Default)]
pub struct Announcer {
    schedule: Schedule,
    interfaces: BTreeMap<String, Interface>,
    /// Address → interfaces it is owned on.
    owned: Owned,
    /// (address, interface) → (next round, rounds left).
    repeats: BTreeMap<(IpAddr, String), (Instant, u32)>,
    counters: Counters,
}

impl Announcer {
    /// An announcer repeating announcements on `schedule`.
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            ..Self::default()
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The addresses owned now, and where.
    pub fn owned(&self) -> &Owned {
        &self.owned
    }

    /// Replaces the known interfaces (after a link or address change). Addresses owned
    /// on an interface that (re)appears are announced again.
    pub fn set_interfaces(&mut self, interfaces: Vec<Interface>, now: Instant) -> Vec<Outgoing> {
        let before: BTreeMap<String, Interface> = std::mem::take(&mut self.interfaces);
        self.interfaces = interfaces.into_iter().map(|i| (i.name.clone(), i)).collect();
        let mut out = Vec::new();
        let owned: Vec<(IpAddr, String)> = self
            .owned
            .iter()
            .flat_map(|(ip, ifaces)| ifaces.iter().map(move |i| (*ip, i.clone())))
            .collect();
        for (ip, name) in owned {
            if self.interfaces.get(&name) != before.get(&name) && self.interfaces.contains_key(&name) {
                self.start_announcing(ip, &name, now, &mut out);
            }
        }
        out
    }

    /// Sets what this node owns: address → interfaces. New (address, interface) pairs
    /// are announced at once; dropped ones are no longer answered for.
    pub fn set_owned(&mut self, owned: Owned, now: Instant) -> Vec<Outgoing> {
        let before = std::mem::replace(&mut self.owned, owned);
        self.repeats
            .retain(|(ip, name), _| announced_on(&self.owned, ip, name));
        let mut out = Vec::new();
        let pairs: Vec<(IpAddr, String)> = self
            .owned
            .iter()
            .flat_map(|(ip, ifaces)| ifaces.iter().map(move |i| (*ip, i.clone())))
            .filter(|(ip, name)| !announced_on(&before, ip, name))
            .collect();
        for (ip, name) in pairs {
            self.start_announcing(ip, &name, now, &mut out);
        }
        out
    }

    /// Announces every owned address again, on the full schedule: after a partition
    /// heals, a node that was cut off may have announced them meanwhile.
    pub fn reannounce(&mut self, now: Instant) -> Vec<Outgoing> {
        let pairs: Vec<(IpAddr, String)> = self
            .owned
            .iter()
            .flat_map(|(ip, ifaces)| ifaces.iter().map(move |i| (*ip, i.clone())))
            .collect();
        let mut out = Vec::new();
        for (ip, name) in pairs {
            self.start_announcing(ip, &name, now, &mut out);
        }
        out
    }

    /// A frame received on `interface`: the answer, if one is due.
    pub fn receive(&mut self, interface: &str, bytes: &[u8]) -> Option<Outgoing> {
        let Some(iface) = self.interfaces.get(interface) else {
            self.counters.dropped += 1;
            return None;
        };
        let received = match receive(bytes) {
            Ok(r) => r,
            Err(ParseError::Foreign | ParseError::Malformed | ParseError::Truncated) => {
                self.counters.dropped += 1;
                return None;
            }
        };
        let owns = |ip: IpAddr| announced_on(&self.owned, &ip, interface);
        match received {
            Received::Arp(arp) => {
                if arp.sender_mac != iface.mac && owns(IpAddr::V4(arp.sender_ip)) {
                    self.counters.conflicts += 1;
                    tracing::warn!(ip = %arp.sender_ip, mac = %arp.sender_mac, interface, "another host claims an address we announce");
                }
                // Replies, our own frames and gratuitous announcements (sender = target)
                // are not questions.
                if arp.op != ArpOp::Request || arp.sender_mac == iface.mac || arp.sender_ip == arp.target_ip {
                    return None;
                }
                if !owns(IpAddr::V4(arp.target_ip)) {
                    self.counters.not_ours += 1;
                    return None;
                }
                self.counters.arp_answered += 1;
                Some(Outgoing {
                    interface: interface.into(),
                    bytes: arp.reply_from(iface.mac),
                })
            }
            Received::Solicitation(ns) => {
                if ns.src_mac == iface.mac {
                    return None;
                }
                if !owns(IpAddr::V6(ns.target)) {
                    self.counters.not_ours += 1;
                    return None;
                }
                self.counters.ndp_answered += 1;
                let from = ns.target;
                Some(Outgoing {
                    interface: interface.into(),
                    bytes: ns.reply_from(iface.mac, from),
                })
            }
        }
    }

    /// When [`Self::tick`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.repeats.values().map(|(at, _)| *at).min()
    }

    /// Sends the repeated announcements that are due.
    pub fn tick(&mut self, now: Instant) -> Vec<Outgoing> {
        let due: Vec<(IpAddr, String)> = self
            .repeats
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for (ip, name) in due {
            let (_, left) = self.repeats.remove(&(ip, name.clone())).expect("listed above");
            self.announce(ip, &name, &mut out);
            if left > 1 {
                self.repeats
                    .insert((ip, name), (now + self.schedule.interval, left - 1));
            }
        }
        out
    }

    fn start_announcing(&mut self, ip: IpAddr, name: &str, now: Instant, out: &mut Vec<Outgoing>) {
        self.announce(ip, name, out);
        if self.schedule.repeats > 0 {
            self.repeats.insert(
                (ip, name.to_string()),
                (now + self.schedule.interval, self.schedule.repeats),
            );
        }
    }

    fn announce(&mut self, ip: IpAddr, name: &str, out: &mut Vec<Outgoing>) {
        let Some(iface) = self.interfaces.get(name) else {
            return;
        };
        let frames = match ip {
            IpAddr::V4(v4) => Arp::gratuitous(v4, iface.mac).to_vec(),
            IpAddr::V6(v6) => vec![NeighborAdvertisement::unsolicited(v6, iface.mac, v6)],
        };
        for bytes in frames {
            self.counters.gratuitous += 1;
            out.push(Outgoing {
                interface: name.into(),
                bytes,
            });
        }
    }
}

/// Whether `owned` announces `ip` on the interface `name`.
fn announced_on(owned: &Owned, ip: &IpAddr, name: &str) -> bool {
    owned.get(ip).is_some_and(|names| names.iter().any(|n| n == name))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::l2::packet::{ETHERTYPE_ARP, Frame, NeighborSolicitation, frame, solicitation};

    const ME: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const CLIENT: Mac = Mac([0x02, 0, 0, 0, 0, 2]);

    fn eth0() -> Interface {
        Interface {
            name: "eth0".into(),
            mac: ME,
        }
    }

    fn owned(pairs: &[(&str, &str)]) -> Owned {
        let mut map = Owned::new();
        for (ip, iface) in pairs {
            map.entry(ip.parse().unwrap())
                .or_default()
                .push(iface.to_string());
        }
        map
    }

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let arp = Arp {
            op: ArpOp::Request,
            sender_mac: CLIENT,
            sender_ip: Ipv4Addr::new(10, 0, 0, 2),
            target_mac: Mac::ZERO,
            target_ip: target,
        };
        frame(Mac::BROADCAST, CLIENT, ETHERTYPE_ARP, &arp.bytes())
    }

    #[test]
    fn taking_over_announces_at_once_then_on_schedule() {
        let t0 = Instant::now();
        let mut a = Announcer::new(Schedule::default());
        a.set_interfaces(vec![eth0()], t0);
        let sent = a.set_owned(owned(&[("10.0.0.100", "eth0"), ("fd00::100", "eth0")]), t0);
        assert_eq!(sent.len(), 3, "two ARP forms and one NA");
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_millis(1100)));
        let mut rounds = 1;
        let mut now = t0;
        while let Some(at) = a.next_deadline() {
            now = at;
            assert_eq!(a.tick(now).len(), 3);
            rounds += 1;
        }
        assert_eq!(rounds, 5);
        assert_eq!(now - t0, Duration::from_millis(4400));
        assert_eq!(a.counters().gratuitous, 15);
        // Owning the same again sends nothing new.
        assert!(
            a.set_owned(owned(&[("10.0.0.100", "eth0"), ("fd00::100", "eth0")]), now)
                .is_empty()
        );
    }

    #[test]
    fn answers_only_owned_addresses_on_their_interface() {
        let t0 = Instant::now();
        let mut a = Announcer::new(Schedule::default());
        let eth1 = Interface {
            name: "eth1".into(),
            mac: Mac([0x02, 0, 0, 0, 0, 9]),
        };
        a.set_interfaces(vec![eth0(), eth1], t0);
        a.set_owned(owned(&[("10.0.0.100", "eth0")]), t0);
        let reply = a
            .receive("eth0", &arp_request(Ipv4Addr::new(10, 0, 0, 100)))
            .expect("an answer");
        let f = Frame::parse(&reply.bytes).unwrap();
        assert_eq!(f.dst, CLIENT);
        assert!(
            a.receive("eth1", &arp_request(Ipv4Addr::new(10, 0, 0, 100)))
                .is_none(),
            "other interface"
        );
        assert!(
            a.receive("eth0", &arp_request(Ipv4Addr::new(10, 0, 0, 101)))
                .is_none(),
            "not ours"
        );
        assert!(a.receive("eth0", &[0u8; 5]).is_none());
        assert!(
            a.receive("wlan0", &arp_request(Ipv4Addr::new(10, 0, 0, 100)))
                .is_none(),
            "unknown interface"
        );
        let c = a.counters();
        assert_eq!((c.arp_answered, c.not_ours, c.dropped), (1, 2, 2));
    }

    #[test]
    fn answers_solicitations_from_the_target_address() {
        let t0 = Instant::now();
        let mut a = Announcer::new(Schedule::default());
        a.set_interfaces(vec![eth0()], t0);
        a.set_owned(owned(&[("fd00::100", "eth0")]), t0);
        let ns = solicitation(CLIENT, "fd00::2".parse().unwrap(), "fd00::100".parse().unwrap());
        let reply = a.receive("eth0", &ns).expect("an answer");
        let na = NeighborAdvertisement::parse(&Frame::parse(&reply.bytes).unwrap()).unwrap();
        assert_eq!(na.src_ip, "fd00::100".parse::<Ipv6Addr>().unwrap());
        assert!(na.solicited);
        // Our own solicitations (looped back) are not answered.
        let own = solicitation(ME, "fd00::1".parse().unwrap(), "fd00::100".parse().unwrap());
        assert!(NeighborSolicitation::parse(&Frame::parse(&own).unwrap()).is_ok());
        assert!(a.receive("eth0", &own).is_none());
    }

    #[test]
    fn giving_up_stops_answers_and_repeats_at_once() {
        let t0 = Instant::now();
        let mut a = Announcer::new(Schedule::default());
        a.set_interfaces(vec![eth0()], t0);
        a.set_owned(owned(&[("10.0.0.100", "eth0")]), t0);
        assert!(a.set_owned(BTreeMap::new(), t0).is_empty());
        assert!(
            a.receive("eth0", &arp_request(Ipv4Addr::new(10, 0, 0, 100)))
                .is_none()
        );
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn an_interface_coming_back_is_announced_again_and_conflicts_are_counted() {
        let t0 = Instant::now();
        let mut a = Announcer::new(Schedule {
            interval: Duration::from_millis(100),
            repeats: 0,
        });
        a.set_owned(owned(&[("10.0.0.100", "eth0")]), t0);
        assert_eq!(a.counters().gratuitous, 0, "no interface yet");
        assert_eq!(a.set_interfaces(vec![eth0()], t0).len(), 2);
        assert!(a.set_interfaces(vec![eth0()], t0).is_empty(), "unchanged");
        let intruder = Arp::gratuitous(Ipv4Addr::new(10, 0, 0, 100), CLIENT);
        assert!(a.receive("eth0", &intruder[0]).is_none());
        assert_eq!(a.counters().conflicts, 1);
        assert_eq!(
            a.reannounce(t0).len(),
            2,
            "the winner of a healed partition announces again"
        );
    }
}
