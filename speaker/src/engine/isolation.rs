//! Whether the gossip has left this speaker alone while other Nodes are Ready: at start
//! (before the gossip found the others) and on a partition. Alone for longer than the
//! fallback delay, liveness comes from Node readiness instead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::planner::NodeInfo;

/// Since when the gossip has left this speaker alone while other Nodes are Ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    since: Option<Instant>,
}

impl Isolation {
    /// Takes in the gossip's live set (`None`: no gossip, `--membership api`, which
    /// nothing can isolate) at `now`.
    pub fn observe(
        self,
        live: Option<&BTreeSet<String>>,
        nodes: &[NodeInfo],
        me: &str,
        now: Instant,
    ) -> Self {
        let alone = live.is_some_and(|live| {
            live.iter().all(|m| m == me) && nodes.iter().any(|n| n.ready && n.name != me)
        });
        Self {
            since: if alone { self.since.or(Some(now)) } else { None },
        }
    }

    /// Whether the gossip leaves this speaker alone.
    pub fn isolated(&self) -> bool {
        self.since.is_some()
    }

    /// Whether liveness must come from Node readiness instead of the gossip.
    pub fn fallback(&self, now: Instant, after: Duration) -> bool {
        self.since
            .is_some_and(|since| now.saturating_duration_since(since) >= after)
    }

    /// When [`Self::fallback`] turns true, if it will later than `now` (nothing else
    /// wakes the speaker then).
    pub fn wake_at(&self, now: Instant, after: Duration) -> Option<Instant> {
        let at = self.since? + after;
        (at > now).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn nodes(list: &[(&str, bool)]) -> Vec<NodeInfo> {
        list.iter()
            .map(|(name, ready)| NodeInfo {
                name: name.to_string(),
                labels: BTreeMap::new(),
                ready: *ready,
                network_unavailable: false,
                unschedulable: false,
            })
            .collect()
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn without_gossip_nothing_isolates_and_nothing_wakes() {
        let t0 = Instant::now();
        let after = Duration::from_secs(5);
        let cluster = nodes(&[("me", true), ("n2", true), ("n3", true)]);
        let mut isolation = Isolation::default();
        for s in [0, 1, 10, 100] {
            let now = t0 + Duration::from_secs(s);
            isolation = isolation.observe(None, &cluster, "me", now);
            assert!(!isolation.isolated(), "at {s} s");
            assert!(!isolation.fallback(now, after), "at {s} s");
            assert_eq!(isolation.wake_at(now, after), None, "at {s} s");
        }
    }

    #[test]
    fn gossip_with_peers_is_not_isolated() {
        let t0 = Instant::now();
        let after = Duration::from_secs(5);
        let cluster = nodes(&[("me", true), ("n2", true)]);
        let isolation = Isolation::default().observe(Some(&names(&["me", "n2"])), &cluster, "me", t0);
        assert!(!isolation.isolated());
        assert!(!isolation.fallback(t0 + after * 10, after));
        assert_eq!(isolation.wake_at(t0, after), None);
        // Alone with no other Node Ready: nobody to find, nothing to fall back to.
        let alone = nodes(&[("me", true), ("n2", false)]);
        let isolation = Isolation::default().observe(Some(&names(&["me"])), &alone, "me", t0);
        assert!(!isolation.isolated());
    }

    #[test]
    fn gossip_alone_while_others_are_ready_falls_back_after_the_delay() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let after = Duration::from_secs(5);
        let cluster = nodes(&[("me", true), ("n2", true)]);
        let me = names(&["me"]);
        let isolation = Isolation::default().observe(Some(&me), &cluster, "me", at(1000));
        assert!(isolation.isolated());
        assert!(!isolation.fallback(at(1000), after));
        assert_eq!(isolation.wake_at(at(1000), after), Some(at(6000)));
        // Seen again later: isolated since the first time, not since the last.
        let isolation = isolation.observe(Some(&me), &cluster, "me", at(3000));
        assert_eq!(isolation.wake_at(at(3000), after), Some(at(6000)));
        assert!(!isolation.fallback(at(5999), after));
        assert!(isolation.fallback(at(6000), after));
        // Fallen back: only a change (gossip or API) can alter that, no timer needed.
        assert_eq!(isolation.wake_at(at(6000), after), None);
        // A peer appears: isolation ends.
        let isolation = isolation.observe(Some(&names(&["me", "n2"])), &cluster, "me", at(7000));
        assert!(!isolation.isolated());
        assert!(!isolation.fallback(at(7000), after));
    }
}
