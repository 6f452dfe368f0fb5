//! FerroLB's network lab: the API test server (in this process), the controller, and a
//! speaker per node namespace on one bridge, with a client namespace and small HTTP
//! backends on the nodes' NodePorts. Used by the Layer 2 suite and the local demo.
//!
//! It needs root (namespaces, raw sockets, nftables). Everything it creates carries the
//! run's prefix and is removed when the [`Lab`] is dropped; processes are stopped by the
//! PIDs it started.

pub mod chart;
pub mod net;
pub mod pods;
mod relay;
pub mod routers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrolb_testserver::{TestServer, load_crds};
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

pub use net::{Host, Net, V4, V6, sh};

/// FerroLB's namespace in the lab.
pub const NS: &str = "ferrolb-system";
/// The namespace of the lab's Services.
pub const APPS: &str = "demo";
/// The port the API relay listens on inside each node namespace.
const RELAY_PORT: u16 = 16443;
/// The speakers' metrics port (inside their namespaces).
pub const SPEAKER_METRICS: u16 = 7473;

/// Whether this process can build the lab; the reason when it cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("needs root (network namespaces, raw sockets, nftables)".into());
    }
    for tool in [
        "ip", "nft", "arping", "ndisc6", "curl", "ping", "python3", "setpriv",
    ] {
        if sh(&["sh", "-c", &format!("command -v {tool}")]).is_err() {
            return Some(format!("`{tool}` is missing (scripts/test.sh installs it)"));
        }
    }
    None
}

/// Whether a lab suite must skip: never in CI, where a missing prerequisite fails the
/// suite; elsewhere when [`unavailable`] gives a reason, which is printed.
pub fn skip(suite: &str) -> bool {
    match unavailable() {
        Some(reason) if std::env::var_os("CI").is_some() => panic!("the {suite} must run in CI: {reason}"),
        Some(reason) => {
            eprintln!("skipping the {suite}: {reason}");
            true
        }
        None => false,
    }
}

/// A FerroLB binary next to this executable (target/<profile>/, or its parent for tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// A started process, stopped by PID on drop.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
}

impl Proc {
    /// Its PID.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal);
    }

    /// Whether it has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for it to exit (at most `timeout`, then SIGKILL).
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(nix::sys::signal::Signal::SIGTERM);
            self.wait(Duration::from_secs(3));
        }
    }
}

/// The lab.
pub struct Lab {
    /// Processes, stopped first on drop (declared before the network).
    pub procs: Vec<Proc>,
    /// The API test server.
    pub server: TestServer,
    /// A client for it.
    pub client: kube::Client,
    /// The namespaces.
    pub net: Net,
    /// Logs and scratch files.
    pub dir: PathBuf,
    /// The speakers' `RUST_LOG`: the speaker's debug lines by default, for the tests'
    /// diagnostics; benchmarks set the shipped level.
    pub speaker_log: &'static str,
    kubeconfig_host: PathBuf,
    kubeconfig_nodes: PathBuf,
}

/// The lab's address pool: a range of each family on the LAN.
pub const RANGES: [&str; 2] = ["10.77.0.200-10.77.0.210", "fd00:77::200-fd00:77::210"];

