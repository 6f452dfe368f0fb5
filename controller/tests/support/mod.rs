//! A cluster (the in-memory test server, or `$FERROLB_KUBECONFIG`) with FerroLB's CRDs,
//! and `ferrolb-controller run` processes against it.
//!
//! On a real cluster run these suites one at a time (`--test-threads=1`) with no other
//! FerroLB installed: every controller started here serves the whole cluster.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_crds::api::IPAddressPool;
pub use ferrolb_crds::service::ingress_ips as ingress;
use ferrolb_testserver::{Cluster, load_crds};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

/// FerroLB's namespace in these suites.
pub const NS: &str = "ferrolb-system";

/// A cluster, a scratch directory, and the controllers started on it.
pub struct Lab {
    pub cluster: Cluster,
    pub client: kube::Client,
    pub dir: PathBuf,
    kubeconfig: PathBuf,
    /// Namespace for this suite's Services.
    pub apps: String,
}

impl Lab {
    /// Sets up the cluster: CRDs on the fixture, FerroLB's and the Services' namespaces.
    pub async fn start(name: &str) -> Self {
        let cluster = Cluster::from_env().await.expect("cluster");
        let dir = std::env::temp_dir().join(format!("ferrolb-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = match (&cluster, std::env::var_os("FERROLB_KUBECONFIG")) {
            (Cluster::Fixture(server), _) => {
                let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds");
                load_crds(&server.shared, &crds).expect("CRDs");
                let path = dir.join("kubeconfig");
                std::fs::write(&path, server.kubeconfig()).unwrap();
                path
            }
            (Cluster::Real { .. }, Some(path)) => PathBuf::from(path),
            (Cluster::Real { .. }, None) => unreachable!("a real cluster comes from FERROLB_KUBECONFIG"),
        };
        let client = cluster.client();
        let apps = format!("t-{name}");
        for ns in [NS, apps.as_str()] {
            let api: Api<Namespace> = Api::all(client.clone());
            let object = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            let _ = api.create(&PostParams::default(), &object).await;
        }
        Lab {
            cluster,
            client,
            dir,
            kubeconfig,
            apps,
        }
    }

    /// Starts `ferrolb-controller run` with fast election timing.
    pub fn controller(&self, identity: &str) -> Controller {
        let port = free_port();
        let log = std::fs::File::create(self.dir.join(format!("{identity}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
            .args(["run", "--namespace", NS, "--identity", identity])
            .args([
                "--lease-duration",
                "2s",
                "--renew-deadline",
                "1500ms",
                "--retry-period",
                "200ms",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ferrolb-controller");
        Controller {
            child: Some(child),
            port,
            identity: identity.into(),
        }
    }

    pub fn pools(&self) -> Api<IPAddressPool> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.apps)
    }

    /// Creates a pool from its spec.
    pub async fn pool(&self, name: &str, spec: Value) {
        let object = serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": NS}, "spec": spec,
        }))
        .unwrap();
        self.pools()
            .create(&PostParams::default(), &object)
            .await
            .expect("create pool");
    }

    /// Creates a LoadBalancer Service with one TCP port.
    pub async fn service(&self, name: &str, annotations: Value) {
        let object = service_object(name, annotations, 80);
        self.services()
            .create(&PostParams::default(), &object)
            .await
            .expect("create service");
    }

    pub async fn delete_service(&self, name: &str) {
        self.services()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete service");
    }

    /// Every Service of the suite's namespace with the addresses it shows.
    pub async fn addresses(&self) -> BTreeMap<String, Vec<IpAddr>> {
        let list = self
            .services()
            .list(&ListParams::default())
            .await
            .expect("list services");
        list.items
            .iter()
            .map(|s| (s.metadata.name.clone().unwrap(), ingress(s)))
            .collect()
    }

    /// Events about one Service, as (reason, message, reporting instance).
    pub async fn events(&self, service: &str) -> Vec<(String, String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), &self.apps);
        let list = api.list(&ListParams::default()).await.expect("list events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service))
            .map(|e| {
                (
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                    e.reporting_instance.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Our condition on a Service: (status, reason, message).
    pub async fn condition(&self, service: &str) -> Option<(String, String, String)> {
        let svc = self.services().get(service).await.ok()?;
        svc.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "ferrolb.io/Allocated")
            .map(|c| (c.status, c.reason, c.message))
    }
}

/// A LoadBalancer Service object.
pub fn service_object(name: &str, annotations: Value, port: i32) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}],
                 "selector": {"app": name}},
    }))
    .unwrap()
}

/// A controller process, killed when dropped.
pub struct Controller {
    child: Option<Child>,
    pub port: u16,
    pub identity: String,
}

impl Controller {
    /// SIGTERM, then wait for the exit (graceful: the Lease is released).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether `/<path>` answers 200.
    pub async fn probe(&self, path: &str) -> bool {
        http_get(&format!("http://127.0.0.1:{}/{path}", self.port))
            .await
            .is_some()
    }

    /// The metrics text, if the endpoint answers.
    pub async fn metrics(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        http_get(&url).await
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET on loopback (no client library needed for one request).
async fn http_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    let (head, body) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}
