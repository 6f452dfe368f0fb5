//! What the speaker tells the API: records per node in FerroLB's namespace, labelled
//! with the node — a ServiceL2Status per Service it announces in Layer 2, a
//! ServiceBGPStatus per Service it announces by BGP, a BGPSessionState per BGP session —
//! and Events on Services. Each writer converges the API to the latest desired set,
//! retrying while the API is away; a desired set that changes meanwhile replaces the old
//! one.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_crds::api::{
    Announcement, BGPSessionState, InterfaceInfo, ServiceBGPStatus, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusStatus,
};
use ferrolb_crds::labels;
use ferrolb_crds::service::{ServiceEvent, ServiceKey};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::object::HasStatus;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::api::failures::{Failures, Report};

/// Label naming the node a record belongs to ([`labels::value_of`] its name).
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label naming the Service.
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";
/// Label naming the BGPPeer of a session state ([`labels::value_of`] its name).
pub const PEER_LABEL: &str = "ferrolb.io/peer";
/// The Events' reporting controller.
pub const REPORTER: &str = "ferrolb.io/speaker";

/// The records a node should have: object name → status (shared: the engine hands a
/// copy of 10,000 records to the writer at each change).
pub type Desired<S> = BTreeMap<Arc<str>, Arc<S>>;

/// A kind of per-node record: objects with an empty spec, their content in status.
pub trait Record:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + HasStatus<Status: Clone + PartialEq + Debug + Serialize + Send + Sync + 'static>
    + Default
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Labels that find the object besides the node's.
    fn labels(status: &Self::Status) -> BTreeMap<String, String>;
}

/// The labels of an announcement record (the Service's own name and namespace are
/// valid label values as they are).
fn announcement_labels(a: &Announcement) -> BTreeMap<String, String> {
    [
        (SERVICE_NAME_LABEL.to_string(), a.service_name.clone()),
        (SERVICE_NAMESPACE_LABEL.to_string(), a.service_namespace.clone()),
    ]
    .into()
}

impl Record for ServiceL2Status {
    fn labels(status: &Self::Status) -> BTreeMap<String, String> {
        announcement_labels(&status.announcement)
    }
}

impl Record for ServiceBGPStatus {
    fn labels(status: &Self::Status) -> BTreeMap<String, String> {
        announcement_labels(&status.announcement)
    }
}

impl Record for BGPSessionState {
    fn labels(status: &Self::Status) -> BTreeMap<String, String> {
        [(PEER_LABEL.to_string(), labels::value_of(&status.peer))].into()
    }
}

/// `prefix` and a digest of `text`: an object name stable across restarts, for
/// identities too long (or too ambiguous) to spell out.
fn digest_name(prefix: &str, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The identity of `service` announced from `node` (namespace and name hold no dots,
/// so the name is unambiguous).
fn announcement(prefix: &str, node: &str, service: &ServiceKey) -> (String, Announcement) {
    let ServiceKey { namespace, name } = service;
    let object = format!("{prefix}{node}.{namespace}.{name}");
    let object = match object.len() <= 253 {
        true => object,
        false => digest_name(prefix, &object),
    };
    let announcement = Announcement {
        node: node.into(),
        service_name: name.clone(),
        service_namespace: namespace.clone(),
    };
    (object, announcement)
}

/// The Layer 2 record of `service` announced from `node` on `interfaces`.
pub fn record(node: &str, service: &ServiceKey, interfaces: &[String]) -> (String, ServiceL2StatusStatus) {
    let (object, announcement) = announcement("l2-", node, service);
    let status = ServiceL2StatusStatus {
        announcement,
        interfaces: interfaces
            .iter()
            .map(|i| InterfaceInfo { name: i.clone() })
            .collect(),
    };
    (object, status)
}

/// The BGP record of `service` announced from `node` to `peers`.
pub fn bgp_record<'a>(
    node: &str,
    service: &ServiceKey,
    peers: impl IntoIterator<Item = &'a String>,
) -> (String, ServiceBGPStatusStatus) {
    let (object, announcement) = announcement("bgp-", node, service);
    let status = ServiceBGPStatusStatus {
        announcement,
        peers: peers.into_iter().cloned().collect(),
    };
    (object, status)
}

/// The name of the session state of `node` with `peer`: `NODE.PEER` when the peer's
/// name holds no dot (the last dot then splits it unambiguously), else a digest; a
/// digest too when it would be too long.
pub fn session_name(node: &str, peer: &str) -> String {
    let plain = format!("{node}.{peer}");
    match plain.len() <= 253 && !peer.contains('.') {
        true => plain,
        false => digest_name("session-", &format!("{node}\n{peer}")),
    }
}

/// Starts the writer of the node's records of kind `R` (resync every [`RESYNC`]); send
/// it the desired set.
pub fn start<R: Record>(
    client: Client,
    namespace: &str,
    node: &str,
) -> watch::Sender<Arc<Desired<R::Status>>> {
    let (desired, rx) = watch::channel(Arc::new(Desired::new()));
    tokio::spawn(write_records::<R>(
        client,
        namespace.into(),
        node.into(),
        rx,
        RESYNC,
    ));
    desired
}

/// Keeps the node's objects of kind `R` equal to the latest desired set, listing them
/// again every `resync` (normally [`RESYNC`]).
pub async fn write_records<R: Record>(
    client: Client,
    namespace: String,
    node: String,
    mut desired: watch::Receiver<Arc<Desired<R::Status>>>,
    resync: Duration,
) {
    let kind = R::kind(&());
    let api: Api<R> = Api::namespaced(client, &namespace);
    // What the API holds, as far as this writer knows: listed at the start, after an
    // error and every `resync` (someone may have deleted or edited an object), kept up
    // to date by the writes in between.
    let mut written: Option<Written<R::Status>> = None;
    let mut listed_at = Instant::now();
    let mut failures = Failures::default();
    // Nothing is written before the first plan: the empty set the channel starts with
    // would delete the objects a restarted speaker is about to write again.
    if desired.changed().await.is_err() {
        return;
    }
    loop {
        if listed_at.elapsed() >= resync {
            written = None;
        }
        if written.is_none() {
            listed_at = Instant::now();
        }
        let want = desired.borrow_and_update().clone();
        match converge(&api, &node, &want, &mut written).await {
            Ok(()) => {
                if let Some(count) = failures.succeeded() {
                    tracing::info!(failures = count, %kind, "records written again");
                }
                tokio::select! {
                    changed = desired.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(resync.saturating_sub(listed_at.elapsed())) => {}
                }
            }
            Err(err) => {
                match failures.failed(Instant::now()) {
                    Report::First => {
                        tracing::warn!(error = %err, %kind, "cannot write records; retrying every second")
                    }
                    Report::Again { count } => tracing::warn!(
                        error = %err,
                        %kind,
                        "still cannot write records ({count} since the last report)"
                    ),
                    Report::Quiet => tracing::debug!(error = %err, %kind, "cannot write records"),
                }
                written = None;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = desired.changed() => {}
                }
            }
        }
    }
}