impl Drop for Lab {
    /// Stops the processes, then removes the logs unless a test is failing (its
    /// message names them) or `FERROLB_LAB_KEEP` is set; the network goes with `net`.
    fn drop(&mut self) {
        self.procs.clear();
        if std::thread::panicking() || std::env::var_os("FERROLB_LAB_KEEP").is_some() {
            eprintln!("lab logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Node names of the lab (host numbers on the LAN).
pub const NODES: [(&str, u8); 2] = [("n1", 11), ("n2", 12)];
/// The client's name.
pub const CLIENT: (&str, u8) = ("client", 100);

impl Lab {
    /// Builds the network, starts the test server (plain HTTP, no RBAC) with FerroLB's
    /// CRDs and the Nodes.
    pub async fn start(tag: &str) -> anyhow::Result<Self> {
        let server = TestServer::start().await?;
        let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/ferrolb/crds");
        load_crds(&server.shared, &crds)?;
        Self::around(tag, server).await
    }

    /// Builds the network and the Nodes around a test server that speaks HTTPS and
    /// enforces RBAC, with no CRDs yet (`helm install` brings them).
    pub async fn start_secure(tag: &str) -> anyhow::Result<Self> {
        Self::around(tag, TestServer::start_secure().await?).await
    }

    async fn around(tag: &str, server: TestServer) -> anyhow::Result<Self> {
        let prefix = format!("flb{}{}-", tag, std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("ferrolb-lab-{}", prefix.trim_end_matches('-')));
        std::fs::create_dir_all(&dir)?;
        let mut hosts: Vec<(&str, u8)> = NODES.to_vec();
        hosts.push(CLIENT);
        let net = Net::create(&prefix, &hosts)?;
        let target: SocketAddr = server.addr;
        for (name, _) in NODES {
            relay::start(&net.host(name).ns, RELAY_PORT, target)?;
        }
        let kubeconfig_host = dir.join("kubeconfig");
        std::fs::write(&kubeconfig_host, server.kubeconfig())?;
        let kubeconfig_nodes = dir.join("kubeconfig-nodes");
        let scheme = server.url().split("://").next().unwrap_or("http").to_string();
        std::fs::write(
            &kubeconfig_nodes,
            server.kubeconfig_for(
                &format!("{scheme}://127.0.0.1:{RELAY_PORT}"),
                ferrolb_testserver::auth::ADMIN_TOKEN,
            ),
        )?;
        let client = server.client();
        let lab = Lab {
            procs: Vec::new(),
            server,
            client,
            net,
            dir,
            speaker_log: "info,ferrolb_speaker=debug",
            kubeconfig_host,
            kubeconfig_nodes,
        };
        for ns in [NS, APPS] {
            let api: Api<Namespace> = Api::all(lab.client.clone());
            api.create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
        }
        for (name, _) in NODES {
            lab.node(name).await?;
        }
        Ok(lab)
    }

    /// The kubeconfig for processes on the host.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig_host
    }

    async fn node(&self, name: &str) -> anyhow::Result<()> {
        let host = self.net.host(name);
        let api: Api<Node> = Api::all(self.client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}}),
            )?,
        )
        .await?;
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": host.v4}, {"type": "InternalIP", "address": host.v6}],
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    fn log(&self, name: &str) -> anyhow::Result<std::fs::File> {
        Ok(std::fs::File::create(self.dir.join(format!("{name}.log")))?)
    }

    /// Starts the controller on the host.
    pub fn controller(&mut self) -> anyhow::Result<()> {
        let child = Command::new(binary("ferrolb-controller"))
            .args(["run", "--namespace", NS, "--identity", "lab"])
            .args([
                "--lease-duration",
                "2s",
                "--renew-deadline",
                "1500ms",
                "--retry-period",
                "200ms",
            ])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", &self.kubeconfig_host)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(self.log("controller")?)
            .spawn()
            .context("starting ferrolb-controller (build it first: cargo build --workspace)")?;
        self.procs.push(Proc {
            name: "controller".into(),
            child,
        });
        Ok(())
    }

