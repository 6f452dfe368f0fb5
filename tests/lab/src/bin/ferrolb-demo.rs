//! FerroLB's local demo: the whole Layer 2 path on this machine, no cluster needed.
//! Builds nothing itself (scripts/demo.sh builds first); needs root.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferrolb_lab::{APPS, Lab, NODES, other, unavailable, until};

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
    for url in [format!("http://{v4}/"), format!("http://[{v6}]/")] {
        let body = until("curl", 10, || lab.curl(&url))
            .await
            .unwrap_or_else(|_| "(no answer)".into());
        println!("   curl {url:<24} -> {body}");
    }
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
