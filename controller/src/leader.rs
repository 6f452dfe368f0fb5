//! Leader election on a coordination.k8s.io Lease, the way client-go does it: every
//! change to the Lease is a replace carrying the resourceVersion that was read, so two
//! candidates can never both win the same term (the loser gets 409 Conflict). A leader
//! that cannot renew within the renew deadline steps down before the Lease expires,
//! so the next leader never overlaps with it. Expiry is judged by each replica's own
//! monotonic clock (see [`Observer`]), so clock skew between nodes does not matter.
//!
//! (kube-lease-manager was considered; it relies on server-side-apply field ownership
//! for mutual exclusion, which our test API server does not model and which leaves a
//! window when renewals are plain patches.)

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

/// Timing of the election.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down (shorter than the lease).
    pub renew_deadline: Duration,
    /// How often candidates and the leader try.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// Somebody else holds it.
    Wait,
}

/// What a candidate last saw of the Lease, and when by its own monotonic clock.
///
/// The `renewTime` in the Lease is the holder's wall clock; compared with another
/// replica's clock it is off by their skew, and a few seconds of skew would let a
/// standby take over while the leader still renews. So, as client-go does, a standby
/// never reads the holder's time: it notes when (locally) it last saw the Lease change,
/// and deems it expired `leaseDurationSeconds` after that.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    last: Option<Observed>,
}

#[derive(Clone, Debug)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
    resource_version: Option<String>,
    lease_duration: Duration,
    at: Instant,
}

impl Observed {
    fn of(lease: &Lease, at: Instant) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions,
            resource_version: lease.metadata.resource_version.clone(),
            lease_duration: Duration::from_secs(
                spec.lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
            ),
            at,
        }
    }

    fn same_record(&self, other: &Self) -> bool {
        self.holder == other.holder
            && self.renew_time == other.renew_time
            && self.transitions == other.transitions
            && self.resource_version == other.resource_version
    }
}

impl Observer {
    /// Notes `lease` as read at local time `now` and decides what `me` should do.
    pub fn decide(&mut self, lease: &Lease, me: &str, now: Instant) -> Step {
        let seen = Observed::of(lease, now);
        let last = match self.last.take() {
            Some(last) if last.same_record(&seen) => last,
            _ => seen,
        };
        let step = match last.holder.as_deref() {
            // The holder renews by its own clock: nobody else's matters to it.
            Some(holder) if holder == me => Step::Renew,
            None => Step::Acquire,
            Some(_) if now.saturating_duration_since(last.at) > last.lease_duration => Step::Acquire,
            Some(_) => Step::Wait,
        };
        self.last = Some(last);
        step
    }

    /// Notes `lease` as written by `me` at local time `now` (what the API returned).
    pub fn wrote(&mut self, lease: &Lease, now: Instant) {
        self.last = Some(Observed::of(lease, now));
    }
}

/// The spec `me` writes for `step` on top of `old`.
pub fn next_spec(old: &LeaseSpec, step: &Step, me: &str, timing: &Timing, now: Timestamp) -> LeaseSpec {
    let mut spec = old.clone();
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(timing.lease_duration.as_secs().try_into().unwrap_or(i32::MAX));
    if *step == Step::Acquire {
        spec.holder_identity = Some(me.into());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions =
            Some(old.lease_transitions.unwrap_or(0) + i32::from(old.holder_identity.is_some()));
    }
    spec
}

