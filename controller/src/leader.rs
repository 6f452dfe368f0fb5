//! Leader election on a coordination.k8s.io Lease, the way client-go does it: every
//! change to the Lease is a replace carrying the resourceVersion that was read, so two
//! candidates can never both win the same term (the loser gets 409 Conflict). A leader
//! that cannot renew within the renew deadline steps down before the Lease expires,
//! so the next leader never overlaps with it.
//!
//! (kube-lease-manager was considered; it relies on server-side-apply field ownership
//! for mutual exclusion, which our test API server does not model and which leaves a
//! window when renewals are plain patches.)

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
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

/// Decides, from the Lease's spec, what `me` should do at `now`.
pub fn decide(spec: &LeaseSpec, me: &str, now: Timestamp) -> Step {
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) => {
            let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
            match &spec.renew_time {
                Some(MicroTime(renewed)) if renewed.saturating_add(duration).ok() >= Some(now) => Step::Wait,
                _ => Step::Acquire,
            }
        }
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
            result = tokio::time::timeout(timing.renew_deadline, try_once(&api, &name, &me, &timing)) => {
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
async fn try_once(api: &Api<Lease>, name: &str, me: &str, timing: &Timing) -> kube::Result<bool> {
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
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let old = lease.spec.clone().unwrap_or_default();
    let step = decide(&old, me, now);
    if step == Step::Wait {
        return Ok(false);
    }
    let mut updated = lease;
    updated.spec = Some(next_spec(&old, &step, me, timing, now));
    match api.replace(name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(true),
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

    #[test]
    fn decisions() {
        let now = at("2026-11-23T10:00:20Z");
        assert_eq!(
            decide(&spec(Some("me"), "2026-11-23T09:00:00Z"), "me", now),
            Step::Renew
        );
        assert_eq!(
            decide(&spec(None, "2026-11-23T10:00:19Z"), "me", now),
            Step::Acquire
        );
        assert_eq!(
            decide(&spec(Some("other"), "2026-11-23T10:00:10Z"), "me", now),
            Step::Wait
        );
        assert_eq!(
            decide(&spec(Some("other"), "2026-11-23T10:00:04Z"), "me", now),
            Step::Acquire
        );
        assert_eq!(
            decide(
                &LeaseSpec {
                    holder_identity: Some("x".into()),
                    ..LeaseSpec::default()
                },
                "me",
                now
            ),
            Step::Acquire
        );
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
