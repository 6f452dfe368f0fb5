//! 2,000 creates, deletes and edits in random order with controller restarts in
//! between; at the end the Services' status must satisfy every allocation invariant.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{Lab, eventually, ingress, service_object};

const OPS: usize = 2_000;
const RESTART_EVERY: usize = 400;

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn annotations(rng: &mut Rng) -> Value {
    let mut map = serde_json::Map::new();
    match rng.below(4) {
        0 => {
            map.insert(
                "ferrolb.io/allow-shared-ip".into(),
                json!(["k1", "k2"][rng.below(2)]),
            );
        }
        1 => {
            map.insert(
                "metallb.io/address-pool".into(),
                json!(["a", "b", "nope"][rng.below(3)]),
            );
        }
        2 => {
            let ip = format!("10.30.{}.{}", rng.below(2), rng.below(20));
            map.insert("ferrolb.io/loadBalancerIPs".into(), json!(ip));
        }
        _ => {}
    }
    Value::Object(map)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_keeps_every_invariant() {
    let lab = Lab::start("churn").await;
    lab.pool("a", json!({"addresses": ["10.30.0.0/26"]})).await;
    lab.pool("b", json!({"addresses": ["10.30.1.0/28"]})).await;
    let mut controller = lab.controller("c0");
    let api = lab.services();
    let mut rng = Rng(0x5eed_f00d);
    let mut live: Vec<String> = Vec::new();
    let mut next = 0;
    for op in 0..OPS {
        if op > 0 && op % RESTART_EVERY == 0 {
            if op % (2 * RESTART_EVERY) == 0 {
                controller.kill();
            } else {
                controller.terminate();
            }
            controller = lab.controller(&format!("c{op}"));
        }
        match rng.below(10) {
            0..=4 => {
                let name = format!("s{next}");
                next += 1;
                let port = [80, 443, 53][rng.below(3)];
                let object = service_object(&name, annotations(&mut rng), port);
                api.create(&PostParams::default(), &object).await.expect("create");
                live.push(name);
            }
            5 | 6 if !live.is_empty() => {
                let name = live.swap_remove(rng.below(live.len()));
                api.delete(&name, &DeleteParams::default()).await.expect("delete");
            }
            7 | 8 if !live.is_empty() => {
                let name = &live[rng.below(live.len())];
                let patch = json!({"metadata": {"annotations": {
                    "ferrolb.io/allow-shared-ip": null, "metallb.io/address-pool": null,
                    "ferrolb.io/loadBalancerIPs": null}}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("clear");
                let patch = json!({"metadata": {"annotations": annotations(&mut rng)}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("edit");
            }
            _ if !live.is_empty() => {
                let name = &live[rng.below(live.len())];
                let kind = ["ClusterIP", "LoadBalancer"][rng.below(2)];
                let patch = json!({"spec": {"type": kind}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("type");
            }
            _ => {}
        }
    }

    // Converged: every LoadBalancer has addresses or a failure condition, stable for a while.
    let start = std::time::Instant::now();
    let mut previous = None;
    let services = loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no convergence in 120 s"
        );
        let list = api.list(&ListParams::default()).await.expect("list").items;
        let settled = list
            .iter()
            .all(|s| !is_lb(s) || !ingress(s).is_empty() || failed(s));
        let snapshot: Vec<_> = list
            .iter()
            .map(|s| (s.metadata.name.clone(), ingress(s), failed(s)))
            .collect();
        if settled && previous.as_ref() == Some(&snapshot) {
            break list;
        }
        previous = Some(snapshot);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    check(&lab, &services).await;
}

fn is_lb(s: &Service) -> bool {
    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

fn failed(s: &Service) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "ferrolb.io/Allocated" && c.status == "False")
        })
}

fn annotation<'a>(s: &'a Service, key: &str) -> Option<&'a str> {
    s.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

async fn check(lab: &Lab, services: &[Service]) {
    let in_pool = |ip: &IpAddr| -> Option<&'static str> {
        let text = ip.to_string();
        let last: u8 = text.rsplit('.').next()?.parse().ok()?;
        if text.starts_with("10.30.0.") && last < 64 {
            Some("a")
        } else if text.starts_with("10.30.1.") && last < 16 {
            Some("b")
        } else {
            None
        }
    };
    let mut holders: BTreeMap<IpAddr, Vec<&Service>> = BTreeMap::new();
    let mut plain_pending = 0;
    for s in services {
        let name = s.metadata.name.as_deref().unwrap();
        let ips = ingress(s);
        if !is_lb(s) {
            assert!(ips.is_empty(), "{name} is not a LoadBalancer but shows {ips:?}");
            continue;
        }
        for ip in &ips {
            let pool = in_pool(ip).unwrap_or_else(|| panic!("{name} holds {ip}, outside every pool"));
            if let Some(wanted) = annotation(s, "metallb.io/address-pool") {
                assert_eq!(pool, wanted, "{name} asked for pool {wanted} but holds {ip}");
            }
            if let Some(wanted) = annotation(s, "ferrolb.io/loadBalancerIPs") {
                assert_eq!(ip.to_string(), wanted, "{name} asked for {wanted} but holds {ip}");
            }
            holders.entry(*ip).or_default().push(s);
        }
        if ips.is_empty() && s.metadata.annotations.as_ref().is_none_or(|a| a.is_empty()) {
            plain_pending += 1;
        }
    }
    for (ip, users) in &holders {
        if users.len() < 2 {
            continue;
        }
        let keys: BTreeSet<_> = users
            .iter()
            .map(|s| annotation(s, "ferrolb.io/allow-shared-ip"))
            .collect();
        assert!(
            keys.len() == 1 && !keys.contains(&None),
            "{ip} shared without a common key: {keys:?}"
        );
        let mut ports = BTreeSet::new();
        for s in users {
            for p in s.spec.as_ref().unwrap().ports.iter().flatten() {
                assert!(
                    ports.insert((p.protocol.clone(), p.port)),
                    "{ip}: port {} used twice",
                    p.port
                );
            }
        }
    }
    let used = |pool: &str| holders.keys().filter(|ip| in_pool(ip) == Some(pool)).count() as i64;
    if plain_pending > 0 {
        assert_eq!(
            used("a") + used("b"),
            64 + 16,
            "{plain_pending} plain Services wait while addresses are free"
        );
    }
    for pool in ["a", "b"] {
        let expected = used(pool);
        eventually(Duration::from_secs(30), "pool status", || async {
            let status = lab.pools().get(pool).await.ok()?.status?;
            (status.assigned_ipv4 == expected).then_some(())
        })
        .await;
    }
    eprintln!(
        "churn: {} Services, {} addresses in use, {plain_pending} plain Services pending",
        services.len(),
        holders.len()
    );
}
