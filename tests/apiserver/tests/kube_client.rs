//! The test server driven by unmodified kube-rs clients.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_crds::api::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus};
use ferrolb_testserver::TestServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Error};
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

fn code(err: Error) -> u16 {
    match err {
        Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other}"),
    }
}

async fn install_pool_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ferrolb_crds::api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "IPAddressPool")
        .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
}

#[tokio::test]
async fn crud_with_conflicts_and_not_found() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let pp = PostParams::default();
    let created = api.create(&pp, &cm("a", &[("app", "x")])).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert_eq!(code(api.create(&pp, &cm("a", &[])).await.unwrap_err()), 409);

    let mut changed = created.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = api.replace("a", &pp, &changed).await.unwrap();
    assert_ne!(replaced.metadata.resource_version.as_deref(), Some(rv.as_str()));
    // The same stale resourceVersion again: conflict.
    assert_eq!(code(api.replace("a", &pp, &changed).await.unwrap_err()), 409);

    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap().len(), 2);
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/data/extra"}])).unwrap();
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap().len(), 1);

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(api.get("a").await.unwrap_err()), 404);
    assert_eq!(
        code(api.delete("a", &DeleteParams::default()).await.unwrap_err()),
        404
    );
}

#[tokio::test]
async fn lists_select_and_paginate() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        api.create(&PostParams::default(), &cm(&format!("c{i}"), &[("tier", tier)]))
            .await
            .unwrap();
    }
    let even = api
        .list(&ListParams::default().labels("tier=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let not_even = api
        .list(&ListParams::default().labels("tier notin (even)"))
        .await
        .unwrap();
    assert_eq!(not_even.items.len(), 3);
    let named = api
        .list(&ListParams::default().fields("metadata.name=c3"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);

    // Every page carries the first page's resourceVersion, even when objects change
    // between pages, so a watch from it misses nothing.
    let mut seen = Vec::new();
    let mut versions = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = api.list(&params).await.unwrap();
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        versions.push(page.metadata.resource_version.unwrap());
        if versions.len() == 1 {
            api.create(&PostParams::default(), &cm("c0-between-pages", &[]))
                .await
                .unwrap();
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    // The new object sorts before the cursor, so the pages do not show it; the watch does.
    assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    assert!(versions.iter().all(|v| *v == versions[0]), "{versions:?}");
    let since = api
        .watch(&kube::api::WatchParams::default(), &versions[0])
        .await
        .unwrap()
        .boxed()
        .try_next()
        .await
        .unwrap();
    assert!(
        matches!(&since, Some(kube::api::WatchEvent::Added(c)) if c.metadata.name.as_deref() == Some("c0-between-pages")),
        "{since:?}"
    );
    api.delete("c0-between-pages", &DeleteParams::default())
        .await
        .unwrap();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=odd"),
    )
    .await
    .unwrap();
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 4);
}

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Service> = Api::namespaced(server.client(), "default");
    let svc = |name: &str, node_port: Option<i32>| Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let a = api.create(&PostParams::default(), &svc("a", None)).await.unwrap();
    let spec = a.spec.unwrap();
    assert!(spec.cluster_ip.is_some());
    let port = spec.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&port));
    assert_eq!(
        code(
            api.create(&PostParams::default(), &svc("b", Some(port)))
                .await
                .unwrap_err()
        ),
        422
    );

    // Status only through the status subresource.
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
    let updated = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        updated.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("10.0.0.1")
    );
    let ignored = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.9.9.9"}]}}, "metadata": {"labels": {"x": "y"}}});
    let after = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&ignored))
        .await
        .unwrap();
    assert_eq!(
        after.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("10.0.0.1")
    );

    // Deleting frees the node port.
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &svc("b", Some(port)))
        .await
        .unwrap();
}

#[tokio::test]
async fn secrets_encode_string_data() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Secret> = Api::namespaced(server.client(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth", "stringData": {"password": "s3cret"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &secret).await.unwrap();
    assert_eq!(created.data.unwrap()["password"].0, b"s3cret");
    assert!(created.string_data.is_none());
}

#[tokio::test]
async fn custom_resources_from_our_crds() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    install_pool_crd(&client).await;
    let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), "ferrolb-system");
    let pool = IPAddressPool::new(
        "p",
        IPAddressPoolSpec {
            addresses: vec!["10.0.0.0/24".into()],
            auto_assign: true,
            ..Default::default()
        },
    );
    let created = pools.create(&PostParams::default(), &pool).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let status = IPAddressPoolStatus {
        assigned_ipv4: 3,
        available_ipv4: 253,
        ..Default::default()
    };
    let patched = pools
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().assigned_ipv4, 3);
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "a status write is no spec change"
    );
    let edited = pools
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoAssign": false}})),
        )
        .await
        .unwrap();
    assert_eq!(edited.metadata.generation, Some(2));

    // Discovery lists the new type, so dynamic clients find it.
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "ferrolb.io",
            "v1beta1",
            "IPAddressPool",
        ))
        .unwrap();
    assert_eq!(resource.plural, "ipaddresspools");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let dynamic: Api<kube::api::DynamicObject> = Api::namespaced_with(client, "ferrolb-system", &resource);
    assert_eq!(dynamic.list(&ListParams::default()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let params = PatchParams::apply("test").force();
    let first =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}});
    api.patch("applied", &params, &Patch::Apply(&first))
        .await
        .unwrap();
    let second =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"b": "2"}});
    let merged = api
        .patch("applied", &params, &Patch::Apply(&second))
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap().len(), 2);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["ferrolb.io/test".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = api.get("held").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(code(api.get("held").await.unwrap_err()), 404);
}

