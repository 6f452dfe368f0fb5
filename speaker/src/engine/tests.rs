//! The engine driven with simulated time: the cases the root-only lab covers end to end
//! (start-up, node death, partition and heal, fallback to Node readiness, steering),
//! here without sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_crds::config::{self, Config};
use ferrolb_crds::service::ServiceKey;

use super::*;
use crate::host::links::{Link, Links};
use crate::l2::interfaces::DEFAULT_EXCLUDES;
use crate::l2::packet::Mac;
use crate::planner::{Endpoint, ServicePort};

const NS: &str = "ferrolb-system";
const AFTER: Duration = Duration::from_secs(5);

fn config(advertisement: &str) -> Config {
    let text = format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: p, namespace: {NS}}}\nspec: {{addresses: [10.0.0.0/24]}}\n\
         ---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: a, namespace: {NS}}}\nspec: {advertisement}\n"
    );
    let outcome = config::build(NS, &config::parse_manifests(&text).unwrap());
    assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
    outcome.config
}

fn node(name: &str, ready: bool) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: BTreeMap::new(),
        ready,
        network_unavailable: false,
        unschedulable: false,
    }
}

/// Services `a/s{i}` on 10.0.0.{10 + i}, served everywhere, port 80 on NodePort 30000 + i.
fn services(count: u8) -> Vec<Arc<ServiceInfo>> {
    (0..count)
        .map(|i| ServiceInfo {
            key: ServiceKey::new("a", format!("s{i}")),
            uid: Some(format!("uid-{i}")),
            ips: vec![IpAddr::from([10, 0, 0, 10 + i])],
            local: false,
            labels: BTreeMap::new(),
            endpoints: vec![Endpoint {
                node: Some("n2".into()),
                ready: Some(true),
                serving: None,
            }],
            ports: vec![ServicePort {
                protocol: "tcp".into(),
                port: 80,
                node_port: 30000 + u16::from(i),
            }],
        })
        .map(Arc::new)
        .collect()
}

/// Three Ready nodes (`me`, `n2`, `n3`), 30 Services, every interface by default.
fn view() -> View {
    View {
        services: services(30),
        config: config("{}"),
        nodes: vec![node("me", true), node("n2", true), node("n3", true)],
        node_ips: vec!["10.0.0.1".parse().unwrap()],
        seeds: vec!["10.0.0.2:7946".parse().unwrap(), "10.0.0.3:7946".parse().unwrap()],
    }
}

/// `eth0` with 10.0.0.1/24.
fn links() -> Links {
    let mut l = Links::default();
    l.links.insert(
        2,
        Link {
            index: 2,
            name: "eth0".into(),
            mac: Some(Mac([2, 0, 0, 0, 0, 1])),
            up: true,
            broadcast: true,
            noarp: false,
            enslaved: false,
        },
    );
    l.addresses.insert(2, vec!["10.0.0.1/24".parse().unwrap()]);
    l
}

fn engine(gossip: bool, steering: bool, t0: Instant) -> Engine {
    Engine::new(
        Settings {
            node: "me".into(),
            excludes: DEFAULT_EXCLUDES.iter().map(ToString::to_string).collect(),
            steering,
            gossip,
            fallback_after: AFTER,
            restart_time: Duration::from_secs(120),
        },
        t0,
    )
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(ToString::to_string).collect()
}

fn live(list: &[&str]) -> Changes {
    Changes {
        live: Some(names(list)),
        ..Changes::default()
    }
}

/// A step with a new API view.
fn with_view(v: View) -> Changes {
    Changes {
        view: Some(v),
        ..Changes::default()
    }
}

/// The first step: the API's view and the links.
fn start() -> Changes {
    Changes {
        view: Some(view()),
        links: Some(links()),
        live: None,
    }
}

fn owned(actions: &Actions) -> BTreeSet<IpAddr> {
    actions
        .announce
        .as_ref()
        .expect("a plan")
        .owned
        .keys()
        .copied()
        .collect()
}

/// Which addresses `me` owns with the gossip at `members`, from a fresh engine.
fn share(members: &[&str]) -> BTreeSet<IpAddr> {
    let t0 = Instant::now();
    let mut e = engine(true, false, t0);
    e.step(start(), t0);
    owned(&e.step(live(members), t0))
}

