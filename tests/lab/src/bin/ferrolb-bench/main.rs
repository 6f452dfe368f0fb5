//! The lab benchmarks of BENCHMARKS.md, measured in the namespace lab (needs root;
//! build the workspace first, in release for the published figures):
//!
//! - `failover [--profile P] [--event link|sigterm]`: outage seen by a client pinging
//!   every 10 ms when the announcing node's link goes down (node death) or its speaker
//!   is stopped (graceful handover), FerroLB with a gossip profile;
//! - `keepalived [--advert-int S]`: the same with keepalived (VRRP) on the nodes instead;
//! - `arp-latency`: ARP answer time of the speaker next to the kernel's, seen by arping;
//! - `rss [--services N]`: speaker peak memory with N dual-stack Services announced by
//!   one node;
//! - `bgp-table [--prefixes N]`: N /32s into a BIRD router: session up → all routes
//!   and withdrawal of all, FerroLB next to BIRD and GoBGP as the speakers; a new
//!   Service's route; speaker start → Established; the speaker's RSS (`bgp.rs`);
//! - `rolling-upgrade [--mode layer2|bgp]`: FerroLB installed with helm (RBAC enforced,
//!   workloads run as the chart's pod specs say); each run a `helm upgrade` of a
//!   controller and a speaker value, rolled out as Kubernetes does (the controller
//!   replicas one by one, then the speakers node by node), the client's outage measured
//!   at each step: pings to a Layer 2 VIP, or TCP connections through a BIRD router to
//!   a VIP routed by BGP with graceful restart (`bgp.rs`).
//!
//! Each prints one `FIGURE` line per run and a summary (median and worst).

mod bgp;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ferrolb_lab::{CLIENT, Lab, NODES, other, until};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "ferrolb-bench",
    version,
    about = "FerroLB's lab benchmarks (root; see BENCHMARKS.md)"
)]
struct Cli {
    /// Runs (failovers, rounds or labs).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Node death or handover with FerroLB.
    Failover {
        /// The speakers' `--gossip-profile`.
        #[arg(long, default_value = "default")]
        profile: String,
        /// What happens to the announcing node.
        #[arg(long, value_enum, default_value_t = Event::Link)]
        event: Event,
    },
    /// Node death with keepalived (VRRP) on the nodes.
    Keepalived {
        /// VRRP advertisement interval in seconds (below 1: VRRPv3).
        #[arg(long, default_value_t = 1.0)]
        advert_int: f64,
    },
    /// ARP answer latency, speaker and kernel.
    ArpLatency {
        /// ARP requests per round and target.
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
    /// Outage per step while a `helm upgrade` rolls the controllers and speakers out.
    RollingUpgrade {
        /// How the VIP reaches the client.
        #[arg(long, value_enum, default_value_t = Mode::Layer2)]
        mode: Mode,
    },
    /// BGP: a table of many prefixes into a BIRD router.
    BgpTable {
        /// Prefixes (single-stack Services).
        #[arg(long, default_value_t = 10_000)]
        prefixes: usize,
    },
    /// Speaker peak RSS with many announced Services.
    Rss {
        /// Dual-stack Services.
        #[arg(long, default_value_t = 1000)]
        services: usize,
    },
}

/// How the rolling-upgrade lab announces its VIP.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// An L2Advertisement; the client pings the VIP.
    Layer2,
    /// A BGPPeer with graceful restart to a BIRD router; the client connects through it.
    Bgp,
}

/// What ends the announcing node's turn.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Event {
    /// Its LAN link goes down (node death).
    Link,
    /// Its speaker gets SIGTERM (graceful handover), then restarts.
    Sigterm,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if let Some(reason) = ferrolb_lab::unavailable() {
        bail!("the lab {reason}");
    }
    let cli = Cli::parse();
    match cli.what {
        What::Failover { profile, event } => {
            let args = ["--gossip-profile", profile.as_str()];
            let label = format!("ferrolb_{profile}");
            let (mut lab, vip) = ferrolb(&args, json!({})).await?;
            let outages = failovers(&mut lab, &vip, cli.runs, &label, event, &args).await?;
            summary(&label, "ms", &outages);
        }
        What::Keepalived { advert_int } => {
            let label = format!("keepalived_{advert_int}s");
            let (mut lab, vip) = keepalived(advert_int).await?;
            let outages = failovers(&mut lab, &vip, cli.runs, &label, Event::Link, &[]).await?;
            summary(&label, "ms", &outages);
        }
        What::ArpLatency { count } => arp_latency(cli.runs, count).await?,
        What::RollingUpgrade { mode } => {
            let (outages, failed) = rolling_upgrades(cli.runs, mode).await?;
            let label = match mode {
                Mode::Layer2 => "rolling_upgrade_layer2_step",
                Mode::Bgp => "rolling_upgrade_bgp_step",
            };
            summary(label, "ms", &outages);
            if mode == Mode::Bgp {
                println!("FIGURE {label}_failed_tries_total={failed}");
            }
        }
        What::BgpTable { prefixes } => bgp::run(cli.runs, prefixes).await?,
        What::Rss { services } => {
            let mut peaks = Vec::new();
            for run in 1..=cli.runs {
                peaks.push(rss(run, services).await?);
            }
            summary(&format!("speaker_peak_rss_{services}_services"), "MiB", &peaks);
        }
    }
    Ok(())
}

