//! Real BGP routers in the lab's client namespace, for the BGP suites and benchmarks:
//! BIRD 2, FRR, GoBGP and ExaBGP (Debian packages), each configured with passive
//! sessions to the nodes and read back through its own CLI as one shape, [`Path`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::{Lab, until};

/// Which implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// BIRD 2.
    Bird,
    /// FRR (zebra + bgpd).
    Frr,
    /// GoBGP.
    Gobgp,
    /// ExaBGP (learns routes, installs none).
    Exabgp,
}

impl Kind {
    /// Its name, for files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bird => "bird",
            Kind::Frr => "frr",
            Kind::Gobgp => "gobgp",
            Kind::Exabgp => "exabgp",
        }
    }

    /// Whether it installs the routes it learns in its namespace's kernel.
    pub fn installs(self) -> bool {
        matches!(self, Kind::Bird | Kind::Frr)
    }

    /// The program that must be installed.
    pub fn program(self) -> &'static str {
        match self {
            Kind::Bird => "bird",
            Kind::Frr => "/usr/lib/frr/bgpd",
            Kind::Gobgp => "gobgpd",
            Kind::Exabgp => "exabgp",
        }
    }
}

/// A node the router accepts a session from.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// Its address (IPv4 or IPv6).
    pub address: String,
    /// Its AS.
    pub asn: u32,
    /// The TCP MD5 key.
    pub password: Option<String>,
}

/// The router's side.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The router's AS.
    pub asn: u32,
    /// Its BGP identifier (its IPv4 address).
    pub router_id: String,
    /// Its IPv6 address (GoBGP and ExaBGP listen on each address).
    pub address_v6: String,
    /// The sessions it accepts.
    pub neighbors: Vec<Neighbor>,
}

/// One path the router learned for a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path {
    /// The BGP next hop.
    pub next_hop: String,
    /// Standard communities, `A:B`.
    pub communities: BTreeSet<String>,
    /// Large communities, `A:B:C`.
    pub large_communities: BTreeSet<String>,
    /// LOCAL_PREF, when the route carries one (iBGP).
    pub local_pref: Option<u32>,
}

/// A router running in a lab namespace.
pub struct Router {
    /// Which implementation.
    pub kind: Kind,
    host: String,
    dir: PathBuf,
    /// The neighbors' addresses, in the setup's order.
    neighbors: Vec<String>,
}

