//! `bgp-table`: a table of N /32s (N Services) into a BIRD router, FerroLB next to BIRD
//! and GoBGP as the speakers, in one lab. Times come from BIRD itself (when the session
//! came up, when each route arrived: microsecond timestamps) or, for withdrawals, from
//! polling its route count every 2 ms after the trigger.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use ferrolb_lab::routers::{Kind, Neighbor, Router, Setup};
use ferrolb_lab::{APPS, CLIENT, Lab, NS, until, until_every};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::{memory, summary};

const ROUTER_ASN: u32 = 64513;
const NODE_ASN: u32 = 64512;

/// How often a time measured by polling polls (a `birdc` call itself takes a few ms).
const POLL: Duration = Duration::from_millis(2);

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The `i`th address of the benchmark's range (10.80.0.0/16 for FerroLB, 10.81.0.0/16
/// for the other speakers).
fn address(second: u8, i: usize) -> String {
    format!("10.{second}.{}.{}", i / 250, i % 250 + 1)
}

/// Everything measured, printed as FIGURE lines and summaries.
pub async fn run(runs: usize, prefixes: usize) -> anyhow::Result<()> {
    let mut lab = Lab::start("bgpb").await?;
    // The chart's level: what the speaker logs at start costs time at 10,000 Services.
    lab.speaker_log = "info";
    let (n1, n2) = (lab.net.host("n1").clone(), lab.net.host("n2").clone());
    let router_host = lab.net.host(CLIENT.0).clone();
    let neighbor = |address: &str| Neighbor {
        address: address.to_string(),
        asn: NODE_ASN,
        password: None,
        multihop_to: None,
    };
    let setup = Setup {
        asn: ROUTER_ASN,
        router_id: router_host.v4.clone(),
        address_v6: router_host.v6.clone(),
        neighbors: vec![neighbor(&n1.v4), neighbor(&n1.v6), neighbor(&n2.v4)],
        bfd: None,
    };
    let router = Router::start(&mut lab, Kind::Bird, CLIENT.0, &setup).await?;
    lab.controller()?;
    for (node, _) in ferrolb_lab::NODES {
        lab.speaker(node, &["--membership", "api"])?;
    }
    let client = lab.client.clone();
    let pools: Api<ferrolb_crds::api::IPAddressPool> = Api::namespaced(client.clone(), NS);
    pools
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bench", "namespace": NS},
                "spec": {"addresses": ["10.80.0.0/16"]}}))?,
        )
        .await?;
    let ads: Api<ferrolb_crds::api::BGPAdvertisement> = Api::namespaced(client.clone(), NS);
    let ad = || serde_json::from_value(json!({"metadata": {"name": "all", "namespace": NS}, "spec": {}}));
    ads.create(&PostParams::default(), &ad()?).await?;

    // N single-stack Services, each with a ready endpoint on n1.
    let started = Instant::now();
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), APPS);
    let made: Vec<anyhow::Result<()>> = futures::stream::iter(0..prefixes)
        .map(|i| {
            let (services, slices) = (services.clone(), slices.clone());
            async move { service(&services, &slices, &format!("s{i}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    made.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let created = started.elapsed();
    let mut assigned = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while assigned < prefixes {
        if Instant::now() > deadline {
            bail!("only {assigned} of {prefixes} Services got an address");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let list = services.list(&ListParams::default()).await?;
        assigned = list
            .items
            .iter()
            .filter(|s| !ferrolb_crds::service::ingress_ips(s).is_empty())
            .count();
    }
    println!(
        "FIGURE setup services={prefixes} created_s={:.1} assigned_s={:.1}",
        created.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // FerroLB: n1 peers with the router over IPv4 and over IPv6 (both carrying IPv4).
    let peers: Api<ferrolb_crds::api::BGPPeer> = Api::namespaced(client.clone(), NS);
    let peer = |name: &str, address: &str| {
        serde_json::from_value::<ferrolb_crds::api::BGPPeer>(json!({
            "metadata": {"name": name, "namespace": NS},
            "spec": {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": address,
                     "dualStackAddressFamily": true,
                     "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n1"}}]},
        }))
    };
    peers
        .create(&PostParams::default(), &peer("r6", &router_host.v6)?)
        .await?;
    let mut up = Vec::new();
    for run in 1..=runs {
        let t0 = now();
        peers
            .create(&PostParams::default(), &peer("r4", &router_host.v4)?)
            .await?;
        let ms = table_in(&lab, &router, &n1.v4, prefixes, run, "ferrolb", t0).await?;
        up.push(ms);
        if run < runs {
            peers.delete("r4", &DeleteParams::default()).await?;
            until("n1's IPv4 session gone", 30, || {
                (router.bird_count(&lab, &n1.v4) == 0).then_some(())
            })
            .await?;
        }
    }
    until("the IPv6 session's table", 60, || {
        (router.bird_count(&lab, &n1.v6) == prefixes).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = memory(lab.proc("speaker-n1").pid())?;
    println!(
        "FIGURE rss speaker_peak_mib={:.1} anon_mib={:.1} prefixes={prefixes} peers=2",
        rss.peak, rss.anon
    );

    // Withdrawal of the whole table: the BGPAdvertisement deleted, then created again,
    // with the IPv4 session alone (as BIRD's case below: one session's 10,000
    // withdrawals; with both, the router takes in twice as many before the count
    // reaches 0).
    peers.delete("r6", &DeleteParams::default()).await?;
    until("n1's IPv6 session gone", 30, || {
        (router.bird_count(&lab, &n1.v6) == 0).then_some(())
    })
    .await?;
    let mut withdrawn = Vec::new();
    for run in 1..=runs {
        let t0 = Instant::now();
        ads.delete("all", &DeleteParams::default()).await?;
        until_every(POLL, "every route withdrawn", 60, || {
            (router.bird_count(&lab, &n1.v4) == 0).then_some(())
        })
        .await?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        println!("FIGURE withdraw_all speaker=ferrolb run={run} ms={ms:.1}");
        withdrawn.push(ms);
        ads.create(&PostParams::default(), &ad()?).await?;
        until("the table back", 60, || {
            (router.bird_count(&lab, &n1.v4) == prefixes).then_some(())
        })
        .await?;
    }

    // A new Service: its status written (seen by a watch) → its route in BIRD.
    let mut fresh = Vec::new();
    for run in 1..=runs {
        let name = format!("new{run}");
        service(&services, &slices, &name).await?;
        let (ip, written) = loop {
            let s = services.get(&name).await?;
            if let Some(ip) = ferrolb_crds::service::ingress_ips(&s).first() {
                break (ip.to_string(), now());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let prefix = format!("{ip}/32");
        until("the new route", 20, || {
            (!router.next_hops(&lab, &prefix).is_empty()).then_some(())
        })
        .await?;
        let arrived = router
            .bird_route_at(&lab, &n1.v4, &prefix)
            .context("the route's time")?;
        let ms = (arrived - written) * 1e3;
        println!("FIGURE new_service_route run={run} ms={ms:.1}");
        fresh.push(ms);
    }

    // Speaker start → Established (its first list holds every Service).
    let mut start = Vec::new();
    for run in 1..=runs {
        let mut old = lab.remove("speaker-n1").context("n1's speaker")?;
        old.signal(nix::sys::signal::Signal::SIGTERM);
        old.wait(Duration::from_secs(10));
        until("n1's sessions down", 30, || {
            router.bird_established_at(&lab, &n1.v4).is_none().then_some(())
        })
        .await?;
        let t0 = now();
        lab.speaker("n1", &["--membership", "api"])?;
        let at = until("n1 Established again", 30, || {
            router.bird_established_at(&lab, &n1.v4)
        })
        .await?;
        let ms = (at - t0) * 1e3;
        println!("FIGURE start_to_established speaker=ferrolb run={run} ms={ms:.1}");
        start.push(ms);
    }
    summary("bgp_table_up_ferrolb", "ms", &up);
    summary("bgp_withdraw_all_ferrolb", "ms", &withdrawn);
    summary("bgp_new_service_route", "ms", &fresh);
    summary("bgp_start_to_established_ferrolb", "ms", &start);

    // The same table from BIRD as the speaker, in n2's namespace.
    let (bird_up, bird_down) = bird_speaker(&mut lab, &router, runs, prefixes).await?;
    summary("bgp_table_up_bird", "ms", &bird_up);
    summary("bgp_withdraw_all_bird", "ms", &bird_down);
    let gobgp_up = gobgp_speaker(&mut lab, &router, runs, prefixes).await?;
    summary("bgp_table_up_gobgp", "ms", &gobgp_up);
    Ok(())
}

/// Creates single-stack Service `name` with a ready endpoint on n1.
async fn service(services: &Api<Service>, slices: &Api<EndpointSlice>, name: &str) -> anyhow::Result<()> {
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": APPS},
                "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                         "allocateLoadBalancerNodePorts": false,
                         "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
            }))?,
        )
        .await?;
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": APPS, "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.0.10"], "nodeName": "n1", "conditions": {"ready": true}}],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }))?,
        )
        .await?;
    Ok(())
}

/// Waits for `prefixes` routes from `neighbor`; prints and returns the time from the
/// session's Established to the last route's arrival, by BIRD's clock.
async fn table_in(
    lab: &Lab,
    router: &Router,
    neighbor: &str,
    prefixes: usize,
    run: usize,
    speaker: &str,
    triggered: f64,
) -> anyhow::Result<f64> {
    until(&format!("{prefixes} routes from {speaker}"), 120, || {
        (router.bird_count(lab, neighbor) >= prefixes).then_some(())
    })
    .await?;
    let up = router
        .bird_established_at(lab, neighbor)
        .context("the session's time")?;
    let (count, last) = router.bird_routes(lab, neighbor);
    let last = last.context("route times")?;
    let ms = (last - up) * 1e3;
    println!(
        "FIGURE table_up speaker={speaker} run={run} routes={count} up_to_all_ms={ms:.1} trigger_to_up_ms={:.1}",
        (up - triggered) * 1e3
    );
    Ok(ms)
}

/// Runs `script` with `sh -c` in `host`'s namespace.
fn sh_in(lab: &Lab, host: &str, script: &str) -> anyhow::Result<String> {
    let out = lab.net.exec(host, &["sh", "-c", script]).output()?;
    if !out.status.success() {
        bail!("{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// BIRD as the speaker in n2's namespace, with `prefixes` static /32s: the table after
/// each session start, and its withdrawal (the static protocol disabled).
async fn bird_speaker(
    lab: &mut Lab,
    router: &Router,
    runs: usize,
    prefixes: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let n2 = lab.net.host("n2").clone();
    let router_v4 = lab.net.host(CLIENT.0).v4.clone();
    let dir = lab.dir.join("bird-speaker");
    std::fs::create_dir_all(&dir)?;
    let mut conf = format!(
        "router id {};\ntimeformat protocol iso long us;\nprotocol device {{}}\nprotocol static vips {{ ipv4;\n",
        n2.v4
    );
    for i in 0..prefixes {
        conf += &format!("  route {}/32 blackhole;\n", address(81, i));
    }
    conf += &format!(
        "}}\nprotocol bgp uplink {{ local as {NODE_ASN}; neighbor {router_v4} as {ROUTER_ASN};\n  \
         connect delay time 1; error wait time 1, 5;\n  \
         ipv4 {{ import none; export all; next hop self; }};\n}}\n"
    );
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    std::fs::write(path("bird.conf"), conf)?;
    let (conf, ctl, pid) = (path("bird.conf"), path("bird.ctl"), path("bird.pid"));
    lab.spawn(
        "bird-speaker",
        "n2",
        &["bird", "-f", "-c", &conf, "-s", &ctl, "-P", &pid],
    )?;
    let birdc = |lab: &Lab, args: &str| sh_in(lab, "n2", &format!("birdc -s {ctl} {args}"));
    let mut up = Vec::new();
    for run in 1..=runs {
        let t0 = now();
        if run > 1 {
            birdc(lab, "enable uplink")?;
        }
        up.push(table_in(lab, router, &n2.v4, prefixes, run, "bird", t0).await?);
        birdc(lab, "disable uplink")?;
        until("BIRD's session down", 30, || {
            (router.bird_count(lab, &n2.v4) == 0).then_some(())
        })
        .await?;
    }
    birdc(lab, "enable uplink")?;
    until("BIRD's table", 60, || {
        (router.bird_count(lab, &n2.v4) == prefixes).then_some(())
    })
    .await?;
    let mut down = Vec::new();
    for run in 1..=runs {
        let t0 = Instant::now();
        birdc(lab, "disable vips")?;
        until_every(POLL, "BIRD's withdrawals", 60, || {
            (router.bird_count(lab, &n2.v4) == 0).then_some(())
        })
        .await?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        println!("FIGURE withdraw_all speaker=bird run={run} ms={ms:.1}");
        down.push(ms);
        birdc(lab, "enable vips")?;
        until("BIRD's table back", 60, || {
            (router.bird_count(lab, &n2.v4) == prefixes).then_some(())
        })
        .await?;
    }
    birdc(lab, "disable uplink")?;
    drop(lab.remove("bird-speaker"));
    until("BIRD's session gone", 30, || {
        (router.bird_count(lab, &n2.v4) == 0).then_some(())
    })
    .await?;
    Ok((up, down))
}

/// GoBGP as the speaker in n2's namespace, its RIB loaded with `prefixes` /32s while
/// the neighbor is administratively down: the table after each `neighbor enable`.
async fn gobgp_speaker(
    lab: &mut Lab,
    router: &Router,
    runs: usize,
    prefixes: usize,
) -> anyhow::Result<Vec<f64>> {
    let n2 = lab.net.host("n2").clone();
    let router_v4 = lab.net.host(CLIENT.0).v4.clone();
    let dir = lab.dir.join("gobgp-speaker");
    std::fs::create_dir_all(&dir)?;
    let conf = format!(
        "[global.config]\n  as = {NODE_ASN}\n  router-id = \"{}\"\n  port = -1\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{router_v4}\"\n    peer-as = {ROUTER_ASN}\n    admin-down = true\n\
         [[neighbors.afi-safis]]\n  [neighbors.afi-safis.config]\n    afi-safi-name = \"ipv4-unicast\"\n",
        n2.v4
    );
    let conf_path = dir.join("gobgpd.toml");
    std::fs::write(&conf_path, conf)?;
    let api = "127.0.0.1:50071";
    lab.spawn(
        "gobgpd",
        "n2",
        &[
            "gobgpd",
            "-f",
            conf_path.to_str().context("utf-8")?,
            "--api-hosts",
            api,
            "-p",
            "--pprof-disable",
        ],
    )?;
    let gobgp = "gobgp -u 127.0.0.1 -p 50071";
    until("gobgpd's API", 30, || {
        sh_in(lab, "n2", &format!("{gobgp} global")).ok()
    })
    .await?;
    let list: String = (0..prefixes)
        .map(|i| format!("{}/32\n", address(81, i)))
        .collect();
    let list_path = dir.join("prefixes");
    std::fs::write(&list_path, list)?;
    let loaded = Instant::now();
    sh_in(
        lab,
        "n2",
        &format!(
            "xargs -P 4 -I PFX {gobgp} global rib add -a ipv4 PFX nexthop {} < {}",
            n2.v4,
            list_path.display()
        ),
    )?;
    println!(
        "FIGURE gobgp_preload prefixes={prefixes} s={:.1}",
        loaded.elapsed().as_secs_f64()
    );
    let mut up = Vec::new();
    for run in 1..=runs {
        let t0 = now();
        sh_in(lab, "n2", &format!("{gobgp} neighbor {router_v4} enable"))?;
        up.push(table_in(lab, router, &n2.v4, prefixes, run, "gobgp", t0).await?);
        sh_in(lab, "n2", &format!("{gobgp} neighbor {router_v4} disable"))?;
        until("GoBGP's session down", 30, || {
            (router.bird_count(lab, &n2.v4) == 0).then_some(())
        })
        .await?;
    }
    drop(lab.remove("gobgpd"));
    Ok(up)
}

/// The rolling-upgrade bench's BGP scene in `lab` (FerroLB installed by the chart):
/// BIRD in the client's namespace peering with both nodes, a BGPPeer with graceful
/// restart (hold time 9 s), Service `web` (`Cluster`, endpoints and backends on both
/// nodes) routed via both. Returns its IPv4 address and the router.
pub async fn graceful_web(lab: &mut Lab) -> anyhow::Result<(String, Router)> {
    let router_host = lab.net.host(CLIENT.0).clone();
    let setup = Setup::ipv4_to_nodes(lab, CLIENT.0, ROUTER_ASN, NODE_ASN, None);
    let nodes: Vec<String> = setup.neighbors.iter().map(|n| n.address.clone()).collect();
    let router = Router::start(lab, Kind::Bird, CLIENT.0, &setup).await?;
    let post = PostParams::default();
    let client = lab.client.clone();
    Api::<ferrolb_crds::api::IPAddressPool>::namespaced(client.clone(), NS)
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "lab", "namespace": NS},
                                           "spec": {"addresses": ferrolb_lab::RANGES}}))?,
        )
        .await?;
    Api::<ferrolb_crds::api::BGPPeer>::namespaced(client.clone(), NS)
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "router", "namespace": NS},
                "spec": {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": router_host.v4,
                         "holdTime": "9s", "enableGracefulRestart": true}}))?,
        )
        .await?;
    Api::<ferrolb_crds::api::BGPAdvertisement>::namespaced(client, NS)
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "lab", "namespace": NS}, "spec": {}}))?,
        )
        .await?;
    let port = lab.service("web", false).await?;
    let names: Vec<&str> = ferrolb_lab::NODES.iter().map(|(n, _)| *n).collect();
    lab.endpoints("web", &names).await?;
    lab.backends(port)?;
    let (vip, _) = lab.addresses("web").await?;
    let hops: Vec<&str> = nodes.iter().map(String::as_str).collect();
    router
        .until_next_hops(lab, &format!("{vip}/32"), &hops, 30)
        .await?;
    Ok((vip, router))
}