#[test]
fn a_gossip_speaker_alone_at_start_waits_for_the_others() {
    let t0 = Instant::now();
    let mut e = engine(true, false, t0);
    let first = e.step(start(), t0);
    assert_eq!(
        first.announce, None,
        "alone while n2 and n3 are Ready: no plan yet"
    );
    assert_eq!(first.wake_at, Some(t0 + AFTER));
    assert_eq!(
        first.seeds,
        Some(view().seeds),
        "seeds go out at once, to find the others"
    );
    let joined = e.step(live(&["me", "n2", "n3"]), t0 + Duration::from_millis(300));
    let announce = joined
        .announce
        .as_ref()
        .expect("a plan once the others are found");
    assert!(
        !announce.owned.is_empty() && announce.owned.len() < 30,
        "a share, not everything"
    );
    assert!(announce.owned.values().all(|i| i == &["eth0"]));
    assert!(!announce.reannounce, "nobody came back: the first plan");
    assert_eq!(joined.wake_at, None);
    let statuses = announce.statuses.as_ref().expect("the first plan's statuses");
    assert_eq!(statuses.len(), announce.owned.len());
    assert_eq!(announce.events.len(), announce.owned.len());
    let e0 = &announce.events[0];
    assert_eq!(
        (e0.reason, e0.warning, e0.action),
        ("nodeAssigned", false, "Announce")
    );
    assert!(
        e0.message.contains("from node me with protocol layer2 on eth0"),
        "{}",
        e0.message
    );
    assert!(e0.uid.is_some(), "Events name the Service's uid");
    assert_eq!(announce.figures.members, 3);
    assert_eq!(announce.figures.v4, announce.owned.len());
    assert_eq!(announce.figures.changes, announce.owned.len() as u64);
}

#[test]
fn still_alone_after_the_delay_liveness_comes_from_node_readiness() {
    let t0 = Instant::now();
    let mut e = engine(true, false, t0);
    e.step(start(), t0);
    let fallen = e.step(Changes::default(), t0 + AFTER);
    assert_eq!(
        owned(&fallen),
        share(&["me", "n2", "n3"]),
        "the share of three Ready nodes"
    );
    assert_eq!(fallen.wake_at, None, "nothing more to wait for");
    // A Node turning NotReady now moves addresses, as without gossip.
    let mut notready = view();
    notready.nodes[1].ready = false;
    let changed = e.step(
        Changes {
            view: Some(notready),
            ..Changes::default()
        },
        t0 + AFTER * 2,
    );
    assert_eq!(owned(&changed), share(&["me", "n3"]));
}

#[test]
fn a_node_death_moves_only_its_addresses_and_its_return_gives_them_back() {
    let t0 = Instant::now();
    let mut e = engine(true, false, t0);
    e.step(start(), t0);
    let before = owned(&e.step(live(&["me", "n2", "n3"]), t0));
    let death = e.step(live(&["me", "n3"]), t0 + Duration::from_secs(1));
    let after = owned(&death);
    let gained: BTreeSet<_> = after.difference(&before).copied().collect();
    assert!(before.is_subset(&after), "nothing of mine moves");
    assert!(
        !gained.is_empty(),
        "some of n2's addresses rank me first of the two left"
    );
    let announce = death.announce.as_ref().unwrap();
    assert!(announce.reannounce, "a membership change: announce again");
    assert_eq!(announce.figures.changes, gained.len() as u64);
    assert_eq!(
        announce.events.len(),
        gained.len(),
        "Events only for the Services gained"
    );
    assert_eq!(
        announce.statuses.as_ref().map(BTreeMap::len),
        Some(after.len()),
        "statuses changed"
    );
    // n2's speaker restarts and joins again: it takes its addresses back.
    let back = e.step(live(&["me", "n2", "n3"]), t0 + Duration::from_secs(2));
    assert_eq!(owned(&back), before);
    assert_eq!(back.announce.unwrap().figures.changes, gained.len() as u64);
}

#[test]
fn a_partition_takes_everything_then_falls_back_and_heals() {
    let t0 = Instant::now();
    let mut e = engine(true, false, t0);
    e.step(start(), t0);
    let mine = owned(&e.step(live(&["me", "n2", "n3"]), t0));
    // Cut off: the gossip says only `me` lives while the API says the others are Ready.
    let cut = t0 + Duration::from_secs(60);
    let alone = e.step(live(&["me"]), cut);
    assert_eq!(owned(&alone).len(), 30, "the gossip's word, for now");
    assert_eq!(alone.wake_at, Some(cut + AFTER), "the fallback's deadline");
    let fallen = e.step(Changes::default(), cut + AFTER);
    assert_eq!(owned(&fallen), mine, "Node readiness: back to its share");
    // The partition heals: the others are members again.
    let healed = e.step(live(&["me", "n2", "n3"]), cut + AFTER * 2);
    assert_eq!(owned(&healed), mine);
    assert!(
        healed.announce.unwrap().reannounce,
        "a returning member may have announced ours"
    );
}

