//! BFD in the namespace lab, against BIRD 2 and FRR (`bfdd`) as the routers (in the
//! client's namespace, BFD at 50 ms × 3 toward every node). Both speakers peer with the
//! router over IPv4 with a `bfdProfile` of 50 ms × 3 and a hold time of 3 s; Service
//! `web` (`externalTrafficPolicy: Cluster`, endpoints on both nodes) is routed via both.
//! - the BFD sessions come Up (BGPSessionState `bfdStatus`, the metric);
//! - n1's link goes down (no FIN reaches the router): the router withdraws n1's path
//!   well before the hold time, because its BFD session went Down;
//! - back up, both paths return; the same with the profile at 300 ms × 3;
//! - n1 drained (`spec.unschedulable`): its path leaves the router, its sessions stay,
//!   and the client's connections go on through n2;
//! - the control: the BGPPeer made again without `bfdProfile`, the same cut is noticed
//!   only at the hold time.
//!
//! The times are printed as FIGUREs for BENCHMARKS.md, not asserted (shared machines);
//! what is asserted is the order: with BFD the path goes before the hold time could have
//! expired, without it not before.
//!
//! Needs root and the router's package; in CI it must run, elsewhere it skips.

use std::time::{Duration, Instant};

use ferrolb_crds::api::BGPSessionState;
use ferrolb_lab::routers::{Kind, PATIENCE, Router, Setup};
use ferrolb_lab::{CLIENT, Lab, NS, RANGES, until, until_every};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const ROUTER_ASN: u32 = 64513;
const NODE_ASN: u32 = 64512;
const PEER: &str = "router";
const HOLD: Duration = Duration::from_secs(3);

async fn create<K>(api: &Api<K>, body: Value)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug,
    K: k8s_openapi::serde::Serialize + k8s_openapi::serde::de::DeserializeOwned,
{
    let object: K = serde_json::from_value(body).expect("an object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");
}

/// The BGPPeer, with BFD or without.
fn peer(router: &str, bfd: bool) -> Value {
    let mut spec = json!({"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": router, "holdTime": "3s"});
    if bfd {
        spec["bfdProfile"] = json!("fast");
    }
    json!({"metadata": {"name": PEER, "namespace": NS}, "spec": spec})
}

