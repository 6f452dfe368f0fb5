//! `Cluster`: a fixture by default, a real cluster given a kubeconfig.

use ferrolb_testserver::{Cluster, TestServer};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn suites_reach_the_cluster_they_are_given() {
    // A kubeconfig naming a running server stands in for a real cluster.
    let real = TestServer::start().await.unwrap();
    let path = std::env::temp_dir().join(format!("ferrolb-cluster-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, real.kubeconfig()).unwrap();
    let cluster = Cluster::from_kubeconfig(Some(&path)).await.unwrap();
    assert!(cluster.fixture().is_none());
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    assert!(namespaces.list(&ListParams::default()).await.unwrap().items.len() >= 4);
    let _ = std::fs::remove_file(path);

    let fixture = Cluster::from_kubeconfig(None).await.unwrap();
    assert!(fixture.fixture().is_some());
    let namespaces: Api<Namespace> = Api::all(fixture.client());
    assert!(namespaces.get("default").await.is_ok());
}
