//! Optional traffic steering (`--dataplane nftables`): for each address this node
//! announces, DNAT `VIP:port/protocol` to the node's own NodePort of that Service port,
//! for nodes where kube-proxy is absent or leaves LoadBalancer addresses alone.
//!
//! The whole table is rewritten in one `nft -f` transaction per change (create, delete,
//! recreate: atomic, and idempotent on start), with one map lookup per family and
//! protocol however many Services there are. Removed on shutdown.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

/// The nftables table FerroLB owns (family `inet`).
pub const TABLE: &str = "ferrolb";

/// One steering rule: traffic to `vip:port` over `protocol` goes to `node:node_port`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Steer {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The announced address.
    pub vip: IpAddr,
    /// The Service port.
    pub port: u16,
    /// The node's address of the same family.
    pub node: IpAddr,
    /// The Service port's NodePort.
    pub node_port: u16,
}

/// The nft script that replaces FerroLB's table with exactly `rules`.
pub fn script(rules: &BTreeSet<Steer>) -> String {
    let mut maps = String::new();
    for v4 in [true, false] {
        for protocol in ["tcp", "udp", "sctp"] {
            let entries: Vec<String> = rules
                .iter()
                .filter(|r| r.protocol == protocol && r.vip.is_ipv4() == v4 && r.node.is_ipv4() == v4)
                .map(|r| format!("{} . {} : {} . {}", r.vip, r.port, r.node, r.node_port))
                .collect();
            if entries.is_empty() {
                continue;
            }
            let family = if v4 { "ip" } else { "ip6" };
            let _ = writeln!(
                maps,
                "\t\tdnat {family} to {family} daddr . {protocol} dport map {{ {} }}",
                entries.join(", ")
            );
        }
    }
    let mut out = format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    // prerouting: traffic arriving for the VIP; output: the node's own clients.
    for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
        let _ = write!(
            out,
            "\tchain {chain} {{\n\t\ttype nat hook {hook} priority -100; policy accept;\n{maps}\t}}\n"
        );
    }
    out.push_str("}\n");
    out
}

/// Why the table could not be written.
#[derive(Debug, Error)]
pub enum NftError {
    /// `nft` could not be run.
    #[error("cannot run nft: {0}")]
    Spawn(#[from] std::io::Error),
    /// `nft` refused the script.
    #[error("nft failed: {0}")]
    Refused(String),
}

/// Writes FerroLB's table, skipping writes that would change nothing.
#[derive(Debug, Default)]
pub struct Nftables {
    current: Option<BTreeSet<Steer>>,
}

impl Nftables {
    /// The rules in place (none before the first [`Nftables::apply`]).
    pub fn current(&self) -> impl Iterator<Item = &Steer> {
        self.current.iter().flatten()
    }

    /// Makes the table hold exactly `rules`.
    pub async fn apply(&mut self, rules: &BTreeSet<Steer>) -> Result<(), NftError> {
        if self.current.as_ref() == Some(rules) {
            return Ok(());
        }
        run_nft(&script(rules)).await?;
        tracing::info!(rules = rules.len(), "nftables steering updated");
        self.current = Some(rules.clone());
        Ok(())
    }

    /// Removes the table.
    pub async fn remove(&mut self) -> Result<(), NftError> {
        self.current = None;
        run_nft(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n")).await
    }
}

async fn run_nft(script: &str) -> Result<(), NftError> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steer(protocol: &str, vip: &str, port: u16, node: &str, node_port: u16) -> Steer {
        Steer {
            protocol: protocol.into(),
            vip: vip.parse().unwrap(),
            port,
            node: node.parse().unwrap(),
            node_port,
        }
    }

    #[test]
    fn one_map_per_family_and_protocol_in_both_chains() {
        let rules: BTreeSet<Steer> = [
            steer("tcp", "10.0.0.100", 80, "10.0.0.2", 30080),
            steer("tcp", "10.0.0.101", 443, "10.0.0.2", 30443),
            steer("udp", "10.0.0.100", 53, "10.0.0.2", 30053),
            steer("tcp", "fd00::100", 80, "fd00::2", 30080),
        ]
        .into_iter()
        .collect();
        let s = script(&rules);
        assert!(s.starts_with("table inet ferrolb\ndelete table inet ferrolb\n"));
        assert!(s.contains("dnat ip to ip daddr . tcp dport map { 10.0.0.100 . 80 : 10.0.0.2 . 30080, 10.0.0.101 . 443 : 10.0.0.2 . 30443 }"));
        assert!(s.contains("dnat ip6 to ip6 daddr . tcp dport map { fd00::100 . 80 : fd00::2 . 30080 }"));
        assert_eq!(s.matches("udp dport map").count(), 2, "prerouting and output");
        assert!(!s.contains("sctp"), "no empty maps");
    }

    #[test]
    fn no_rules_leaves_empty_chains() {
        let s = script(&BTreeSet::new());
        assert!(!s.contains("dnat"));
        assert_eq!(s.matches("type nat hook").count(), 2);
    }
}
