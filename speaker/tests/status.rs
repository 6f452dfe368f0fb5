//! The ServiceL2Status writer against an API server (the in-memory test server, or the
//! cluster of `$FERROLB_KUBECONFIG`): it converges to the latest desired set, repairs
//! what someone else deleted at its next resync, and catches up after the API was away.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_crds::api::{ServiceL2Status, ServiceL2StatusStatus};
use ferrolb_crds::service::ServiceKey;
use ferrolb_speaker::api::status::{self, Desired, NODE_LABEL};
use ferrolb_testserver::{Cluster, load_crds};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::sync::watch;

const NS: &str = "ferrolb-system";

async fn cluster() -> (Cluster, kube::Client) {
    let cluster = Cluster::from_env().await.expect("cluster");
    if let Some(server) = cluster.fixture() {
        let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds");
        load_crds(&server.shared, &crds).expect("CRDs");
    }
    let client = cluster.client();
    let namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await;
    (cluster, client)
}

/// A status writer for `node` with a 1 s resync; send it desired sets.
fn writer(
    client: &kube::Client,
    node: &str,
) -> (
    watch::Sender<Arc<Desired<ServiceL2StatusStatus>>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = watch::channel(Arc::new(Desired::new()));
    let task = tokio::spawn(status::write_records::<ServiceL2Status>(
        client.clone(),
        NS.into(),
        node.to_string(),
        rx,
        Duration::from_secs(1),
    ));
    (tx, task)
}

fn desired(node: &str, services: &[(&str, &str)]) -> Arc<Desired<ServiceL2StatusStatus>> {
    Arc::new(
        services
            .iter()
            .map(|(service, iface)| {
                let (namespace, name) = service.split_once('/').expect("namespace/name");
                let (object, record) =
                    status::record(node, &ServiceKey::new(namespace, name), &[iface.to_string()]);
                (object.into(), Arc::new(record))
            })
            .collect(),
    )
}

/// The node's objects in the API: name → status.
async fn objects(api: &Api<ServiceL2Status>, node: &str) -> Desired<ServiceL2StatusStatus> {
    let label = ferrolb_crds::labels::value_of(node);
    api.list(&ListParams::default().labels(&format!("{NODE_LABEL}={label}")))
        .await
        .map(|list| {
            list.items
                .into_iter()
                .filter_map(|o| Some((o.metadata.name?.into(), Arc::new(o.status?))))
                .collect()
        })
        .unwrap_or_default()
}

async fn until_equal(
    api: &Api<ServiceL2Status>,
    node: &str,
    want: &Desired<ServiceL2StatusStatus>,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let have = objects(api, node).await;
        if have == *want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the API holds {have:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_the_desired_set_and_are_repaired() {
    let (mut cluster, client) = cluster().await;
    let node = format!("status-test-{}", std::process::id());
    let api: Api<ServiceL2Status> = Api::namespaced(client.clone(), NS);
    let (tx, writer) = writer(&client, &node);

    let first = desired(&node, &[("web/a", "eth0"), ("web/b", "eth0")]);
    tx.send_replace(first.clone());
    until_equal(&api, &node, &first, "created").await;

    let second = desired(&node, &[("web/a", "eth1")]);
    tx.send_replace(second.clone());
    until_equal(&api, &node, &second, "one changed, one withdrawn").await;

    // Deleted behind the writer's back: back at the next resync.
    let (name, _) = second.iter().next().unwrap();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    until_equal(&api, &node, &second, "repaired after a deletion").await;

    if let Cluster::Fixture(server) = &mut cluster {
        // Changes made while the API is away are written once it is back.
        server.stop();
        let third = desired(&node, &[("web/c", "eth0")]);
        tx.send_replace(third.clone());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.restart().await.unwrap();
        until_equal(&api, &node, &third, "caught up after the API came back").await;
    }

    tx.send_replace(Arc::new(Desired::new()));
    until_equal(&api, &node, &Desired::new(), "all withdrawn").await;
    writer.abort();
}

/// A restarted writer touches nothing before its first desired set: the objects of
/// the previous run stay (they used to be deleted at start and written again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_writer_waits_for_its_first_plan() {
    let (_cluster, client) = cluster().await;
    let node = format!("restart-test-{}", std::process::id());
    let api: Api<ServiceL2Status> = Api::namespaced(client.clone(), NS);
    let want = desired(&node, &[("web/a", "eth0")]);
    let (tx, first) = writer(&client, &node);
    tx.send_replace(want.clone());
    until_equal(&api, &node, &want, "written by the first run").await;
    first.abort();

    let (tx, second) = writer(&client, &node);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(objects(&api, &node).await, *want, "kept until the first plan");
    tx.send_replace(Arc::new(Desired::new()));
    until_equal(&api, &node, &Desired::new(), "withdrawn by the first plan").await;
    second.abort();
}

/// Node names may have 253 characters, label values 63: the writer still converges
/// (it used to retry a create the API refused, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_name_longer_than_a_label_value_still_gets_its_statuses() {
    let (_cluster, client) = cluster().await;
    let node = format!("{}p{}.example.com", "worker-".repeat(30), std::process::id());
    assert!(node.len() > 200);
    let api: Api<ServiceL2Status> = Api::namespaced(client.clone(), NS);
    let (tx, writer) = writer(&client, &node);
    let want = desired(&node, &[("web/a", "eth0")]);
    tx.send_replace(want.clone());
    until_equal(&api, &node, &want, "created with a long node name").await;
    let written = api.list(&ListParams::default()).await.unwrap();
    let object = written
        .items
        .iter()
        .find(|o| o.status.as_ref().is_some_and(|s| s.announcement.node == node))
        .expect("the status names the full node name");
    assert!(object.metadata.labels.as_ref().unwrap()[NODE_LABEL].len() <= 63);
    writer.abort();
}
