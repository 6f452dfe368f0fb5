//! The dataplane of the announced addresses, carried out: the nftables rules and the
//! VIPs on `lo`. Changed in two moves around each Layer 2 change, so traffic a takeover
//! draws finds its rules in place, and traffic still arriving for an address given up
//! keeps them until the node has stopped answering for it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::host::netlink::{Loopback, NetlinkError};
use crate::host::nftables::{Nftables, Steer};
use crate::l2::Owned;

/// The nftables table and the VIPs on `lo`.
pub struct Steering {
    nft: Nftables,
    lo: Loopback,
}

impl Steering {
    /// Opens the netlink connection for `lo`; nothing is written yet.
    pub async fn open() -> Result<Self, NetlinkError> {
        Ok(Self {
            nft: Nftables::default(),
            lo: Loopback::open().await?,
        })
    }

    /// Puts `rules` in place, keeping rules they do not replace (same address, port and
    /// protocol: a map holds one target each), and adds `owned` to `lo`.
    pub async fn widen(&mut self, rules: &BTreeSet<Steer>, owned: &Owned) {
        let key = |s: &Steer| (s.protocol.clone(), s.vip, s.port);
        let replaced: BTreeSet<_> = rules.iter().map(key).collect();
        let kept = self.nft.current().filter(|s| !replaced.contains(&key(s)));
        let all: BTreeSet<Steer> = kept.chain(rules).cloned().collect();
        let vips: BTreeSet<IpAddr> = self.lo.added().iter().chain(owned.keys()).copied().collect();
        self.put(&all, &vips).await;
    }

    /// Puts exactly `rules` in place and exactly `owned` on `lo`.
    pub async fn narrow(&mut self, rules: &BTreeSet<Steer>, owned: &Owned) {
        self.put(rules, &owned.keys().copied().collect()).await;
    }

    /// Removes the VIPs, and the table unless `keep_rules` (routers keep sending this
    /// node traffic through a graceful restart).
    pub async fn remove(&mut self, keep_rules: bool) {
        if keep_rules {
            tracing::info!("keeping the nftables steering for the routes kept by graceful restart");
        } else if let Err(err) = self.nft.remove().await {
            tracing::warn!(error = %err, "cannot remove the nftables table");
        }
        self.lo.set(&BTreeSet::new()).await;
    }

    async fn put(&mut self, rules: &BTreeSet<Steer>, vips: &BTreeSet<IpAddr>) {
        if let Err(err) = self.nft.apply(rules).await {
            tracing::error!(error = %err, "cannot write the nftables steering");
        }
        self.lo.set(vips).await;
    }
}
