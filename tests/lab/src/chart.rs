//! FerroLB installed the way users install it: `helm install` of `charts/ferrolb` into
//! the API test server with RBAC enforced, then the chart's workloads run as their pod
//! specs say ([`crate::pods`]) — two controller replicas, each in a network namespace
//! of its own as a pod would be, and one speaker per node in the node's namespace — each
//! with a token of its own ServiceAccount. A Deployment's and a DaemonSet's rolling
//! updates and pod deletion on uninstall are played as Kubernetes would play them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::pods::{PodFacts, PodPlan};
use crate::{Lab, NS, Proc, RELAY_PORT, binary, net::sh};

/// The release name; the chart then names its objects `ferrolb-controller`, `ferrolb-speaker`.
pub const RELEASE: &str = "ferrolb";
/// The controller's Deployment.
pub const CONTROLLER: &str = "ferrolb-controller";
/// The speaker's DaemonSet.
pub const SPEAKER: &str = "ferrolb-speaker";

/// The real helm, bound to the lab's admin kubeconfig.
pub struct Helm {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

/// The chart in this repository.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/ferrolb")
}

/// helm from `$FERROLB_HELM` (scripts/test.sh sets it), `.tools/bin/helm`, or PATH.
pub fn helm_binary() -> Option<PathBuf> {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/helm");
    let candidates = std::env::var_os("FERROLB_HELM")
        .map(PathBuf::from)
        .into_iter()
        .chain([tools, "helm".into()]);
    candidates.into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

impl Helm {
    /// helm for `lab`; fails when there is none.
    pub fn for_lab(lab: &Lab) -> anyhow::Result<Self> {
        Ok(Self {
            binary: helm_binary().context("helm not found: set FERROLB_HELM or run scripts/test.sh")?,
            kubeconfig: lab.kubeconfig().to_path_buf(),
        })
    }

    /// Runs `helm args…`; its output, or an error with it.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = std::process::Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .context("running helm")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("helm {} failed:\n{text}", args.join(" "));
        }
        Ok(text)
    }

    /// `helm install ferrolb <chart> -n ferrolb-system` with `--set` values.
    pub fn install(&self, chart: &std::path::Path, sets: &[&str]) -> anyhow::Result<String> {
        self.release("install", chart, sets)
    }

    /// `helm upgrade ferrolb <chart> -n ferrolb-system --reuse-values` with `--set` values.
    pub fn upgrade(&self, chart: &std::path::Path, sets: &[&str]) -> anyhow::Result<String> {
        self.release("upgrade", chart, sets)
    }

    fn release(&self, verb: &str, chart: &std::path::Path, sets: &[&str]) -> anyhow::Result<String> {
        let chart = chart.to_str().context("utf-8 chart path")?;
        let mut args = vec![verb, RELEASE, chart, "-n", NS];
        if verb == "upgrade" {
            args.push("--reuse-values");
        }
        for set in sets {
            args.extend(["--set", set]);
        }
        self.run(&args)
    }

    /// `helm uninstall ferrolb -n ferrolb-system`.
    pub fn uninstall(&self) -> anyhow::Result<String> {
        self.run(&["uninstall", RELEASE, "-n", NS])
    }
}

impl Lab {
    /// A lab whose API server enforces RBAC, with the chart installed by helm with
    /// `--set` values `sets` (no workload started yet).
    pub async fn with_chart(tag: &str, sets: &[&str]) -> anyhow::Result<(Lab, Helm)> {
        let lab = Lab::start_secure(tag).await?;
        let helm = Helm::for_lab(&lab)?;
        helm.install(&chart_dir(), sets)?;
        Ok((lab, helm))
    }

    /// The pod template spec of the Deployment or DaemonSet `name`, as the API serves it.
    pub async fn pod_template(&self, kind: &str, name: &str) -> anyhow::Result<Value> {
        let object = match kind {
            "Deployment" => serde_json::to_value(
                Api::<Deployment>::namespaced(self.client.clone(), NS)
                    .get(name)
                    .await?,
            )?,
            "DaemonSet" => serde_json::to_value(
                Api::<DaemonSet>::namespaced(self.client.clone(), NS)
                    .get(name)
                    .await?,
            )?,
            other => bail!("no pods for kind {other}"),
        };
        Ok(object)
    }

