//! The speaker's watches against an API server (the in-memory test server, or the
//! cluster of `$FERROLB_KUBECONFIG`): records follow creates, changes and deletes,
//! objects the speaker does not need are left out, and a watch that lost the server
//! and its history lists again, dropping what was deleted meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_speaker::api::watch::{Listed, Records};
use ferrolb_speaker::planner::{self, ServiceInfo};
use ferrolb_testserver::Cluster;
use ferrolb_testserver::registry::GroupResource;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::{Notify, watch};

async fn until(records: &Records<ServiceInfo>, want: &[(&str, &str)], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let have: Vec<(String, String)> = records.read(|map| {
            map.iter()
                .map(|(key, s)| (key.clone(), s.ips.iter().map(ToString::to_string).collect()))
                .collect()
        });
        let wanted: Vec<(String, String)> = want
            .iter()
            .map(|(k, ip)| (k.to_string(), ip.to_string()))
            .collect();
        if have == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: records {have:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_ingress(api: &Api<Service>, name: &str, ip: &str) {
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_follow_the_api() {
    let mut cluster = Cluster::from_env().await.expect("cluster");
    let client = cluster.client();
    let ns = format!("watch-test-{}", std::process::id());
    let namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let dirty = Arc::new(Notify::new());
    let ours = ferrolb_crds::service::ClassPolicy::default();
    let records = Records::watch(api.clone(), &dirty, move |s: Service| {
        planner::service_info(&s, &ours)
    });
    let (_stop_tx, mut stop) = watch::channel(false);
    assert_eq!(records.listed(&mut stop).await.unwrap(), Listed::Complete);
    until(&records, &[], "empty at first").await;

    let service = |name: &str, kind: &str| -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": kind, "ports": [{"port": 80}]},
        }))
        .unwrap()
    };
    api.create(&PostParams::default(), &service("web", "LoadBalancer"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &service("internal", "ClusterIP"))
        .await
        .unwrap();
    until(&records, &[], "no address yet: nothing to keep").await;
    set_ingress(&api, "web", "10.0.0.1").await;
    let web = format!("{ns}/web");
    until(&records, &[(&web, "10.0.0.1")], "kept once it has an address").await;
    assert!(
        records.read(|map| map[&web].uid.is_some()),
        "the uid is kept for Events"
    );

    set_ingress(&api, "web", "10.0.0.2").await;
    until(&records, &[(&web, "10.0.0.2")], "a change").await;
    api.delete("web", &DeleteParams::default()).await.unwrap();
    until(&records, &[], "a delete").await;

    if let Cluster::Fixture(server) = &mut cluster {
        // Deleted while the watch was cut off, with the history gone (410 on resume):
        // the relist, swapped in whole, leaves it out.
        api.create(&PostParams::default(), &service("db", "LoadBalancer"))
            .await
            .unwrap();
        set_ingress(&api, "db", "10.0.0.3").await;
        let db = format!("{ns}/db");
        until(&records, &[(&db, "10.0.0.3")], "a second Service").await;
        server.stop();
        let services = GroupResource {
            group: String::new(),
            resource: "services".into(),
        };
        {
            let mut store = server.shared.store();
            store.delete(&services, &ns, "db").unwrap();
            store.compact(0);
        }
        server.restart().await.unwrap();
        until(&records, &[], "relisted after the server came back").await;
    }
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await;
}
