//! BGP interop in the namespace lab: the real controller and speakers against each of
//! BIRD 2, FRR, GoBGP and ExaBGP as the router (in the client's namespace). One
//! scenario per router:
//! - n1 peers by eBGP over IPv4 with 4-byte ASNs (and TCP MD5 where the router can
//!   check it: BIRD, FRR); n2 peers by iBGP over IPv6; both sessions carry both
//!   families (`dualStackAddressFamily`);
//! - the router sees each VIP from the expected nodes (both for `Cluster`, the
//!   endpoint's node for `Local`) with the standard and large communities, LOCAL_PREF
//!   on the iBGP path, and an aggregate announced to the eBGP peer only;
//! - the BGPSessionState objects say Established; curl through the router reaches a
//!   backend over IPv4 and IPv6 (routers that install routes: BIRD, FRR);
//! - a wrong MD5 key keeps a session down with the reason in its BGPSessionState;
//! - a drained node withdraws and keeps its session; a deleted Service is withdrawn; a
//!   deleted BGPPeer ends its session with a Cease; a silent router (SIGSTOP) is
//!   dropped at the hold time, and a multihop session to the router's loopback address
//!   comes up (BIRD's run).
//!
//! Needs root and the router's package; in CI it must run, elsewhere it skips.

use std::time::Instant;

use ferrolb_crds::api::BGPSessionState;
use ferrolb_lab::routers::{Kind, Neighbor, PATIENCE, Router, Setup};
use ferrolb_lab::{APPS, CLIENT, Lab, NS, RANGES, until};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
const PASSWORD: &str = "s3cret-md5";
/// The router's loopback address for the multihop session (BIRD's run).
const MULTIHOP: &str = "fd00:78::1";

async fn create<K>(api: &Api<K>, body: Value)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + kube::core::object::HasSpec,
    K: k8s_openapi::serde::Serialize + k8s_openapi::serde::de::DeserializeOwned,
{
    let object: K = serde_json::from_value(body).expect("an object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");
}