#[tokio::test]
async fn a_reflector_converges_through_dropped_watches_and_410() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let config = watcher::Config::default().labels("app=web");
    let stream = reflector(writer, watcher(api.clone(), config))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));

    let wait_for = |expected: &'static [&'static str]| {
        let reader = reader.clone();
        async move {
            let names = || {
                let mut names: Vec<String> = reader
                    .state()
                    .iter()
                    .map(|c| c.metadata.name.clone().unwrap())
                    .collect();
                names.sort();
                names
            };
            for _ in 0..400 {
                if names() == expected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("reflector holds {:?}, expected {expected:?}", names());
        }
    };

    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("w{i}"), &[("app", "web")]))
            .await
            .unwrap();
    }
    api.create(&PostParams::default(), &cm("other", &[("app", "db")]))
        .await
        .unwrap();
    wait_for(&["w0", "w1", "w2"]).await;

    // Leaving the selector is a deletion for this watcher.
    api.patch(
        "w0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    wait_for(&["w1", "w2"]).await;

    // Dropped connections: the watcher resumes from its last resourceVersion.
    server.shared.close_watches();
    api.create(&PostParams::default(), &cm("w3", &[("app", "web")]))
        .await
        .unwrap();
    wait_for(&["w1", "w2", "w3"]).await;

    // History gone: the re-watch is held while the changes happen and the history is
    // compacted, so the watcher must get 410 and relist.
    server.shared.pause(true);
    server.shared.close_watches();
    let cms = ferrolb_testserver::registry::GroupResource {
        group: String::new(),
        resource: "configmaps".into(),
    };
    server
        .shared
        .write(|s| {
            s.delete(&cms, "default", "w1")?;
            s.create(
                &cms,
                "default",
                json!({"metadata": {"name": "w4", "labels": {"app": "web"}}}),
            )
        })
        .unwrap();
    server.shared.store().compact(0);
    server.shared.pause(false);
    wait_for(&["w2", "w3", "w4"]).await;
    assert!(
        server.shared.expired_watches() >= 1,
        "the watcher resumed without a 410"
    );
    task.abort();
}

#[tokio::test]
async fn a_raw_watch_streams_changes_in_order() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let start = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = api
        .watch(&kube::api::WatchParams::default(), &start)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    api.delete("x", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match stream.try_next().await.unwrap().unwrap() {
            kube::api::WatchEvent::Added(_) => kinds.push("ADDED"),
            kube::api::WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            kube::api::WatchEvent::Deleted(_) => kinds.push("DELETED"),
            kube::api::WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn watching_from_a_compacted_position_is_410() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    server.shared.store().compact(0);
    let stream = api.watch(&kube::api::WatchParams::default(), "1").await.unwrap();
    futures::pin_mut!(stream);
    match stream.try_next().await {
        Ok(Some(kube::api::WatchEvent::Error(status))) => assert_eq!(status.code, 410),
        Err(Error::Api(status)) => assert_eq!(status.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn injected_errors_pauses_and_restarts() {
    let mut server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &cm("kept", &[]))
        .await
        .unwrap();

    server.shared.fail_next(2, 500);
    assert_eq!(code(api.get("kept").await.unwrap_err()), 500);
    assert_eq!(code(api.get("kept").await.unwrap_err()), 500);
    api.get("kept").await.unwrap();
    // kube-rs retries 429 (after Retry-After), 503 and 504 on its own.
    server.shared.fail_next(1, 429);
    api.get("kept").await.unwrap();

    server.shared.pause(true);
    let pending = tokio::spawn({
        let api = api.clone();
        async move { api.get("kept").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "a paused server must not answer");
    server.shared.pause(false);
    pending.await.unwrap().unwrap();

    server.stop();
    assert!(
        api.get("kept").await.is_err(),
        "a stopped server refuses connections"
    );
    server.restart().await.unwrap();
    assert_eq!(
        api.get("kept").await.unwrap().metadata.name.as_deref(),
        Some("kept")
    );
}

#[tokio::test]
async fn faults_through_the_admin_endpoint() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let request = http::Request::post("/_testserver/faults")
        .body(serde_json::to_vec(&json!({"failNext": 1, "code": 500})).unwrap())
        .unwrap();
    let _: serde_json::Value = client.request(request).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    assert_eq!(code(api.list(&ListParams::default()).await.unwrap_err()), 500);
    api.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn custom_resources_are_validated_defaulted_and_pruned() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ferrolb_crds::api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("ferrolb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    );
    let pools: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "ferrolb-system", &resource);
    let pool = |name: &str, spec: serde_json::Value| {
        serde_json::from_value::<kube::api::DynamicObject>(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    };
    let created = pools
        .create(
            &PostParams::default(),
            &pool("ok", json!({"addresses": ["10.0.0.0/24"], "typo": 1})),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["autoAssign"], true, "CRD default applied");
    assert!(created.data["spec"].get("typo").is_none(), "unknown field pruned");

    let err = pools
        .create(
            &PostParams::default(),
            &pool("bad", json!({"addresses": ["10.0.0.1", "10.0.0.9-10.0.0.1"]})),
        )
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("expected 422")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec.addresses[0]") && status.message.contains("spec.addresses[1]"),
        "{}",
        status.message
    );

    let peers_resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("ferrolb.io", "v1beta2", "BGPPeer"),
        "bgppeers",
    );
    let peers: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client, "ferrolb-system", &peers_resource);
    let peer: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "r"},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "peerPort": 20000}
    }))
    .unwrap();
    let err = peers.create(&PostParams::default(), &peer).await.unwrap_err();
    let Error::Api(status) = err else {
        panic!("expected 422")
    };
    assert!(
        status.code == 422 && status.message.contains("spec.peerPort"),
        "{}",
        status.message
    );
}