#[test]
fn without_gossip_liveness_is_node_readiness_and_nothing_wakes() {
    let t0 = Instant::now();
    let mut e = engine(false, false, t0);
    let first = e.step(start(), t0);
    assert_eq!(first.seeds, None, "no gossip, no seeds");
    assert_eq!(first.wake_at, None);
    assert_eq!(owned(&first), share(&["me", "n2", "n3"]));
    let ignored = e.step(live(&["me"]), t0 + Duration::from_secs(1));
    assert_eq!(
        owned(&ignored),
        owned(&first),
        "a live set means nothing without gossip"
    );
    assert_eq!(
        ignored.wake_at, None,
        "--membership api never re-plans on a timer"
    );
}

#[test]
fn statuses_go_out_at_the_first_plan_and_then_only_when_they_change() {
    let t0 = Instant::now();
    let mut e = engine(false, false, t0);
    let mut empty = view();
    empty.services.clear();
    let first = e.step(
        Changes {
            view: Some(empty.clone()),
            links: Some(links()),
            live: None,
        },
        t0,
    );
    assert_eq!(
        first.announce.unwrap().statuses,
        Some(Desired::new()),
        "empty, but sent"
    );
    let again = e.step(
        Changes {
            view: Some(empty),
            ..Changes::default()
        },
        t0,
    );
    let again = again.announce.unwrap();
    assert_eq!(again.statuses, None);
    assert!(again.events.is_empty());
}

#[test]
fn missing_interfaces_are_warned_about_once() {
    let t0 = Instant::now();
    let mut e = engine(false, false, t0);
    let mut listed = view();
    listed.config = config("{interfaces: [eth9]}");
    listed.nodes.truncate(1);
    let changes = || Changes {
        view: Some(listed.clone()),
        links: Some(links()),
        live: None,
    };
    let first = e.step(changes(), t0).announce.unwrap();
    assert!(first.owned.is_empty(), "nowhere to announce");
    let warnings: Vec<_> = first.events.iter().filter(|e| e.warning).collect();
    assert_eq!(warnings.len(), 30);
    assert_eq!(warnings[0].reason, "InterfacesMissing");
    assert!(warnings[0].message.contains("eth9"), "{}", warnings[0].message);
    let second = e.step(changes(), t0).announce.unwrap();
    assert!(second.events.is_empty(), "warned once per change");
}

#[test]
fn steering_covers_every_address_the_node_may_take_over() {
    let t0 = Instant::now();
    let mut e = engine(true, true, t0);
    e.step(start(), t0);
    let planned = e.step(live(&["me", "n2", "n3"]), t0);
    let announce = planned.announce.unwrap();
    let rules = announce.steering.expect("the dataplane is on");
    assert!(announce.owned.len() < 30);
    assert_eq!(rules.len(), 30, "one rule per Service port, owned or not");
    let first = rules.iter().next().unwrap();
    assert_eq!(
        first.node,
        "10.0.0.1".parse::<IpAddr>().unwrap(),
        "the Node's InternalIP"
    );
    assert_eq!(
        (first.port, first.node_port, first.protocol.as_str()),
        (80, 30000, "tcp")
    );
    // Without an InternalIP of the family, the announcing interface's address.
    let mut no_ip = view();
    no_ip.node_ips.clear();
    let from_link = e.step(
        Changes {
            view: Some(no_ip),
            ..Changes::default()
        },
        t0,
    );
    let rules = from_link.announce.unwrap().steering.unwrap();
    assert!(
        rules
            .iter()
            .all(|r| r.node == "10.0.0.1".parse::<IpAddr>().unwrap())
    );
}

#[test]
fn seeds_are_given_only_when_they_change() {
    let t0 = Instant::now();
    let mut e = engine(true, false, t0);
    assert!(e.step(start(), t0).seeds.is_some());
    let same = Changes {
        view: Some(view()),
        ..Changes::default()
    };
    assert_eq!(e.step(same, t0).seeds, None);
    let mut more = view();
    more.seeds.push("10.0.0.4:7946".parse().unwrap());
    let more = Changes {
        view: Some(more),
        ..Changes::default()
    };
    assert_eq!(e.step(more, t0).seeds.map(|s| s.len()), Some(3));
}

