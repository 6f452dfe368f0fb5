//! BGP mode: sessions to routers, each announcing the routes the BGP plan gives this
//! node (`crate::planner::bgp`). The protocol itself (state machine, wire format,
//! UPDATEs) is the `ferrolb-bgp` crate; this module carries it out over TCP.

pub mod bfd;
pub mod peer;
pub mod report;
#[cfg(test)]
mod router;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use ferrolb_bgp::message::cease;
use ferrolb_bgp::session::Stop;
use tokio::sync::watch;

use crate::engine::{Intents, Limits, PeerSpec};
use peer::Peer;
use report::{PeerStatus, Report, Reporter, Reports};

/// The running sessions, by BGPPeer name, their BFD sessions, and their reports.
pub struct Peers {
    running: BTreeMap<String, (PeerSpec, Peer)>,
    reports: watch::Sender<Reports>,
    applied: bool,
    bfd: Option<bfd::Bfd>,
}

impl Peers {
    /// No sessions yet; their reports will go to `reports`.
    pub fn new(reports: watch::Sender<Reports>) -> Self {
        Self {
            running: BTreeMap::new(),
            reports,
            applied: false,
            bfd: None,
        }
    }

    /// Makes the running sessions those of `intents`: stops the ones gone (Cease, peer
    /// de-configured) or changed (Cease, administrative reset, then started again),
    /// starts the new ones, and hands every session its routes; a change of BFD timers
    /// alone goes to the BFD session (a Poll sequence), the BGP session untouched.
    /// Peers in `limits` but not in `intents` are reported as not running, with why.
    pub async fn apply(&mut self, intents: Intents, limits: &Limits) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let (subcode, reason) = match intents.get(&name) {
                Some(intent) if intent.spec == self.running[&name].0 => continue,
                Some(intent) if bfd_timers_only(&self.running[&name].0, &intent.spec) => {
                    if let (Some(bfd), Some(spec)) = (&self.bfd, intent.spec.bfd) {
                        tracing::info!(peer = %name, "BFD timers changed");
                        bfd.configure(&name, spec.timers);
                    }
                    if let Some(running) = self.running.get_mut(&name) {
                        running.0 = intent.spec.clone();
                    }
                    continue;
                }
                Some(_) => (cease::ADMINISTRATIVE_RESET, "BGPPeer changed"),
                None => (
                    cease::PEER_DECONFIGURED,
                    "BGPPeer removed, or this node no longer selected",
                ),
            };
            tracing::info!(peer = %name, reason, "stopping BGP session");
            if let Some((_, peer)) = self.running.remove(&name) {
                // Removed first: the stopping task's last words are not reported.
                self.reports.send_modify(|r| {
                    r.remove(&name);
                });
                peer.stop(Stop::Cease {
                    subcode,
                    reason: reason.into(),
                })
                .await;
                self.stop_bfd(&name).await;
            }
        }
        let first = !std::mem::replace(&mut self.applied, true);
        self.reports.send_if_modified(|reports| {
            let before = reports.clone();
            reports.retain(|name, report| report.status.is_some() && self.running.contains_key(name));
            for (name, problem) in limits.iter().filter(|(name, _)| !intents.contains_key(*name)) {
                reports.insert(
                    name.clone(),
                    Report {
                        address: String::new(),
                        problem: Some(problem),
                        status: None,
                    },
                );
            }
            for (name, intent) in &intents {
                reports.entry(name.clone()).or_insert_with(|| Report {
                    address: report::address_label(intent.spec.address),
                    problem: None,
                    status: Some(PeerStatus::default()),
                });
            }
            first || *reports != before
        });
        for (name, intent) in intents {
            match self.running.get(&name) {
                Some((_, peer)) => {
                    peer.wanted.send_if_modified(|w| {
                        let changed = *w != intent.wanted;
                        *w = intent.wanted.clone();
                        changed
                    });
                }
                None => {
                    tracing::info!(peer = %name, address = %intent.spec.address, "starting BGP session");
                    let reporter = Reporter::new(&name, self.reports.clone());
                    let failures = intent.spec.bfd.map(|spec| {
                        let bfd = self.bfd.get_or_insert_with(bfd::Bfd::start);
                        bfd.add(&name, intent.spec.address.ip(), spec, reporter.clone())
                    });
                    let peer = Peer::start(intent.spec.clone(), intent.wanted, reporter, first, failures);
                    self.running.insert(name, (intent.spec, peer));
                }
            }
        }
    }

    /// Stops every session as `how` says; `true` when some peer was left holding this
    /// node's routes for a graceful restart (so traffic must keep flowing here). The
    /// reports stay (as the Layer 2 records do): a restarted speaker writes them again
    /// rather than deleting and re-creating them.
    pub async fn stop(&mut self, how: Stop) -> bool {
        let mut kept = false;
        for (name, (_, peer)) in std::mem::take(&mut self.running) {
            kept |= peer.stop(how.clone()).await;
            // After the BGP session: a router must see the TCP close (and keep the
            // routes, with graceful restart) before BFD goes AdminDown.
            self.stop_bfd(&name).await;
        }
        kept
    }

    async fn stop_bfd(&self, name: &str) {
        if let Some(bfd) = &self.bfd {
            bfd.remove(name).await;
        }
    }
}

/// Whether `new` differs from `old` in its BFD timers and nothing else (the caller
/// knows they differ).
fn bfd_timers_only(old: &PeerSpec, new: &PeerSpec) -> bool {
    let (Some(was), Some(now)) = (old.bfd, new.bfd) else {
        return false;
    };
    let bfd = Some(crate::engine::BfdSpec {
        timers: was.timers,
        ..now
    });
    PeerSpec { bfd, ..new.clone() } == *old
}
