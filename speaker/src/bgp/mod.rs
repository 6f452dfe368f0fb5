//! BGP mode: sessions to routers, each announcing the routes the BGP plan gives this
//! node (`crate::planner::bgp`). The protocol itself (state machine, wire format,
//! UPDATEs) is the `ferrolb-bgp` crate; this module carries it out over TCP.

pub mod peer;
#[cfg(test)]
mod router;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrolb_bgp::message::cease;
use ferrolb_bgp::session::Stop;

use crate::engine::{Intents, PeerSpec};
use crate::metrics::Metrics;
use peer::Peer;

/// The running sessions, by BGPPeer name.
pub struct Peers {
    running: BTreeMap<String, (PeerSpec, Peer)>,
    metrics: Arc<Metrics>,
}

impl Peers {
    /// No sessions yet; each one started is followed by `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            running: BTreeMap::new(),
            metrics,
        }
    }

    /// Makes the running sessions those of `intents`: stops the ones gone (Cease, peer
    /// de-configured) or changed (Cease, administrative reset, then started again),
    /// starts the new ones, and hands every session its routes.
    pub async fn apply(&mut self, intents: Intents) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let (subcode, reason) = match intents.get(&name) {
                Some(intent) if intent.spec == self.running[&name].0 => continue,
                Some(_) => (cease::ADMINISTRATIVE_RESET, "BGPPeer changed"),
                None => (
                    cease::PEER_DECONFIGURED,
                    "BGPPeer removed, or this node no longer selected",
                ),
            };
            tracing::info!(peer = %name, reason, "stopping BGP session");
            if let Some((spec, peer)) = self.running.remove(&name) {
                self.metrics.bgp_session(&spec.address.to_string(), None);
                peer.stop(Stop::Cease {
                    subcode,
                    reason: reason.into(),
                })
                .await;
            }
        }
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
                    let peer = Peer::start(intent.spec.clone(), intent.wanted);
                    let label = intent.spec.address.to_string();
                    self.metrics.bgp_session(&label, Some(peer.status.clone()));
                    self.running.insert(name, (intent.spec, peer));
                }
            }
        }
    }

    /// Stops every session as `how` says.
    pub async fn stop(self, how: Stop) {
        for (_, (spec, peer)) in self.running {
            peer.stop(how.clone()).await;
            self.metrics.bgp_session(&spec.address.to_string(), None);
        }
    }
}
