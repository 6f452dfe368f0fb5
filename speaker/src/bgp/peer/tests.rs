//! The peer task against a router played by the test over loopback TCP, speaking the
//! same wire format: the session comes up, routes follow the wanted set, a stop sends a
//! Cease, a silent router is dropped at the hold time, garbage gets a NOTIFICATION.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::message::{Family, Notification, cease, code};
use ferrolb_bgp::session::{self, PeerAsn};
use ferrolb_bgp::update::{Attributes, Community};
use ipnet::IpNet;
use tokio::net::TcpListener;

use super::*;
use crate::bgp::report::{PeerStatus, Report, Reports};
use crate::bgp::router::{PATIENCE, Router, assert_announced};

fn spec(address: SocketAddr, hold_secs: u64) -> PeerSpec {
    PeerSpec {
        address,
        source: None,
        multihop: false,
        node_v4: Some(Ipv4Addr::new(10, 0, 0, 1)),
        node_v6: Some("fd00::1".parse().unwrap()),
        session: session::Config {
            local_asn: 64512,
            peer_asn: PeerAsn::Fixed(64513),
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            hold_time: Duration::from_secs(hold_secs),
            keepalive_time: None,
            connect_time: None,
            connect_timeout: Duration::from_secs(5),
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
        },
    }
}

fn wanted(list: &[&str]) -> Wanted {
    Arc::new(
        list.iter()
            .map(|n| {
                let attributes = Attributes {
                    local_pref: None,
                    communities: BTreeSet::from([Community::Standard(65000, 1)]),
                };
                (n.parse().unwrap(), attributes)
            })
            .collect(),
    )
}

/// A started peer, with the reports it writes to.
struct Started {
    peer: Peer,
    reports: watch::Receiver<Reports>,
}

fn start(spec: PeerSpec, wanted: Wanted) -> Started {
    let report = Report {
        address: spec.address.to_string(),
        problem: None,
        status: Some(PeerStatus::default()),
    };
    let (tx, reports) = watch::channel(Reports::from([("r".to_string(), report)]));
    let peer = Peer::start(spec, wanted, Reporter::new("r", tx));
    Started { peer, reports }
}

async fn until(reports: &mut watch::Receiver<Reports>, what: impl Fn(&PeerStatus) -> bool) {
    let reached = reports.wait_for(|r| r["r"].status.as_ref().is_some_and(&what));
    tokio::time::timeout(PATIENCE, reached)
        .await
        .expect("status reached")
        .expect("reports kept");
}

#[tokio::test]
async fn routes_follow_the_wanted_set_and_a_stop_sends_a_cease() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Started { peer, mut reports } = start(
        spec(listener.local_addr().unwrap(), 90),
        wanted(&["10.77.0.200/32"]),
    );
    let mut router = Router::accept(&listener).await;
    router.establish(90).await;
    let first = router.updates(2, 0).await;
    assert_announced(&first, "10.77.0.200/32");
    until(&mut reports, |s| {
        s.state == Some(State::Established) && s.advertised_total() == 1
    })
    .await;
    // The wanted set changes: one withdrawal, one IPv6 announcement (next hop: the node's).
    peer.wanted.send_replace(wanted(&["fd00:77::200/128"]));
    let change = router.updates(0, 2).await;
    assert_eq!(change.withdrawn, ["10.77.0.200/32".parse::<IpNet>().unwrap()]);
    assert_eq!(change.announced, ["fd00:77::200/128".parse::<IpNet>().unwrap()]);
    let mp_reach = &change.attributes[&14];
    assert_eq!(&mp_reach[4..20], &"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
    // Stopped: a Cease with the reason, then the connection closes.
    let stopping = tokio::spawn(peer.stop(Stop::Cease {
        subcode: cease::PEER_DECONFIGURED,
        reason: "BGPPeer deleted".into(),
    }));
    let n = router.notification().await;
    assert_eq!((n.code, n.subcode), (code::CEASE, cease::PEER_DECONFIGURED));
    assert_eq!(router.next().await, None, "closed");
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_silent_router_is_dropped_at_the_hold_time_and_dialled_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Started { peer, mut reports } = start(spec(listener.local_addr().unwrap(), 3), wanted(&[]));
    let mut router = Router::accept(&listener).await;
    router.establish(3).await;
    // The router says nothing more; the speaker's keepalives arrive, then its verdict.
    let verdict = router.notification().await;
    assert_eq!(verdict, Notification::new(code::HOLD_TIMER_EXPIRED, 0));
    until(&mut reports, |s| {
        s.last_down
            == Some(Down::NotificationSent(Notification::new(
                code::HOLD_TIMER_EXPIRED,
                0,
            )))
    })
    .await;
    // It dials again (after a second of backoff) and comes up.
    let mut again = Router::accept(&listener).await;
    again.establish(3).await;
    until(&mut reports, |s| s.state == Some(State::Established)).await;
    peer.stop(Stop::Silent).await;
}

#[tokio::test]
async fn garbage_from_the_router_is_answered_with_a_notification() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Started { peer, mut reports } = start(spec(listener.local_addr().unwrap(), 90), wanted(&[]));
    let mut router = Router::accept(&listener).await;
    router.establish(90).await;
    router.stream.write_all(&[0u8; 19]).await.unwrap();
    let verdict = router.notification().await;
    assert_eq!(
        (verdict.code, verdict.subcode),
        (code::HEADER, 1),
        "connection not synchronized"
    );
    until(&mut reports, |s| {
        matches!(s.last_down, Some(Down::NotificationSent(_)))
    })
    .await;
    peer.stop(Stop::Silent).await;
}
