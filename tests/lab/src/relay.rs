//! Makes the in-process API server reachable from inside a namespace at
//! `127.0.0.1:port`: a listening socket is created from a thread that entered the
//! namespace (sockets keep the namespace they were made in), and each connection is
//! relayed to the server on the host's loopback. No address is added to the host.

use std::fs::File;
use std::net::SocketAddr;

use anyhow::Context;
use nix::sched::{CloneFlags, setns};
use tokio::net::{TcpListener, TcpStream};

/// Listens on `127.0.0.1:port` inside `ns`, relaying to `target`; runs until the runtime ends.
pub fn start(ns: &str, port: u16, target: SocketAddr) -> anyhow::Result<()> {
    let path = format!("/run/netns/{ns}");
    let listener = std::thread::scope(|scope| {
        scope
            .spawn(|| -> anyhow::Result<std::net::TcpListener> {
                let file = File::open(&path).with_context(|| format!("opening {path}"))?;
                // Only this short-lived thread changes namespace.
                setns(&file, CloneFlags::CLONE_NEWNET).context("entering the namespace")?;
                let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("relay thread panicked"))?
    })?;
    let listener = TcpListener::from_std(listener)?;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(())
}
