//! What the sessions report: each peer task keeps its entry of one shared map up to
//! date; the metrics read it at each scrape and the BGPSessionState writer turns it into
//! records ([`states`]) when it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use ferrolb_bgp::message::Family;
use ferrolb_bgp::session::{Down, State};
use ferrolb_crds::api::BGPSessionStateStatus;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

use crate::api::status::{self, Desired};

/// What one session task reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// The session's state (`None` before the task runs).
    pub state: Option<State>,
    /// When it entered `state`, by this node's clock.
    pub since: Option<SystemTime>,
    /// Why it last went down or failed.
    pub last_down: Option<Down>,
    /// The error of the dial that failed last, if it gave one (a timeout gives none).
    pub dial_error: Option<String>,
    /// Prefixes the peer has from us, by family.
    pub advertised: BTreeMap<Family, usize>,
    /// Families with prefixes to announce that the peer did not negotiate.
    pub not_negotiated: BTreeSet<Family>,
    /// UPDATE messages sent, since the start.
    pub updates: u64,
    /// NOTIFICATIONs sent, by error code.
    pub notifications_sent: BTreeMap<u8, u64>,
    /// NOTIFICATIONs received, by error code.
    pub notifications_received: BTreeMap<u8, u64>,
    /// The BFD session beside it, when the BGPPeer has a `bfdProfile`.
    pub bfd: Option<BfdStatus>,
}

/// What the BFD side reports of a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdStatus {
    /// The BFD session's state.
    pub state: ferrolb_bfd::packet::State,
    /// Times it went from Up to Down on a failure (MetalLB's `bfd_session_down_events`).
    pub down_events: u64,
    /// What it cannot do: echo mode asked for, a port it cannot listen on.
    pub problems: Vec<String>,
}

impl PeerStatus {
    /// Prefixes the peer has from us, all families.
    pub fn advertised_total(&self) -> usize {
        self.advertised.values().sum()
    }
}

/// One configured session of this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The peer's address and port.
    pub address: String,
    /// Why this node cannot run the session (see `crate::engine::Limits`).
    pub problem: Option<&'static str>,
    /// The task's report; `None` for a peer this node cannot run.
    pub status: Option<PeerStatus>,
}

/// Every configured session of this node, by BGPPeer name.
pub type Reports = BTreeMap<String, Report>;

/// A session task's handle on its entry.
#[derive(Clone, Debug)]
pub struct Reporter {
    name: String,
    reports: watch::Sender<Reports>,
}

impl Reporter {
    /// The reporter of BGPPeer `name`'s session.
    pub fn new(name: &str, reports: watch::Sender<Reports>) -> Self {
        Self {
            name: name.into(),
            reports,
        }
    }

    /// Changes the entry with `f` (which says whether it changed anything); an entry
    /// already removed (the session is being stopped) stays removed.
    pub fn update(&self, f: impl FnOnce(&mut PeerStatus) -> bool) {
        self.reports
            .send_if_modified(|all| match all.get_mut(&self.name) {
                Some(Report {
                    status: Some(status), ..
                }) => f(status),
                _ => false,
            });
    }

    /// Records that the session entered `state`. Connect and Active alternate at every
    /// retry: they count as one state, so a peer that cannot be reached changes nothing
    /// (and no record is written) between tries.
    pub fn state(&self, state: State) {
        self.update(|s| {
            let trying = |st: State| matches!(st, State::Connect | State::Active);
            match s.state {
                Some(old) if old == state => false,
                Some(old) if trying(old) && trying(state) => {
                    s.state = Some(state);
                    false
                }
                _ => {
                    s.state = Some(state);
                    s.since = Some(SystemTime::now());
                    true
                }
            }
        });
    }
}

/// The BGPSessionState records of `node` for `reports`.
pub fn states(node: &str, reports: &Reports) -> Desired<BGPSessionStateStatus> {
    reports
        .iter()
        .map(|(peer, report)| {
            let record = Arc::new(state(node, peer, report));
            (status::session_name(node, peer).into(), record)
        })
        .collect()
}

