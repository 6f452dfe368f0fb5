//! The speaker's copy of the API: one watch per kind, keeping of each object only what
//! the speaker reads. A full Service or EndpointSlice costs kilobytes in memory; the
//! record the planner needs, a few hundred bytes, and a node may watch thousands.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use rand::RngExt;
use tokio::sync::{Notify, watch};

use crate::api::failures::{Failures, Report};

/// Objects per list page: a relist holds one page of full objects at a time. 500 (as
/// kube-runtime's default): at 100 the initial lists of 10,000 Services and their
/// EndpointSlices took 200 round trips, most of a 5 s start; the peak memory did not
/// move (BENCHMARKS.md).
const PAGE_SIZE: u32 = 500;

/// How the wait for a first list ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// The first list is complete.
    Complete,
    /// The speaker was asked to stop first.
    Stopped,
}

/// The watch task ended before its first list (it never ends on its own).
#[derive(Debug, thiserror::Error)]
#[error("a watch ended before its first list")]
pub struct WatchEnded;

/// Records of one watched kind, keyed by `namespace/name` (`name` when cluster-wide).
pub struct Records<D> {
    map: Arc<RwLock<BTreeMap<String, D>>>,
    listed: watch::Receiver<bool>,
}

impl<D: PartialEq + Send + Sync + 'static> Records<D> {
    /// Starts a watch of `api` that keeps `record(object)` of each object (`None`:
    /// nothing the speaker needs, the object is left out). A change of the records
    /// wakes `dirty`; an event that leaves them as they were does not (a Node's
    /// heartbeat, a Service's status written before it has an address, a pool's usage:
    /// each would otherwise replan every Service).
    pub fn watch<K>(
        api: Api<K>,
        dirty: &Arc<Notify>,
        record: impl Fn(K) -> Option<D> + Send + 'static,
    ) -> Self
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
        K::DynamicType: Default,
    {
        let map = Arc::new(RwLock::new(BTreeMap::new()));
        let (listed_tx, listed) = watch::channel(false);
        let records = Self {
            map: map.clone(),
            listed,
        };
        let dirty = dirty.clone();
        let config = watcher::Config::default().page_size(PAGE_SIZE);
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        tokio::spawn(async move {
            // Not kube's `default_backoff()`: it resets on every Ok item, and the watcher
            // yields `Init` before each attempt to list, so with the API unreachable it
            // retried every second forever.
            let stream = watcher::watcher(api, config);
            let mut stream = std::pin::pin!(stream);
            // A relist builds a new map, swapped in whole when complete: objects deleted
            // while the watch was down are absent from it.
            let mut relist: Option<BTreeMap<String, D>> = None;
            let mut failures = Failures::default();
            while let Some(event) = stream.next().await {
                let event = match event {
                    // `Init` opens each attempt at a list, before any request succeeded.
                    Ok(Event::Init) => Event::Init,
                    Ok(event) => {
                        if let Some(count) = failures.succeeded() {
                            tracing::info!(%kind, failures = count, "watch working again");
                        }
                        event
                    }
                    Err(err) => {
                        report(&kind, &err, failures.failed(Instant::now()));
                        // Jitter spreads the speakers of all nodes after an API outage.
                        let jitter = 1.0 + rand::rng().random_range(0.0..0.25);
                        tokio::time::sleep(failures.retry_delay().mul_f64(jitter)).await;
                        continue;
                    }
                };
                let changed = match event {
                    Event::Init => {
                        relist = Some(BTreeMap::new());
                        false
                    }
                    Event::InitApply(object) => {
                        let key = key(&object);
                        if let (Some(relist), Some(r)) = (&mut relist, record(object)) {
                            relist.insert(key, r);
                        }
                        false
                    }
                    Event::InitDone => {
                        if let Some(relist) = relist.take() {
                            *write(&map) = relist;
                        }
                        listed_tx.send_replace(true);
                        true
                    }
                    Event::Apply(object) => {
                        let key = key(&object);
                        let mut map = write(&map);
                        match record(object) {
                            Some(r) if map.get(&key) == Some(&r) => false,
                            Some(r) => {
                                map.insert(key, r);
                                true
                            }
                            None => map.remove(&key).is_some(),
                        }
                    }
                    Event::Delete(object) => write(&map).remove(&key(&object)).is_some(),
                };
                if changed {
                    dirty.notify_one();
                }
            }
        });
        records
    }

    /// Waits for the first complete list, or until `stop` turns true: with the API
    /// unreachable the list may never come, and a stop must not wait for it.
    pub async fn listed(&self, stop: &mut watch::Receiver<bool>) -> Result<Listed, WatchEnded> {
        let mut listed = self.listed.clone();
        tokio::select! {
            biased;
            // A dropped sender can no longer ask to stop: keep waiting for the list.
            Ok(_) = stop.wait_for(|stop| *stop) => Ok(Listed::Stopped),
            done = listed.wait_for(|done| *done) => done.map(|_| Listed::Complete).map_err(|_| WatchEnded),
        }
    }

    /// Reads the records.
    pub fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, D>) -> T) -> T {
        f(&self.map.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Logs a watch failure as `failures` says: the first, then a count now and then.
fn report(kind: &str, err: &watcher::Error, report: Report) {
    match report {
        Report::First => tracing::warn!(%kind, error = %err, "watch failed; retrying with backoff"),
        Report::Again { count } => {
            tracing::warn!(%kind, error = %err, "watch still failing ({count} since the last report)")
        }
        Report::Quiet => tracing::debug!(%kind, error = %err, "watch failed again"),
    }
}

fn write<D>(map: &RwLock<BTreeMap<String, D>>) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, D>> {
    // A panic while writing cannot leave a half-inserted map: the last state is fine.
    map.write().unwrap_or_else(|e| e.into_inner())
}

fn key<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}
