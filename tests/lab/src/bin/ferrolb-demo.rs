//! FerroLB's local demo: the whole Layer 2 path (or, with `--bgp`, BGP to a BIRD
//! router) on this machine, no cluster needed.
//! Builds nothing itself (scripts/demo.sh builds first); needs root.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferrolb_lab::routers::{Kind, Router, Setup};
use ferrolb_lab::{APPS, CLIENT, Lab, NODES, NS, RANGES, other, unavailable, until};

/// FerroLB's local demo: a network-namespace lab with two nodes and a client, the API
/// test server, the controller and a speaker per node; a dual-stack Service, who
/// answers ARP and NDP, curl through the VIPs, and a failover with its outage.
#[derive(Parser)]
#[command(name = "ferrolb-demo", version)]
struct Cli {
    /// Keep the lab up at the end, until Ctrl-C or SIGTERM.
    #[arg(long)]
    hold: bool,
    /// Install FerroLB with helm (charts/ferrolb) into an API server that enforces
    /// RBAC, and run the controller and speakers as the chart's pod specs say.
    #[arg(long)]
    helm: bool,
    /// BGP instead of Layer 2: BIRD 2 in the client's namespace is the router; shows its
    /// table with the VIP via both nodes, curl through it, and a node taken down.
    #[arg(long, conflicts_with = "helm")]
    bgp: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(reason) = unavailable() {
        eprintln!("ferrolb-demo: the lab {reason}; run it as root: sudo scripts/demo.sh");
        return ExitCode::from(2);
    }
    // The lab lives in this task; a stop signal drops it, which removes namespaces and
    // stops processes.
    let result = tokio::select! {
        result = demo(cli) => result,
        signal = stop_signal() => {
            println!("\n{signal}: cleaning up");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ferrolb-demo: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C or SIGTERM (`kill`, `timeout`), named.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "interrupted";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

async fn demo(cli: Cli) -> anyhow::Result<()> {
    println!("== building the lab: LAN bridge, nodes n1 and n2, a client (network namespaces)");
    let mut lab = if cli.helm {
        let (mut lab, helm) = Lab::with_chart("demo", &["speaker.dataplane=nftables"]).await?;
        println!(
            "   API test server at {} (RBAC enforced); logs in {} (removed at the end unless FERROLB_LAB_KEEP=1)",
            lab.server.url(),
            lab.dir.display()
        );
        println!("$ helm list -n {}", ferrolb_lab::NS);
        print!("{}", helm.run(&["list", "-n", ferrolb_lab::NS])?);
        println!("== running the chart's pods as their specs say (uid, capabilities, token, env)");
        for pod in lab.start_controllers().await? {
            println!("   {pod}: controller, in a network namespace of its own");
        }
        for node in lab.start_speakers().await? {
            println!("   {}: speaker on {node} (host network)", Lab::speaker_pod(&node));
        }
        lab
    } else {
        let mut lab = Lab::start("demo").await?;
        println!(
            "   API test server at {}; logs in {} (removed at the end unless FERROLB_LAB_KEEP=1)",
            lab.server.url(),
            lab.dir.display()
        );
        lab.controller()?;
        for (node, _) in NODES {
            lab.speaker(node, &[])?;
        }
        lab
    };
    if cli.bgp {
        return bgp(lab, cli.hold).await;
    }
    println!("== applying an IPAddressPool, an L2Advertisement and a dual-stack Service");
    let (v4, v6) = lab.web().await?;
    let port = lab.node_port("web").await?;
    kubectl(&lab, &["get", "service", "web", "-n", APPS, "-o", "wide"]);

    let owner = until("an ARP answer for the VIP", 10, || lab.owner(&v4)).await?;
    println!("== who answers");
    println!("   ARP {v4:<14} -> {} ({owner})", lab.net.host(&owner).mac);
    let ndp = until("an NDP answer", 10, || lab.ndisc6(&v6)).await;
    match ndp.ok().as_deref().and_then(|m| lab.node_of_mac(m)) {
        Some(node) => println!("   NDP {v6:<14} -> {} ({node})", lab.net.host(node).mac),
        None => println!("   NDP {v6:<14} -> no answer"),
    }
    println!("== curl through the VIPs (steered by nftables to the node's NodePort {port})");
    curl_both(&lab, &v4, &v6).await;
    println!("== failover: taking {owner}'s link down while the client pings {v4} every 10 ms");
    let pinger = lab.pinger(&v4)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.net.set_link(&owner, false)?;
    let next = other(&owner);
    lab.until_owner(&v4, next, 10).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (outage, _) = pinger.outage();
    println!(
        "   {next} took over; the client saw {:.0} ms without replies",
        outage.as_secs_f64() * 1e3
    );
    let body = lab
        .curl(&format!("http://{v4}/"))
        .unwrap_or_else(|| "(no answer)".into());
    println!("   curl http://{v4}/ -> {body}");
    lab.net.set_link(&owner, true)?;
    if cli.helm {
        let refused = lab.denials();
        println!("== requests the API server refused (RBAC): {}", refused.len());
        for denial in refused {
            println!("   {denial}");
        }
    }
    if cli.hold {
        println!(
            "== holding the lab (Ctrl-C to stop); e.g. ip netns exec {}client curl http://{v4}/",
            lab.net.prefix
        );
        std::future::pending::<()>().await;
    }
    println!("== done: removing namespaces, nft tables and processes");
    Ok(())
}

/// The BGP half: BIRD as the router, a BGPPeer with BFD and a BGPAdvertisement, the
/// router's table, curl through it, a node's link down.
async fn bgp(mut lab: Lab, hold: bool) -> anyhow::Result<()> {
    let client = lab.net.host(CLIENT.0).clone();
    let setup = Setup::ipv4_to_nodes(&lab, CLIENT.0, 64513, 64512, Some(Duration::from_millis(50)));
    println!(
        "== starting BIRD 2 in the client's namespace: AS 64513, passive sessions to n1 and n2, BFD 50 ms x 3"
    );
    let router = Router::start(&mut lab, Kind::Bird, CLIENT.0, &setup).await?;
    println!(
        "== applying an IPAddressPool, a BFDProfile (50 ms x 3), a BGPPeer (hold time 3 s, that profile), a BGPAdvertisement and a dual-stack Service"
    );
    let objects = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lab, namespace: {NS}}}\nspec: {{addresses: [{}, {}]}}\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: fast, namespace: {NS}}}\n\
         spec: {{receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3}}\n---\n\
         apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: router, namespace: {NS}}}\n\
         spec: {{myASN: 64512, peerASN: 64513, peerAddress: {}, holdTime: 3s, dualStackAddressFamily: true, bfdProfile: fast}}\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: all, namespace: {NS}}}\nspec: {{communities: ['65000:1']}}\n",
        RANGES[0], RANGES[1], client.v4
    );
    let file = lab.dir.join("bgp.yaml");
    std::fs::write(&file, objects)?;
    kubectl(&lab, &["apply", "-f", file.to_str().unwrap_or_default()]);
    let port = lab.service("web", false).await?;
    lab.endpoints("web", &["n1", "n2"]).await?;
    lab.backends(port)?;
    let (v4, v6) = lab.addresses("web").await?;
    let (n1, n2) = (lab.net.host("n1").v4.clone(), lab.net.host("n2").v4.clone());
    router
        .until_next_hops(&lab, &format!("{v4}/32"), &[&n1, &n2], 20)
        .await?;
    // The BFD column fills once BFD is Up (its slow start takes a second or two).
    let states: kube::Api<ferrolb_crds::api::BGPSessionState> = kube::Api::namespaced(lab.client.clone(), NS);
    for _ in 0..100 {
        let list = states.list(&Default::default()).await?;
        let up = |s: &ferrolb_crds::api::BGPSessionState| {
            s.status.as_ref().and_then(|st| st.bfd_status.as_deref()) == Some("Up")
        };
        if list.items.len() == 2 && list.items.iter().all(up) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kubectl(&lab, &["get", "bgpsessionstates", "-n", NS]);
    println!("== the router's table for the VIPs (birdc show route)");
    for prefix in [format!("{v4}/32"), format!("{v6}/128")] {
        let paths = router.paths(&lab, &prefix);
        let hops: Vec<&str> = paths.iter().map(|p| p.next_hop.as_str()).collect();
        println!("   {prefix:<22} via {}", hops.join(", "));
    }
    println!("== curl from the client through the router's routes");
    curl_both(&lab, &v4, &v6).await;
    println!(
        "== n1's link down while the client connects to {v4}:80 every 10 ms (BFD decides, not the 3 s hold time)"
    );
    let prober = lab.prober(&v4, 80)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    lab.net.set_link("n1", false)?;
    let down = std::time::Instant::now();
    router
        .until_next_hops(&lab, &format!("{v4}/32"), &[&n2], 20)
        .await?;
    let dropped = down.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probed = prober.stop("demo_bgp_link_down");
    println!(
        "   the router dropped n1's path {:.2} s after the link went down (BFD); the client's connections \
         (all on one path, by the router's hash) failed {} times, the longest gap {:.0} ms",
        dropped.as_secs_f64(),
        probed.failed,
        probed.outage.as_secs_f64() * 1e3
    );
    lab.net.set_link("n1", true)?;
    if hold {
        println!("== holding the lab (Ctrl-C to stop)");
        std::future::pending::<()>().await;
    }
    println!("== done: removing namespaces, nft tables and processes");
    Ok(())
}

/// Prints what curl from the client gets through both VIPs.
async fn curl_both(lab: &Lab, v4: &str, v6: &str) {
    for url in [format!("http://{v4}/"), format!("http://[{v6}]/")] {
        let body = until("curl", 10, || lab.curl(&url))
            .await
            .unwrap_or_else(|_| "(no answer)".into());
        println!("   curl {url:<24} -> {body}");
    }
}

fn kubectl(lab: &Lab, args: &[&str]) {
    let kubectl = std::env::var("FERROLB_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    match std::process::Command::new(&kubectl)
        .args(args)
        .env("KUBECONFIG", lab.kubeconfig())
        .output()
    {
        Ok(out) if out.status.success() => {
            println!("$ kubectl {}", args.join(" "));
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        _ => println!("   (kubectl not found; scripts/demo.sh installs it into .tools/bin)"),
    }
}
