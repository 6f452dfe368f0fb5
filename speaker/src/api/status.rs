//! What the speaker tells the API: a ServiceL2Status per Service it announces (in
//! FerroLB's namespace, labelled with the node and the Service), and Events on Services.
//! The writer converges the API to the latest desired set, retrying while the API is
//! away; a desired set that changes meanwhile replaces the old one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_crds::api::{
    Announcement, InterfaceInfo, ServiceL2Status, ServiceL2StatusSpec, ServiceL2StatusStatus,
};
use ferrolb_crds::labels;
use ferrolb_crds::service::{ServiceEvent, ServiceKey};
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::api::failures::{Failures, Report};

/// Label naming the announcing node ([`labels::value_of`] its name).
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label naming the Service.
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";
/// The Events' reporting controller.
pub const REPORTER: &str = "ferrolb.io/speaker";

/// ServiceL2Status objects this node should have: object name → status.
pub type Desired = BTreeMap<String, ServiceL2StatusStatus>;

/// The status record of `service` announced from `node` on `interfaces`.
pub fn record(node: &str, service: &ServiceKey, interfaces: &[String]) -> (String, ServiceL2StatusStatus) {
    let ServiceKey { namespace, name } = service;
    let object = format!("l2-{node}.{namespace}.{name}");
    let object = if object.len() <= 253 {
        object
    } else {
        // Too long for an object name: a digest of it, stable across restarts.
        let digest = Sha256::digest(object.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("l2-{hex}")
    };
    let status = ServiceL2StatusStatus {
        announcement: Announcement {
            node: node.into(),
            service_name: name.clone(),
            service_namespace: namespace.clone(),
        },
        interfaces: interfaces
            .iter()
            .map(|i| InterfaceInfo { name: i.clone() })
            .collect(),
    };
    (object, status)
}

/// Keeps the node's ServiceL2Status objects equal to the latest desired set, listing
/// them again every `resync` (normally [`RESYNC`]).
pub async fn write_statuses(
    client: Client,
    namespace: String,
    node: String,
    mut desired: watch::Receiver<Arc<Desired>>,
    resync: Duration,
) {
    let api: Api<ServiceL2Status> = Api::namespaced(client, &namespace);
    // What the API holds, as far as this writer knows: listed at the start, after an
    // error and every `resync` (someone may have deleted or edited an object), kept up
    // to date by the writes in between.
    let mut written: Option<Written> = None;
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
                    tracing::info!(failures = count, "ServiceL2Status objects written again");
                }
                tokio::select! {
                    changed = desired.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(resync.saturating_sub(listed_at.elapsed())) => {}
                }
            }
            Err(err) => {
                match failures.failed(Instant::now()) {
                    Report::First => {
                        tracing::warn!(error = %err, "cannot write ServiceL2Status objects; retrying every second")
                    }
                    Report::Again { count } => tracing::warn!(
                        error = %err,
                        "still cannot write ServiceL2Status objects ({count} since the last report)"
                    ),
                    Report::Quiet => tracing::debug!(error = %err, "cannot write ServiceL2Status objects"),
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
type Written = BTreeMap<String, Option<ServiceL2StatusStatus>>;

async fn converge(
    api: &Api<ServiceL2Status>,
    node: &str,
    want: &Desired,
    written: &mut Option<Written>,
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
                    .map(|o| (o.metadata.name.unwrap_or_default(), o.status))
                    .collect(),
            )
        }
    };
    for (name, status) in want {
        match have.get(name) {
            Some(Some(existing)) if existing == status => continue,
            Some(_) => {}
            None => {
                let mut object = ServiceL2Status::new(name, ServiceL2StatusSpec {});
                object.metadata.labels = Some(
                    [
                        // The full name is in status.node; a label holds 63 characters.
                        (NODE_LABEL.to_string(), labels::value_of(node)),
                        (
                            SERVICE_NAME_LABEL.to_string(),
                            status.announcement.service_name.clone(),
                        ),
                        (
                            SERVICE_NAMESPACE_LABEL.to_string(),
                            status.announcement.service_namespace.clone(),
                        ),
                    ]
                    .into(),
                );
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
                have.insert(name.clone(), None);
            }
        }
        let patch = serde_json::json!({ "status": status });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        have.insert(name.clone(), Some(status.clone()));
    }
    let stale: Vec<String> = have
        .keys()
        .filter(|name| !want.contains_key(*name))
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
    }
}
