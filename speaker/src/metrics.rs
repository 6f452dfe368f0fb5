//! Prometheus metrics (served by `ferrolb_process::serve`). Counters kept by the
//! announcer and the gossip are copied in at each scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use ferrolb_bgp::message::code;
use ferrolb_bgp::session::State;
use tokio::sync::watch;

use crate::bgp::report::Reports;
use crate::l2::L2;
use crate::l2::membership::Counters as GossipCounters;

type Labels = Vec<(String, String)>;

/// Every metric of the speaker.
pub struct Metrics {
    registry: Registry,
    announced: Family<Labels, Gauge>,
    frames: Family<Labels, Counter>,
    members: Gauge,
    member_failures: Counter,
    gossip_packets: Family<Labels, Counter>,
    gossip_bytes: Counter,
    announcer_changes: Counter,
    bgp_up: Family<Labels, Gauge>,
    bgp_prefixes: Family<Labels, Gauge>,
    bgp_updates: Family<Labels, Counter>,
    bgp_notifications_sent: Family<Labels, Counter>,
    bgp_notifications_received: Family<Labels, Counter>,
    bfd_up: Family<Labels, Gauge>,
    bfd_down_events: Family<Labels, Counter>,
    sources: std::sync::Mutex<Sources>,
    /// Readiness: true once the first plan is applied.
    pub ready: AtomicBool,
}

#[derive(Default)]
struct Sources {
    l2: Option<L2>,
    gossip: Option<Arc<GossipCounters>>,
    /// The BGP sessions' reports.
    bgp: Option<watch::Receiver<Reports>>,
    /// The `peer` labels of the last scrape (a peer gone takes its series with it).
    bgp_labels: std::collections::BTreeSet<String>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("ferrolb_speaker");
        let announced = Family::<Labels, Gauge>::default();
        let frames = Family::<Labels, Counter>::default();
        let members = Gauge::default();
        let member_failures = Counter::default();
        let gossip_packets = Family::<Labels, Counter>::default();
        let gossip_bytes = Counter::default();
        let announcer_changes = Counter::default();
        let bgp_up = Family::<Labels, Gauge>::default();
        let bgp_prefixes = Family::<Labels, Gauge>::default();
        let bgp_updates = Family::<Labels, Counter>::default();
        let bgp_notifications_sent = Family::<Labels, Counter>::default();
        let bgp_notifications_received = Family::<Labels, Counter>::default();
        let bfd_up = Family::<Labels, Gauge>::default();
        let bfd_down_events = Family::<Labels, Counter>::default();
        registry.register(
            "bfd_session_up",
            "1 while the BFD session to a BGP peer is Up (MetalLB's metallb_bfd_session_up)",
            bfd_up.clone(),
        );
        registry.register(
            "bfd_session_down_events",
            "Times the BFD session to a BGP peer went from Up to Down on a failure (MetalLB's metallb_bfd_session_down_events)",
            bfd_down_events.clone(),
        );
        registry.register(
            "bgp_notifications_sent",
            "BGP NOTIFICATIONs sent to a peer, by error code",
            bgp_notifications_sent.clone(),
        );
        registry.register(
            "bgp_notifications_received",
            "BGP NOTIFICATIONs received from a peer, by error code",
            bgp_notifications_received.clone(),
        );
        registry.register(
            "bgp_session_up",
            "1 while the BGP session to a peer is Established (MetalLB's metallb_bgp_session_up)",
            bgp_up.clone(),
        );
        registry.register(
            "bgp_announced_prefixes",
            "Prefixes a peer has from this node",
            bgp_prefixes.clone(),
        );
        registry.register(
            "bgp_updates",
            "BGP UPDATE messages sent to a peer",
            bgp_updates.clone(),
        );
        registry.register(
            "announced_addresses",
            "Addresses this node announces, by family",
            announced.clone(),
        );
        registry.register(
            "layer2_frames",
            "ARP/NDP frames by kind: arp_answered, ndp_answered, gratuitous, not_ours, dropped, conflicts, send_errors",
            frames.clone(),
        );
        registry.register(
            "members",
            "Live speakers this one knows, itself included",
            members.clone(),
        );
        registry.register(
            "member_failures",
            "Speakers declared down",
            member_failures.clone(),
        );
        registry.register(
            "gossip_packets",
            "Gossip packets by direction: sent, received, rejected",
            gossip_packets.clone(),
        );
        registry.register("gossip_sent_bytes", "Gossip bytes sent", gossip_bytes.clone());
        registry.register(
            "announcer_changes",
            "Addresses this node started or stopped announcing",
            announcer_changes.clone(),
        );
        Arc::new(Self {
            registry,
            announced,
            frames,
            members,
            member_failures,
            gossip_packets,
            gossip_bytes,
            announcer_changes,
            bgp_up,
            bgp_prefixes,
            bgp_updates,
            bgp_notifications_sent,
            bgp_notifications_received,
            bfd_up,
            bfd_down_events,
            sources: Default::default(),
            ready: AtomicBool::new(false),
        })
    }

    /// Where the scrape copies counters from.
    pub fn attach(&self, l2: L2, gossip: Option<Arc<GossipCounters>>) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.l2 = Some(l2);
        sources.gossip = gossip;
    }

    /// Where the scrape reads the BGP sessions from.
    pub fn attach_bgp(&self, reports: watch::Receiver<Reports>) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.bgp = Some(reports);
    }

    /// Records the current plan's size and membership.
    pub fn set_plan(&self, v4: usize, v6: usize, members: usize, changes: u64) {
        for (family, n) in [("ipv4", v4), ("ipv6", v6)] {
            self.announced
                .get_or_create(&vec![("family".into(), family.into())])
                .set(n as i64);
        }
        self.members.set(members as i64);
        self.announcer_changes.inc_by(changes);
    }
}