#[test]
fn nothing_is_planned_before_the_api_was_read() {
    let t0 = Instant::now();
    let mut e = engine(false, false, t0);
    let actions = e.step(
        Changes {
            links: Some(links()),
            ..Changes::default()
        },
        t0,
    );
    assert_eq!(actions, Actions::default());
}

#[test]
fn a_released_view_is_replaced_by_the_next_one() {
    let t0 = Instant::now();
    let mut e = engine(false, false, t0);
    let before = owned(&e.step(start(), t0));
    e.release_view();
    let without = e.step(Changes::default(), t0);
    assert_eq!(without.announce, None, "no view, no plan");
    let mut fewer = view();
    fewer.services.truncate(10);
    let after = e.step(
        Changes {
            view: Some(fewer),
            ..Changes::default()
        },
        t0,
    );
    assert!(owned(&after).is_subset(&before));
    assert!(owned(&after).len() < before.len());
}

/// The test view, with a BGP peer (and, when `advertised`, a BGPAdvertisement).
fn bgp_view(advertised: bool) -> View {
    let mut text = format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: p, namespace: {NS}}}\nspec: {{addresses: [10.0.0.0/24]}}\n\
         ---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: r1, namespace: {NS}}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 10.0.0.254}}\n"
    );
    if advertised {
        text += &format!(
            "---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: all, namespace: {NS}}}\nspec: {{communities: ['65000:1']}}\n"
        );
    }
    let outcome = config::build(NS, &config::parse_manifests(&text).unwrap());
    assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
    View {
        config: outcome.config,
        services: services(2),
        ..view()
    }
}

#[test]
fn bgp_sessions_and_routes_come_from_the_view_and_change_only_with_it() {
    let t0 = Instant::now();
    // BGP needs no gossip verdict: planned even while Layer 2 waits for the others.
    let mut e = engine(true, false, t0);
    let first = e.step(with_view(bgp_view(false)), t0);
    assert_eq!(first.announce, None, "Layer 2 waits for the gossip");
    let intents = first.bgp.expect("the session to start").intents;
    let r1 = &intents["r1"];
    assert_eq!(r1.spec.address, "10.0.0.254:179".parse().unwrap());
    assert_eq!(
        r1.spec.session.router_id,
        std::net::Ipv4Addr::new(10, 0, 0, 1),
        "the node's IPv4"
    );
    assert_eq!(r1.spec.session.local_asn, 64512);
    assert!(r1.wanted.is_empty(), "no advertisement: a session, no routes");
    // Advertised: the two Services' addresses, with the community.
    let advertised = e.step(with_view(bgp_view(true)), t0).bgp.expect("routes changed");
    let r1 = &advertised.intents["r1"];
    let routes: Vec<String> = r1.wanted.keys().map(ToString::to_string).collect();
    assert_eq!(routes, ["10.0.0.10/32", "10.0.0.11/32"]);
    assert!(r1.wanted.values().all(|a| a.communities.len() == 1));
    // Each Service gets its ServiceBGPStatus and one Event naming the peer.
    assert_eq!(advertised.statuses.len(), 2);
    assert!(advertised.statuses.values().all(|s| s.peers == ["r1"]));
    assert_eq!(advertised.events.len(), 2);
    assert!(
        advertised.events[0]
            .message
            .contains("to BGP peers r1 (10.0.0.254:179)"),
        "{}",
        advertised.events[0].message
    );
    // The same view again, or a gossip change: nothing to do for BGP.
    assert_eq!(e.step(with_view(bgp_view(true)), t0).bgp, None);
    assert_eq!(e.step(live(&["me", "n2"]), t0).bgp, None);
    // The peer gone: no sessions.
    let gone = e.step(with_view(view()), t0).bgp.expect("the peer gone");
    assert_eq!(gone.intents, Intents::new());
    assert!(gone.statuses.is_empty() && gone.events.is_empty());
}

