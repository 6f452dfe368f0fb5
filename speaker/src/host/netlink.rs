//! rtnetlink shell: follows the node's links and addresses live (a fresh dump after
//! every change notification, so the snapshot is never patched wrong), and puts
//! announced addresses on `lo` for the dataplane.
//!
//! Addresses on loopback links are left out of the snapshot and their notifications
//! ignored: they are never announced on, and the dataplane's own VIPs there would make
//! a takeover of N addresses cost N dumps of N addresses.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, MulticastGroup};
use thiserror::Error;
use tokio::sync::watch;

use crate::host::links::{Link, Links};
use crate::l2::packet::Mac;

/// A netlink failure.
#[derive(Debug, Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Open(#[from] std::io::Error),
    /// A request failed.
    #[error("netlink request failed: {0}")]
    Request(#[from] rtnetlink::Error),
    /// The notification stream ended.
    #[error("netlink notifications ended")]
    Ended,
}

/// Follows the node's links and addresses in a task of its own, for as long as the
/// runtime runs (starting again a second after any failure); the receiver always holds
/// the latest snapshot.
pub fn followed() -> watch::Receiver<Links> {
    let (tx, rx) = watch::channel(Links::default());
    tokio::spawn(async move {
        loop {
            let Err(err) = follow(&tx).await;
            tracing::error!(error = %err, "lost track of the node's links: following again in 1 s");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    rx
}

/// Follows links and addresses, publishing each new snapshot on `tx`; returns only on error.
async fn follow(tx: &watch::Sender<Links>) -> Result<std::convert::Infallible, NetlinkError> {
    let (connection, handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    tokio::spawn(connection);
    loop {
        let (links, loopback) = dump(&handle).await?;
        tx.send_if_modified(|old| {
            let changed = *old != links;
            *old = links;
            changed
        });
        // A burst of notifications (a link going down drops its addresses) costs one dump.
        let mut relevant = false;
        while !relevant {
            let (message, _) = messages.next().await.ok_or(NetlinkError::Ended)?;
            relevant = !on_loopback(&message, &loopback);
            while let Ok((message, _)) = messages.try_recv() {
                relevant |= !on_loopback(&message, &loopback);
            }
        }
    }
}

/// Whether `message` is about an address on one of the `loopback` links.
fn on_loopback(message: &NetlinkMessage<RouteNetlinkMessage>, loopback: &BTreeSet<u32>) -> bool {
    match &message.payload {
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a),
        ) => loopback.contains(&a.header.index),
        _ => false,
    }
}

/// One snapshot of the links and their addresses (none of loopback links), and the
/// indexes of the loopback links.
async fn dump(handle: &Handle) -> Result<(Links, BTreeSet<u32>), NetlinkError> {
    let mut links = Links::default();
    let mut loopback = BTreeSet::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await? {
        if msg.header.flags.contains(LinkFlags::Loopback) {
            loopback.insert(msg.header.index);
        }
        let link = link_of(&msg);
        links.links.insert(link.index, link);
    }
    let mut stream = handle.address().get().execute();
    while let Some(msg) = stream.try_next().await? {
        if loopback.contains(&msg.header.index) {
            continue;
        }
        if let Some(net) = net_of(&msg) {
            links.addresses.entry(msg.header.index).or_default().push(net);
        }
    }
    Ok((links, loopback))
}

fn link_of(msg: &LinkMessage) -> Link {
    let flags = msg.header.flags;
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
        broadcast: flags.contains(LinkFlags::Broadcast),
        noarp: flags.contains(LinkFlags::Noarp),
        enslaved: false,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(bytes) => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice())
                    .ok()
                    .map(Mac)
                    .filter(|m| *m != Mac::ZERO);
            }
            LinkAttribute::Controller(_) => link.enslaved = true,
            _ => {}
        }
    }
    link
}

fn net_of(msg: &AddressMessage) -> Option<IpNet> {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    let ip = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })?;
    IpNet::new(ip, msg.header.prefix_len).ok()
}

/// Puts addresses on `lo` (host prefix) and takes them off again.
#[derive(Debug)]
pub struct Loopback {
    handle: Handle,
    index: u32,
    added: BTreeSet<IpAddr>,
}

const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;

impl Loopback {
    /// Opens a netlink connection for `lo`.
    pub async fn open() -> Result<Self, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        let (links, _) = dump(&handle).await?;
        let index = links.by_name("lo").map(|l| l.index).unwrap_or(1);
        Ok(Self {
            handle,
            index,
            added: BTreeSet::new(),
        })
    }

    /// The addresses this speaker put on `lo`.
    pub fn added(&self) -> &BTreeSet<IpAddr> {
        &self.added
    }

    /// Makes `lo` carry exactly `ips` among the addresses this speaker added.
    pub async fn set(&mut self, ips: &BTreeSet<IpAddr>) {
        let stale: Vec<IpAddr> = self
            .added
            .iter()
            .filter(|ip| !ips.contains(ip))
            .copied()
            .collect();
        for ip in stale {
            if let Err(err) = self.remove(ip).await {
                tracing::warn!(%ip, error = %err, "cannot remove address from lo");
            }
        }
        for ip in ips {
            if self.added.contains(ip) {
                continue;
            }
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            match self.handle.address().add(self.index, *ip, prefix).execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == EEXIST => {}
                Err(err) => {
                    tracing::warn!(%ip, error = %err, "cannot add address to lo");
                    continue;
                }
            }
            self.added.insert(*ip);
        }
    }

    async fn remove(&mut self, ip: IpAddr) -> Result<(), NetlinkError> {
        self.added.remove(&ip);
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .execute();
        while let Some(msg) = stream.try_next().await? {
            if net_of(&msg).is_some_and(|n| n.addr() == ip) {
                match self.handle.address().del(msg).execute().await {
                    Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == EADDRNOTAVAIL => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }
}
