//! `ferrolb-testserver --listen 127.0.0.1:0 --kubeconfig-out PATH [--crds DIR]...`:
//! serves the in-memory Kubernetes API until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ferrolb_testserver::{DEFAULT_HISTORY, Store, TestServer};

#[derive(Parser)]
#[command(
    name = "ferrolb-testserver",
    version,
    about = "In-memory Kubernetes API server (a test fixture)"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for this server.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Directories of CRD YAML files to create at start.
    #[arg(long)]
    crds: Vec<PathBuf>,
    /// Authenticate requests by bearer token and authorize them with RBAC, over HTTPS
    /// with a CA made at start (the kubeconfig written is the all-powerful admin's and
    /// trusts that CA).
    #[arg(long)]
    rbac: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = Store::new(DEFAULT_HISTORY, Box::new(ferrolb_testserver::now_rfc3339));
    let server = if args.rbac {
        TestServer::start_secure_with(store, args.listen).await
    } else {
        TestServer::start_with(store, args.listen)
            .await
            .map_err(Into::into)
    }
    .with_context(|| format!("binding {}", args.listen))?;
    for dir in &args.crds {
        ferrolb_testserver::load_crds(&server.shared, dir)?;
    }
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, server.kubeconfig()).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", server.addr);
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