/// A lab with the controller, both speakers (with `speaker_args`), backends and one
/// dual-stack Service; returns the lab and the Service's IPv4 address.
async fn ferrolb(speaker_args: &[&str], ad_spec: serde_json::Value) -> anyhow::Result<(Lab, String)> {
    let mut lab = Lab::start("bench").await?;
    lab.controller()?;
    for (node, _) in NODES {
        lab.speaker(node, speaker_args)?;
    }
    lab.layer2(&["10.77.0.200-10.77.0.210", "fd00:77::200-fd00:77::210"], ad_spec)
        .await?;
    let port = lab.service("web", false).await?;
    lab.endpoints("web", &["n1", "n2"]).await?;
    lab.backends(port)?;
    let (v4, _) = lab.addresses("web").await?;
    until("an ARP answer", 20, || lab.owner(&v4)).await?;
    Ok((lab, v4))
}

/// Ends the announcing node's turn by `event` `runs` times (restoring the node and
/// waiting for the address to return in between); the client's outage of each, in ms.
/// `speaker_args` restart a stopped speaker.
async fn failovers(
    lab: &mut Lab,
    vip: &str,
    runs: usize,
    label: &str,
    event: Event,
    speaker_args: &[&str],
) -> anyhow::Result<Vec<f64>> {
    let mut outages = Vec::new();
    for run in 1..=runs {
        let owner = until("an ARP answer", 30, || lab.owner(vip)).await?;
        let pinger = lab.pinger(vip)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopped = match event {
            Event::Link => {
                lab.net.set_link(&owner, false)?;
                None
            }
            Event::Sigterm => {
                let speaker = lab
                    .remove(&format!("speaker-{owner}"))
                    .context("the owner's speaker")?;
                speaker.signal(nix::sys::signal::Signal::SIGTERM);
                Some(speaker)
            }
        };
        lab.until_owner(vip, other(&owner), 30).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (outage, replies) = pinger.outage();
        let ms = outage.as_secs_f64() * 1e3;
        let what = if event == Event::Link {
            "node_death"
        } else {
            "sigterm_handover"
        };
        println!("FIGURE {label} run={run} {what}_outage_ms={ms:.1} replies={replies}");
        outages.push(ms);
        match stopped {
            None => lab.net.set_link(&owner, true)?,
            Some(mut speaker) => {
                speaker.wait(Duration::from_secs(5));
                lab.speaker(&owner, speaker_args)?;
            }
        }
        lab.until_owner(vip, &owner, 30).await?;
        // Let the takeover's repeated announcements and the gossip settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Ok(outages)
}

/// `runs` helm upgrades (the controller's and the speakers' log levels flipped each
/// time), each rolled out as Kubernetes does: the controller replicas one by one, then
/// the speakers node by node. The client's outage at each step, in ms, and (BGP) the
/// tries that failed in all.
async fn rolling_upgrades(runs: usize, mode: Mode) -> anyhow::Result<(Vec<f64>, usize)> {
    let (mut lab, helm) = Lab::with_chart("roll", &["speaker.dataplane=nftables"]).await?;
    let mut controllers = lab.start_controllers().await?;
    lab.start_speakers().await?;
    let (vip, router) = match mode {
        Mode::Layer2 => {
            let (vip, _) = lab.web().await?;
            until("an ARP answer", 20, || lab.owner(&vip)).await?;
            (vip, None)
        }
        Mode::Bgp => {
            let (vip, router) = bgp::graceful_web(&mut lab).await?;
            (vip, Some(router))
        }
    };
    let chart = ferrolb_lab::chart::chart_dir();
    let mut outages = Vec::new();
    let mut failed_total = 0;
    for run in 1..=runs {
        let level = if run % 2 == 1 { "debug" } else { "info" };
        helm.upgrade(
            &chart,
            &[
                &format!("speaker.logLevel={level}"),
                &format!("controller.logLevel={level}"),
            ],
        )?;
        let deployment = lab
            .pod_template("Deployment", ferrolb_lab::chart::CONTROLLER)
            .await?;
        let daemonset = lab.pod_template("DaemonSet", ferrolb_lab::chart::SPEAKER).await?;
        // (kind, the old controller pod or the speaker's node), in rollout order.
        let steps: Vec<(&str, String)> = controllers
            .iter()
            .map(|old| ("controller", old.clone()))
            .chain(NODES.iter().map(|(node, _)| ("speaker", node.to_string())))
            .collect();
        for (i, (kind, what)) in steps.iter().enumerate() {
            let client = Client::start(&lab, &vip, mode)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let node = if *kind == "controller" {
                let node = NODES[i % NODES.len()].0;
                let new = format!("{}-r{run}-{i}", ferrolb_lab::chart::CONTROLLER);
                lab.roll_controller(what, &new, node, &deployment).await?;
                controllers[i] = new;
                node
            } else {
                lab.roll_speaker(what, &daemonset).await?;
                what.as_str()
            };
            if let Some(router) = &router {
                // Graceful restart: the new speaker's session is up again before the next
                // node's step, as a DaemonSet rollout waits for readiness.
                let neighbor = lab.net.host(node).v4.clone();
                until("the router's session back", 20, || {
                    (*kind == "controller" || router.established(&lab, &neighbor)).then_some(())
                })
                .await?;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (outage, failed) = client.stop();
            let ms = outage.as_secs_f64() * 1e3;
            println!(
                "FIGURE rolling_upgrade run={run} step={kind} node={node} outage_ms={ms:.1} failed={failed}"
            );
            outages.push(ms);
            failed_total += failed;
        }
        if !lab.denials().is_empty() {
            bail!("the API server refused requests: {:?}", lab.denials());
        }
    }
    Ok((outages, failed_total))
}

/// The client of a rolling upgrade: pings (Layer 2) or TCP connections (BGP: nothing
/// answers a ping for a VIP steered by port).
enum Client {
    Ping(ferrolb_lab::Pinger),
    Tcp(ferrolb_lab::Prober),
}

impl Client {
    fn start(lab: &Lab, vip: &str, mode: Mode) -> anyhow::Result<Self> {
        Ok(match mode {
            Mode::Layer2 => Client::Ping(lab.pinger(vip)?),
            Mode::Bgp => Client::Tcp(lab.prober(vip, 80)?),
        })
    }

    /// The longest time without an answer, and the tries that failed (pings: not
    /// counted, 0).
    fn stop(self) -> (Duration, usize) {
        match self {
            Client::Ping(p) => (p.outage().0, 0),
            Client::Tcp(p) => {
                let probed = p.stop("rolling_upgrade_tcp");
                (probed.outage, probed.failed)
            }
        }
    }
}

/// The lab with keepalived on both nodes instead of FerroLB: n1 preferred, VIP
/// 10.77.0.250 on eth0.
async fn keepalived(advert_int: f64) -> anyhow::Result<(Lab, String)> {
    const VIP: &str = "10.77.0.250";
    let mut lab = Lab::start("vrrp").await?;
    for ((node, _), priority) in NODES.iter().zip([150, 100]) {
        // VRRPv2 counts whole seconds; shorter intervals need VRRPv3 (centiseconds).
        let version = if advert_int < 1.0 { 3 } else { 2 };
        let conf = lab.dir.join(format!("keepalived-{node}.conf"));
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id {node}\n  vrrp_version {version}\n}}\n\
                 vrrp_instance lab {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 77\n  \
                 priority {priority}\n  advert_int {advert_int}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
            ),
        )?;
        let path = |what: &str| lab.dir.join(format!("{what}-{node}.pid")).display().to_string();
        let (pid, vrrp_pid) = (path("keepalived"), path("vrrp"));
        let conf = conf.display().to_string();
        lab.spawn(
            &format!("keepalived-{node}"),
            node,
            &[
                "keepalived",
                "-n",
                "-l",
                "-G",
                "-P",
                "-f",
                &conf,
                "-p",
                &pid,
                "-r",
                &vrrp_pid,
            ],
        )?;
    }
    lab.until_owner(VIP, "n1", 30).await?;
    Ok((lab, VIP.to_string()))
}

