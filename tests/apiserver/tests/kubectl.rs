//! The test server driven by the real kubectl (1.35, installed by scripts/test.sh as
//! $FERROLB_KUBECTL): client-side and server-side apply, get (tables and -o yaml),
//! custom resources, patch of status, wait, delete.

mod support;

use std::path::Path;

use ferrolb_testserver::TestServer;
use support::{Dir, Tool};

async fn setup() -> Option<(TestServer, Tool, Dir)> {
    let binary = support::binary("FERROLB_KUBECTL", "kubectl", &["version", "--client"])?;
    let server = TestServer::start().await.unwrap();
    let dir = Dir::new();
    let kubeconfig = support::admin_kubeconfig(&server, &dir);
    Some((server, Tool { binary, kubeconfig }, dir))
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

#[tokio::test]
async fn kubectl_applies_gets_patches_waits_and_deletes() {
    let Some((_server, k, _dir)) = setup().await else {
        return;
    };
    assert!(
        k.ok(&["apply", "-f", "-"], Some(SERVICE))
            .await
            .contains("service/web created")
    );
    assert!(
        k.ok(&["apply", "-f", "-"], Some(SERVICE))
            .await
            .contains("unchanged")
    );
    let table = k.ok(&["get", "svc", "web"], None).await;
    assert!(
        table.contains("EXTERNAL-IP") && table.contains("<pending>"),
        "{table}"
    );
    let yaml = k.ok(&["get", "svc", "web", "-o", "yaml"], None).await;
    assert!(
        yaml.contains("clusterIP:") && yaml.contains("nodePort:"),
        "{yaml}"
    );

    let status = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"10.42.0.200"}]}}}"#;
    k.ok(
        &[
            "patch",
            "svc",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
        None,
    )
    .await;
    let waited = k
        .ok(
            &[
                "wait",
                "--for=jsonpath={.status.loadBalancer.ingress[0].ip}=10.42.0.200",
                "svc/web",
                "--timeout=10s",
            ],
            None,
        )
        .await;
    assert!(waited.contains("condition met"), "{waited}");
    assert!(k.ok(&["get", "svc", "web"], None).await.contains("10.42.0.200"));

    let changed = SERVICE.replace("port: 80", "port: 81");
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&changed)).await;
    assert!(
        k.ok(
            &["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}"],
            None
        )
        .await
        .contains("81")
    );

    k.ok(&["delete", "svc", "web"], None).await;
    let (found, text) = k.run(&["get", "svc", "web"], None).await;
    assert!(!found && text.contains("NotFound"), "{text}");
}

#[tokio::test]
async fn kubectl_installs_our_crds_and_manages_custom_resources() {
    let Some((_server, k, _dir)) = setup().await else {
        return;
    };
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/ferrolb/crds");
    k.ok(&["apply", "-f", crds.to_str().unwrap()], None).await;
    // kubectl's imperative commands send protobuf bodies.
    k.ok(&["create", "namespace", "ferrolb-system"], None).await;
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/l2-dual-stack.yaml"),
    )
    .unwrap();
    k.ok(&["apply", "-f", "-"], Some(&example)).await;
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&example)).await;
    let pools = k
        .ok(&["get", "ipaddresspools", "-n", "ferrolb-system"], None)
        .await;
    assert!(
        pools.contains("AUTO ASSIGN") && pools.contains("true") && pools.contains("10.42.0.200-10.42.0.250"),
        "{pools}"
    );
    let ads = k
        .ok(&["get", "l2adv", "-n", "ferrolb-system", "-o", "yaml"], None)
        .await;
    assert!(ads.contains("ipAddressPools"), "{ads}");

    // The CRD's CEL rules reject a bad pool at apply time, naming the field.
    let bad = example.replace("10.42.0.200-10.42.0.250", "10.42.0.250-10.42.0.200");
    let (accepted, text) = k.run(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(!accepted && text.contains("spec.addresses[0]"), "{text}");

    k.ok(&["delete", "-f", "-"], Some(&example)).await;
    assert!(
        k.ok(&["get", "ipp", "-n", "ferrolb-system"], None)
            .await
            .contains("No resources")
    );
}

#[tokio::test]
async fn events_written_through_either_api_are_read_through_both() {
    let Some((server, k, _dir)) = setup().await else {
        return;
    };
    k.ok(&["apply", "-f", "-"], Some(SERVICE)).await;
    let uid = k
        .ok(&["get", "svc", "web", "-o", "jsonpath={.metadata.uid}"], None)
        .await;
    // The controller writes events.k8s.io Events; kubectl describe reads core ones.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(server.client(), "default");
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web.ipallocated"},
        "regarding": {"apiVersion": "v1", "kind": "Service", "name": "web", "namespace": "default", "uid": uid},
        "note": "Assigned IP [\"10.42.0.200\"]", "reason": "IPAllocated", "type": "Normal", "action": "Allocate",
        "reportingController": "ferrolb.io/controller", "reportingInstance": "ferrolb-controller-0",
        "eventTime": "2026-01-01T00:00:00.000000Z",
    }))
    .unwrap();
    events.create(&Default::default(), &event).await.unwrap();
    let described = k.ok(&["describe", "service", "web"], None).await;
    assert!(
        described.contains("IPAllocated") && described.contains("Assigned IP"),
        "{described}"
    );
    let all = k.ok(&["get", "events", "-A"], None).await;
    assert!(all.contains("IPAllocated"), "{all}");
    // And a core Event is an events.k8s.io one too, with the fields renamed.
    k.ok(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Event\nmetadata: {name: web.core, namespace: default}\n\
             involvedObject: {kind: Service, name: web, namespace: default}\n\
             reason: Core\nmessage: written as core\ntype: Normal\ncount: 2\n",
        ),
    )
    .await;
    let read = events.get("web.core").await.unwrap();
    assert_eq!(read.note.as_deref(), Some("written as core"));
    assert_eq!(read.deprecated_count, Some(2));
    assert_eq!(read.regarding.and_then(|r| r.name).as_deref(), Some("web"));
}

#[tokio::test]
async fn kube_apiserver_defaults_and_metadata_rules_apply() {
    let Some((_server, k, _dir)) = setup().await else {
        return;
    };
    k.ok(&["apply", "-f", "-"], Some(SERVICE)).await;
    let protocol = k
        .ok(
            &["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].protocol}"],
            None,
        )
        .await;
    assert_eq!(protocol, "TCP");
    let long = "n".repeat(64);
    let (accepted, text) = k
        .run(
            &[
                "create",
                "configmap",
                "labelled",
                &format!("--from-literal=node={long}"),
            ],
            None,
        )
        .await;
    assert!(accepted, "{text}");
    // kubectl checks `kubectl label` itself; a patch reaches the server.
    let patch = format!(r#"{{"metadata":{{"labels":{{"ferrolb.io/node":"{long}"}}}}}}"#);
    let (accepted, text) = k
        .run(
            &["patch", "configmap", "labelled", "--type=merge", "-p", &patch],
            None,
        )
        .await;
    assert!(
        !accepted && text.contains("must be no more than 63 characters") && text.contains("metadata.labels"),
        "{text}"
    );
    let (accepted, text) = k.run(&["create", "namespace", "Not_A_Label"], None).await;
    assert!(!accepted && text.contains("RFC 1123 label"), "{text}");
}