impl Router {
    /// Whether `kind` is installed; in CI its absence fails the suite.
    pub fn available(kind: Kind) -> bool {
        let found = crate::sh(&["sh", "-c", &format!("command -v {}", kind.program())]).is_ok();
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing in CI (scripts/test.sh installs it)",
                kind.program()
            );
            eprintln!("skipping: {} is not installed", kind.program());
        }
        found
    }

    /// Configures and starts `kind` in `host`'s namespace, and waits until it listens.
    pub async fn start(lab: &mut Lab, kind: Kind, host: &str, setup: &Setup) -> anyhow::Result<Self> {
        let dir = lab.dir.join(kind.name());
        std::fs::create_dir_all(&dir)?;
        let router = Self {
            kind,
            host: host.to_string(),
            dir,
            neighbors: setup.neighbors.iter().map(|n| n.address.clone()).collect(),
        };
        match kind {
            Kind::Bird => router.start_bird(lab, setup)?,
            Kind::Frr | Kind::Gobgp | Kind::Exabgp => anyhow::bail!("{} is not wired yet", kind.name()),
        }
        until(&format!("{} listening on port 179", kind.name()), 20, || {
            router.listening(lab).then_some(())
        })
        .await?;
        Ok(router)
    }

    fn listening(&self, lab: &Lab) -> bool {
        lab.net
            .exec(&self.host, &["ss", "-Hltn", "sport = :179"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    fn run(&self, lab: &Lab, args: &[&str]) -> String {
        lab.net
            .exec(&self.host, args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Every path the router has for `prefix` (exactly that prefix).
    pub fn paths(&self, lab: &Lab, prefix: &str) -> Vec<Path> {
        match self.kind {
            Kind::Bird => bird_paths(
                &self.run(
                    lab,
                    &[
                        "birdc",
                        "-s",
                        &self.path("bird.ctl"),
                        "show",
                        "route",
                        prefix,
                        "all",
                    ],
                ),
                prefix,
            ),
            Kind::Frr | Kind::Gobgp | Kind::Exabgp => Vec::new(),
        }
    }

    /// What the router says of its session with `neighbor` (state and last error), as
    /// text.
    pub fn session(&self, lab: &Lab, neighbor: &str) -> String {
        let Some(i) = self.neighbors.iter().position(|n| n == neighbor) else {
            return String::new();
        };
        match self.kind {
            Kind::Bird => self.run(
                lab,
                &[
                    "birdc",
                    "-s",
                    &self.path("bird.ctl"),
                    "show",
                    "protocols",
                    "all",
                    &format!("node{i}"),
                ],
            ),
            Kind::Frr | Kind::Gobgp | Kind::Exabgp => String::new(),
        }
    }

    /// Whether the router's last word on `neighbor`'s session is a Cease it received.
    pub fn received_cease(&self, lab: &Lab, neighbor: &str) -> bool {
        let text = self.session(lab, neighbor);
        match self.kind {
            // "Received: Peer de-configured", "Received: Administrative shutdown".
            Kind::Bird => {
                text.contains("Received: Peer de-configured")
                    || text.contains("Received: Administrative shutdown")
            }
            Kind::Frr | Kind::Gobgp | Kind::Exabgp => false,
        }
    }

    /// The next hops of `prefix`'s paths, sorted.
    pub fn next_hops(&self, lab: &Lab, prefix: &str) -> Vec<String> {
        let mut hops: Vec<String> = self.paths(lab, prefix).into_iter().map(|p| p.next_hop).collect();
        hops.sort();
        hops
    }

    /// Waits until `prefix`'s next hops are exactly `hops` (in any order).
    pub async fn until_next_hops(
        &self,
        lab: &Lab,
        prefix: &str,
        hops: &[&str],
        secs: u64,
    ) -> anyhow::Result<()> {
        let mut want: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
        want.sort();
        until(
            &format!("{} to route {prefix} via {hops:?}", self.kind.name()),
            secs,
            || (self.next_hops(lab, prefix) == want).then_some(()),
        )
        .await
        .with_context(|| format!("{} has {:?}", self.kind.name(), self.paths(lab, prefix)))
    }

    fn start_bird(&self, lab: &mut Lab, setup: &Setup) -> anyhow::Result<()> {
        let mut conf = format!(
            "router id {};\n\
             protocol device {{}}\n\
             protocol direct {{ ipv4; ipv6; }}\n\
             protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\n\
             protocol kernel {{ ipv6 {{ export all; }}; merge paths on; }}\n",
            setup.router_id
        );
        for (i, n) in setup.neighbors.iter().enumerate() {
            let password = n
                .password
                .as_ref()
                .map(|p| format!("password \"{p}\";"))
                .unwrap_or_default();
            conf += &format!(
                "protocol bgp node{i} {{ local as {}; neighbor {} as {}; passive on; error wait time 1, 5; {password}\n  \
                   ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n",
                setup.asn, n.address, n.asn
            );
        }
        std::fs::write(self.path("bird.conf"), conf)?;
        let (conf, ctl, pid) = (
            self.path("bird.conf"),
            self.path("bird.ctl"),
            self.path("bird.pid"),
        );
        lab.spawn(
            "bird",
            &self.host,
            &["bird", "-f", "-c", &conf, "-s", &ctl, "-P", &pid],
        )
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the router's BGP process: a silent peer.
    pub fn freeze(&self, lab: &mut Lab, frozen: bool) {
        let signal = match frozen {
            true => nix::sys::signal::Signal::SIGSTOP,
            false => nix::sys::signal::Signal::SIGCONT,
        };
        let name = match self.kind {
            Kind::Bird => "bird",
            Kind::Frr => "bgpd",
            Kind::Gobgp => "gobgpd",
            Kind::Exabgp => "exabgp",
        };
        lab.proc(name).signal(signal);
    }
}

/// Paths of `birdc show route all for PREFIX`: a block per path, starting at the line
/// naming the prefix (or indented, for further paths) with `unicast [`.
fn bird_paths(text: &str, prefix: &str) -> Vec<Path> {
    let mut paths: Vec<Path> = Vec::new();
    let mut in_prefix = false;
    for line in text.lines() {
        if line.contains("unicast [") {
            let first = line.split_whitespace().next().unwrap_or("");
            if !line.starts_with(char::is_whitespace) {
                in_prefix = first == prefix;
            }
            if in_prefix {
                paths.push(Path::default());
            }
            continue;
        }
        let (Some(path), true) = (paths.last_mut(), in_prefix) else {
            continue;
        };
        let line = line.trim();
        if let Some(hop) = line.strip_prefix("BGP.next_hop:") {
            path.next_hop = hop.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(pref) = line.strip_prefix("BGP.local_pref:") {
            path.local_pref = pref.trim().parse().ok();
        } else if let Some(list) = line.strip_prefix("BGP.community:") {
            path.communities = tuples(list).map(|t| t.join(":")).collect();
        } else if let Some(list) = line.strip_prefix("BGP.large_community:") {
            path.large_communities = tuples(list).map(|t| t.join(":")).collect();
        }
    }
    paths
}

/// `(a,b) (c, d, e)` → `[a, b]`, `[c, d, e]`.
fn tuples(list: &str) -> impl Iterator<Item = Vec<String>> + '_ {
    list.split('(').filter_map(|t| {
        let inner = t.split(')').next()?.trim();
        (!inner.is_empty()).then(|| inner.split(',').map(|x| x.trim().to_string()).collect())
    })
}

/// How long a router may take to show a change (routers answer in milliseconds; the
/// margin is for a loaded CI machine).
pub const PATIENCE: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_output_reads_as_paths() {
        let text = "BIRD 2.0.12 ready.\n\
Table master4:\n\
10.77.0.200/32       unicast [node0 12:00:00.000] * (100) [AS4200000002i]\n\
\tvia 10.77.0.11 on eth0\n\
\tType: BGP univ\n\
\tBGP.origin: IGP\n\
\tBGP.as_path: 4200000002\n\
\tBGP.next_hop: 10.77.0.11\n\
\tBGP.community: (65000,1) (65000,2)\n\
\tBGP.large_community: (4200000001, 2, 3)\n\
                     unicast [node1 12:00:00.000] (100) [i]\n\
\tvia 10.77.0.12 on eth0\n\
\tBGP.next_hop: 10.77.0.12\n\
\tBGP.local_pref: 150\n";
        let paths = bird_paths(text, "10.77.0.200/32");
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].next_hop, "10.77.0.11");
        assert_eq!(
            paths[0].communities,
            BTreeSet::from(["65000:1".into(), "65000:2".into()])
        );
        assert_eq!(
            paths[0].large_communities,
            BTreeSet::from(["4200000001:2:3".into()])
        );
        assert_eq!(paths[1].local_pref, Some(150));
        assert!(bird_paths(text, "10.77.0.201/32").is_empty());
    }
}
