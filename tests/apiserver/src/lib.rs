//! `ferrolb-testserver`: an in-memory Kubernetes API server that speaks the real
//! REST API, so unmodified clients (kube-rs, kubectl, the Python client) work against
//! it. It is a **test fixture** and the local demo's backend; nothing in FerroLB's
//! product depends on it.
//!
//! Authentication and RBAC are off unless switched on ([`Shared::enforce_rbac`],
//! `--rbac`); protobuf request bodies are decoded for the kinds typed clients send
//! (answers are always JSON). Not implemented: admission chains and webhooks, API
//! aggregation, persistence, controllers (no kubelet: workloads never become ready).

pub mod auth;
pub mod error;
pub mod events;
pub mod metadata;
pub mod openapi;
pub mod protobuf;
pub mod registry;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;
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
    /// The CA certificate (PEM) of a server that speaks HTTPS.
    ca_pem: Option<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
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

    /// Starts a server with a given store on `addr`, over plain HTTP.
    pub async fn start_with(store: Store, addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Shared::new(store);
        let (addr, task) = server::serve(shared.clone(), addr, None).await?;
        Ok(Self {
            addr,
            shared,
            ca_pem: None,
            tls: None,
            task,
        })
    }

    /// Starts a server on a random loopback port that speaks HTTPS and enforces RBAC
    /// (inside a tokio runtime).
    pub async fn start_secure() -> anyhow::Result<Self> {
        Self::start_secure_with(
            Store::new(DEFAULT_HISTORY, Box::new(now_rfc3339)),
            "127.0.0.1:0".parse().expect("literal"),
        )
        .await
    }

    /// Starts a server on `addr` that speaks HTTPS and enforces RBAC: tokens are
    /// needed, and client-go sends them only over TLS.
    pub async fn start_secure_with(store: Store, addr: SocketAddr) -> anyhow::Result<Self> {
        let tls = tls::Tls::loopback()?;
        let shared = Shared::new(store);
        shared.enforce_rbac(true);
        let (addr, task) = server::serve(shared.clone(), addr, Some(tls.config.clone())).await?;
        Ok(Self {
            addr,
            shared,
            ca_pem: Some(tls.ca_pem),
            tls: Some(tls.config),
            task,
        })
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A kube-rs client for this server as the admin (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        self.client_with_token(auth::ADMIN_TOKEN)
    }

    /// A kube-rs client for this server presenting `token`.
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        config.auth_info.token = Some(token.to_string().into());
        config.root_cert = self.ca_pem.as_ref().map(|pem| vec![pem_to_der(pem)]);
        kube::Client::try_from(config).expect("a client for this server's URL")
    }

    /// A kubeconfig pointing at this server, as the admin.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_for(&self.url(), auth::ADMIN_TOKEN)
    }

    /// A kubeconfig for this server reached at `url` (e.g. through a relay), presenting `token`.
    pub fn kubeconfig_for(&self, url: &str, token: &str) -> String {
        kubeconfig_with(url, token, self.ca_pem.as_deref())
    }
}

/// The DER bytes of a one-certificate PEM document.
fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("rcgen writes valid PEM")
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
            match server::serve(self.shared.clone(), self.addr, self.tls.clone()).await {
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

/// A kubeconfig for `url` (plain HTTP) with a context named `ferrolb-test`, as the
/// all-powerful admin.
pub fn kubeconfig(url: &str) -> String {
    kubeconfig_with(url, auth::ADMIN_TOKEN, None)
}

/// A kubeconfig for `url` whose user presents `token`, trusting `ca_pem` when given.
pub fn kubeconfig_with(url: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem.map_or(String::new(), |pem| {
        format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        )
    });
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb-test\n  cluster:\n    server: {url}\n{ca}\
         users:\n- name: ferrolb-test\n  user:\n    token: {token}\n\
         contexts:\n- name: ferrolb-test\n  context:\n    cluster: ferrolb-test\n    user: ferrolb-test\n    namespace: default\n\
         current-context: ferrolb-test\n"
    )
}

/// Creates every CustomResourceDefinition found in the YAML files of `dir`.
pub fn load_crds(shared: &Shared, dir: &Path) -> anyhow::Result<usize> {
    use anyhow::Context;
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
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("parsing {}", path.display()))?;
        for value in documents {
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