impl ferrolb_process::Exporter for Metrics {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn render(&self) -> String {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l2) = &sources.l2 {
            let (c, send_errors) = l2.counters();
            for (kind, value) in [
                ("arp_answered", c.arp_answered),
                ("ndp_answered", c.ndp_answered),
                ("gratuitous", c.gratuitous),
                ("not_ours", c.not_ours),
                ("dropped", c.dropped),
                ("conflicts", c.conflicts),
                ("send_errors", send_errors),
            ] {
                catch_up(
                    &self.frames.get_or_create(&vec![("kind".into(), kind.into())]),
                    value,
                );
            }
        }
        if let Some(g) = &sources.gossip {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            for (direction, value) in [
                ("sent", load(&g.sent_packets)),
                ("received", load(&g.received_packets)),
                ("rejected", load(&g.rejected_packets)),
            ] {
                catch_up(
                    &self
                        .gossip_packets
                        .get_or_create(&vec![("direction".into(), direction.into())]),
                    value,
                );
            }
            catch_up(&self.gossip_bytes, load(&g.sent_bytes));
            catch_up(&self.member_failures, load(&g.failures));
        }
        if let Some(reports) = sources.bgp.clone() {
            let reports = reports.borrow();
            let mut labels_now = std::collections::BTreeSet::new();
            for report in reports.values() {
                let Some(s) = &report.status else { continue };
                let labels = vec![("peer".to_string(), report.address.clone())];
                self.bgp_up
                    .get_or_create(&labels)
                    .set(i64::from(s.state == Some(State::Established)));
                self.bgp_prefixes
                    .get_or_create(&labels)
                    .set(s.advertised_total() as i64);
                follow(&self.bgp_updates, &labels, s.updates);
                if let Some(bfd) = &s.bfd {
                    self.bfd_up
                        .get_or_create(&labels)
                        .set(i64::from(bfd.state == ferrolb_bfd::packet::State::Up));
                    follow(&self.bfd_down_events, &labels, bfd.down_events);
                }
                for (family, counts) in [
                    (&self.bgp_notifications_sent, &s.notifications_sent),
                    (&self.bgp_notifications_received, &s.notifications_received),
                ] {
                    for (code, n) in counts {
                        let mut labels = labels.clone();
                        labels.push(("code".into(), code_name(*code).into()));
                        follow(family, &labels, *n);
                    }
                }
                labels_now.insert(report.address.clone());
            }
            drop(reports);
            for gone in sources.bgp_labels.difference(&labels_now) {
                let labels = vec![("peer".to_string(), gone.clone())];
                self.bgp_up.remove(&labels);
                self.bgp_prefixes.remove(&labels);
                self.bgp_updates.remove(&labels);
                self.bfd_up.remove(&labels);
                self.bfd_down_events.remove(&labels);
                for code in 0..=7 {
                    let mut labels = labels.clone();
                    labels.push(("code".into(), code_name(code).into()));
                    self.bgp_notifications_sent.remove(&labels);
                    self.bgp_notifications_received.remove(&labels);
                }
            }
            sources.bgp_labels = labels_now;
        }
        drop(sources);
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Raises a counter to a total kept elsewhere.
fn catch_up(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

/// Raises the counter `labels` of `family` to a total a session keeps; a session
/// started again (its total back below the counter) starts the series again.
fn follow(family: &Family<Labels, Counter>, labels: &Labels, total: u64) {
    if family.get_or_create(labels).get() > total {
        family.remove(labels);
    }
    catch_up(&family.get_or_create(labels), total);
}

/// The `code` label of a NOTIFICATION error code.
fn code_name(c: u8) -> &'static str {
    match c {
        code::HEADER => "message_header",
        code::OPEN => "open",
        code::UPDATE => "update",
        code::HOLD_TIMER_EXPIRED => "hold_timer_expired",
        code::FSM => "fsm",
        code::CEASE => "cease",
        7 => "route_refresh",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_started_again_starts_its_counter_again() {
        let family = Family::<Labels, Counter>::default();
        let labels = vec![("peer".to_string(), "10.0.0.1:179".to_string())];
        follow(&family, &labels, 5);
        follow(&family, &labels, 7);
        assert_eq!(family.get_or_create(&labels).get(), 7);
        // A new session's total starts from 0: the series follows it, not the old one.
        follow(&family, &labels, 2);
        assert_eq!(family.get_or_create(&labels).get(), 2);
    }
}
