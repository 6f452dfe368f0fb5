//! The controller binary against an API server: allocation, restart, exhaustion, pool
//! edits, two replicas and API faults.

mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::{Lab, NS, eventually};

const LONG: Duration = Duration::from_secs(60);

/// Waits until every Service of the lab shows an address; returns them.
async fn all_assigned(lab: &Lab, count: usize) -> std::collections::BTreeMap<String, Vec<IpAddr>> {
    eventually(LONG, &format!("{count} Services with addresses"), || async {
        let all = lab.addresses().await;
        (all.len() == count && all.values().all(|ips| !ips.is_empty())).then_some(all)
    })
    .await
}

fn distinct(all: &std::collections::BTreeMap<String, Vec<IpAddr>>) -> bool {
    let set: BTreeSet<_> = all.values().flatten().collect();
    set.len() == all.values().map(Vec::len).sum::<usize>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_services_get_distinct_addresses_and_keep_them_across_restarts() {
    let lab = Lab::start("restart").await;
    lab.pool("main", json!({"addresses": ["10.20.0.0/24"]})).await;
    let mut controller = lab.controller("c1");
    for i in 0..200 {
        lab.service(&format!("svc-{i:03}"), json!({})).await;
    }
    let before = all_assigned(&lab, 200).await;
    assert!(distinct(&before), "{before:?}");

    // Status, condition, annotation, Event and pool usage.
    let (status, reason, message) = lab.condition("svc-000").await.unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Allocated"));
    assert!(message.contains("from pool main"), "{message}");
    let svc = lab.services().get("svc-000").await.unwrap();
    let annotations = svc.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("ferrolb.io/ip-allocated-from-pool")
            .map(String::as_str),
        Some("main")
    );
    eventually(LONG, "an IPAllocated Event", || async {
        let events = lab.events("svc-000").await;
        events
            .iter()
            .any(|(reason, note, _)| reason == "IPAllocated" && note.contains("from pool main"))
            .then_some(())
    })
    .await;
    eventually(LONG, "pool status 200/56", || async {
        let status = lab.pools().get("main").await.ok()?.status?;
        (status.assigned_ipv4 == 200 && status.available_ipv4 == 56).then_some(())
    })
    .await;

    // Metrics, probes and the ConfigurationState.
    let metrics = eventually(LONG, "pool metrics", || async {
        let text = controller.metrics().await?;
        text.contains(r#"ferrolb_allocator_addresses_in_use{pool="main",family="ipv4"} 200"#)
            .then_some(text)
    })
    .await;
    assert!(
        metrics.contains(r#"ferrolb_allocator_addresses{pool="main",family="ipv4"} 256"#),
        "{metrics}"
    );
    assert!(metrics.contains("ferrolb_leader 1"), "{metrics}");
    assert!(controller.probe("readyz").await && controller.probe("healthz").await);
    let states: Api<ferrolb_crds::api::ConfigurationState> = Api::namespaced(lab.client.clone(), NS);
    eventually(LONG, "ConfigurationState Valid", || async {
        let status = states.get("ferrolb-controller").await.ok()?.status?;
        (status.result == ferrolb_crds::api::ConfigurationResult::Valid).then_some(())
    })
    .await;

    // A graceful restart, then a crash: nothing moves; a new Service still gets an address.
    assert!(controller.terminate().success(), "SIGTERM exits 0");
    let mut controller = lab.controller("c2");
    lab.service("after-restart", json!({})).await;
    all_assigned(&lab, 201).await;
    controller.kill();
    let _controller = lab.controller("c3");
    lab.service("after-crash", json!({})).await;
    let after = all_assigned(&lab, 202).await;
    for (name, ips) in &before {
        assert_eq!(&after[name], ips, "{name} changed its address");
    }
    assert!(distinct(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_then_a_freed_address_goes_to_the_waiting_service() {
    let lab = Lab::start("exhaust").await;
    lab.pool("tiny", json!({"addresses": ["10.21.0.0/31"]})).await;
    let _controller = lab.controller("c1");
    lab.service("a", json!({})).await;
    lab.service("b", json!({})).await;
    all_assigned(&lab, 2).await;
    lab.service("c", json!({})).await;
    let (status, reason, message) = eventually(LONG, "a failure condition", || lab.condition("c")).await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PoolExhausted"));
    assert_eq!(message, "no free address in pool tiny");
    eventually(LONG, "an AllocationFailed Event", || async {
        let events = lab.events("c").await;
        events
            .iter()
            .any(|(reason, _, _)| reason == "AllocationFailed")
            .then_some(())
    })
    .await;
    let freed = lab.addresses().await["a"].clone();
    lab.delete_service("a").await;
    let all = all_assigned(&lab, 2).await;
    assert_eq!(
        all["c"], freed,
        "the waiting Service gets the freed address without any edit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_range_moves_only_the_services_in_it() {
    let lab = Lab::start("shrink").await;
    lab.pool("p", json!({"addresses": ["10.22.0.0/30", "10.22.1.0/30"]}))
        .await;
    let _controller = lab.controller("c1");
    for i in 0..6 {
        lab.service(&format!("s{i}"), json!({})).await;
    }
    let before = all_assigned(&lab, 6).await;
    let patch = json!({"spec": {"addresses": ["10.22.1.0/30", "10.22.2.0/30"]}});
    lab.pools()
        .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let after = eventually(LONG, "Services moved out of the dropped range", || async {
        let all = lab.addresses().await;
        let moved = all
            .values()
            .flatten()
            .all(|ip| !ip.to_string().starts_with("10.22.0."));
        (moved && all.values().all(|ips| !ips.is_empty())).then_some(all)
    })
    .await;
    for (name, ips) in &before {
        if ips[0].to_string().starts_with("10.22.1.") {
            assert_eq!(
                &after[name], ips,
                "{name} was in the kept range and must not move"
            );
        } else {
            assert!(
                !after[name][0].to_string().starts_with("10.22.0."),
                "{name}: {:?}",
                after[name]
            );
        }
    }
    assert!(distinct(&after));
    eventually(LONG, "a ClearAssignment Event", || async {
        let moved = before
            .iter()
            .find(|(_, ips)| ips[0].to_string().starts_with("10.22.0."))?
            .0
            .clone();
        let events = lab.events(&moved).await;
        events
            .iter()
            .any(|(r, note, _)| r == "ClearAssignment" && note.contains("no pool contains it"))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_pool_is_reported_and_takes_nothing_away() {
    let lab = Lab::start("overlap").await;
    lab.pool("first", json!({"addresses": ["10.25.0.0/30"]})).await;
    let controller = lab.controller("c1");
    lab.service("a", json!({})).await;
    let before = all_assigned(&lab, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later creationTimestamp
    lab.pool("second", json!({"addresses": ["10.25.0.0/29"]})).await;
    let status = eventually(LONG, "the newer pool's conditions", || async {
        let status = lab.pools().get("second").await.ok()?.status?;
        (status.conditions.len() == 2).then_some(status)
    })
    .await;
    assert_eq!(status.conditions[0].status, "False", "{status:?}");
    assert_eq!(status.conditions[1].type_, "Overlapping");
    assert!(status.conditions[1].message.contains("overlaps"), "{status:?}");
    let states: Api<ferrolb_crds::api::ConfigurationState> = Api::namespaced(lab.client.clone(), NS);
    let summary = eventually(LONG, "ConfigurationState Invalid", || async {
        let status = states.get("ferrolb-controller").await.ok()?.status?;
        (status.result == ferrolb_crds::api::ConfigurationResult::Invalid).then_some(status.error_summary)
    })
    .await;
    assert!(summary.contains("IPAddressPool \"second\""), "{summary}");
    // What the FerroLBConfigurationInvalid alert reads.
    eventually(LONG, "the invalid pool in the metrics", || async {
        let text = controller.metrics().await?;
        text.contains(r#"ferrolb_config_issues{kind="IPAddressPool",severity="invalid"} 1"#)
            .then_some(())
    })
    .await;
    lab.service("b", json!({"ferrolb.io/address-pool": "second"}))
        .await;
    let (_, reason, _) = eventually(LONG, "b fails", || lab.condition("b")).await;
    assert_eq!(reason, "UnknownPool");
    assert_eq!(lab.addresses().await["a"], before["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_exactly_one_writes() {
    let lab = Lab::start("replicas").await;
    lab.pool("p", json!({"addresses": ["10.23.0.0/24"]})).await;
    let mut controllers = [lab.controller("first"), lab.controller("second")];
    for i in 0..20 {
        lab.service(&format!("s{i}"), json!({})).await;
    }
    all_assigned(&lab, 20).await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(lab.client.clone(), NS);
    let holder = leases
        .get("ferrolb-controller")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let leader = controllers
        .iter()
        .position(|c| c.identity == holder)
        .expect("a replica holds the lease");
    let follower = 1 - leader;
    let mut reporters = BTreeSet::new();
    for i in 0..20 {
        for (_, _, instance) in lab.events(&format!("s{i}")).await {
            reporters.insert(instance);
        }
    }
    assert_eq!(
        reporters,
        BTreeSet::from([holder.clone()]),
        "only the leader records Events"
    );
    let metrics = controllers[follower].metrics().await.expect("follower metrics");
    assert!(
        !metrics.contains("ferrolb_api_writes_total{"),
        "the follower wrote:\n{metrics}"
    );
    assert!(metrics.contains("ferrolb_leader 0"), "{metrics}");

    // The leader dies hard; the other takes over once the lease expires.
    controllers[leader].kill();
    lab.service("late", json!({})).await;
    all_assigned(&lab, 21).await;
    let holder = leases
        .get("ferrolb-controller")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), Some(controllers[follower].identity.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_lose_and_duplicate_nothing() {
    let lab = Lab::start("faults").await;
    let Some(server) = lab.cluster.fixture() else {
        eprintln!("skipped: faults can only be injected into the test server");
        return;
    };
    lab.pool("p", json!({"addresses": ["10.24.0.0/24"]})).await;
    let _controller = lab.controller("c1");
    for i in 0..50 {
        lab.service(&format!("a{i}"), json!({})).await;
    }
    server.shared.close_watches();
    server.shared.fail_next(30, 500);
    for i in 0..50 {
        // Creation may hit an injected failure too; retry like any client would.
        eventually(LONG, "create", || async {
            let object = support::service_object(&format!("b{i}"), json!({}), 80);
            lab.services()
                .create(&Default::default(), &object)
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }
    server.shared.pause(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.shared.pause(false);
    server.shared.close_watches();
    for i in 0..10 {
        lab.delete_service(&format!("a{i}")).await;
    }
    let all = all_assigned(&lab, 90).await;
    assert!(distinct(&all), "{all:?}");
    eventually(LONG, "pool status 90", || async {
        let status = lab.pools().get("p").await.ok()?.status?;
        (status.assigned_ipv4 == 90).then_some(())
    })
    .await;
}