/// How often the writer lists its objects again rather than trust its own record.
pub const RESYNC: Duration = Duration::from_secs(300);

/// The node's objects in the API: name → status (`None`: created, status not yet set).
type Written<S> = BTreeMap<String, Option<Arc<S>>>;

async fn converge<R: Record>(
    api: &Api<R>,
    node: &str,
    want: &Desired<R::Status>,
    written: &mut Option<Written<R::Status>>,
) -> Result<(), kube::Error> {
    let have = match written {
        Some(have) => have,
        None => {
            let list = api
                .list(&ListParams::default().labels(&format!("{NODE_LABEL}={}", labels::value_of(node))))
                .await?;
            written.insert(
                list.items
                    .into_iter()
                    .map(|mut o| {
                        let name = o.meta().name.clone().unwrap_or_default();
                        (name, o.status_mut().take().map(Arc::new))
                    })
                    .collect(),
            )
        }
    };
    for (name, status) in want {
        let name: &str = name;
        match have.get(name) {
            Some(Some(existing)) if existing == status => continue,
            Some(_) => {}
            None => {
                let mut object = R::default();
                object.meta_mut().name = Some(name.to_string());
                let mut labels = R::labels(status);
                // The full name is in status.node; a label holds 63 characters.
                labels.insert(NODE_LABEL.to_string(), labels::value_of(node));
                object.meta_mut().labels = Some(labels);
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
                have.insert(name.to_string(), None);
            }
        }
        let patch = serde_json::json!({ "status": &**status });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        have.insert(name.to_string(), Some(status.clone()));
    }
    let stale: Vec<String> = have
        .keys()
        .filter(|name| !want.contains_key(name.as_str()))
        .cloned()
        .collect();
    for name in stale {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        have.remove(&name);
    }
    Ok(())
}

/// Records Events from a queue; drops (and logs) what the API refuses.
pub async fn write_events(client: Client, node: String, mut events: mpsc::Receiver<ServiceEvent>) {
    while let Some(event) = events.recv().await {
        let api: Api<Event> = Api::namespaced(client.clone(), &event.key.namespace);
        if let Err(err) = api
            .create(&PostParams::default(), &event.object(REPORTER, &node))
            .await
        {
            tracing::debug!(error = %err, service = %event.key, "cannot record Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_named_after_node_and_service() {
        let (name, status) = record("node-a", &ServiceKey::new("web", "app"), &["eth0".into()]);
        assert_eq!(name, "l2-node-a.web.app");
        assert_eq!(status.announcement.service_namespace, "web");
        assert_eq!(status.interfaces[0].name, "eth0");
        let long = "x".repeat(300);
        let (name, _) = record(&long, &ServiceKey::new("web", "app"), &[]);
        assert!(name.len() < 40 && name.starts_with("l2-"));
        let (name, status) = bgp_record("node-a", &ServiceKey::new("web", "app"), &["r1".into()]);
        assert_eq!(name, "bgp-node-a.web.app");
        assert_eq!(status.peers, ["r1"]);
    }

    #[test]
    fn session_states_are_named_after_node_and_peer_unambiguously() {
        assert_eq!(session_name("n1", "router"), "n1.router");
        assert_eq!(session_name("n1.lab", "router"), "n1.lab.router");
        // "a.b.c" + "d" and "a" + "b.c.d" would both read "a.b.c.d".
        let (x, y) = (session_name("a.b.c", "d"), session_name("a", "b.c.d"));
        assert_eq!(x, "a.b.c.d");
        assert!(y.starts_with("session-"), "{y}");
        assert!(session_name(&"n".repeat(250), "router").len() <= 253);
    }
}
