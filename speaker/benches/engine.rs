//! One engine step at scale: N single-stack Services announced by BGP to two peers (the
//! lab's 10,000-prefix benchmark, without the API and the sockets). Prints the time of
//! a step after one Service is added (with the stores' join of Services and
//! EndpointSlices into the view before it), and of its parts.
//!
//! `cargo bench -p ferrolb-speaker --bench engine [-- N]` (default 10000).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_crds::config;
use ferrolb_crds::service::ServiceKey;
use ferrolb_speaker::engine::{Changes, Engine, Settings, View};
use ferrolb_speaker::planner::{self, Endpoint, Joined, NodeInfo, ServiceInfo, SliceInfo};

const NS: &str = "ferrolb-system";

/// Service `i` as the stores keep it (without endpoints), and its EndpointSlice.
fn records(i: usize) -> (Arc<ServiceInfo>, Arc<SliceInfo>) {
    let key = ServiceKey::new("demo", format!("s{i}"));
    let service = ServiceInfo {
        key: key.clone(),
        uid: Some(format!("uid-{i}")),
        ips: vec![IpAddr::from([10, 80, (i / 250) as u8, (i % 250 + 1) as u8])],
        local: false,
        labels: BTreeMap::new(),
        endpoints: Vec::new(),
        ports: Vec::new(),
    };
    let slice = SliceInfo {
        service: key,
        endpoints: vec![Endpoint {
            node: Some("n1".into()),
            ready: Some(true),
            serving: None,
        }],
    };
    (Arc::new(service), Arc::new(slice))
}

fn view(services: Vec<Arc<ServiceInfo>>) -> View {
    let text = format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: p, namespace: {NS}}}\nspec: {{addresses: [10.80.0.0/16]}}\n\
         ---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: all, namespace: {NS}}}\n\
         ---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: r4, namespace: {NS}}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 10.77.0.100}}\n\
         ---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: r6, namespace: {NS}}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 'fd00:77::64', dualStackAddressFamily: true}}\n"
    );
    let outcome = config::build(NS, &config::parse_manifests(&text).expect("manifests"));
    assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
    let node = |name: &str| NodeInfo {
        name: name.into(),
        labels: BTreeMap::new(),
        ready: true,
        network_unavailable: false,
        unschedulable: false,
    };
    View {
        services,
        config: outcome.config,
        nodes: vec![node("n1"), node("n2")],
        node_ips: vec![
            "10.77.0.11".parse().expect("ip"),
            "fd00:77::b".parse().expect("ip"),
        ],
        seeds: Vec::new(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut engine = Engine::new(
        Settings {
            node: "n1".into(),
            excludes: vec!["*".into()],
            steering: true,
            gossip: false,
            fallback_after: Duration::from_secs(5),
            restart_time: Duration::from_secs(120),
        },
        Instant::now(),
    );
    // The stores' records, keyed as theirs are.
    let mut services = BTreeMap::new();
    let mut slices = BTreeMap::new();
    for i in 0..n {
        let (service, slice) = records(i);
        services.insert(format!("demo/s{i}"), service);
        slices.insert(format!("demo/s{i}-1"), slice);
    }
    let mut joined = Joined::default();
    let mut v = view(planner::join(services.values(), slices.values(), &mut joined));
    let first = Instant::now();
    engine.step(
        Changes {
            view: Some(v.clone()),
            ..Changes::default()
        },
        Instant::now(),
    );
    let first = first.elapsed();
    let mut steps = Vec::new();
    let mut joins = Vec::new();
    for round in 0..5 {
        let i = n + round;
        let (service, slice) = records(i);
        services.insert(format!("demo/s{i}"), service);
        slices.insert(format!("demo/s{i}-1"), slice);
        let t = Instant::now();
        v.services = planner::join(services.values(), slices.values(), &mut joined);
        joins.push(ms(t.elapsed()));
        let t = Instant::now();
        let actions = engine.step(
            Changes {
                view: Some(v.clone()),
                ..Changes::default()
            },
            Instant::now(),
        );
        steps.push(ms(t.elapsed()));
        assert!(actions.bgp.is_some(), "the new Service changes the BGP side");
    }
    let t = Instant::now();
    let l2 = planner::plan(planner::Input {
        config: &v.config,
        services: &v.services,
        nodes: &v.nodes,
        live: &["n1".to_string(), "n2".to_string()].into(),
    });
    let l2_ms = ms(t.elapsed());
    drop(l2);
    let t = Instant::now();
    let bgp = planner::bgp::plan(&v.config, &v.services, &v.nodes[0]);
    let bgp_ms = ms(t.elapsed());
    drop(bgp);
    let t = Instant::now();
    let cloned = v.clone();
    let clone_ms = ms(t.elapsed());
    drop(cloned);
    steps.sort_by(f64::total_cmp);
    joins.sort_by(f64::total_cmp);
    println!(
        "FIGURE engine_step services={n} first_ms={:.1} step_after_one_new_ms_median={:.1} worst={:.1} \
         join_ms_median={:.1} l2_plan_ms={l2_ms:.1} bgp_plan_ms={bgp_ms:.1} view_clone_ms={clone_ms:.1}",
        ms(first),
        steps[steps.len() / 2],
        steps[steps.len() - 1],
        joins[joins.len() / 2],
    );
}
