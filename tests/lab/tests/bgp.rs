//! BGP end to end in the namespace lab, with BIRD 2 as the router: the real controller
//! and two speakers peer with BIRD in the client's namespace; BIRD installs the
//! Service's address with both nodes as next hops (ECMP), curl reaches a backend
//! through that route, a deleted Service's route goes, a stopping speaker's next hop
//! goes. Needs root and BIRD (`bird2`); in CI it must run, elsewhere it skips with the
//! reason.

use ferrolb_lab::{APPS, CLIENT, Lab, NODES, NS, RANGES, until};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const ROUTER_ASN: u32 = 64513;
const NODE_ASN: u32 = 64512;

fn skip() -> bool {
    if ferrolb_lab::skip("BGP lab") {
        return true;
    }
    if std::process::Command::new("bird")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "BIRD (bird2) is missing in CI");
        eprintln!("skipping the BGP lab: BIRD (bird2) is not installed");
        return true;
    }
    false
}

/// BIRD's configuration: passive eBGP sessions (over IPv4, carrying both families) to
/// both nodes, every route imported and exported to the kernel with ECMP.
fn bird_conf(lab: &Lab) -> String {
    let router = &lab.net.host(CLIENT.0).v4;
    let mut conf = format!(
        "router id {router};\n\
         protocol device {{}}\n\
         protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\n\
         protocol kernel {{ ipv6 {{ export all; }}; merge paths on; }}\n\
         template bgp node {{ local as {ROUTER_ASN}; neighbor as {NODE_ASN}; passive on;\n  \
           ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n"
    );
    for (name, _) in NODES {
        let ip = &lab.net.host(name).v4;
        conf += &format!("protocol bgp {name} from node {{ neighbor {ip}; }}\n");
    }
    conf
}

/// BIRD's view of `prefix`: `birdc show route for PREFIX` (empty when it has none).
fn route(lab: &Lab, socket: &str, prefix: &str) -> String {
    lab.net
        .exec(CLIENT.0, &["birdc", "-s", socket, "show", "route", "for", prefix])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether BIRD's route for `prefix` goes via exactly the nodes `via` (by their address
/// of the prefix's family).
fn via(lab: &Lab, socket: &str, prefix: &str, via: &[&str]) -> bool {
    let shown = route(lab, socket, prefix);
    NODES.iter().all(|(name, _)| {
        let host = lab.net.host(name);
        let ip = if prefix.contains(':') { &host.v6 } else { &host.v4 };
        shown.contains(&format!("via {ip} ")) == via.contains(name)
    })
}

#[tokio::test]
async fn bird_routes_a_service_to_both_nodes_and_follows_changes() {
    if skip() {
        return;
    }
    let mut lab = Lab::start("bgp").await.expect("lab");
    let conf = lab.dir.join("bird.conf");
    std::fs::write(&conf, bird_conf(&lab)).unwrap();
    let socket = lab.dir.join("bird.ctl");
    let (conf, socket) = (
        conf.to_str().unwrap().to_string(),
        socket.to_str().unwrap().to_string(),
    );
    let pidfile = lab.dir.join("bird.pid");
    lab.spawn(
        "bird",
        CLIENT.0,
        &[
            "bird",
            "-f",
            "-c",
            &conf,
            "-s",
            &socket,
            "-P",
            pidfile.to_str().unwrap(),
        ],
    )
    .unwrap();
    lab.controller().unwrap();
    for (node, _) in NODES {
        lab.speaker(node, &["--membership", "api"]).unwrap();
    }
    // The pool, the router as a BGPPeer, an advertisement for every node.
    let router = lab.net.host(CLIENT.0).v4.clone();
    let client = lab.client.clone();
    let pools: Api<ferrolb_crds::api::IPAddressPool> = Api::namespaced(client.clone(), NS);
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "lab", "namespace": NS}, "spec": {"addresses": RANGES},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let peers: Api<ferrolb_crds::api::BGPPeer> = Api::namespaced(client.clone(), NS);
    peers
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "bird", "namespace": NS},
                "spec": {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": router, "holdTime": "9s", "dualStackAddressFamily": true},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let ads: Api<ferrolb_crds::api::BGPAdvertisement> = Api::namespaced(client.clone(), NS);
    ads.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "lab", "namespace": NS}, "spec": {}})).unwrap(),
    )
    .await
    .unwrap();
    let port = lab.service("web", false).await.unwrap();
    let nodes: Vec<&str> = NODES.iter().map(|(n, _)| *n).collect();
    lab.endpoints("web", &nodes).await.unwrap();
    lab.backends(port).unwrap();
    let (v4, v6) = lab.addresses("web").await.unwrap();
    let prefix = format!("{v4}/32");
    let prefix6 = format!("{v6}/128");

    // Both nodes announce (Cluster policy, endpoints everywhere): ECMP at the router.
    until("BIRD routes the VIP via both nodes", 30, || {
        via(&lab, &socket, &prefix, &["n1", "n2"]).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", route(&lab, &socket, &prefix)));
    eprintln!("BIRD's route:\n{}", route(&lab, &socket, &prefix));
    // IPv6 over the same sessions (MP-BGP), the nodes' IPv6 addresses as next hops.
    until("BIRD routes the IPv6 VIP via both nodes", 30, || {
        via(&lab, &socket, &prefix6, &["n1", "n2"]).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", route(&lab, &socket, &prefix6)));
    // The client reaches a backend through the router's route (the node steers the VIP
    // to its NodePort).
    let answer = until("curl through the BGP route", 20, || {
        lab.curl(&format!("http://{v4}/"))
    })
    .await
    .unwrap();
    assert!(answer.starts_with("hello from n"), "{answer}");

    // A stopping speaker ends its session with a Cease: only the other node remains.
    lab.proc("speaker-n1").signal(nix::sys::signal::Signal::SIGTERM);
    until("n1's route withdrawn after its speaker stopped", 20, || {
        via(&lab, &socket, &prefix, &["n2"]).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", route(&lab, &socket, &prefix)));

    // The Service deleted: its route goes.
    Api::<Service>::namespaced(client, APPS)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    until("the deleted Service's route withdrawn", 20, || {
        via(&lab, &socket, &prefix, &[]).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", route(&lab, &socket, &prefix)));
}
