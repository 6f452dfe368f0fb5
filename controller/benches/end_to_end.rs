//! The controller binary against the in-memory API server, at 10,000 Services.
//! `cargo bench -p ferrolb-controller --bench end_to_end` prints:
//! 1. the floor: a bare kube-rs client patching the status of 10,000 Services (8 in flight,
//!    as many as the controller's writers), timed like the controller: until a watcher
//!    has seen every address;
//! 2. cold start: 10,000 Services exist, the controller starts → time until all show an
//!    address; ratio to the floor (goal ≤ 1.2×);
//! 3. live: the controller runs while 10,000 more Services are created (8 in flight) →
//!    time from the first create until all show an address, next to the creates alone;
//! 4. the controller's peak RSS (VmHWM) with 20,000 Services (goal < 64 MB at 10,000).

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_testserver::registry::GroupResource;
use ferrolb_testserver::{TestServer, load_crds};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

const IN_FLIGHT: usize = 8;

fn services() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "services".into(),
    }
}

fn lb(name: &str) -> serde_json::Value {
    // Past 2,768 Services there are no node ports left (as in Kubernetes).
    json!({"metadata": {"name": name}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
        "allocateLoadBalancerNodePorts": false}})
}

/// Runs `request(0..n)` with IN_FLIGHT requests at a time.
async fn in_flight<F, Fut>(n: usize, request: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::stream::iter(0..n)
        .map(request)
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
}

/// Waits until `count` Services of `namespace` show an address; returns when.
async fn all_assigned(client: kube::Client, namespace: &str, count: usize) -> Instant {
    let api: Api<Service> = Api::namespaced(client, namespace);
    let mut seen = HashSet::new();
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        if let Ok(Event::Apply(svc) | Event::InitApply(svc)) = event {
            if !ferrolb_crds::service::ingress_ips(&svc).is_empty() {
                seen.insert(svc.metadata.name.unwrap_or_default());
            }
            if seen.len() >= count {
                break;
            }
        }
    }
    Instant::now()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    // FERROLB_BENCH_SERVICES scales the run down (for profiling); the figures are for 10,000.
    let n: usize = std::env::var("FERROLB_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let server = TestServer::start().await.unwrap();
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds");
    load_crds(&server.shared, &crds).unwrap();
    let pools = GroupResource {
        group: "ferrolb.io".into(),
        resource: "ipaddresspools".into(),
    };
    server
        .shared
        .write(|store| {
            store.create(
                &pools,
                "ferrolb-system",
                json!({
                "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": "bench"}, "spec": {"addresses": ["10.0.0.0/16"]}}),
            )?;
            for i in 0..n {
                store.create(
                    &services(),
                    "floor",
                    json!({"metadata": {"name": format!("f{i}")},
                    "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
                )?;
                store.create(&services(), "cold", lb(&format!("c{i}")))?;
            }
            Ok(())
        })
        .unwrap();
    let client = server.client();

    // 1. The floor.
    // Measured the way the controller is: until the same kind of watcher saw every address.
    let floor_api: Api<Service> = Api::namespaced(client.clone(), "floor");
    let watching = tokio::spawn(all_assigned(client.clone(), "floor", n));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    in_flight(n, |i| {
        let api = floor_api.clone();
        async move {
            let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": format!("10.1.{}.{}", i >> 8, i & 255)}]}}});
            api.patch_status(&format!("f{i}"), &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        }
    })
    .await;
    let floor = watching.await.unwrap() - start;
    println!(
        "floor: {n} status patches by a bare kube-rs client, all seen by a watcher: {:.2} s",
        floor.as_secs_f64()
    );

    // 2. Cold start.
    let dir = std::env::temp_dir().join(format!("ferrolb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let watching = tokio::spawn(all_assigned(client.clone(), "cold", n));
    let start = Instant::now();
    let mut controller = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args([
            "run",
            "--namespace",
            "ferrolb-system",
            "--identity",
            "bench",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("controller.log")).unwrap())
        .spawn()
        .unwrap();
    let done = watching.await.unwrap();
    let cold = done - start;
    println!(
        "cold start: {n} Services assigned {:.2} s after the controller started = {:.2}× the floor",
        cold.as_secs_f64(),
        cold.as_secs_f64() / floor.as_secs_f64()
    );
    let rss_10k = peak_rss_kib(controller.id());
    println!(
        "controller peak RSS with {n} LoadBalancer Services (+{n} others): {:.1} MiB",
        rss_10k as f64 / 1024.0
    );

    // 3. Live creation.
    let live_api: Api<Service> = Api::namespaced(client.clone(), "live");
    let watching = tokio::spawn(all_assigned(client.clone(), "live", n));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    in_flight(n, |i| {
        let api = live_api.clone();
        async move {
            let svc: Service = serde_json::from_value(lb(&format!("l{i}"))).unwrap();
            api.create(&PostParams::default(), &svc).await.unwrap();
        }
    })
    .await;
    let created = start.elapsed();
    let done = watching.await.unwrap();
    let live = done - start;
    println!(
        "live: {n} Services created in {:.2} s; all assigned {:.2} s after the first create",
        created.as_secs_f64(),
        live.as_secs_f64()
    );
    println!(
        "controller peak RSS with {} LoadBalancer Services (+{n} others): {:.1} MiB",
        2 * n,
        peak_rss_kib(controller.id()) as f64 / 1024.0
    );
    let _ = controller.kill();
    let _ = controller.wait();
    eprintln!("controller log: {}", dir.join("controller.log").display());
}