/// Runs the election until `stop` turns true, publishing leadership on `leader`; when
/// stopping, gives the Lease up if held so that another replica takes over at once.
pub async fn campaign(
    api: Api<Lease>,
    name: String,
    me: String,
    timing: Timing,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_renewal: Option<tokio::time::Instant> = None;
    let mut observer = Observer::default();
    let publish = |holding: bool| {
        leader.send_if_modified(|current| {
            let changed = *current != holding;
            if changed {
                tracing::info!(identity = %me, leader = holding, "leadership changed");
            }
            *current = holding;
            changed
        });
    };
    loop {
        // Step down the moment the renew deadline passes, even while a request hangs.
        let step_down = deadline_of(last_renewal, timing.renew_deadline);
        tokio::select! {
            result = tokio::time::timeout(timing.renew_deadline, try_once(&api, &name, &me, &timing, &mut observer)) => {
                match result {
                    Ok(Ok(true)) => last_renewal = Some(tokio::time::Instant::now()),
                    Ok(Ok(false)) => last_renewal = None,
                    Ok(Err(error)) => tracing::warn!(%error, lease = %name, "lease update failed"),
                    Err(_) => tracing::warn!(lease = %name, "lease update timed out"),
                }
            }
            _ = step_down => last_renewal = None,
            _ = stop.wait_for(|s| *s) => break,
        }
        publish(last_renewal.is_some_and(|t| t.elapsed() < timing.renew_deadline));
        let step_down = deadline_of(last_renewal, timing.renew_deadline);
        tokio::select! {
            _ = tokio::time::sleep(timing.retry_period) => {}
            _ = step_down => {
                last_renewal = None;
                publish(false);
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    publish(false);
    if last_renewal.is_some() {
        if let Err(error) = release(&api, &name, &me).await {
            tracing::warn!(%error, lease = %name, "could not release the lease");
        } else {
            tracing::info!(lease = %name, "lease released");
        }
    }
}

/// Completes when the renew deadline after `last_renewal` passes; never without one.
async fn deadline_of(last_renewal: Option<tokio::time::Instant>, renew_deadline: Duration) {
    match last_renewal {
        Some(t) => tokio::time::sleep_until(t + renew_deadline).await,
        None => std::future::pending().await,
    }
}

/// One read-decide-write round; `Ok(true)` when we hold the Lease afterwards.
async fn try_once(
    api: &Api<Lease>,
    name: &str,
    me: &str,
    timing: &Timing,
    observer: &mut Observer,
) -> kube::Result<bool> {
    // The wall clock only goes into what we write; expiry is judged by the local one.
    let now = Timestamp::now();
    let Some(lease) = api.get_opt(name).await? else {
        let spec = next_spec(&LeaseSpec::default(), &Step::Acquire, me, timing, now);
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                observer.wrote(&created, Instant::now());
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let old = lease.spec.clone().unwrap_or_default();
    let step = observer.decide(&lease, me, Instant::now());
    if step == Step::Wait {
        return Ok(false);
    }
    let mut updated = lease;
    updated.spec = Some(next_spec(&old, &step, me, timing, now));
    match api.replace(name, &PostParams::default(), &updated).await {
        Ok(written) => {
            observer.wrote(&written, Instant::now());
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, name: &str, me: &str) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(me) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    spec.acquire_time = None;
    api.replace(name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(holder: Option<&str>, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(String::from),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    fn lease(spec: LeaseSpec, version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    #[test]
    fn decisions() {
        let now = Instant::now();
        let decide = |spec| Observer::default().decide(&lease(spec, "1"), "me", now);
        // Our own Lease, however old its renewTime looks.
        assert_eq!(decide(spec(Some("me"), "2020-01-01T00:00:00Z")), Step::Renew);
        assert_eq!(decide(spec(None, "2026-11-23T10:00:19Z")), Step::Acquire);
        assert_eq!(decide(spec(Some(""), "2026-11-23T10:00:19Z")), Step::Acquire);
        // Another holder's Lease seen for the first time is fresh, whatever its time says.
        assert_eq!(decide(spec(Some("other"), "2020-01-01T00:00:00Z")), Step::Wait);
    }

    #[test]
    fn another_holders_lease_expires_a_lease_duration_after_it_last_changed() {
        let t0 = Instant::now();
        let secs = |s| t0 + Duration::from_secs(s);
        let mut observer = Observer::default();
        let held = lease(spec(Some("other"), "2026-11-23T10:00:00Z"), "1");
        assert_eq!(observer.decide(&held, "me", secs(0)), Step::Wait);
        assert_eq!(observer.decide(&held, "me", secs(15)), Step::Wait);
        // A write of any kind (here: only the resourceVersion moved) restarts the count.
        let touched = lease(spec(Some("other"), "2026-11-23T10:00:00Z"), "2");
        assert_eq!(observer.decide(&touched, "me", secs(14)), Step::Wait);
        assert_eq!(observer.decide(&touched, "me", secs(29)), Step::Wait);
        assert_eq!(observer.decide(&touched, "me", secs(30)), Step::Acquire);
        // What we wrote ourselves counts as seen when we wrote it.
        let mut ours = touched.clone();
        ours.spec = Some(spec(Some("me"), "2026-11-23T10:00:30Z"));
        observer.wrote(&ours, secs(30));
        assert_eq!(observer.decide(&ours, "me", secs(100)), Step::Renew);
    }

    /// A holder whose clock is `skew` ahead of the standby's renews every 2 s for a
    /// minute, then dies; the standby looks every 2 s (offset by 1 s) and must wait
    /// exactly as long as without skew.
    fn standby_against_a_skewed_holder(skew: SignedDuration) {
        let timing = Timing::default();
        let base_wall = at("2026-11-23T10:00:00Z");
        let base_local = Instant::now();
        let mut held = Lease::default();
        let mut version = 0;
        let mut write = |held: &mut Lease, spec: LeaseSpec| {
            version += 1;
            held.metadata.resource_version = Some(version.to_string());
            held.spec = Some(spec);
        };
        let holder_wall = |t: i64| base_wall.saturating_add(skew).unwrap() + SignedDuration::from_secs(t);
        let spec = next_spec(
            &LeaseSpec::default(),
            &Step::Acquire,
            "holder",
            &timing,
            holder_wall(0),
        );
        write(&mut held, spec);
        let mut standby = Observer::default();
        let mut last_renewal = 0;
        for t in 1..=200u64 {
            if t % 2 == 0 && t <= 60 {
                let old = held.spec.clone().unwrap();
                let renewed = next_spec(&old, &Step::Renew, "holder", &timing, holder_wall(t as i64));
                write(&mut held, renewed);
                last_renewal = t;
            }
            if t % 2 == 1 {
                let step = standby.decide(&held, "standby", base_local + Duration::from_secs(t));
                // The standby saw the last renewal at its next look, one second later.
                let expired = t > last_renewal + 1 + timing.lease_duration.as_secs();
                let want = if expired { Step::Acquire } else { Step::Wait };
                assert_eq!(
                    step, want,
                    "skew {skew}, t = {t} s, last renewal at {last_renewal} s"
                );
                if expired {
                    return;
                }
            }
        }
        panic!("skew {skew}: the standby never took over");
    }

    #[test]
    fn a_holder_an_hour_behind_keeps_the_lease_while_it_renews() {
        standby_against_a_skewed_holder(SignedDuration::from_hours(-1));
    }

    #[test]
    fn a_holder_an_hour_ahead_loses_the_lease_a_lease_duration_after_it_stops() {
        standby_against_a_skewed_holder(SignedDuration::from_hours(1));
    }

    #[test]
    fn without_skew_the_same() {
        standby_against_a_skewed_holder(SignedDuration::ZERO);
    }

    #[test]
    fn acquiring_counts_transitions() {
        let now = at("2026-11-23T10:00:20Z");
        let timing = Timing::default();
        let old = spec(Some("other"), "2026-11-23T09:00:00Z");
        let new = next_spec(&old, &Step::Acquire, "me", &timing, now);
        assert_eq!(new.holder_identity.as_deref(), Some("me"));
        assert_eq!(new.lease_transitions, Some(1));
        let renewed = next_spec(&new, &Step::Renew, "me", &timing, at("2026-11-23T10:00:22Z"));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, new.acquire_time);
    }
}
