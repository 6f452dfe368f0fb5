//! The `ferrolb-testserver` binary: prints its address, writes a kubeconfig, loads CRDs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn the_binary_serves_with_our_crds_loaded() {
    let dir = std::env::temp_dir().join(format!("ferrolb-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/ferrolb/crds");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb-testserver"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .arg("--crds")
        .arg(&crds)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.trim().starts_with("127.0.0.1:"), "{line}");

    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let files = std::fs::read_dir(&crds).unwrap().count();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    assert_eq!(
        crds.list(&ListParams::default()).await.unwrap().items.len(),
        files
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