    /// Starts the speaker of node `name` with the dataplane on; `extra` args appended.
    pub fn speaker(&mut self, name: &str, extra: &[&str]) -> anyhow::Result<()> {
        let host = self.net.host(name).clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("speaker-{name}.log")))?;
        let child = self
            .net
            .exec(name, &[binary("ferrolb-speaker").to_str().expect("utf-8 path")])
            .args(["--node-name", name, "--namespace", NS, "--node-ip", &host.v4])
            .args(["--dataplane", "nftables"])
            .args(["--metrics-addr", &format!("127.0.0.1:{SPEAKER_METRICS}")])
            .args(extra)
            .env("KUBECONFIG", &self.kubeconfig_nodes)
            .env("RUST_LOG", self.speaker_log)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting ferrolb-speaker (build it first: cargo build --workspace)")?;
        self.procs.push(Proc {
            name: format!("speaker-{name}"),
            child,
        });
        Ok(())
    }

    /// The process named `name`.
    pub fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .expect("a started process")
    }

    /// Removes (after stopping it) the process named `name`.
    pub fn remove(&mut self, name: &str) -> Option<Proc> {
        let i = self.procs.iter().position(|p| p.name == name)?;
        Some(self.procs.remove(i))
    }

    /// Runs `args` in the namespace of `host` as process `name` (log in `<name>.log`).
    pub fn spawn(&mut self, name: &str, host: &str, args: &[&str]) -> anyhow::Result<()> {
        let child = self
            .net
            .exec(host, args)
            .stdout(Stdio::null())
            .stderr(self.log(name)?)
            .spawn()
            .with_context(|| format!("starting {}", args[0]))?;
        self.procs.push(Proc {
            name: name.to_string(),
            child,
        });
        Ok(())
    }

    /// Starts an HTTP server answering `hello from <node>` on `port` (both families) in
    /// each node.
    pub fn backends(&mut self, port: u16) -> anyhow::Result<()> {
        for (name, _) in NODES {
            let root = self.dir.join(format!("www-{name}"));
            std::fs::create_dir_all(&root)?;
            std::fs::write(root.join("index.html"), format!("hello from {name}\n"))?;
            let root = root.to_str().context("utf-8 path")?;
            self.spawn(
                &format!("backend-{name}"),
                name,
                &[
                    "python3",
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    "::",
                    "--directory",
                    root,
                ],
            )?;
        }
        Ok(())
    }

    /// Applies a pool and an L2Advertisement (with `ad_spec`) in FerroLB's namespace.
    pub async fn layer2(&self, ranges: &[&str], ad_spec: Value) -> anyhow::Result<()> {
        let pools: Api<ferrolb_crds::api::IPAddressPool> = Api::namespaced(self.client.clone(), NS);
        let pool = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lab", "namespace": NS}, "spec": {"addresses": ranges},
        }))?;
        pools.create(&PostParams::default(), &pool).await?;
        let ads: Api<ferrolb_crds::api::L2Advertisement> = Api::namespaced(self.client.clone(), NS);
        let ad = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "lab", "namespace": NS}, "spec": ad_spec,
        }))?;
        ads.create(&PostParams::default(), &ad).await?;
        Ok(())
    }

    /// The usual scene: the lab's pool ([`RANGES`]) and an L2Advertisement for every
    /// node, Service `web` with an endpoint on each node and HTTP backends on its
    /// NodePort; the Service's IPv4 and IPv6 addresses once assigned.
    pub async fn web(&mut self) -> anyhow::Result<(String, String)> {
        self.layer2(&RANGES, json!({})).await?;
        let port = self.service("web", false).await?;
        let nodes: Vec<&str> = NODES.iter().map(|(n, _)| *n).collect();
        self.endpoints("web", &nodes).await?;
        self.backends(port)?;
        self.addresses("web").await
    }

    /// Creates a dual-stack LoadBalancer Service `name` (port 80) and returns its NodePort.
    pub async fn service(&self, name: &str, local: bool) -> anyhow::Result<u16> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), APPS);
        let object = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": APPS},
            "spec": {
                "type": "LoadBalancer",
                "ipFamilyPolicy": "RequireDualStack",
                "ipFamilies": ["IPv4", "IPv6"],
                "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        }))?;
        let created = api.create(&PostParams::default(), &object).await?;
        let port = created
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.first().and_then(|p| p.node_port))
            .context("the API server gave no NodePort")?;
        Ok(u16::try_from(port)?)
    }

    /// The NodePort of Service `name`'s first port.
    pub async fn node_port(&self, name: &str) -> anyhow::Result<u16> {
        let svc = Api::<Service>::namespaced(self.client.clone(), APPS)
            .get(name)
            .await?;
        let port = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.first().and_then(|p| p.node_port))
            .with_context(|| format!("Service {name} has no NodePort"))?;
        Ok(u16::try_from(port)?)
    }

    /// Sets the endpoints of Service `name`: one ready endpoint on each of `nodes`.
    pub async fn endpoints(&self, name: &str, nodes: &[&str]) -> anyhow::Result<()> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), APPS);
        for (family, suffix) in [("IPv4", "v4"), ("IPv6", "v6")] {
            let endpoints: Vec<Value> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    let address = if suffix == "v4" {
                        format!("10.244.0.{}", i + 10)
                    } else {
                        format!("fd00:244::{:x}", i + 10)
                    };
                    json!({"addresses": [address], "nodeName": node, "conditions": {"ready": true}})
                })
                .collect();
            let slice = json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-{suffix}"), "namespace": APPS,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": family,
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            });
            api.patch(
                &format!("{name}-{suffix}"),
                &PatchParams::apply("ferrolb-lab").force(),
                &Patch::Apply(&slice),
            )
            .await?;
        }
        Ok(())
    }

    /// Waits for Service `name` to show an IPv4 and an IPv6 address.
    pub async fn addresses(&self, name: &str) -> anyhow::Result<(String, String)> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), APPS);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let svc = api.get(name).await?;
            let ips = ferrolb_crds::service::ingress_ips(&svc);
            let v4 = ips.iter().find(|ip| ip.is_ipv4());
            let v6 = ips.iter().find(|ip| ip.is_ipv6());
            if let (Some(v4), Some(v6)) = (v4, v6) {
                return Ok((v4.to_string(), v6.to_string()));
            }
            if Instant::now() > deadline {
                bail!(
                    "Service {name} got no dual-stack address in 20 s (see {}/controller.log)",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The MAC answering ARP for `ip`, asked from the client.
    pub fn arping(&self, ip: &str) -> Option<String> {
        let out = self
            .net
            .exec(CLIENT.0, &["timeout", "3", "arping", "-c", "1", "-i", "eth0", ip])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "60 bytes from 02:77:00:00:00:0b (10.77.0.200): index=0 time=…"
        text.lines()
            .find_map(|l| l.split("bytes from ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_ascii_lowercase)
    }

    /// The MAC answering NDP for `ip`, asked from the client.
    pub fn ndisc6(&self, ip: &str) -> Option<String> {
        let out = self
            .net
            .exec(CLIENT.0, &["ndisc6", "-1", "-r", "3", "-w", "500", ip, "eth0"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.split("Target link-layer address:").nth(1))
            .map(|mac| mac.trim().to_ascii_lowercase())
    }

    /// `curl` from the client: the body, or `None`.
    pub fn curl(&self, url: &str) -> Option<String> {
        let out = self
            .net
            .exec(CLIENT.0, &["curl", "-s", "-m", "2", url])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The node answering ARP for `ip`.
    pub fn owner(&self, ip: &str) -> Option<String> {
        self.arping(ip)
            .and_then(|m| self.node_of_mac(&m).map(str::to_string))
    }

    /// Waits until `node` answers ARP for `ip`.
    pub async fn until_owner(&self, ip: &str, node: &str, secs: u64) -> anyhow::Result<()> {
        until(&format!("{node} to answer ARP for {ip}"), secs, || {
            (self.owner(ip).as_deref() == Some(node)).then_some(())
        })
        .await
    }

    /// The sum of the samples of metric `name` on the speaker of `node`.
    pub fn speaker_metric(&self, node: &str, name: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{SPEAKER_METRICS}/metrics");
        let out = self
            .net
            .exec(node, &["curl", "-s", "-m", "2", &url])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let samples: Vec<f64> = text
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with([' ', '{'])))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!samples.is_empty()).then(|| samples.iter().sum())
    }

    /// The node whose MAC is `mac`.
    pub fn node_of_mac(&self, mac: &str) -> Option<&str> {
        self.net
            .hosts
            .iter()
            .find(|h| h.mac == mac)
            .map(|h| h.name.as_str())
    }

    /// Starts pinging `ip` from the client every 10 ms.
    pub fn pinger(&self, ip: &str) -> anyhow::Result<Pinger> {
        let child = self
            .net
            .exec(CLIENT.0, &["ping", "-D", "-n", "-i", "0.01", "-W", "1", ip])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Pinger { child })
    }

    /// Starts probing `ip`:`port` from the client every 10 ms with a TCP connection and
    /// an HTTP GET (see `probe/tcp_probe.py`).
    pub fn prober(&self, ip: &str, port: u16) -> anyhow::Result<Prober> {
        let script = self.dir.join("tcp_probe.py");
        std::fs::write(&script, include_str!("probe/tcp_probe.py"))?;
        let script = script.to_str().context("utf-8 path")?;
        let child = self
            .net
            .exec(CLIENT.0, &["python3", "-u", script, ip, &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Prober { child })
    }
}

/// Polls `probe` every 50 ms until it gives a value, for at most `secs` seconds.
pub async fn until<T>(what: &str, secs: u64, probe: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    until_every(Duration::from_millis(50), what, secs, probe).await
}

/// Polls `probe` every `every` until it gives a value, for at most `secs` seconds.
pub async fn until_every<T>(
    every: Duration,
    what: &str,
    secs: u64,
    mut probe: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The lab node that is not `node`.
pub fn other(node: &str) -> &'static str {
    NODES
        .iter()
        .map(|(n, _)| *n)
        .find(|n| *n != node)
        .expect("two nodes")
}

/// A running `ping`; [`Pinger::outage`] stops it and reads the replies.
pub struct Pinger {
    child: Child,
}

impl Pinger {
    /// Stops pinging, prints `FIGURE <name>_ms=… replies=…` (for BENCHMARKS.md) and
    /// returns the outage.
    pub fn report(self, name: &str) -> Duration {
        let (outage, replies) = self.outage();
        eprintln!(
            "FIGURE {name}_ms={:.1} replies={replies}",
            outage.as_secs_f64() * 1e3
        );
        outage
    }

    /// Stops pinging; returns the longest time without replies after the first reply,
    /// and the number of replies.
    pub fn outage(self) -> (Duration, usize) {
        let text = interrupt(self.child);
        let times: Vec<f64> = text
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect();
        (longest_gap(&times), times.len())
    }
}

/// The longest time between two answers, beyond the 10 ms between tries (an answer
/// every 10 ms is no outage).
fn longest_gap(times: &[f64]) -> Duration {
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    Duration::from_secs_f64((gap - 0.01).max(0.0))
}

/// Stops a child with SIGINT and returns what it wrote.
fn interrupt(child: Child) -> String {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = child.wait_with_output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

/// A running TCP prober; [`Prober::stop`] ends it and counts.
pub struct Prober {
    child: Child,
}

/// What a [`Prober`] saw.
#[derive(Clone, Copy, Debug)]
pub struct Probed {
    /// Tries answered.
    pub answered: usize,
    /// Tries that failed (refused, unreachable, or no answer within 500 ms).
    pub failed: usize,
    /// The longest time without an answer, after the first.
    pub outage: Duration,
}

impl Prober {
    /// Stops probing and counts; prints `FIGURE <name>_ms=… answered=… failed=…` (for
    /// BENCHMARKS.md).
    pub fn stop(self, name: &str) -> Probed {
        let text = interrupt(self.child);
        let mut answered = Vec::new();
        let mut failed = 0;
        for line in text.lines() {
            let Some((time, outcome)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
                continue;
            };
            match (time.parse::<f64>(), outcome) {
                (Ok(t), "answered") => answered.push(t),
                (Ok(_), "failed") => failed += 1,
                _ => {}
            }
        }
        let probed = Probed {
            answered: answered.len(),
            failed,
            outage: longest_gap(&answered),
        };
        eprintln!(
            "FIGURE {name}_ms={:.1} answered={} failed={}",
            probed.outage.as_secs_f64() * 1e3,
            probed.answered,
            probed.failed
        );
        probed
    }
}
