//! The real helm 4 against the test server with RBAC on (the admin kubeconfig): install
//! of FerroLB's chart (CRDs, release records as protobuf Secrets, `--create-namespace`),
//! upgrade with a changed value and with a bumped chart version, rollback, uninstall.
//! The gossip key the chart generates survives every upgrade (helm's `lookup`).

mod support;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

const NS: &str = "ferrolb-system";

async fn speaker_args(client: &kube::Client) -> Vec<String> {
    let ds = Api::<DaemonSet>::namespaced(client.clone(), NS)
        .get("ferrolb-speaker")
        .await
        .unwrap();
    ds.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

async fn gossip_key(client: &kube::Client) -> Vec<u8> {
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("ferrolb-gossip-key")
        .await
        .unwrap();
    secret.data.unwrap()["key"].0.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_rolls_back_and_uninstalls_the_chart() {
    let Some(binary) = support::binary("FERROLB_HELM", "helm", &["version"]) else {
        return;
    };
    let (server, dir, helm) = support::secure(binary).await;
    let client = server.client();
    let chart = support::repo().join("charts/ferrolb");
    let chart = chart.to_str().unwrap();

    let installed = helm
        .ok(
            &["install", "ferrolb", chart, "-n", NS, "--create-namespace"],
            None,
        )
        .await;
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("ferrolb-controller")
        .await
        .unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));
    assert!(
        speaker_args(&client)
            .await
            .windows(2)
            .any(|w| w == ["--gossip-profile", "default"])
    );
    let key = gossip_key(&client).await;
    assert_eq!(key.len(), 64);

    helm.ok(
        &[
            "upgrade",
            "ferrolb",
            chart,
            "-n",
            NS,
            "--reuse-values",
            "--set",
            "speaker.gossip.profile=fast",
        ],
        None,
    )
    .await;
    assert!(
        speaker_args(&client)
            .await
            .windows(2)
            .any(|w| w == ["--gossip-profile", "fast"])
    );
    assert_eq!(gossip_key(&client).await, key, "the key is kept across upgrades");

    // A new chart version.
    let bumped = dir.path().join("ferrolb");
    let copied = std::process::Command::new("cp")
        .args(["-r", chart])
        .arg(&bumped)
        .status()
        .unwrap();
    assert!(copied.success());
    let manifest = std::fs::read_to_string(bumped.join("Chart.yaml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(
        bumped.join("Chart.yaml"),
        manifest.replace(&format!("version: {version}"), "version: 99.0.0"),
    )
    .unwrap();
    helm.ok(
        &[
            "upgrade",
            "ferrolb",
            bumped.to_str().unwrap(),
            "-n",
            NS,
            "--reuse-values",
        ],
        None,
    )
    .await;
    let listed = helm.ok(&["list", "-n", NS], None).await;
    assert!(listed.contains("ferrolb-99.0.0"), "{listed}");
    assert_eq!(gossip_key(&client).await, key);

    helm.ok(&["rollback", "ferrolb", "1", "-n", NS], None).await;
    assert!(
        speaker_args(&client)
            .await
            .windows(2)
            .any(|w| w == ["--gossip-profile", "default"])
    );
    let history = helm.ok(&["history", "ferrolb", "-n", NS], None).await;
    assert!(
        history.contains("Rollback to 1") && history.contains(&format!("ferrolb-{version}")),
        "{history}"
    );
    assert_eq!(gossip_key(&client).await, key);

    helm.ok(&["uninstall", "ferrolb", "-n", NS], None).await;
    assert!(
        Api::<Deployment>::namespaced(client.clone(), NS)
            .get_opt("ferrolb-controller")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<DaemonSet>::namespaced(client.clone(), NS)
            .get_opt("ferrolb-speaker")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(server.shared.denials(), Vec::<String>::new());
}