/// The router's kernel route for `prefix`, as `ip route` shows it.
fn kernel_route(lab: &Lab, prefix: &str) -> String {
    lab.net
        .exec(CLIENT.0, &["ip", "-4", "route", "show", prefix])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Cuts n1's link and returns how long the router kept a path via n1 (polled every
/// few ms through its kernel table), then mends the link and waits for both paths.
async fn cut_n1(lab: &Lab, router: &Router, prefix: &str, both: &[&str]) -> Duration {
    let n1 = lab.net.host("n1").v4.clone();
    let kernel = || kernel_route(lab, prefix);
    // Measured from a kernel table that routes via both nodes (not only BGP's table).
    until(
        "the router's kernel routing via both nodes",
        PATIENCE.as_secs(),
        || {
            both.iter()
                .all(|hop| kernel().contains(&format!("via {hop} ")))
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", kernel()));
    let cut = Instant::now();
    lab.net.set_link("n1", false).unwrap();
    let deadline = cut + HOLD * 5;
    loop {
        let table = kernel();
        if !table.contains(&format!("via {n1} ")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} kept n1's path: {table}",
            router.kind.name()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let gone = cut.elapsed();
    lab.net.set_link("n1", true).unwrap();
    router
        .until_next_hops(lab, prefix, both, PATIENCE.as_secs())
        .await
        .unwrap();
    gone
}

async fn bfd(kind: Kind) {
    if ferrolb_lab::skip("BGP BFD lab") || !Router::available(kind) {
        return;
    }
    let mut lab = Lab::start(&format!("bf{}", &kind.name()[..2]))
        .await
        .expect("lab");
    let router_host = lab.net.host(CLIENT.0).clone();
    let setup = Setup::ipv4_to_nodes(
        &lab,
        CLIENT.0,
        ROUTER_ASN,
        NODE_ASN,
        Some(Duration::from_millis(50)),
    );
    let router = Router::start(&mut lab, kind, CLIENT.0, &setup)
        .await
        .expect("router");
    lab.controller().unwrap();
    for node in ["n1", "n2"] {
        lab.speaker(node, &["--membership", "api"]).unwrap();
    }
    let client = lab.client.clone();
    let ns = |name: &str| json!({"name": name, "namespace": NS});
    create::<ferrolb_crds::api::IPAddressPool>(
        &Api::namespaced(client.clone(), NS),
        json!({"metadata": ns("lab"), "spec": {"addresses": RANGES}}),
    )
    .await;
    create::<ferrolb_crds::api::BFDProfile>(
        &Api::namespaced(client.clone(), NS),
        json!({"metadata": ns("fast"), "spec": {"receiveInterval": 50, "transmitInterval": 50, "detectMultiplier": 3}}),
    )
    .await;
    let peers: Api<ferrolb_crds::api::BGPPeer> = Api::namespaced(client.clone(), NS);
    create(&peers, peer(&router_host.v4, true)).await;
    create::<ferrolb_crds::api::BGPAdvertisement>(
        &Api::namespaced(client.clone(), NS),
        json!({"metadata": ns("lab"), "spec": {}}),
    )
    .await;
    let port = lab.service("web", false).await.unwrap();
    lab.endpoints("web", &["n1", "n2"]).await.unwrap();
    lab.backends(port).unwrap();
    let (vip, _) = lab.addresses("web").await.unwrap();
    let prefix = format!("{vip}/32");
    let (n1, n2) = (lab.net.host("n1").v4.clone(), lab.net.host("n2").v4.clone());
    let both = [n1.as_str(), n2.as_str()];
    router
        .until_next_hops(&lab, &prefix, &both, PATIENCE.as_secs())
        .await
        .unwrap();

    // BFD Up on both nodes, as their BGPSessionStates and metrics say.
    let states: Api<BGPSessionState> = Api::namespaced(client.clone(), NS);
    bfd_up(&states).await;
    let up = lab.speaker_metric("n1", "ferrolb_speaker_bfd_session_up");
    assert_eq!(up, Some(1.0), "bfd_session_up on n1");

    let name = kind.name();
    let with_bfd = cut_n1(&lab, &router, &prefix, &both).await;
    eprintln!(
        "FIGURE bfd_{name}_50ms_x3_path_withdrawn_ms={:.0}",
        with_bfd.as_secs_f64() * 1e3
    );
    assert!(
        with_bfd < HOLD,
        "{name} withdrew only after {with_bfd:?}: BFD did not act"
    );
    // The speaker's side saw it too (its own BFD timed out while the link was down).
    until_async("n1 counts a BFD down event", || async {
        let n = lab.speaker_metric("n1", "ferrolb_speaker_bfd_session_down_events_total")?;
        (n >= 1.0).then_some(())
    })
    .await;

    // n1 drained (cordoned): its path leaves the router while its sessions stay, and the
    // client's connections keep going through n2. One try in flight when the router's
    // hash moves the flow from n1 to n2 may be reset (n2 never saw its SYN); no more.
    let probe = lab.prober(&vip, 80).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let cordon = |on: bool| json!({"spec": {"unschedulable": on}});
    let drained = Instant::now();
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(cordon(true)))
        .await
        .unwrap();
    until_every(
        Duration::from_millis(2),
        "n1's path gone after the drain",
        PATIENCE.as_secs(),
        || (!kernel_route(&lab, &prefix).contains(&format!("via {n1} "))).then_some(()),
    )
    .await
    .unwrap();
    let left = drained.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probed = probe.stop(&format!("bfd_{name}_drain"));
    eprintln!(
        "FIGURE bfd_{name}_drain_path_withdrawn_ms={:.0}",
        left.as_secs_f64() * 1e3
    );
    assert!(probed.answered > 0, "traffic went on through n2");
    assert!(
        probed.failed <= 1,
        "{} tries failed during the drain",
        probed.failed
    );
    until_async("n1's session kept while drained", || async {
        let s = states.get_opt(&format!("n1.{PEER}")).await.ok()??.status?;
        (s.bgp_status == "Established" && s.advertised_ipv4 == 0).then_some(())
    })
    .await;
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(cordon(false)))
        .await
        .unwrap();
    router
        .until_next_hops(&lab, &prefix, &both, PATIENCE.as_secs())
        .await
        .unwrap();

    // A slower profile, 300 ms × 3: the router's detection time follows our Desired Min
    // TX (3 × max(its 50 ms, our 300 ms)). The BFD sessions take it through a Poll
    // sequence; the BGP sessions are not touched.
    let since = |s: Option<BGPSessionState>| s.and_then(|s| s.status).and_then(|s| s.since);
    let before = since(states.get_opt(&format!("n1.{PEER}")).await.unwrap());
    let profiles: Api<ferrolb_crds::api::BFDProfile> = Api::namespaced(client.clone(), NS);
    let slower = json!({"spec": {"receiveInterval": 300, "transmitInterval": 300}});
    profiles
        .patch("fast", &PatchParams::default(), &Patch::Merge(&slower))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    router
        .until_next_hops(&lab, &prefix, &both, PATIENCE.as_secs())
        .await
        .unwrap();
    bfd_up(&states).await;
    let after = since(states.get_opt(&format!("n1.{PEER}")).await.unwrap());
    assert_eq!(
        before, after,
        "the BGP session was not reset by the profile change"
    );
    let slow = cut_n1(&lab, &router, &prefix, &both).await;
    eprintln!(
        "FIGURE bfd_{name}_300ms_x3_path_withdrawn_ms={:.0}",
        slow.as_secs_f64() * 1e3
    );
    assert!(slow < HOLD, "{name} withdrew only after {slow:?} at 300 ms × 3");

    // The control: no BFD, the cut is seen at the hold time.
    peers.delete(PEER, &DeleteParams::default()).await.unwrap();
    until("the routes withdrawn", PATIENCE.as_secs(), || {
        router.next_hops(&lab, &prefix).is_empty().then_some(())
    })
    .await
    .unwrap();
    create(&peers, peer(&router_host.v4, false)).await;
    router
        .until_next_hops(&lab, &prefix, &both, PATIENCE.as_secs())
        .await
        .unwrap();
    let without = cut_n1(&lab, &router, &prefix, &both).await;
    eprintln!(
        "FIGURE bfd_{name}_none_hold_3s_path_withdrawn_ms={:.0}",
        without.as_secs_f64() * 1e3
    );
    // Keepalives every second put the hold timer's expiry 2–3 s after the cut.
    assert!(
        without > Duration::from_millis(1500),
        "{name} withdrew after {without:?} without BFD: before the hold time?"
    );
}

/// Waits until both nodes' BGPSessionStates say BFD is Up.
async fn bfd_up(states: &Api<BGPSessionState>) {
    for node in ["n1", "n2"] {
        let name = format!("{node}.{PEER}");
        until_async(&format!("{name}: BFD Up"), || async {
            let s = states.get_opt(&name).await.ok()??.status?;
            (s.bfd_status.as_deref() == Some("Up")).then_some(())
        })
        .await;
    }
}

/// Polls an async probe every 100 ms for the lab's patience.
async fn until_async<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bfd_bird() {
    bfd(Kind::Bird).await;
}

#[tokio::test]
async fn bfd_frr() {
    bfd(Kind::Frr).await;
}
