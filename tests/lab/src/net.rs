//! The namespaces: one LAN (a bridge in its own namespace), nodes and a client joined to
//! it by veth pairs. Every name carries the run's prefix; dropping the [`Net`] deletes
//! the namespaces, and with them every link and nft table inside.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The IPv4 subnet of the LAN (/24).
pub const V4: &str = "10.77.0";
/// The IPv6 subnet of the LAN (/64).
pub const V6: &str = "fd00:77::";

/// A host on the LAN.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: String,
    /// Its short name (also the Node name for nodes).
    pub name: String,
    /// Its LAN side link (in the LAN namespace).
    pub port: String,
    /// Its IPv4 address.
    pub v4: String,
    /// Its IPv6 address.
    pub v6: String,
    /// Its MAC address.
    pub mac: String,
}

/// The lab network.
pub struct Net {
    /// Prefix of every namespace of this run.
    pub prefix: String,
    /// The LAN namespace.
    pub lan: String,
    /// Every host.
    pub hosts: Vec<Host>,
}

/// Runs a command, failing with its stderr.
pub fn sh(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Net {
    /// Creates the LAN and `hosts` (name, host number) on it.
    pub fn create(prefix: &str, hosts: &[(&str, u8)]) -> anyhow::Result<Self> {
        let lan = format!("{prefix}lan");
        let mut net = Net {
            prefix: prefix.into(),
            lan: lan.clone(),
            hosts: Vec::new(),
        };
        net.remove_leftovers();
        sh(&["ip", "netns", "add", &lan])?;
        sh(&[
            "ip",
            "-n",
            &lan,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        sh(&["ip", "-n", &lan, "link", "set", "br0", "up"])?;
        for (name, n) in hosts {
            let host = Host {
                ns: format!("{prefix}{name}"),
                name: name.to_string(),
                port: format!("p-{name}"),
                v4: format!("{V4}.{n}"),
                v6: format!("{V6}{n:x}"),
                mac: format!("02:77:00:00:00:{n:02x}"),
            };
            sh(&["ip", "netns", "add", &host.ns])?;
            for sysctl in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.keep_addr_on_down=1",
                "net.ipv6.conf.default.keep_addr_on_down=1",
                // VIPs go on lo: the kernel must not answer ARP for them itself.
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
            ] {
                sh(&["ip", "netns", "exec", &host.ns, "sysctl", "-qw", sysctl])?;
            }
            sh(&[
                "ip", "link", "add", "eth0", "netns", &host.ns, "address", &host.mac, "type", "veth", "peer",
                "name", &host.port, "netns", &lan,
            ])?;
            sh(&["ip", "-n", &lan, "link", "set", &host.port, "master", "br0", "up"])?;
            let (v4, v6) = (format!("{}/24", host.v4), format!("{}/64", host.v6));
            for (address, flags) in [(&v4, &[][..]), (&v6, &["nodad"][..])] {
                let mut args = vec!["ip", "-n", &host.ns, "addr", "add", address, "dev", "eth0"];
                args.extend(flags);
                sh(&args)?;
            }
            sh(&["ip", "-n", &host.ns, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", &host.ns, "link", "set", "lo", "up"])?;
            net.hosts.push(host);
        }
        Ok(net)
    }

    /// A namespace of this run that is on no LAN, with only `lo` up (a pod's own
    /// network); its name.
    pub fn isolated(&self, name: &str) -> anyhow::Result<String> {
        let ns = format!("{}{name}", self.prefix);
        sh(&["ip", "netns", "add", &ns])?;
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("a host of the lab")
    }

    /// Takes a host's link down (its LAN side: the host is cut off) or up again.
    pub fn set_link(&self, name: &str, up: bool) -> anyhow::Result<()> {
        let port = &self.host(name).port;
        sh(&[
            "ip",
            "-n",
            &self.lan,
            "link",
            "set",
            port,
            if up { "up" } else { "down" },
        ])
        .map(|_| ())
    }

    /// A command run inside a host's namespace.
    pub fn exec(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host(name).ns]).args(args);
        cmd
    }

    fn remove_leftovers(&self) {
        if let Ok(list) = sh(&["ip", "netns", "list"]) {
            for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if ns.starts_with(&self.prefix) {
                    let _ = sh(&["ip", "netns", "del", ns]);
                }
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove_leftovers();
    }
}