/// The BGPSessionState of `node` with `peer`, once it satisfies `ok`.
async fn session(
    lab: &Lab,
    name: &str,
    what: &str,
    ok: impl Fn(&ferrolb_crds::api::BGPSessionStateStatus) -> bool,
) {
    let api: Api<BGPSessionState> = Api::namespaced(lab.client.clone(), NS);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = api.get_opt(name).await.ok().flatten().and_then(|s| s.status);
        if status.as_ref().is_some_and(&ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "BGPSessionState {name}: {what}; it says {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn interop(kind: Kind) {
    if ferrolb_lab::skip("BGP interop lab") || !Router::available(kind) {
        return;
    }
    let mut lab = Lab::start(&format!("i{}", &kind.name()[..2])).await.expect("lab");
    let (n1, n2) = (lab.net.host("n1").clone(), lab.net.host("n2").clone());
    let router_host = lab.net.host(CLIENT.0).clone();
    let md5 = true;
    let password = md5.then(|| PASSWORD.to_string());
    let setup = Setup {
        asn: ROUTER_ASN,
        router_id: router_host.v4.clone(),
        address_v6: router_host.v6.clone(),
        neighbors: vec![
            Neighbor {
                address: n1.v4.clone(),
                asn: NODE_ASN,
                password: password.clone(),
                multihop_to: None,
            },
            Neighbor {
                address: n2.v6.clone(),
                asn: ROUTER_ASN,
                password: None,
                multihop_to: None,
            },
            // n2 over IPv4 with a key the speaker will not have.
            Neighbor {
                address: n2.v4.clone(),
                asn: NODE_ASN,
                password: password.clone(),
                multihop_to: None,
            },
        ],
        bfd: None,
    };
    let mut setup = setup;
    if kind == Kind::Bird {
        // n1 also peers with an address on the router's loopback, routed through its LAN
        // address: not directly connected, so both sides need multihop.
        let ip = |host: &str, args: &[&str]| {
            let mut command = vec!["ip", "-6"];
            command.extend(args);
            assert!(
                lab.net.exec(host, &command).status().unwrap().success(),
                "{args:?}"
            );
        };
        ip(
            CLIENT.0,
            &["addr", "add", &format!("{MULTIHOP}/128"), "dev", "lo"],
        );
        ip(
            "n1",
            &["route", "add", &format!("{MULTIHOP}/128"), "via", &router_host.v6],
        );
        setup.neighbors.push(Neighbor {
            address: n1.v6.clone(),
            asn: NODE_ASN,
            password: None,
            multihop_to: Some(MULTIHOP.into()),
        });
    }
    let router = Router::start(&mut lab, kind, CLIENT.0, &setup)
        .await
        .expect("router");
    lab.controller().unwrap();
    for (node, _) in ferrolb_lab::NODES {
        lab.speaker(node, &["--membership", "api"]).unwrap();
    }
    let client = lab.client.clone();
    let pools: Api<ferrolb_crds::api::IPAddressPool> = Api::namespaced(client.clone(), NS);
    create(
        &pools,
        json!({"metadata": {"name": "lab", "namespace": NS}, "spec": {"addresses": RANGES}}),
    )
    .await;
    let peers: Api<ferrolb_crds::api::BGPPeer> = Api::namespaced(client.clone(), NS);
    let hold = if kind == Kind::Bird { "3s" } else { "9s" };
    let mut ebgp = json!({"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": router_host.v4,
        "holdTime": hold, "dualStackAddressFamily": true,
        "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n1"}}]});
    if md5 {
        ebgp["password"] = json!(PASSWORD);
    }
    create(
        &peers,
        json!({"metadata": {"name": "ebgp", "namespace": NS}, "spec": ebgp}),
    )
    .await;
    create(&peers, json!({"metadata": {"name": "ibgp", "namespace": NS}, "spec": {
        "myASN": ROUTER_ASN, "peerASN": ROUTER_ASN, "peerAddress": router_host.v6, "dualStackAddressFamily": true,
        "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n2"}}]}})).await;
    if md5 {
        create(&peers, json!({"metadata": {"name": "wrongkey", "namespace": NS}, "spec": {
            "myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": router_host.v4, "password": "not-the-key",
            "connectTime": "2s",
            "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n2"}}]}})).await;
    }
    if kind == Kind::Bird {
        create(
            &peers,
            json!({"metadata": {"name": "multihop", "namespace": NS}, "spec": {
                "myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": MULTIHOP, "ebgpMultiHop": true,
                "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n1"}}]}}),
        )
        .await;
    }
    let ads: Api<ferrolb_crds::api::BGPAdvertisement> = Api::namespaced(client.clone(), NS);
    create(
        &ads,
        json!({"metadata": {"name": "all", "namespace": NS}, "spec": {
        "localPref": 150, "communities": ["65000:1", "large:4200000001:2:3"]}}),
    )
    .await;
    create(
        &ads,
        json!({"metadata": {"name": "aggregate", "namespace": NS}, "spec": {
        "aggregationLength": 29, "aggregationLengthV6": 124, "peers": ["ebgp"]}}),
    )
    .await;

    let port = lab.service("web", false).await.unwrap();
    lab.endpoints("web", &["n1", "n2"]).await.unwrap();
    lab.backends(port).unwrap();
    let local_port = lab.service("local", true).await.unwrap();
    assert_ne!(port, local_port);
    lab.endpoints("local", &["n2"]).await.unwrap();
    let (v4, v6) = lab.addresses("web").await.unwrap();
    let (local4, _) = lab.addresses("local").await.unwrap();
    let (web4, web6) = (format!("{v4}/32"), format!("{v6}/128"));

    // Sessions up, as the API says.
    session(&lab, "n1.ebgp", "Established", |s| s.bgp_status == "Established").await;
    session(&lab, "n2.ibgp", "Established", |s| s.bgp_status == "Established").await;
    // Both nodes announce `web` (Cluster); the router's paths carry what was asked.
    router
        .until_next_hops(&lab, &web4, &[&n1.v4, &n2.v4], 20)
        .await
        .unwrap();
    router
        .until_next_hops(&lab, &web6, &[&n1.v6, &n2.v6], 20)
        .await
        .unwrap();
    for path in router.paths(&lab, &web4) {
        assert!(path.communities.contains("65000:1"), "{kind:?}: {path:?}");
        assert!(
            path.large_communities.contains("4200000001:2:3"),
            "{kind:?}: {path:?}"
        );
        if path.next_hop == n2.v4 {
            assert_eq!(path.local_pref, Some(150), "{kind:?}: the iBGP path's LOCAL_PREF");
        }
    }
    // The aggregate goes to the eBGP peer only; `local` only from its endpoint's node.
    router
        .until_next_hops(&lab, "10.77.0.200/29", &[&n1.v4], 20)
        .await
        .unwrap();
    router
        .until_next_hops(&lab, "fd00:77::200/124", &[&n1.v6], 20)
        .await
        .unwrap();
    router
        .until_next_hops(&lab, &format!("{local4}/32"), &[&n2.v4], 20)
        .await
        .unwrap();
    session(&lab, "n1.ebgp", "counts", |s| {
        s.advertised_ipv4 >= 2 && s.advertised_ipv6 >= 2
    })
    .await;
    if kind.installs() {
        for url in [format!("http://{v4}/"), format!("http://[{v6}]/")] {
            let answer = until(&format!("curl {url} through {}", kind.name()), 20, || {
                lab.curl(&url)
            })
            .await
            .unwrap();
            assert!(answer.starts_with("hello from n"), "{answer}");
        }
    }
    if kind == Kind::Bird {
        session(&lab, "n1.multihop", "Established", |s| {
            s.bgp_status == "Established" && s.advertised_ipv6 >= 1
        })
        .await;
        until("routes over the multihop session", 20, || {
            (router.bird_count(&lab, &n1.v6) >= 1).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", router.session(&lab, &n1.v6)));
    }
    if md5 {
        // The router drops the unsigned-for-it SYNs: never up, and the state says why.
        session(&lab, "n2.wrongkey", "down, with the dial's failure", |s| {
            s.bgp_status != "Established" && s.last_error.as_deref().is_some_and(|e| e.starts_with("connect"))
        })
        .await;
    }

    // Drained: n1 withdraws `web` but keeps its session.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    router.until_next_hops(&lab, &web4, &[&n2.v4], 20).await.unwrap();
    session(&lab, "n1.ebgp", "still Established while drained", |s| {
        s.bgp_status == "Established" && s.advertised_ipv4 == 0
    })
    .await;

    // The deleted Service's routes go.
    Api::<Service>::namespaced(client.clone(), APPS)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    router.until_next_hops(&lab, &web4, &[], 20).await.unwrap();
    router.until_next_hops(&lab, &web6, &[], 20).await.unwrap();

    // The iBGP BGPPeer deleted: n2 ends that session with a Cease; its routes go.
    peers.delete("ibgp", &DeleteParams::default()).await.unwrap();
    router
        .until_next_hops(&lab, &format!("{local4}/32"), &[], 20)
        .await
        .unwrap();
    until(&format!("{} to receive n2's Cease", kind.name()), 20, || {
        router.received_cease(&lab, &n2.v6).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", router.session(&lab, &n2.v6)));

    if kind == Kind::Bird {
        // A silent router: n1's hold timer (3 s) ends the session.
        router.freeze(&mut lab, true);
        let frozen = Instant::now();
        session(&lab, "n1.ebgp", "down at the hold time", |s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("hold timer expired"))
        })
        .await;
        eprintln!(
            "FIGURE silent_router_detected_s={:.2} (hold time 3 s, plus the API round trip)",
            frozen.elapsed().as_secs_f64()
        );
        router.freeze(&mut lab, false);
        session(&lab, "n1.ebgp", "Established again", |s| {
            s.bgp_status == "Established"
        })
        .await;
    }
}

#[tokio::test]
async fn interop_bird() {
    interop(Kind::Bird).await;
}

#[tokio::test]
async fn interop_frr() {
    interop(Kind::Frr).await;
}

#[tokio::test]
async fn interop_gobgp() {
    interop(Kind::Gobgp).await;
}

#[tokio::test]
async fn interop_exabgp() {
    interop(Kind::Exabgp).await;
}
