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
    /// A multihop session to this router address (BIRD only): the router answers from
    /// it and resolves the next hops recursively.
    pub multihop_to: Option<String>,
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
    /// BFD with every neighbor at this interval (both ways, multiplier 3): BIRD and FRR
    /// (`bfdd`) only.
    pub bfd: Option<Duration>,
}

impl Setup {
    /// A router in `host` (AS `asn`) accepting eBGP over IPv4 from every lab node (AS
    /// `node_asn`), with BFD at `bfd` if given.
    pub fn ipv4_to_nodes(lab: &Lab, host: &str, asn: u32, node_asn: u32, bfd: Option<Duration>) -> Self {
        let router = lab.net.host(host);
        Self {
            asn,
            router_id: router.v4.clone(),
            address_v6: router.v6.clone(),
            neighbors: crate::NODES
                .iter()
                .map(|(node, _)| Neighbor {
                    address: lab.net.host(node).v4.clone(),
                    asn: node_asn,
                    password: None,
                    multihop_to: None,
                })
                .collect(),
            bfd,
        }
    }

    /// The router's address a session with `neighbor` runs from (its family).
    fn local_address(&self, neighbor: &Neighbor) -> &str {
        match neighbor.address.contains(':') {
            true => &self.address_v6,
            false => &self.router_id,
        }
    }
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
            Kind::Frr => router.start_frr(lab, setup).await?,
            Kind::Gobgp => router.start_gobgp(lab, setup)?,
            Kind::Exabgp => router.start_exabgp(lab, setup)?,
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
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        match self.kind {
            Kind::Bird => bird_paths(&self.birdc(lab, &["show", "route", prefix, "all"]), prefix),
            Kind::Frr => frr_paths(&self.vtysh(lab, &format!("show bgp {family} unicast {prefix} json"))),
            Kind::Gobgp => gobgp_paths(
                &self.gobgp(lab, &["global", "rib", "-a", family, prefix, "-j"]),
                prefix,
            ),
            Kind::Exabgp => exabgp_paths(
                &std::fs::read_to_string(self.path("table.json")).unwrap_or_default(),
                prefix,
            ),
        }
    }

    fn vtysh(&self, lab: &Lab, command: &str) -> String {
        self.run(lab, &["vtysh", "--vty_socket", &self.path(""), "-c", command])
    }

    /// BIRD's CLI on this router's control socket.
    fn birdc(&self, lab: &Lab, args: &[&str]) -> String {
        let ctl = self.path("bird.ctl");
        let mut all = vec!["birdc", "-s", &ctl];
        all.extend(args);
        self.run(lab, &all)
    }

    /// GoBGP's CLI on this router's API.
    fn gobgp(&self, lab: &Lab, args: &[&str]) -> String {
        let mut all = vec!["gobgp", "-u", "127.0.0.1", "-p", GOBGP_API];
        all.extend(args);
        self.run(lab, &all)
    }

    /// What the router says of its session with `neighbor` (state and last error), as
    /// text.
    pub fn session(&self, lab: &Lab, neighbor: &str) -> String {
        let Some(i) = self.neighbors.iter().position(|n| n == neighbor) else {
            return String::new();
        };
        match self.kind {
            Kind::Bird => self.birdc(lab, &["show", "protocols", "all", &format!("node{i}")]),
            Kind::Frr => self.vtysh(lab, &format!("show bgp neighbors {neighbor} json")),
            Kind::Gobgp => self.gobgp(lab, &["neighbor", neighbor, "-j"]),
            Kind::Exabgp => std::fs::read_to_string(self.path("messages.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&format!("\"peer\": \"{neighbor}\"")) && l.contains("\"state\""))
                .collect::<Vec<_>>()
                .join("\n"),
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
            // "lastNotificationReason": "Cease\/Peer Unconfigured",
            // "lastResetDueTo": "BGP Notification received".
            Kind::Frr => text.contains("Notification received") && text.contains("Cease"),
            // Its JSON gives no reason: a NOTIFICATION received, and the session down.
            Kind::Gobgp => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let state = &json["state"];
                state["messages"]["received"]["notification"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 1
                    && state["session_state"].as_u64() != Some(6)
            }
            // "reason": "peer reset, message (notification received (6,3)) …"
            Kind::Exabgp => text.contains("notification received (6,"),
        }
    }

    /// Whether the router's session with `neighbor` is Established.
    pub fn established(&self, lab: &Lab, neighbor: &str) -> bool {
        let text = self.session(lab, neighbor);
        match self.kind {
            // "  BGP state:          Established"
            Kind::Bird => text
                .lines()
                .any(|l| l.trim_start().starts_with("BGP state:") && l.ends_with("Established")),
            Kind::Frr => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                json[neighbor]["bgpState"] == "Established"
            }
            Kind::Gobgp => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                json["state"]["session_state"].as_u64() == Some(6)
            }
            Kind::Exabgp => text
                .lines()
                .last()
                .is_some_and(|l| l.contains("\"state\": \"up\"")),
        }
    }

    /// The next hops of `prefix`'s paths, sorted, each once.
    pub fn next_hops(&self, lab: &Lab, prefix: &str) -> Vec<String> {
        let hops: BTreeSet<String> = self.paths(lab, prefix).into_iter().map(|p| p.next_hop).collect();
        hops.into_iter().collect()
    }

    /// Waits until `prefix`'s next hops are exactly `hops` (in any order; a node with
    /// two sessions to the router gives one next hop twice, counted once).
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
        .with_context(|| {
            format!(
                "{} has {:?}; its table:\n{}",
                self.kind.name(),
                self.paths(lab, prefix),
                self.table(lab)
            )
        })
    }

    /// The router's whole table, as its CLI shows it (for failure messages).
    pub fn table(&self, lab: &Lab) -> String {
        match self.kind {
            Kind::Bird => self.birdc(lab, &["show", "route", "all"]),
            Kind::Frr => self.vtysh(lab, "show bgp ipv4 unicast") + &self.vtysh(lab, "show bgp ipv6 unicast"),
            Kind::Gobgp => ["ipv4", "ipv6"]
                .iter()
                .map(|f| self.gobgp(lab, &["global", "rib", "-a", f]))
                .collect(),
            Kind::Exabgp => std::fs::read_to_string(self.path("table.json")).unwrap_or_default(),
        }
    }

    fn start_bird(&self, lab: &mut Lab, setup: &Setup) -> anyhow::Result<()> {
        // Microsecond timestamps in UTC (TZ at the start): the benchmarks read when the
        // session came up and when each route arrived from BIRD itself.
        let mut conf = format!(
            "router id {};\n\
             log stderr all;\n\
             timeformat route iso long us;\n\
             timeformat protocol iso long us;\n\
             protocol device {{}}\n\
             protocol direct {{ ipv4; ipv6; }}\n\
             protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\n\
             protocol kernel {{ ipv6 {{ export all; }}; merge paths on; }}\n",
            setup.router_id
        );
        let bfd = match setup.bfd {
            Some(every) => {
                conf += &format!(
                    "protocol bfd {{ interface \"*\" {{ interval {} ms; multiplier 3; }}; }}\n",
                    every.as_millis()
                );
                "bfd on;"
            }
            None => "",
        };
        for (i, n) in setup.neighbors.iter().enumerate() {
            let password = n
                .password
                .as_ref()
                .map(|p| format!("password \"{p}\";"))
                .unwrap_or_default();
            let local = match &n.multihop_to {
                Some(at) => format!("local {at} as {}; multihop;", setup.asn),
                None => format!("local as {};", setup.asn),
            };
            conf += &format!(
                "protocol bgp node{i} {{ {local} neighbor {} as {}; passive on; error wait time 0, 0; {password} {bfd}\n  \
                   ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n",
                n.address, n.asn
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

    async fn start_frr(&self, lab: &mut Lab, setup: &Setup) -> anyhow::Result<()> {
        let mut conf = format!(
            "frr defaults traditional\nhostname router\n!\nrouter bgp {}\n bgp router-id {}\n \
             no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n \
             coalesce-time 50\n",
            setup.asn, setup.router_id
        );
        for n in &setup.neighbors {
            conf += &format!(
                " neighbor {} remote-as {}\n neighbor {} passive\n",
                n.address, n.asn, n.address
            );
            if let Some(p) = &n.password {
                conf += &format!(" neighbor {} password {p}\n", n.address);
            }
            if setup.bfd.is_some() {
                conf += &format!(" neighbor {} bfd profile lab\n", n.address);
            }
        }
        for family in ["ipv4", "ipv6"] {
            conf += &format!(" !\n address-family {family} unicast\n");
            for n in &setup.neighbors {
                conf += &format!("  neighbor {} activate\n", n.address);
            }
            conf += "  maximum-paths 8\n  maximum-paths ibgp 8\n exit-address-family\n";
        }
        std::fs::write(self.path("bgpd.conf"), conf + "!\n")?;
        std::fs::write(self.path("zebra.conf"), "hostname router\n")?;
        if let Some(every) = setup.bfd {
            let ms = every.as_millis();
            std::fs::write(
                self.path("bfdd.conf"),
                format!(
                    "hostname router\nbfd\n profile lab\n  detect-multiplier 3\n  transmit-interval {ms}\n  receive-interval {ms}\n !\n!\n"
                ),
            )?;
        }
        // The daemons drop to user frr: it must own their directory.
        crate::sh(&["chown", "-R", "frr:frr", &self.path("")])?;
        let zserv = self.path("zserv.api");
        let daemon = |name: &str| {
            vec![
                format!("/usr/lib/frr/{name}"),
                "-f".into(),
                self.path(&format!("{name}.conf")),
                "-i".into(),
                self.path(&format!("{name}.pid")),
                "-z".into(),
                zserv.clone(),
                "--vty_socket".into(),
                self.path(""),
                "-P".into(),
                "0".into(),
                "--log".into(),
                format!("file:{}", self.path(&format!("{name}.log"))),
            ]
        };
        let args = daemon("zebra");
        lab.spawn(
            "zebra",
            &self.host,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        let zebra = |lab: &Lab, command: &str| {
            self.run(
                lab,
                &[
                    "vtysh",
                    "--vty_socket",
                    &self.path(""),
                    "-d",
                    "zebra",
                    "-c",
                    command,
                ],
            )
        };
        until("zebra", 20, || {
            (!zebra(lab, "show version").is_empty()).then_some(())
        })
        .await?;
        if setup.bfd.is_some() {
            // bgpd registers its BFD peers through zebra with bfdd: bfdd first.
            let args = daemon("bfdd");
            lab.spawn(
                "bfdd",
                &self.host,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            until("bfdd registered with zebra", 20, || {
                zebra(lab, "show zebra client summary")
                    .lines()
                    .any(|l| l.starts_with("bfd"))
                    .then_some(())
            })
            .await?;
        }
        // bgpd must find zebra at once: a retry comes 10 s later, and sessions that come
        // up meanwhile lack interface data (IPv6 next hops go wrong).
        let args = daemon("bgpd");
        lab.spawn(
            "bgpd",
            &self.host,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        until("bgpd registered with zebra", 20, || {
            zebra(lab, "show zebra client summary")
                .lines()
                .any(|l| l.starts_with("bgp"))
                .then_some(())
        })
        .await
    }

    fn start_gobgp(&self, lab: &mut Lab, setup: &Setup) -> anyhow::Result<()> {
        let mut conf = format!(
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = 179\n  local-address-list = [\"{}\", \"{}\"]\n\
             [global.apply-policy.config]\n  default-export-policy = \"reject-route\"\n",
            setup.asn, setup.router_id, setup.router_id, setup.address_v6
        );
        for n in &setup.neighbors {
            let local = setup.local_address(n);
            conf += &format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
                n.address, n.asn
            );
            if let Some(p) = &n.password {
                conf += &format!("    auth-password = \"{p}\"\n");
            }
            conf += &format!(
                "  [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{local}\"\n"
            );
            for family in ["ipv4-unicast", "ipv6-unicast"] {
                conf += &format!(
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
                );
            }
        }
        std::fs::write(self.path("gobgpd.toml"), conf)?;
        let conf = self.path("gobgpd.toml");
        let api = format!("127.0.0.1:{GOBGP_API}");
        lab.spawn(
            "gobgpd",
            &self.host,
            &[
                "gobgpd",
                "-f",
                &conf,
                "--api-hosts",
                &api,
                "-p",
                "--pprof-disable",
            ],
        )
    }

    fn start_exabgp(&self, lab: &mut Lab, setup: &Setup) -> anyhow::Result<()> {
        let collector = self.path("collector.py");
        std::fs::write(&collector, include_str!("routers/exabgp_collector.py"))?;
        let mut conf = format!(
            "process collector {{\n  run /usr/bin/python3 {collector} {} {};\n  encoder json;\n}}\n\
             template {{\n  neighbor nodes {{\n    router-id {};\n    local-as {};\n    passive true;\n    \
             family {{ ipv4 unicast; ipv6 unicast; }}\n    \
             api {{ processes [ collector ]; neighbor-changes; receive {{ parsed; update; notification; }} }}\n  }}\n}}\n",
            self.path("table.json"),
            self.path("messages.jsonl"),
            setup.router_id,
            setup.asn
        );
        for n in &setup.neighbors {
            let local = setup.local_address(n);
            conf += &format!(
                "neighbor {} {{\n  inherit nodes;\n  local-address {local};\n  peer-as {};\n",
                n.address, n.asn
            );
            if let Some(p) = &n.password {
                conf += &format!("  md5-password {p};\n");
            }
            conf += "}\n";
        }
        std::fs::write(self.path("exabgp.conf"), conf)?;
        let bind = format!("exabgp.tcp.bind={} {}", setup.router_id, setup.address_v6);
        let conf = self.path("exabgp.conf");
        lab.spawn(
            "exabgp",
            &self.host,
            &[
                "env",
                &bind,
                "exabgp.tcp.port=179",
                "exabgp.api.cli=false",
                "exabgp.daemon.user=root",
                "exabgp.log.destination=stdout",
                "exabgp",
                &conf,
            ],
        )
    }

    /// BIRD: the number of routes learned from `neighbor`, and when the last of them
    /// arrived (UTC seconds since the epoch).
    pub fn bird_routes(&self, lab: &Lab, neighbor: &str) -> (usize, Option<f64>) {
        let protocol = self.bird_protocol(neighbor);
        let text = self.birdc(lab, &["show", "route", "protocol", &protocol]);
        let marker = format!("[{protocol} ");
        let mut count = 0;
        let mut last: Option<f64> = None;
        for line in text.lines() {
            let Some(rest) = line.split(&marker).nth(1) else {
                continue;
            };
            count += 1;
            let stamp: String = rest.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            if let Some(t) = bird_time(stamp.trim_end_matches(']')) {
                last = Some(last.map_or(t, |l| l.max(t)));
            }
        }
        (count, last)
    }

    /// BIRD: the number of routes learned from `neighbor` (cheap to ask often).
    pub fn bird_count(&self, lab: &Lab, neighbor: &str) -> usize {
        let protocol = self.bird_protocol(neighbor);
        let text = self.birdc(lab, &["show", "route", "protocol", &protocol, "count"]);
        // "10000 of 10000 routes for 10000 networks in table master4"
        text.lines()
            .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
            .sum()
    }

    /// BIRD: when the session with `neighbor` entered its state, if it is Established
    /// (UTC seconds since the epoch).
    pub fn bird_established_at(&self, lab: &Lab, neighbor: &str) -> Option<f64> {
        let protocol = self.bird_protocol(neighbor);
        let text = self.birdc(lab, &["show", "protocols", &protocol]);
        // "node0      BGP        ---        up     2026-11-29 18:00:00.123456  Established"
        let line = text
            .lines()
            .find(|l| l.starts_with(&protocol) && l.contains("Established"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        bird_time(&format!("{} {}", words.get(4)?, words.get(5)?))
    }

    /// BIRD: when it learned `prefix` from `neighbor` (UTC seconds since the epoch).
    pub fn bird_route_at(&self, lab: &Lab, neighbor: &str, prefix: &str) -> Option<f64> {
        let protocol = self.bird_protocol(neighbor);
        let text = self.birdc(lab, &["show", "route", prefix]);
        let marker = format!("[{protocol} ");
        let rest = text.lines().find_map(|l| l.split(&marker).nth(1))?;
        let stamp: Vec<&str> = rest.split_whitespace().take(2).collect();
        bird_time(stamp.join(" ").trim_end_matches(']'))
    }

    fn bird_protocol(&self, neighbor: &str) -> String {
        let i = self
            .neighbors
            .iter()
            .position(|n| n == neighbor)
            .unwrap_or(usize::MAX);
        format!("node{i}")
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

/// The port of a GoBGP router's API (on the namespace's loopback).
const GOBGP_API: &str = "50051";

/// Paths of FRR's `show bgp FAMILY unicast PREFIX json`.
fn frr_paths(text: &str) -> Vec<Path> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let list = |v: &serde_json::Value| -> BTreeSet<String> {
        v["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(String::from))
            .collect()
    };
    json["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Path {
            next_hop: p["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|h| h["scope"].as_str() != Some("link-local"))
                .and_then(|h| h["ip"].as_str())
                .unwrap_or_default()
                .to_string(),
            communities: list(&p["community"]),
            large_communities: list(&p["largeCommunity"]),
            local_pref: p["locPrf"].as_u64().map(|v| v as u32),
        })
        .collect()
}

/// Paths of GoBGP's `global rib -a FAMILY PREFIX -j`.
fn gobgp_paths(text: &str, prefix: &str) -> Vec<Path> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    json[prefix]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut path = Path::default();
            for a in p["attrs"].as_array().into_iter().flatten() {
                match a["type"].as_u64() {
                    Some(3 | 14) => path.next_hop = a["nexthop"].as_str().unwrap_or_default().to_string(),
                    Some(5) => path.local_pref = a["value"].as_u64().map(|v| v as u32),
                    Some(8) => {
                        path.communities = a["communities"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_u64())
                            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                            .collect()
                    }
                    Some(32) => {
                        path.large_communities = a["value"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| format!("{}:{}:{}", c["ASN"], c["LocalData1"], c["LocalData2"]))
                            .collect()
                    }
                    _ => {}
                }
            }
            path
        })
        .collect()
}

/// Paths of the ExaBGP collector's table.
fn exabgp_paths(text: &str, prefix: &str) -> Vec<Path> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let strings = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(String::from))
            .collect()
    };
    json[prefix]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Path {
            next_hop: p["next-hop"].as_str().unwrap_or_default().to_string(),
            communities: strings(&p["communities"]),
            large_communities: strings(&p["large-communities"]),
            local_pref: p["local-pref"].as_u64().map(|v| v as u32),
        })
        .collect()
}

/// BIRD's `iso long us` time (UTC) in seconds since the epoch.
pub fn bird_time(text: &str) -> Option<f64> {
    let civil: k8s_openapi::jiff::civil::DateTime = text.trim().parse().ok()?;
    let at = civil
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    Some(at.as_microsecond() as f64 / 1e6)
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
        let text = [
            "BIRD 2.0.12 ready.",
            "Table master4:",
            "10.77.0.200/32       unicast [node0 2026-11-29 18:00:00.123456] * (100) [AS4200000002i]",
            "\tvia 10.77.0.11 on eth0",
            "\tType: BGP univ",
            "\tBGP.origin: IGP",
            "\tBGP.as_path: 4200000002",
            "\tBGP.next_hop: 10.77.0.11",
            "\tBGP.community: (65000,1) (65000,2)",
            "\tBGP.large_community: (4200000001, 2, 3)",
            "                     unicast [node1 2026-11-29 18:00:00.123456] (100) [i]",
            "\tvia 10.77.0.12 on eth0",
            "\tBGP.next_hop: 10.77.0.12",
            "\tBGP.local_pref: 150",
        ]
        .join("\n");
        let text = text.as_str();
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

    #[test]
    fn bird_times_read_in_utc() {
        assert_eq!(bird_time("1970-01-01 00:00:01.500000"), Some(1.5));
        assert_eq!(bird_time("garbage"), None);
    }
}
