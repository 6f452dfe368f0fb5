//! The speaker's copy of the API: one watch per kind, keeping of each object only what
//! the speaker reads. A full Service or EndpointSlice costs kilobytes in memory; the
//! record the planner needs, a few hundred bytes, and a node may watch thousands.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use tokio::sync::{Notify, watch};

/// Objects per list page: a relist holds one page of full objects at a time.
const PAGE_SIZE: u32 = 100;

/// Records of one watched kind, keyed by `namespace/name` (`name` when cluster-wide).
pub struct Records<D> {
    map: Arc<RwLock<BTreeMap<String, D>>>,
    listed: watch::Receiver<bool>,
}

impl<D: Send + Sync + 'static> Records<D> {
    /// Starts a watch of `api` that keeps `record(object)` of each object (`None`:
    /// nothing the speaker needs, the object is left out). Every event wakes `dirty`.
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
        tokio::spawn(async move {
            let stream = watcher::watcher(api, config).default_backoff();
            let mut stream = std::pin::pin!(stream);
            // A relist builds a new map, swapped in whole when complete: objects deleted
            // while the watch was down are absent from it.
            let mut relist: Option<BTreeMap<String, D>> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => relist = Some(BTreeMap::new()),
                    Ok(Event::InitApply(object)) => {
                        let key = key(&object);
                        if let (Some(relist), Some(r)) = (&mut relist, record(object)) {
                            relist.insert(key, r);
                        }
                    }
                    Ok(Event::InitDone) => {
                        if let Some(relist) = relist.take() {
                            *write(&map) = relist;
                        }
                        listed_tx.send_replace(true);
                    }
                    Ok(Event::Apply(object)) => {
                        let key = key(&object);
                        match record(object) {
                            Some(r) => write(&map).insert(key, r),
                            None => write(&map).remove(&key),
                        };
                    }
                    Ok(Event::Delete(object)) => {
                        write(&map).remove(&key(&object));
                    }
                    Err(err) => tracing::debug!(error = %err, "watch error (retrying)"),
                }
                dirty.notify_one();
            }
        });
        records
    }

    /// Waits for the first complete list; an error if the watch ended before it.
    pub async fn listed(&self) -> anyhow::Result<()> {
        let mut listed = self.listed.clone();
        listed
            .wait_for(|done| *done)
            .await
            .map(|_| ())
            .map_err(|_| anyhow::anyhow!("a watch ended before its first list"))
    }

    /// Reads the records.
    pub fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, D>) -> T) -> T {
        f(&self.map.read().unwrap_or_else(|e| e.into_inner()))
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