    /// Starts pod `pod` of `workload` (a Deployment or DaemonSet as JSON) on `node`: in
    /// the node's namespace for a host-network pod, else in a namespace of its own.
    pub async fn start_pod(&mut self, workload: &Value, pod: &str, node: &str) -> anyhow::Result<()> {
        let template = &workload["spec"]["template"]["spec"];
        let account = template["serviceAccountName"].as_str().unwrap_or("default");
        let secrets: BTreeMap<String, Value> = Api::<Secret>::namespaced(self.client.clone(), NS)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, serde_json::to_value(s.data?).ok()?)))
            .collect();
        let token = self.server.shared.issue_token(NS, account);
        let url = format!(
            "{}://127.0.0.1:{RELAY_PORT}",
            if self.server.url().starts_with("https") {
                "https"
            } else {
                "http"
            }
        );
        let kubeconfig = self.server.kubeconfig_for(&url, &token);
        let facts = PodFacts {
            name: pod.to_string(),
            namespace: NS.to_string(),
            node: node.to_string(),
            host_ip: self.net.host(node).v4.clone(),
            dir: self.dir.join("pods").join(pod),
        };
        let container = template["containers"][0]["name"]
            .as_str()
            .context("a pod without containers")?;
        let plan = PodPlan::of(template, container, &facts, &secrets, &kubeconfig, binary)?;
        for file in &plan.files {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(file.path.parent().context("a file in a directory")?)?;
            std::fs::write(&file.path, &file.contents)?;
            std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(file.mode))?;
        }
        let ns = if plan.host_network {
            self.net.host(node).ns.clone()
        } else {
            let ns = self.net.isolated(pod)?;
            crate::relay::start(&ns, RELAY_PORT, self.server.addr)?;
            ns
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{pod}.log")))?;
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(&plan.argv)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(plan.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting pod {pod}"))?;
        self.procs.push(Proc {
            name: pod.to_string(),
            child,
        });
        Ok(())
    }

    /// Starts the Deployment's replicas, spread over the nodes (its soft anti-affinity).
    pub async fn start_controllers(&mut self) -> anyhow::Result<Vec<String>> {
        let deployment = self.pod_template("Deployment", CONTROLLER).await?;
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
        let mut pods = Vec::new();
        for i in 0..replicas {
            let pod = format!("{CONTROLLER}-{i}");
            let node = crate::NODES[i % crate::NODES.len()].0;
            self.start_pod(&deployment, &pod, node).await?;
            pods.push(pod);
        }
        Ok(pods)
    }

    /// One step of the Deployment's rolling update (the default 25 % surge and 25 %
    /// unavailable: with two replicas, one new pod first, then one old one goes) to
    /// `deployment`'s template: pod `new` started on `node` and awaited ready (its
    /// `/readyz`), then pod `old` deleted (SIGTERM, the grace period, SIGKILL).
    pub async fn roll_controller(
        &mut self,
        old: &str,
        new: &str,
        node: &str,
        deployment: &Value,
    ) -> anyhow::Result<()> {
        self.start_pod(deployment, new, node).await?;
        let port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
            .as_u64()
            .context("the controller's metrics port")?;
        let url = format!("http://127.0.0.1:{port}/readyz");
        let ns = format!("{}{new}", self.net.prefix);
        crate::until(&format!("controller pod {new} to be ready"), 30, || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "curl", "-sf", "-m", "1", &url])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        })
        .await?;
        let grace = Duration::from_secs(
            deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30),
        );
        self.delete_pod(old, grace)
    }

    /// The speaker pod's name on `node`.
    pub fn speaker_pod(node: &str) -> String {
        format!("{SPEAKER}-{node}")
    }

    /// Nodes the DaemonSet's pods go to: those its nodeSelector matches.
    pub async fn daemonset_nodes(&self, daemonset: &Value) -> anyhow::Result<Vec<String>> {
        let selector = daemonset["spec"]["template"]["spec"]["nodeSelector"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await?;
        Ok(nodes
            .items
            .into_iter()
            .filter(|n| {
                let labels = n.metadata.labels.clone().unwrap_or_default();
                selector
                    .iter()
                    .all(|(k, v)| v.as_str() == labels.get(k).map(String::as_str))
            })
            .filter_map(|n| n.metadata.name)
            .collect())
    }

    /// Starts one speaker pod per node the DaemonSet selects.
    pub async fn start_speakers(&mut self) -> anyhow::Result<Vec<String>> {
        let daemonset = self.pod_template("DaemonSet", SPEAKER).await?;
        let nodes = self.daemonset_nodes(&daemonset).await?;
        for node in &nodes {
            self.start_pod(&daemonset, &Self::speaker_pod(node), node).await?;
        }
        Ok(nodes)
    }

    /// Deletes pod `pod` as the kubelet does: SIGTERM, then SIGKILL after the
    /// termination grace period.
    pub fn delete_pod(&mut self, pod: &str, grace: Duration) -> anyhow::Result<()> {
        let mut proc = self.remove(pod).with_context(|| format!("no pod {pod}"))?;
        proc.signal(nix::sys::signal::Signal::SIGTERM);
        proc.wait(grace);
        Ok(())
    }

    /// Waits until the speaker on `node` reports ready on its metrics port.
    pub async fn until_speaker_ready(&self, node: &str, secs: u64) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/readyz", crate::SPEAKER_METRICS);
        crate::until(&format!("the speaker on {node} to be ready"), secs, || {
            self.net
                .exec(node, &["curl", "-sf", "-m", "1", &url])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        })
        .await
    }

    /// One node's step of the DaemonSet's rolling update (`maxUnavailable: 1`,
    /// `maxSurge: 0`) to `daemonset`'s template: the old pod deleted (SIGTERM, the
    /// grace period, SIGKILL), the new one started and awaited ready, as the DaemonSet
    /// controller does before it moves to the next node.
    pub async fn roll_speaker(&mut self, node: &str, daemonset: &Value) -> anyhow::Result<()> {
        let grace = Duration::from_secs(
            daemonset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30),
        );
        let pod = Self::speaker_pod(node);
        self.delete_pod(&pod, grace)?;
        self.start_pod(daemonset, &pod, node).await?;
        self.until_speaker_ready(node, 20).await
    }

    /// The messages of every request the API server refused with 403.
    pub fn denials(&self) -> Vec<String> {
        self.server.shared.denials()
    }

    /// Lines of the pods' logs that mention a refusal (403, Forbidden).
    pub fn forbidden_in_logs(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .flat_map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    // "code: 403", not "403": a timestamp's microseconds can read 403.
                    .filter(|l| l.contains("code: 403") || l.contains("Forbidden") || l.contains("forbidden"))
                    .map(|l| format!("{}: {l}", e.path().display()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// What FerroLB left on `node`: its nft table and addresses on lo beyond loopback.
    pub fn leftovers(&self, node: &str) -> anyhow::Result<Vec<String>> {
        let ns = &self.net.host(node).ns;
        let mut found: Vec<String> = sh(&["ip", "netns", "exec", ns, "nft", "list", "tables"])?
            .lines()
            .filter(|l| l.contains("ferrolb"))
            .map(String::from)
            .collect();
        let lo = sh(&["ip", "-n", ns, "-o", "addr", "show", "dev", "lo"])?;
        found.extend(
            lo.lines()
                .filter_map(|l| l.split_whitespace().nth(3))
                .filter(|a| !a.starts_with("127.") && *a != "::1/128")
                .map(|a| format!("{a} on lo")),
        );
        Ok(found)
    }
}

/// Polls until `done`, for at most `secs` (an async condition).
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        if Instant::now() > deadline {
            bail!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