#[test]
fn peers_this_speaker_cannot_run_are_named_with_why_and_md5_keys_pass_through() {
    let text = format!(
        "---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: md5, namespace: {NS}}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 10.0.0.253, password: secret, enableGracefulRestart: true}}\n\
         ---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: red, namespace: {NS}}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 10.0.0.252, vrf: red}}\n\
         ---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: long, namespace: {NS}}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 10.0.0.251, password: {}}}\n",
        "k".repeat(81)
    );
    let outcome = config::build(NS, &config::parse_manifests(&text).unwrap());
    assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
    let v = View {
        config: outcome.config,
        ..view()
    };
    let (intents, limits, _) = super::bgp::intents(&v, "me", Duration::from_secs(90), &Intents::new());
    assert_eq!(
        intents.keys().collect::<Vec<_>>(),
        ["md5"],
        "the VRF peer is skipped"
    );
    let key = intents["md5"].spec.password.as_ref().expect("the key");
    assert_eq!(key.0, "secret");
    assert_eq!(
        intents["md5"].spec.session.graceful_restart,
        Some(Duration::from_secs(90)),
        "enableGracefulRestart offers the speaker's restart time"
    );
    assert_eq!(format!("{key:?}"), "Password(..)", "never logged");
    assert!(limits["red"].contains("spec.vrf"), "{}", limits["red"]);
    assert!(limits["long"].contains("80 bytes"), "{}", limits["long"]);
    assert!(!limits.contains_key("md5"));
}

#[test]
fn a_family_the_session_cannot_carry_is_refused_with_why_once() {
    let t0 = Instant::now();
    let mut v = bgp_view(true);
    let mut text = format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: p, namespace: {NS}}}\nspec: {{addresses: [10.0.0.0/24, 'fd00::/120']}}\n\
         ---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: all, namespace: {NS}}}\n\
         ---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: r1, namespace: {NS}}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 10.0.0.254}}\n"
    );
    let build = |text: &str| {
        let outcome = config::build(NS, &config::parse_manifests(text).unwrap());
        assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
        outcome.config
    };
    v.config = build(&text);
    Arc::make_mut(&mut v.services[0])
        .ips
        .push("fd00::10".parse().unwrap());
    let mut e = engine(false, false, t0);
    let step = |e: &mut Engine, v: &View| {
        e.step(
            Changes {
                view: Some(v.clone()),
                ..Changes::default()
            },
            t0,
        )
        .bgp
    };
    // An IPv4 session without dualStackAddressFamily carries IPv4 only (MetalLB's rule).
    let one = step(&mut e, &v).expect("first plan");
    assert!(one.intents["r1"].wanted.keys().all(|n| n.addr().is_ipv4()));
    let warnings: Vec<_> = one.events.iter().filter(|e| e.warning).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].message.contains("dualStackAddressFamily"),
        "{}",
        warnings[0].message
    );
    assert_eq!(step(&mut e, &v), None, "said once");
    // With it, but no IPv6 address on the node for the next hop: refused, saying so.
    text = text.replace(
        "peerAddress: 10.0.0.254}",
        "peerAddress: 10.0.0.254, dualStackAddressFamily: true}",
    );
    v.config = build(&text);
    let two = step(&mut e, &v).expect("the peer changed");
    assert!(two.intents["r1"].wanted.keys().all(|n| n.addr().is_ipv4()));
    assert!(
        two.events
            .iter()
            .any(|e| e.warning && e.message.contains("no IPv6 InternalIP"))
    );
    // With an IPv6 address: both families go.
    v.node_ips.push("fd00::1".parse().unwrap());
    let three = step(&mut e, &v).expect("the next hop came");
    assert!(three.intents["r1"].wanted.keys().any(|n| n.addr().is_ipv6()));
    assert!(three.events.iter().all(|e| !e.warning));
}

#[test]
fn a_stopping_speaker_leaves_for_good_only_when_its_node_goes() {
    let t0 = Instant::now();
    let mut e = engine(false, false, t0);
    assert!(e.node_leaving(), "no view yet: nothing to keep");
    e.step(with_view(view()), t0);
    assert!(!e.node_leaving(), "Ready and schedulable: a restart");
    let mut cordoned = view();
    cordoned.nodes[0].unschedulable = true;
    e.step(with_view(cordoned), t0);
    assert!(e.node_leaving(), "cordoned");
    let mut shutting_down = view();
    shutting_down.nodes[0].ready = false;
    e.step(with_view(shutting_down), t0);
    assert!(e.node_leaving(), "NotReady, as a node shutting down is marked");
    let mut gone = view();
    gone.nodes.remove(0);
    e.step(with_view(gone), t0);
    assert!(e.node_leaving(), "the Node deleted");
}