/// ARP answer times (µs) for `ip` from `count` arping requests from the client.
fn arping_times(lab: &Lab, ip: &str, count: usize) -> anyhow::Result<Vec<f64>> {
    let out = lab
        .net
        .exec(
            CLIENT.0,
            &[
                "arping",
                "-c",
                &count.to_string(),
                "-W",
                "0.002",
                "-i",
                "eth0",
                ip,
            ],
        )
        .output()
        .context("running arping")?;
    // "… bytes from MAC (IP): index=N time=8.531 usec"
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split("time=").nth(1)?.split_whitespace();
            let value: f64 = words.next()?.parse().ok()?;
            match words.next()? {
                "usec" => Some(value),
                "msec" => Some(value * 1e3),
                "sec" => Some(value * 1e6),
                _ => None,
            }
        })
        .collect();
    if times.len() < count / 2 {
        bail!("arping {ip}: only {} of {count} answered", times.len());
    }
    Ok(times)
}

async fn arp_latency(rounds: usize, count: usize) -> anyhow::Result<()> {
    let (lab, vip) = ferrolb(&[], json!({})).await?;
    let owner = until("an ARP answer", 20, || lab.owner(&vip)).await?;
    let own_ip = lab.net.host(&owner).v4.clone();
    let (mut kernel, mut speaker) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Alternate the order so neither target always runs on a warmer machine.
        let mut targets = [("kernel", own_ip.as_str()), ("speaker", vip.as_str())];
        if round % 2 == 0 {
            targets.reverse();
        }
        for (who, ip) in targets {
            let mut times = arping_times(&lab, ip, count)?;
            let (median, p99) = (percentile(&mut times, 50.0), percentile(&mut times, 99.0));
            println!(
                "FIGURE arp_answer round={round} who={who} ip={ip} median_us={median:.1} p99_us={p99:.1} answers={}",
                times.len()
            );
            if who == "kernel" {
                &mut kernel
            } else {
                &mut speaker
            }
            .extend(times);
        }
    }
    let k = (percentile(&mut kernel, 50.0), percentile(&mut kernel, 99.0));
    let s = (percentile(&mut speaker, 50.0), percentile(&mut speaker, 99.0));
    println!(
        "SUMMARY arp_answer kernel_median_us={:.1} kernel_p99_us={:.1} speaker_median_us={:.1} speaker_p99_us={:.1} median_ratio={:.2}",
        k.0,
        k.1,
        s.0,
        s.1,
        s.0 / k.0
    );
    Ok(())
}

