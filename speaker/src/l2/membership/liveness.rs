//! Speaker death is not node death: which members declared down by the gossip still
//! count as live (a plain state machine; the gossip task feeds it and runs its probes).
//!
//! - A member that said goodbye leaves at once, whatever its kernel says.
//! - A member declared down without a goodbye is probed (a TCP connect to its gossip
//!   port). Meanwhile, and while its kernel refuses the connection (the node lives, only
//!   the speaker is gone), it lingers in the live set for the grace period, probed again
//!   every [`REPROBE`]; a probe that finds no kernel ends the grace at once.
//! - A member that comes back (up, or rejoined with a higher generation after a restart
//!   or a partition) is a plain member again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::Member;

/// How often a lingering member is probed again.
pub const REPROBE: Duration = Duration::from_millis(250);

/// What the gossip's failure detector and the probes found.
#[derive(Debug)]
pub struct Liveness {
    grace: Duration,
    /// Members declared down whose node answered (or is being probed): name → (member,
    /// grace deadline).
    lingering: BTreeMap<String, (Member, Instant)>,
    said_goodbye: BTreeSet<String>,
    next_reprobe: Option<Instant>,
}

impl Liveness {
    /// Down members whose kernel answers stay live for `grace` (zero: never).
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            lingering: BTreeMap::new(),
            said_goodbye: BTreeSet::new(),
            next_reprobe: None,
        }
    }

    /// The member `name` is up (joined, came back, rejoined). Returns whether the live
    /// set may have changed.
    pub fn up(&mut self, name: &str) -> bool {
        self.said_goodbye.remove(name);
        self.lingering.remove(name);
        true
    }

    /// The member `name` said goodbye: its addresses move at once.
    pub fn goodbye(&mut self, name: &str) -> bool {
        self.said_goodbye.insert(name.to_string());
        self.lingering.remove(name).is_some()
    }

    /// The gossip declared `member` down at `now`; returns it when it must be probed.
    pub fn down(&mut self, member: Member, now: Instant) -> Option<Member> {
        if self.said_goodbye.contains(&member.name) || self.grace.is_zero() {
            return None;
        }
        if self.lingering.is_empty() {
            self.next_reprobe = Some(now + REPROBE);
        }
        self.lingering
            .insert(member.name.clone(), (member.clone(), now + self.grace));
        Some(member)
    }

    /// A probe of `name` found its kernel answering (`kernel_alive`) or not. Returns
    /// whether the live set changed.
    pub fn probed(&mut self, name: &str, kernel_alive: bool) -> bool {
        if !self.lingering.contains_key(name) {
            // Back in the gossip, said goodbye or out of grace meanwhile.
            false
        } else if kernel_alive {
            tracing::debug!(member = %name, "node of a down speaker answers: its addresses stay");
            false
        } else {
            tracing::warn!(member = %name, "node does not answer: its addresses move");
            self.lingering.remove(name);
            true
        }
    }

    /// When [`Self::tick`] has work.
    pub fn next_wake(&self) -> Option<Instant> {
        self.next_reprobe.filter(|_| !self.lingering.is_empty())
    }

    /// At `now`: ends the graces that are over (returns whether any did) and says which
    /// members to probe again.
    pub fn tick(&mut self, now: Instant) -> (bool, Vec<Member>) {
        if self.next_wake().is_none_or(|at| at > now) {
            return (false, Vec::new());
        }
        let before = self.lingering.len();
        self.lingering.retain(|name, (_, deadline)| {
            let keep = *deadline > now;
            if !keep {
                tracing::warn!(member = %name, "grace over: its addresses move");
            }
            keep
        });
        self.next_reprobe = (!self.lingering.is_empty()).then_some(now + REPROBE);
        let probes = self.lingering.values().map(|(m, _)| m.clone()).collect();
        (self.lingering.len() != before, probes)
    }

    /// The live set: the gossip's `members`, the lingering ones and `me`.
    pub fn live<'a>(&self, members: impl Iterator<Item = &'a str>, me: &str) -> BTreeSet<String> {
        let mut live: BTreeSet<String> = members.map(str::to_string).collect();
        live.extend(self.lingering.keys().cloned());
        live.insert(me.to_string());
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, generation: u64) -> Member {
        Member {
            name: name.into(),
            addr: "10.0.0.2:7946".parse().unwrap(),
            generation,
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(ToString::to_string).collect()
    }

    /// The live set of `l` while the gossip counts only `me`.
    fn alone(l: &Liveness) -> BTreeSet<String> {
        l.live(std::iter::empty(), "me")
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn a_dead_speaker_on_a_live_node_stays_live_for_the_grace() {
        let t0 = Instant::now();
        let mut l = Liveness::new(GRACE);
        let probe = l.down(member("n2", 1), t0);
        assert_eq!(probe.map(|m| m.name), Some("n2".to_string()));
        assert_eq!(alone(&l), names(&["me", "n2"]), "lingers while probed");
        assert!(!l.probed("n2", true), "the kernel refused: nothing changes");
        assert_eq!(alone(&l), names(&["me", "n2"]));
        // Re-probed every REPROBE while the grace lasts.
        assert_eq!(l.next_wake(), Some(t0 + REPROBE));
        assert_eq!(l.tick(t0 + REPROBE / 2), (false, vec![]), "too early");
        let (changed, probes) = l.tick(t0 + REPROBE);
        assert!(!changed);
        assert_eq!(probes, [member("n2", 1)]);
        assert_eq!(l.next_wake(), Some(t0 + REPROBE * 2));
    }

    #[test]
    fn a_dead_node_leaves_at_the_first_silent_probe() {
        let t0 = Instant::now();
        let mut l = Liveness::new(GRACE);
        l.down(member("n2", 1), t0);
        assert!(l.probed("n2", false), "no kernel answered: the node is gone");
        assert_eq!(alone(&l), names(&["me"]));
        assert_eq!(l.next_wake(), None, "nothing left to probe");
        assert!(!l.probed("n2", false), "a late probe changes nothing");
    }

    #[test]
    fn the_grace_expires_even_when_the_kernel_keeps_answering() {
        let t0 = Instant::now();
        let mut l = Liveness::new(GRACE);
        l.down(member("n2", 1), t0);
        let mut now = t0;
        while now < t0 + GRACE {
            now += REPROBE;
            l.probed("n2", true);
            let (changed, _) = l.tick(now);
            assert_eq!(changed, now >= t0 + GRACE, "at {:?}", now - t0);
        }
        assert_eq!(alone(&l), names(&["me"]));
        assert_eq!(l.next_wake(), None);
    }

    #[test]
    fn a_goodbye_moves_addresses_at_once_and_needs_no_probe() {
        let t0 = Instant::now();
        let mut l = Liveness::new(GRACE);
        // The goodbye arrives before the failure detector notices.
        assert!(!l.goodbye("n2"), "it was not lingering");
        assert_eq!(l.down(member("n2", 1), t0), None, "no probe, no grace");
        assert_eq!(alone(&l), names(&["me"]));
        // A goodbye of a lingering member ends its grace.
        l.down(member("n3", 1), t0);
        assert!(l.goodbye("n3"));
        assert_eq!(alone(&l), names(&["me"]));
    }

    #[test]
    fn without_grace_a_down_member_leaves_at_once() {
        let mut l = Liveness::new(Duration::ZERO);
        assert_eq!(l.down(member("n2", 1), Instant::now()), None);
        assert_eq!(alone(&l), names(&["me"]));
    }

    #[test]
    fn a_restarted_speaker_takes_its_addresses_back_and_gets_a_grace_again() {
        let t0 = Instant::now();
        let mut l = Liveness::new(GRACE);
        // Stopped on purpose (a rollout), then back with a higher generation.
        l.goodbye("n2");
        assert!(l.up("n2"));
        assert_eq!(l.live(["n2"].into_iter(), "me"), names(&["me", "n2"]));
        // Its goodbye is forgotten: a later crash gets the grace.
        assert!(l.down(member("n2", 2), t0 + GRACE).is_some());
        assert_eq!(alone(&l), names(&["me", "n2"]));
    }

    #[test]
    fn a_healed_partition_makes_a_lingering_member_plain_again() {
        let t0 = Instant::now();
        let mut l = Liveness::new(GRACE);
        l.down(member("n2", 1), t0);
        // The partition heals: the gossip sees n2 again before its grace is over.
        assert!(l.up("n2"));
        assert_eq!(l.next_wake(), None, "no more probes");
        assert!(!l.probed("n2", false), "a probe sent before the heal is ignored");
        assert_eq!(l.live(["n2"].into_iter(), "me"), names(&["me", "n2"]));
        assert_eq!(l.tick(t0 + GRACE * 2), (false, vec![]));
    }
}
