//! The whole speaker (`run::run`) against the API test server and a router played over
//! loopback: a Service's address reaches the router when a BGPPeer and a
//! BGPAdvertisement say so, leaves it when the Service goes, and a stopping speaker ends
//! the session with a Cease. No root: `--membership api`, no dataplane, no interfaces.

use std::path::PathBuf;

use ferrolb_bgp::message::{cease, code};
use ferrolb_testserver::{TestServer, load_crds};
use ipnet::IpNet;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use ferrolb_crds::api::{BGPSessionState, ServiceBGPStatus};
use k8s_openapi::api::events::v1::Event;

use crate::bgp::router::{PATIENCE, Router, assert_announced};
use crate::metrics::Metrics;
use crate::run::{self, Options};

const NS: &str = "ferrolb-system";

async fn create(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
    body: serde_json::Value,
) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let mut object: DynamicObject = serde_json::from_value(body).expect("an object");
    object.types = Some(kube::api::TypeMeta {
        api_version: api_version.into(),
        kind: kind.into(),
    });
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
}

/// Polls `f` until it gives a value.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, f: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not reached");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_service_reaches_the_router_leaves_it_and_the_speaker_ceases() {
    let server = TestServer::start().await.expect("API test server");
    let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds");
    load_crds(&server.shared, &crds).expect("CRDs");
    let client = server.client();
    // BGPPeer's peerPort stops at 16384 (as MetalLB's): a free port below it.
    let mut bound = None;
    for port in (10_000 + std::process::id() % 5_000) as u16..16_384 {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            bound = Some((listener, port));
            break;
        }
    }
    let (router_listener, port) = bound.expect("a free port below 16384");

    create(
        &client,
        "v1",
        "Namespace",
        "namespaces",
        None,
        json!({"metadata": {"name": NS}}),
    )
    .await;
    create(
        &client,
        "v1",
        "Node",
        "nodes",
        None,
        json!({
            "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
        }),
    )
    .await;
    create(
        &client,
        "ferrolb.io/v1beta1",
        "IPAddressPool",
        "ipaddresspools",
        Some(NS),
        json!({
            "metadata": {"name": "p"}, "spec": {"addresses": ["10.77.0.0/24"]},
        }),
    )
    .await;
    create(
        &client,
        "ferrolb.io/v1beta2",
        "BGPPeer",
        "bgppeers",
        Some(NS),
        json!({
            "metadata": {"name": "r1"},
            "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "127.0.0.1", "peerPort": port},
        }),
    )
    .await;
    create(
        &client,
        "ferrolb.io/v1beta1",
        "BGPAdvertisement",
        "bgpadvertisements",
        Some(NS),
        json!({
            "metadata": {"name": "all"}, "spec": {"communities": ["65000:1"]},
        }),
    )
    .await;
    create(
        &client,
        "v1",
        "Service",
        "services",
        Some("default"),
        json!({
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        }),
    )
    .await;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    services
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.77.0.200"}]}}})),
        )
        .await
        .expect("status");
    create(
        &client,
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "endpointslices",
        Some("default"),
        json!({
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.1.1"], "conditions": {"ready": true}, "nodeName": "n2"}],
        }),
    )
    .await;

    let (stop_tx, stop) = watch::channel(false);
    let options = Options::api_only("n1", NS);
    let metrics = Metrics::new();
    let speaker = tokio::spawn(run::run(client.clone(), options, metrics.clone(), stop));

    let mut router = Router::accept(&router_listener).await;
    router.establish(90).await;
    // One family (IPv4: the session's own, no dualStackAddressFamily): one End-of-RIB.
    let first = router.updates(1, 0).await;
    assert_announced(&first, "10.77.0.200/32");

    // What the API shows: the session's state, the Service's peers, an Event.
    let sessions: Api<BGPSessionState> = Api::namespaced(client.clone(), NS);
    let state = eventually("the session state", || async {
        let s = sessions.get_opt("n1.r1").await.ok()??.status?;
        (s.bgp_status == "Established" && s.advertised_ipv4 == 1).then_some(s)
    })
    .await;
    assert_eq!(state.peer_address, format!("127.0.0.1:{port}"));
    assert!(state.since.is_some() && state.problems.is_empty(), "{state:?}");
    let records: Api<ServiceBGPStatus> = Api::namespaced(client.clone(), NS);
    let record = eventually("the ServiceBGPStatus", || async {
        records.get_opt("bgp-n1.default.web").await.ok()??.status
    })
    .await;
    assert_eq!(record.peers, ["r1"]);
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = eventually("the bgpAnnounced Event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("bgpAnnounced"))
    })
    .await;
    assert!(
        event.note.as_deref().unwrap_or("").contains("to BGP peers r1"),
        "{event:?}"
    );

    // The session in the metrics, with MetalLB's name for "is it up".
    let peer = format!("peer=\"127.0.0.1:{port}\"");
    let scrape = || ferrolb_process::Exporter::render(&*metrics);
    let text = scrape();
    for line in [
        format!("ferrolb_speaker_bgp_session_up{{{peer}}} 1"),
        format!("ferrolb_speaker_bgp_announced_prefixes{{{peer}}} 1"),
        format!("ferrolb_speaker_bgp_updates_total{{{peer}}} "),
    ] {
        assert!(text.contains(&line), "{line} not in\n{text}");
    }

    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("deleted");
    let gone = router.updates(0, 1).await;
    assert_eq!(gone.withdrawn, ["10.77.0.200/32".parse::<IpNet>().unwrap()]);
    eventually("the ServiceBGPStatus deleted", || async {
        records
            .get_opt("bgp-n1.default.web")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("no prefix in the session state", || async {
        let s = sessions.get_opt("n1.r1").await.ok()??.status?;
        (s.advertised_ipv4 == 0).then_some(())
    })
    .await;

    stop_tx.send_replace(true);
    let notification = router.notification().await;
    assert_eq!(
        (notification.code, notification.subcode),
        (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)
    );
    // The fixture's Node is not Ready: the node counts as leaving, not restarting.
    assert_eq!(
        notification.communication(),
        Some("FerroLB speaker stopping: node cordoned or shutting down")
    );
    tokio::time::timeout(PATIENCE, speaker)
        .await
        .expect("the speaker stops")
        .unwrap()
        .expect("Ok");
    assert!(
        scrape().contains(&format!("ferrolb_speaker_bgp_session_up{{{peer}}} 0")),
        "a stopped session is down in the metrics"
    );
}