/// One lab: `services` dual-stack Services all announced by n1 (the advertisement
/// selects it alone; n2's speaker runs too and watches the same objects). Returns n1's
/// speaker peak RSS in MiB.
async fn rss(run: usize, services: usize) -> anyhow::Result<f64> {
    let mut lab = Lab::start("rss").await?;
    lab.controller()?;
    for (node, _) in NODES {
        lab.speaker(node, &[])?;
    }
    lab.layer2(
        &["10.77.16.0/20", "fd00:77::1:0/116"],
        json!({"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n1"}}]}),
    )
    .await?;
    let started = Instant::now();
    for i in 0..services {
        let name = format!("svc-{i}");
        lab.service(&name, false).await?;
        lab.endpoints(&name, &["n1", "n2"]).await?;
    }
    let created = started.elapsed();
    let want = (2 * services) as f64;
    let metric = "ferrolb_speaker_announced_addresses";
    until(&format!("n1 to announce {want} addresses"), 300, || {
        (lab.speaker_metric("n1", metric) == Some(want)).then_some(())
    })
    .await?;
    let announced = started.elapsed();
    // Past the takeover's repeated gratuitous frames, and a resync of the watches.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut memory = |name: &str| memory(lab.proc(name).pid());
    let n1 = memory("speaker-n1")?;
    let n2 = memory("speaker-n2")?;
    let controller = memory("controller")?;
    println!(
        "FIGURE rss run={run} services={services} announcer_peak_mib={:.1} announcer_anon_mib={:.1} \
         announcer_file_mib={:.1} idle_speaker_peak_mib={:.1} controller_peak_mib={:.1} \
         created_s={:.1} all_announced_s={:.1}",
        n1.peak,
        n1.anon,
        n1.file,
        n2.peak,
        controller.peak,
        created.as_secs_f64(),
        announced.as_secs_f64()
    );
    Ok(n1.peak)
}

/// A process's memory from /proc, in MiB.
struct Memory {
    /// Peak resident set (VmHWM).
    peak: f64,
    /// Resident anonymous memory now (heap, stacks).
    anon: f64,
    /// Resident file-backed memory now (the mapped binary and libraries).
    file: f64,
}

fn memory(pid: i32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mib = |key: &str| -> anyhow::Result<f64> {
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("{key} in /proc/{pid}/status"))?;
        Ok(kib / 1024.0)
    };
    Ok(Memory {
        peak: mib("VmHWM:")?,
        anon: mib("RssAnon:")?,
        file: mib("RssFile:")?,
    })
}

/// The `p`th percentile (nearest rank) of `values`.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn summary(label: &str, unit: &str, values: &[f64]) {
    let mut sorted = values.to_vec();
    let median = percentile(&mut sorted, 50.0);
    let worst = sorted.last().copied().unwrap_or_default();
    println!(
        "SUMMARY {label} runs={} median_{unit}={median:.1} worst_{unit}={worst:.1} all={:?}",
        values.len(),
        sorted
            .iter()
            .map(|v| (v * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
}
