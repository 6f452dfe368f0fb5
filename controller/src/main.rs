//! `ferrolb-controller`: FerroLB's controller.
//!
//! `run` assigns addresses to LoadBalancer Services (leader-elected; run two replicas
//! for high availability); `validate` checks configuration manifests offline with the
//! same config model.

mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ferrolb_controller::allocator::ClassPolicy;
use ferrolb_controller::leader::Timing;
use ferrolb_controller::metrics::Metrics;
use ferrolb_controller::run::{self, Options};
use ferrolb_process::FlagDuration;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "ferrolb-controller", version, about = "FerroLB's controller")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the controller against the cluster of the kubeconfig (or in-cluster config).
    Run(RunArgs),
    /// Checks configuration manifests offline and prints every problem the controller would report.
    Validate {
        /// Manifest files (multi-document YAML); `-` reads standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// The FerroLB namespace the objects are meant for.
        #[arg(short = 'n', long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
        namespace: String,
    },
}

#[derive(Args)]
struct RunArgs {
    /// FerroLB's namespace: IPAddressPools, the Lease and the ConfigurationState live there.
    #[arg(short = 'n', long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    namespace: String,
    /// Serve only Services with this spec.loadBalancerClass; unset: only Services without a class.
    #[arg(long, env = "FERROLB_LB_CLASS")]
    lb_class: Option<String>,
    /// This replica's identity in the Lease (defaults to the pod name, then the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ferrolb-controller")]
    lease_name: String,
    /// How long a Lease stays valid without renewal (e.g. 15s).
    #[arg(long, default_value = "15s")]
    lease_duration: FlagDuration,
    /// How long after the last renewal a leader steps down (less than the lease duration).
    #[arg(long, default_value = "10s")]
    renew_deadline: FlagDuration,
    /// Time between election attempts and renewals.
    #[arg(long, default_value = "2s")]
    retry_period: FlagDuration,
    /// Concurrent writes to the API.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate { files, namespace } => match validate::run(&files, &namespace) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(err) => {
                eprintln!("ferrolb-controller: {}", ferrolb_process::one_line(err.as_ref()));
                ExitCode::from(2)
            }
        },
        Command::Run(args) => match run_controller(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("ferrolb-controller: {}", ferrolb_process::one_line(err.as_ref()));
                ExitCode::from(2)
            }
        },
    }
}

fn run_controller(args: RunArgs) -> anyhow::Result<()> {
    ferrolb_process::init_logging();
    for (flag, value) in [
        ("lease-duration", &args.lease_duration),
        ("renew-deadline", &args.renew_deadline),
        ("retry-period", &args.retry_period),
    ] {
        if let Some(warning) = ferrolb_process::deprecated_bare(flag, value) {
            tracing::warn!("{warning}");
        }
    }
    let timing = Timing {
        lease_duration: args.lease_duration.value,
        renew_deadline: args.renew_deadline.value,
        retry_period: args.retry_period.value,
    };
    anyhow::ensure!(
        !timing.retry_period.is_zero(),
        "--retry-period must be longer than zero"
    );
    anyhow::ensure!(
        timing.renew_deadline < timing.lease_duration,
        "--renew-deadline must be shorter than --lease-duration"
    );
    let identity = match args.identity {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .context("no --identity and no host name")?,
    };
    let options = Options {
        namespace: args.namespace,
        class: ClassPolicy { class: args.lb_class },
        identity,
        lease_name: args.lease_name,
        timing,
        writers: args.writers,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async move {
            let client = ferrolb_process::kube_client().await.context("connecting to the API server")?;
            let metrics = Metrics::new();
            let listener = tokio::spawn(ferrolb_process::serve(args.metrics_addr, metrics.clone()));
            let (stop_tx, stop) = watch::channel(false);
            tokio::spawn(async move {
                ferrolb_process::shutdown_signal().await;
                tracing::info!("shutting down");
                stop_tx.send_replace(true);
            });
            tracing::info!(identity = %options.identity, namespace = %options.namespace, "controller starting");
            tokio::select! {
                _ = run::run(client, options, metrics, stop) => Ok(()),
                result = listener => match result {
                    Ok(Err(e)) => Err(e.context(format!("serving metrics on {}", args.metrics_addr))),
                    _ => Ok(()),
                },
            }
        })
}