fn state(node: &str, peer: &str, report: &Report) -> BGPSessionStateStatus {
    let mut problems: Vec<String> = report.problem.iter().map(|p| p.to_string()).collect();
    let Some(s) = &report.status else {
        return BGPSessionStateStatus {
            node: node.into(),
            peer: peer.into(),
            peer_address: report.address.clone(),
            bgp_status: "NotRunning".into(),
            problems,
            ..Default::default()
        };
    };
    for family in &s.not_negotiated {
        problems.push(format!(
            "the peer did not negotiate {family}: those prefixes are not sent"
        ));
    }
    problems.extend(
        s.bfd
            .iter()
            .flat_map(|b| b.problems.iter().map(|p| format!("BFD: {p}"))),
    );
    let count = |f: Family| s.advertised.get(&f).copied().unwrap_or(0) as u32;
    BGPSessionStateStatus {
        node: node.into(),
        peer: peer.into(),
        peer_address: report.address.clone(),
        bgp_status: match s.state {
            // Between tries, as routers show it.
            Some(State::Connect | State::Active) => "Active".into(),
            Some(st) => format!("{st:?}"),
            None => "Idle".into(),
        },
        since: s
            .since
            .and_then(|t| Timestamp::try_from(t).ok())
            .map(|t| t.to_string()),
        last_error: last_error(s),
        bfd_status: s.bfd.as_ref().map(|b| b.state.to_string()),
        advertised_ipv4: count(Family::Ipv4Unicast),
        advertised_ipv6: count(Family::Ipv6Unicast),
        problems,
    }
}

fn last_error(s: &PeerStatus) -> Option<String> {
    Some(match s.last_down.as_ref()? {
        Down::ConnectFailed => match &s.dial_error {
            Some(err) => format!("connect: {err}"),
            None => "connect: timed out".into(),
        },
        Down::ConnectionLost => "the connection closed".into(),
        Down::NotificationReceived(n) => format!("NOTIFICATION received: {n}"),
        Down::NotificationSent(n) => format!("NOTIFICATION sent: {n}"),
        Down::Stopped => return None,
    })
}

/// The address of a configured peer as reports and metrics name it.
pub fn address_label(address: SocketAddr) -> String {
    address.to_string()
}

#[cfg(test)]
mod tests {
    use ferrolb_bgp::message::Notification;

    use super::*;

    #[test]
    fn records_say_state_errors_counts_and_problems() {
        let mut reports = Reports::new();
        let mut up = PeerStatus {
            state: Some(State::Established),
            since: Some(SystemTime::UNIX_EPOCH),
            last_down: Some(Down::NotificationReceived(Notification {
                code: 6,
                subcode: 2,
                data: Vec::new(),
            })),
            ..Default::default()
        };
        up.advertised.insert(Family::Ipv4Unicast, 3);
        up.not_negotiated.insert(Family::Ipv6Unicast);
        up.bfd = Some(BfdStatus {
            state: ferrolb_bfd::packet::State::Up,
            down_events: 1,
            problems: vec!["echo mode is not supported".into()],
        });
        reports.insert(
            "tor".into(),
            Report {
                address: "10.0.0.1:179".into(),
                problem: None,
                status: Some(up),
            },
        );
        reports.insert(
            "red".into(),
            Report {
                address: "10.0.0.2:179".into(),
                problem: Some("sessions in a VRF (spec.vrf) are not supported: peer skipped"),
                status: None,
            },
        );
        let records = states("n1", &reports);
        let tor = &records["n1.tor"];
        assert_eq!(tor.bgp_status, "Established");
        assert_eq!(tor.since.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(tor.advertised_ipv4, 3);
        assert_eq!(tor.advertised_ipv6, 0);
        assert!(
            tor.last_error
                .as_deref()
                .unwrap()
                .contains("administrative shutdown"),
            "{:?}",
            tor.last_error
        );
        assert!(tor.problems[0].contains("ipv6-unicast"), "{:?}", tor.problems);
        assert_eq!(tor.problems[1], "BFD: echo mode is not supported");
        assert_eq!(tor.bfd_status.as_deref(), Some("Up"));
        let red = &records["n1.red"];
        assert_eq!(red.bgp_status, "NotRunning");
        assert_eq!(red.bfd_status, None);
        assert!(red.problems[0].contains("spec.vrf"));
    }

    #[test]
    fn retries_change_nothing_between_connect_and_active() {
        let report = Report {
            address: "10.0.0.1:179".into(),
            problem: None,
            status: Some(PeerStatus::default()),
        };
        let (tx, mut rx) = watch::channel(Reports::from([("r".to_string(), report)]));
        let reporter = Reporter::new("r", tx);
        reporter.state(State::Connect);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        reporter.state(State::Active);
        reporter.state(State::Connect);
        assert!(!rx.has_changed().unwrap(), "no change between tries");
        assert_eq!(states("n1", &rx.borrow())["n1.r"].bgp_status, "Active");
        reporter.state(State::OpenSent);
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn a_removed_entry_is_not_brought_back_by_its_stopping_task() {
        let (tx, rx) = watch::channel(Reports::new());
        let reporter = Reporter::new("gone", tx);
        reporter.state(State::Active);
        assert!(rx.borrow().is_empty());
    }
}
