//! FerroLB's local demo: the whole Layer 2 path on this machine, no cluster needed.
//! Builds nothing itself (scripts/demo.sh builds first); needs root.
//!
//! `ferrolb-demo [--hold]`: with `--hold` the lab stays up until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use ferrolb_lab::{APPS, Lab, NODES, other, unavailable, until};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    if let Some(reason) = unavailable() {
        eprintln!("ferrolb-demo: the lab {reason}; run it as root: sudo scripts/demo.sh");
        return ExitCode::from(2);
    }
    let hold = std::env::args().any(|a| a == "--hold");
    // The lab lives in this task; Ctrl-C drops it, which removes namespaces and stops processes.
    let result = tokio::select! {
        result = demo(hold) => result,
        _ = tokio::signal::ctrl_c() => {
            println!("\ninterrupted: cleaning up");
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

async fn demo(hold: bool) -> anyhow::Result<()> {
    println!("== building the lab: LAN bridge, nodes n1 and n2, a client (network namespaces)");
    let mut lab = Lab::start("demo").await?;
    println!(
        "   API test server at {}; logs in {}",
        lab.server.url(),
        lab.dir.display()
    );
    lab.controller()?;
    for (node, _) in NODES {
        lab.speaker(node, &[])?;
    }
    println!("== applying an IPAddressPool, an L2Advertisement and a dual-stack Service");
    lab.layer2(
        &["10.77.0.200-10.77.0.210", "fd00:77::200-fd00:77::210"],
        json!({}),
    )
    .await?;
    let port = lab.service("web", false).await?;
    lab.endpoints("web", &["n1", "n2"]).await?;
    lab.backends(port)?;
    let (v4, v6) = lab.addresses("web").await?;
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
    if hold {
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
