//! `ferrolb-speaker`: one per node (DaemonSet, host network). Announces the addresses
//! the Layer 2 plan gives this node, answers ARP and NDP for them, and optionally
//! steers their traffic to the node's NodePorts.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ferrolb_crds::service::ClassPolicy;
use ferrolb_process::FlagDuration;
use ferrolb_speaker::l2::announcer::Schedule;
use ferrolb_speaker::l2::interfaces::DEFAULT_EXCLUDES;
use ferrolb_speaker::l2::membership::{Membership, Options as GossipOptions, Profile, Sealer};
use ferrolb_speaker::metrics::Metrics;
use ferrolb_speaker::run::{self, Options};
use tokio::sync::watch;

/// The default of `--exclude-interfaces` as it is typed (clap shows a list of
/// defaults separated by spaces, which the flag does not accept).
static DEFAULT_EXCLUDES_ARG: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| DEFAULT_EXCLUDES.join(","));

#[derive(Parser)]
#[command(name = "ferrolb-speaker", version, about = "FerroLB's speaker")]
struct Cli {
    /// This node's name, as in its Node object.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// FerroLB's namespace: pools, advertisements and ServiceL2Status objects live there.
    #[arg(short = 'n', long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    namespace: String,
    /// Announce only Services with this spec.loadBalancerClass; unset: only Services
    /// without a class (give the controller the same value).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7473")]
    metrics_addr: SocketAddr,
    /// Interfaces never chosen by default (comma-separated; a trailing * matches any suffix).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_EXCLUDES_ARG.as_str())]
    exclude_interfaces: Vec<String>,
    /// Steer VIP traffic to this node's NodePorts with nftables, and put VIPs on lo.
    #[arg(long, value_enum, default_value_t = Dataplane::None)]
    dataplane: Dataplane,
    /// How speakers learn who is alive: gossip, or Node readiness from the API alone.
    #[arg(long, value_enum, default_value_t = Liveness::Gossip)]
    membership: Liveness,
    /// This node's address the other speakers gossip with (the Node's InternalIP).
    #[arg(long, env = "FERROLB_NODE_IP")]
    node_ip: Option<IpAddr>,
    /// UDP port of the gossip (the same on every node).
    #[arg(long, default_value_t = 7946)]
    gossip_port: u16,
    /// File holding the gossip key; every speaker needs the same one.
    #[arg(long, env = "FERROLB_GOSSIP_KEY_FILE")]
    gossip_key_file: Option<std::path::PathBuf>,
    /// Failure-detection timing.
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    gossip_profile: Profile,
    /// How long a node whose speaker died (its kernel still answering) keeps its addresses.
    #[arg(long, default_value = "10s")]
    speaker_grace: FlagDuration,
    /// How long to wait for a node's kernel when probing a speaker declared down
    /// (default: the profile's, 20ms / 4ms / 200ms).
    #[arg(long, conflicts_with = "probe_timeout_ms")]
    probe_timeout: Option<FlagDuration>,
    /// Deprecated spelling of --probe-timeout, in milliseconds.
    #[arg(long, hide = true)]
    probe_timeout_ms: Option<u64>,
    /// How long with no gossip peer (while other Nodes are Ready) before using Node readiness.
    #[arg(long, default_value = "5s")]
    gossip_fallback_after: FlagDuration,
    /// Time between repeated gratuitous announcements after a takeover.
    #[arg(long, default_value = "1100ms", conflicts_with = "announce_interval_ms")]
    announce_interval: FlagDuration,
    /// Deprecated spelling of --announce-interval, in milliseconds.
    #[arg(long, hide = true)]
    announce_interval_ms: Option<u64>,
    /// Repeated announcements after the first one.
    #[arg(long, default_value_t = 4)]
    announce_repeats: u32,
    /// How long BGP peers with `enableGracefulRestart` keep this node's routes while its
    /// speaker restarts (at most 4095s).
    #[arg(long, default_value = "120s")]
    bgp_restart_time: FlagDuration,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dataplane {
    /// Leave traffic to kube-proxy or the CNI.
    None,
    /// DNAT VIP:port to this node's NodePort.
    Nftables,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Liveness {
    /// SWIM gossip between speakers (sub-second), Node readiness as fallback.
    Gossip,
    /// Node readiness only (as fast as the node controller: tens of seconds).
    Api,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ferrolb_process::init_logging();
    // One thread: the speaker's work is small and latency-bound, and a single thread
    // keeps the answer path free of cross-thread wake-ups.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("ferrolb-speaker: {err}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(speaker(cli));
    // A blocking task (a DNS lookup of an unreachable API server's name) must not hold
    // the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ferrolb-speaker: {}", ferrolb_process::one_line(err.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// Warnings for flags given in a spelling of earlier releases.
fn deprecations(cli: &Cli) -> Vec<String> {
    let mut warnings: Vec<String> = [
        ("speaker-grace", &cli.speaker_grace),
        ("gossip-fallback-after", &cli.gossip_fallback_after),
    ]
    .into_iter()
    .filter_map(|(flag, value)| ferrolb_process::deprecated_bare(flag, value))
    .collect();
    for (old, new, given) in [
        ("probe-timeout-ms", "probe-timeout", cli.probe_timeout_ms),
        (
            "announce-interval-ms",
            "announce-interval",
            cli.announce_interval_ms,
        ),
    ] {
        if let Some(ms) = given {
            warnings.push(format!("--{old} {ms} is deprecated: write --{new} {ms}ms"));
        }
    }
    warnings
}

async fn speaker(cli: Cli) -> anyhow::Result<()> {
    for warning in deprecations(&cli) {
        tracing::warn!("{warning}");
    }
    let membership = match cli.membership {
        Liveness::Api => None,
        Liveness::Gossip => {
            let ip = cli
                .node_ip
                .context("--node-ip (or FERROLB_NODE_IP) is needed for the gossip")?;
            let key = match &cli.gossip_key_file {
                Some(path) => {
                    Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
                }
                None => None,
            };
            let options = GossipOptions {
                name: cli.node_name.clone(),
                advertise: SocketAddr::new(ip, cli.gossip_port),
                bind: SocketAddr::new(ip, cli.gossip_port),
                profile: cli.gossip_profile,
                sealer: Sealer::new(key.as_deref().map(<[u8]>::trim_ascii)),
                grace: cli.speaker_grace.value,
                probe_timeout: cli
                    .probe_timeout
                    .map(|d| d.value)
                    .or(cli.probe_timeout_ms.map(Duration::from_millis))
                    .unwrap_or(cli.gossip_profile.probe_timeout()),
            };
            Some(
                Membership::start(options)
                    .await
                    .with_context(|| format!("binding the gossip port {ip}:{}", cli.gossip_port))?,
            )
        }
    };
    let client = ferrolb_process::kube_client()
        .await
        .context("connecting to the API server")?;
    let metrics = Metrics::new();
    let listener = tokio::spawn(ferrolb_process::serve(cli.metrics_addr, metrics.clone()));
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        ferrolb_process::shutdown_signal().await;
        stop_tx.send_replace(true);
    });
    let options = Options {
        node: cli.node_name.clone(),
        namespace: cli.namespace,
        excludes: cli.exclude_interfaces,
        dataplane: cli.dataplane == Dataplane::Nftables,
        membership,
        fallback_after: cli.gossip_fallback_after.value,
        schedule: Schedule {
            interval: cli
                .announce_interval_ms
                .map_or(cli.announce_interval.value, Duration::from_millis),
            repeats: cli.announce_repeats,
        },
        class: ClassPolicy { class: cli.lb_class },
        restart_time: cli.bgp_restart_time.value,
    };
    tracing::info!(node = %cli.node_name, "speaker starting");
    tokio::select! {
        result = run::run(client, options, metrics, stop) => result,
        result = listener => match result {
            Ok(Err(e)) => Err(e.context(format!("serving metrics on {}", cli.metrics_addr))),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_the_old_spellings_still_work_with_a_warning() {
        let cli = Cli::try_parse_from(["ferrolb-speaker", "--node-name", "n1"]).unwrap();
        assert_eq!(cli.speaker_grace.value, Duration::from_secs(10));
        assert_eq!(cli.announce_interval.value, Duration::from_millis(1100));
        assert!(deprecations(&cli).is_empty());
        let cli = Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name",
            "n1",
            "--speaker-grace",
            "5",
            "--gossip-fallback-after",
            "1.5s",
            "--probe-timeout-ms",
            "4",
            "--announce-interval-ms",
            "500",
        ])
        .unwrap();
        assert_eq!(cli.speaker_grace.value, Duration::from_secs(5));
        assert_eq!(cli.gossip_fallback_after.value, Duration::from_millis(1500));
        let warnings = deprecations(&cli);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[1].contains("--probe-timeout 4ms"), "{warnings:?}");
        assert!(
            Cli::try_parse_from(["ferrolb-speaker", "--node-name", "n1", "--speaker-grace", "ten"]).is_err()
        );
        assert!(
            Cli::try_parse_from([
                "ferrolb-speaker",
                "--node-name",
                "n1",
                "--announce-interval",
                "1s",
                "--announce-interval-ms",
                "5"
            ])
            .is_err(),
            "one spelling at a time"
        );
    }

    #[test]
    fn the_default_interface_list_is_the_built_in_one_and_shown_as_typed() {
        let cli = Cli::try_parse_from(["ferrolb-speaker", "--node-name", "n1"]).unwrap();
        assert_eq!(cli.exclude_interfaces, DEFAULT_EXCLUDES);
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("[default: lo,docker*,"), "{help}");
    }
}
