//! `ferrolb-testserver`: an in-memory Kubernetes API server that speaks the real
//! REST API, so unmodified clients (kube-rs, kubectl, the Python client) work against
//! it. It is a **test fixture** and the local demo's backend; nothing in FerroLB's
//! product depends on it.
//!
//! Not implemented: admission chains and webhooks, RBAC and authentication (any
//! token is accepted), API aggregation, persistence, protobuf.

pub mod error;
pub mod openapi;
pub mod registry;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod validation;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

pub use server::Shared;
pub use store::Store;

/// How many change events a server keeps for watches by default.
pub const DEFAULT_HISTORY: usize = 100_000;

/// A running server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, for inspection and faults.
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Starts a server on a random loopback port (inside a tokio runtime).
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(
            Store::new(DEFAULT_HISTORY, Box::new(now_rfc3339)),
            "127.0.0.1:0".parse().expect("literal"),
        )
        .await
    }

    /// Starts a server with a given store on `addr`.
    pub async fn start_with(store: Store, addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Shared::new(store);
        let (addr, task) = server::serve(shared.clone(), addr).await?;
        Ok(Self { addr, shared, task })
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube-rs client for this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("a valid URL"));
        kube::Client::try_from(config).expect("a client for a plain HTTP URL")
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }
}

impl TestServer {
    /// Stops listening and ends every open connection and watch; the state is kept.
    pub fn stop(&mut self) {
        self.task.abort();
        self.shared.close_watches();
    }

    /// Listens again on the same address with the state kept, after [`TestServer::stop`].
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let mut last = None;
        // The old listener goes away asynchronously once its task is aborted.
        for _ in 0..50 {
            match server::serve(self.shared.clone(), self.addr).await {
                Ok((_, task)) => {
                    self.task = task;
                    return Ok(());
                }
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Err(last.expect("at least one attempt"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where an end-to-end suite runs: the cluster of `$FERROLB_KUBECONFIG` when it is set,
/// otherwise a fresh in-memory server. Suites written against [`Cluster::client`] run
/// unchanged on both.
pub enum Cluster {
    /// A real cluster.
    Real {
        /// A client for it.
        client: kube::Client,
    },
    /// The in-memory test server.
    Fixture(TestServer),
}

impl Cluster {
    /// The real cluster named by `$FERROLB_KUBECONFIG`, or a new test server.
    pub async fn from_env() -> anyhow::Result<Self> {
        Self::from_kubeconfig(
            std::env::var_os("FERROLB_KUBECONFIG")
                .map(std::path::PathBuf::from)
                .as_deref(),
        )
        .await
    }

    /// The cluster of this kubeconfig file, or a new test server when there is none.
    pub async fn from_kubeconfig(path: Option<&Path>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let Some(path) = path else {
            return Ok(Cluster::Fixture(TestServer::start().await?));
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(Cluster::Real {
            client: kube::Client::try_from(config)?,
        })
    }

    /// A client for the cluster.
    pub fn client(&self) -> kube::Client {
        match self {
            Cluster::Real { client } => client.clone(),
            Cluster::Fixture(server) => server.client(),
        }
    }

    /// The test server, when the suite runs on one (faults are only available there).
    pub fn fixture(&self) -> Option<&TestServer> {
        match self {
            Cluster::Real { .. } => None,
            Cluster::Fixture(server) => Some(server),
        }
    }
}

/// A kubeconfig for `url` with a context named `ferrolb-test`.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb-test\n  cluster:\n    server: {url}\n\
         users:\n- name: ferrolb-test\n  user:\n    token: ferrolb-test\n\
         contexts:\n- name: ferrolb-test\n  context:\n    cluster: ferrolb-test\n    user: ferrolb-test\n    namespace: default\n\
         current-context: ferrolb-test\n"
    )
}

/// Creates every CustomResourceDefinition found in the YAML files of `dir`.
pub fn load_crds(shared: &Shared, dir: &Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    use serde::Deserialize;
    let crds = registry::GroupResource {
        group: "apiextensions.k8s.io".into(),
        resource: "customresourcedefinitions".into(),
    };
    let mut count = 0;
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    paths.sort_by_key(|e| e.path());
    for entry in paths {
        let path = entry.path();
        if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(document).with_context(|| format!("parsing {}", path.display()))?;
            if value["kind"] == "CustomResourceDefinition" {
                shared
                    .store()
                    .create(&crds, "", value)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// The current time as Kubernetes writes it (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs as i64)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
