//! Is the test server fast enough not to be the bottleneck of the controller benchmark?
//! `cargo bench -p ferrolb-testserver --bench throughput` prints:
//! 1. status PATCHes per second through kube-rs (Services, 16 in flight), goal ≥ 5,000/s;
//! 2. watch fan-out: 10,000 changes delivered to each of 10 kube-rs watchers, goal < 1 s.

use std::time::{Duration, Instant};

use ferrolb_testserver::TestServer;
use ferrolb_testserver::registry::GroupResource;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

const SERVICES: usize = 1_000;
const PATCHES: usize = 10_000;
const IN_FLIGHT: usize = 16;
const WATCHERS: usize = 10;
const EVENTS: usize = 10_000;

#[tokio::main]
async fn main() {
    let server = TestServer::start().await.unwrap();
    let services = GroupResource {
        group: String::new(),
        resource: "services".into(),
    };
    server
        .shared
        .write(|store| {
            for i in 0..SERVICES {
                let svc = json!({"metadata": {"name": format!("svc-{i}")},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
                store.create(&services, "default", svc)?;
            }
            Ok(())
        })
        .unwrap();

    let api: Api<Service> = Api::namespaced(server.client(), "default");
    let start = Instant::now();
    futures::stream::iter(0..PATCHES)
        .map(|i| {
            let api = api.clone();
            async move {
                let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)}]}}});
                api.patch_status(&format!("svc-{}", i % SERVICES), &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let elapsed = start.elapsed();
    println!(
        "status patches: {PATCHES} in {:.3} s = {:.0}/s ({IN_FLIGHT} in flight, kube-rs client, debug={})",
        elapsed.as_secs_f64(),
        PATCHES as f64 / elapsed.as_secs_f64(),
        cfg!(debug_assertions)
    );

    let configmaps: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let from = configmaps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let api = configmaps.clone();
        let from = from.clone();
        watchers.push(tokio::spawn(async move {
            let stream = api
                .watch(&WatchParams::default().timeout(60), &from)
                .await
                .unwrap();
            futures::pin_mut!(stream);
            let mut seen = 0;
            while seen < EVENTS {
                if let Some(WatchEvent::Added(_)) = stream.try_next().await.unwrap() {
                    seen += 1;
                }
            }
            Instant::now()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cms = GroupResource {
        group: String::new(),
        resource: "configmaps".into(),
    };
    let start = Instant::now();
    for chunk in 0..EVENTS / 100 {
        server
            .shared
            .write(|store| {
                for i in 0..100 {
                    store.create(
                        &cms,
                        "default",
                        json!({"metadata": {"name": format!("cm-{chunk}-{i}")}, "data": {"k": "v"}}),
                    )?;
                }
                Ok(())
            })
            .unwrap();
        tokio::task::yield_now().await;
    }
    let mut last = start;
    for watcher in watchers {
        last = last.max(watcher.await.unwrap());
    }
    println!(
        "watch fan-out: {EVENTS} changes to each of {WATCHERS} watchers in {:.3} s",
        (last - start).as_secs_f64()
    );
}
