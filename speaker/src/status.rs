//! What the speaker tells the API: a ServiceL2Status per Service it announces (in
//! FerroLB's namespace, labelled with the node and the Service), and Events on Services.
//! The writer converges the API to the latest desired set, retrying while the API is
//! away; a desired set that changes meanwhile replaces the old one.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_crds::api::{
    Announcement, InterfaceInfo, ServiceL2Status, ServiceL2StatusSpec, ServiceL2StatusStatus,
};
use ferrolb_crds::service::ServiceEvent;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use tokio::sync::{mpsc, watch};

/// Label naming the announcing node.
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label naming the Service.
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";
/// The Events' reporting controller.
pub const REPORTER: &str = "ferrolb.io/speaker";

/// ServiceL2Status objects this node should have: object name → status.
pub type Desired = BTreeMap<String, ServiceL2StatusStatus>;

/// The status record of `service` (`namespace/name`) announced from `node` on `interfaces`.
pub fn record(node: &str, service: &str, interfaces: &[String]) -> (String, ServiceL2StatusStatus) {
    let (namespace, name) = service.split_once('/').unwrap_or(("", service));
    let object = format!("l2-{node}.{namespace}.{name}");
    let object = if object.len() <= 253 {
        object
    } else {
        format!(
            "l2-{:016x}",
            crate::planner::rank(&object, std::net::Ipv4Addr::UNSPECIFIED.into())
        )
    };
    let status = ServiceL2StatusStatus {
        announcement: Announcement {
            node: node.into(),
            service_name: name.into(),
            service_namespace: namespace.into(),
        },
        interfaces: interfaces
            .iter()
            .map(|i| InterfaceInfo { name: i.clone() })
            .collect(),
    };
    (object, status)
}

/// Keeps the node's ServiceL2Status objects equal to the latest desired set.
pub async fn write_statuses(
    client: Client,
    namespace: String,
    node: String,
    mut desired: watch::Receiver<Desired>,
) {
    let api: Api<ServiceL2Status> = Api::namespaced(client, &namespace);
    loop {
        let want = desired.borrow_and_update().clone();
        match converge(&api, &node, &want).await {
            Ok(()) => {
                if desired.changed().await.is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot write ServiceL2Status objects; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = desired.changed() => {}
                }
            }
        }
    }
}

async fn converge(api: &Api<ServiceL2Status>, node: &str, want: &Desired) -> Result<(), kube::Error> {
    let have = api
        .list(&ListParams::default().labels(&format!("{NODE_LABEL}={node}")))
        .await?;
    let mut have: BTreeMap<String, ServiceL2Status> = have
        .items
        .into_iter()
        .map(|o| (o.metadata.name.clone().unwrap_or_default(), o))
        .collect();
    for (name, status) in want {
        match have.remove(name) {
            Some(existing) if existing.status.as_ref() == Some(status) => continue,
            Some(_) => {}
            None => {
                let mut object = ServiceL2Status::new(name, ServiceL2StatusSpec {});
                object.metadata.labels = Some(
                    [
                        (NODE_LABEL.to_string(), node.to_string()),
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
            }
        }
        let patch = serde_json::json!({ "status": status });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    for name in have.keys() {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Records Events from a queue; drops (and logs) what the API refuses.
pub async fn write_events(client: Client, node: String, mut events: mpsc::Receiver<ServiceEvent>) {
    while let Some(event) = events.recv().await {
        let api: Api<Event> = Api::namespaced(client.clone(), &event.namespace);
        if let Err(err) = api
            .create(&PostParams::default(), &event.object(REPORTER, &node))
            .await
        {
            tracing::debug!(error = %err, service = %event.name, "cannot record Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_named_after_node_and_service() {
        let (name, status) = record("node-a", "web/app", &["eth0".into()]);
        assert_eq!(name, "l2-node-a.web.app");
        assert_eq!(status.announcement.service_namespace, "web");
        assert_eq!(status.interfaces[0].name, "eth0");
        let long = "x".repeat(300);
        let (name, _) = record(&long, "web/app", &[]);
        assert!(name.len() < 40 && name.starts_with("l2-"));
    }
}
