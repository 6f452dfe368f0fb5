//! The peer task against a router played by the test over loopback TCP, speaking the
//! same wire format: the session comes up, routes follow the wanted set, a stop sends a
//! Cease (a Hard Reset after graceful restart), a planned restart closes without one, a
//! silent router is dropped at the hold time, garbage gets a NOTIFICATION.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::message::{Family, GracefulRestart, Notification, cease, code};
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
        password: None,
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
            graceful_restart: None,
        },
        bfd: None,
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
    start_as(spec, wanted, false)
}

/// [`start`], `restarted` saying whether the speaker has just started.
fn start_as(spec: PeerSpec, wanted: Wanted, restarted: bool) -> Started {
    let report = Report {
        address: spec.address.to_string(),
        problem: None,
        status: Some(PeerStatus::default()),
    };
    let (tx, reports) = watch::channel(Reports::from([("r".to_string(), report)]));
    let peer = Peer::start(spec, wanted, Reporter::new("r", tx), restarted, None);
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
    // Stopped: every route withdrawn, then a Cease with the reason, then the close.
    let stopping = tokio::spawn(peer.stop(Stop::Cease {
        subcode: cease::PEER_DECONFIGURED,
        reason: "BGPPeer deleted".into(),
    }));
    let gone = router.updates(0, 1).await;
    assert_eq!(gone.withdrawn, ["fd00:77::200/128".parse::<IpNet>().unwrap()]);
    let n = router.notification().await;
    assert_eq!((n.code, n.subcode), (code::CEASE, cease::PEER_DECONFIGURED));
    assert_eq!(router.next().await, None, "closed");
    stopping.await.unwrap();
}

/// A session offering graceful restart, and a helper's capability (N set).
fn restarting_spec(address: SocketAddr) -> (PeerSpec, GracefulRestart) {
    let mut spec = spec(address, 90);
    spec.session.graceful_restart = Some(Duration::from_secs(120));
    let helper = GracefulRestart {
        notification: true,
        restart_time: 120,
        ..GracefulRestart::default()
    };
    (spec, helper)
}

#[tokio::test]
async fn a_restart_with_graceful_restart_leaves_the_routes_with_the_router() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (spec, helper) = restarting_spec(listener.local_addr().unwrap());
    let Started { peer, .. } = start_as(spec, wanted(&["10.77.0.200/32"]), true);
    let mut router = Router::accept(&listener).await;
    // A new process: R set, forwarding kept for both families.
    let open = router.establish_with(90, Some(helper)).await;
    let gr = open.graceful_restart.expect("offered");
    assert!(gr.restarting && gr.notification);
    assert!(gr.families.values().all(|f| *f) && gr.families.len() == 2);
    // The whole table, then End-of-RIB, without waiting for the router's.
    assert_announced(&router.updates(2, 0).await, "10.77.0.200/32");
    // A planned restart: no withdrawal, no NOTIFICATION, just the close.
    let kept = peer
        .stop(Stop::Restart {
            reason: "rolling update".into(),
        })
        .await;
    assert!(kept, "the router keeps the routes");
    assert_eq!(router.next().await, None, "closed without a word");
}

#[tokio::test]
async fn leaving_for_good_after_graceful_restart_withdraws_then_hard_resets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (spec, helper) = restarting_spec(listener.local_addr().unwrap());
    let Started { peer, .. } = start(spec, wanted(&["10.77.0.200/32"]));
    let mut router = Router::accept(&listener).await;
    let open = router.establish_with(90, Some(helper)).await;
    assert!(
        !open.graceful_restart.expect("offered").restarting,
        "not just started"
    );
    router.updates(2, 0).await;
    let stopping = tokio::spawn(peer.stop(Stop::Cease {
        subcode: cease::ADMINISTRATIVE_SHUTDOWN,
        reason: "node cordoned".into(),
    }));
    let gone = router.updates(0, 1).await;
    assert_eq!(gone.withdrawn, ["10.77.0.200/32".parse::<IpNet>().unwrap()]);
    let n = router.notification().await;
    assert_eq!((n.code, n.subcode), (code::CEASE, cease::HARD_RESET));
    assert_eq!(n.communication(), Some("node cordoned"));
    assert!(!stopping.await.unwrap(), "nothing kept");
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

#[tokio::test]
async fn an_md5_signed_session_comes_up_only_with_the_right_key() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    // The router signs with "right" whatever the speaker's port (the key is per address).
    crate::host::tcp_md5::set(&listener, "127.0.0.1:0".parse().unwrap(), b"right").unwrap();
    let mut signed = spec(at, 90);
    signed.password = Some(crate::engine::Password("right".into()));
    let Started { peer, mut reports } = start(signed, wanted(&[]));
    let mut router = Router::accept(&listener).await;
    router.establish(90).await;
    until(&mut reports, |s| s.state == Some(State::Established)).await;
    peer.stop(Stop::Silent).await;
    drop(router);
    // A wrong key: the kernel drops the SYNs, the dial times out, the report says so.
    let mut wrong = spec(at, 90);
    wrong.password = Some(crate::engine::Password("wrong".into()));
    wrong.session.connect_timeout = Duration::from_millis(500);
    let Started { peer, mut reports } = start(wrong, wanted(&[]));
    until(&mut reports, |s| s.last_down == Some(Down::ConnectFailed)).await;
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "no connection without the right key");
    assert_ne!(
        reports.borrow()["r"].status.as_ref().unwrap().state,
        Some(State::Established)
    );
    peer.stop(Stop::Silent).await;
}

/// A header announcing `len` bytes of message type `kind`, then `body`.
fn raw(kind: u8, len: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend(len.to_be_bytes());
    out.push(kind);
    out.extend(body);
    out
}

#[tokio::test]
async fn malformed_input_gets_the_right_notification_and_the_speaker_dials_again() {
    use ferrolb_bgp::message::{Message, Open, open_error};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut fast = spec(listener.local_addr().unwrap(), 90);
    fast.session.connect_time = Some(Duration::from_millis(100));
    let Started { peer, mut reports } = start(fast, wanted(&["10.77.0.200/32"]));
    let open = |version: u8, asn: u32| {
        Message::Open(Open {
            version,
            asn,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 0, 0, 254),
            families: Some(BTreeSet::from([Family::Ipv4Unicast])),
            four_octet: true,
            route_refresh: true,
            graceful_restart: None,
        })
    };
    /// What is sent, the OPEN the router answers with (or `None` to establish first and
    /// send raw bytes after), the bytes, the verdict.
    type Case = (&'static str, Option<Message>, Vec<u8>, (u8, u8));
    let cases: Vec<Case> = vec![
        (
            "BGP version 3",
            Some(open(3, 64513)),
            vec![],
            (code::OPEN, open_error::UNSUPPORTED_VERSION),
        ),
        (
            "the wrong AS",
            Some(open(4, 65000)),
            vec![],
            (code::OPEN, open_error::BAD_PEER_AS),
        ),
        (
            "a 5,000-byte message",
            None,
            raw(2, 5000, &[0; 64]),
            (code::HEADER, 2),
        ),
        (
            "an unknown message type",
            None,
            raw(9, 19, &[]),
            (code::HEADER, 3),
        ),
        (
            "an UPDATE whose withdrawn routes overrun it",
            None,
            raw(2, 23, &[0, 200, 0, 0]),
            (code::UPDATE, 1),
        ),
        ("a bad marker", None, vec![0; 19], (code::HEADER, 1)),
    ];
    for (what, answer, bytes, verdict) in cases {
        let mut router = Router::accept(&listener).await;
        match answer {
            Some(open) => {
                let _ = router.next().await.expect("the speaker's OPEN");
                router.send(&open).await;
            }
            None => {
                router.establish(90).await;
                let _ = router.updates(1, 0).await;
                router.stream.write_all(&bytes).await.unwrap();
            }
        }
        let n = router.notification().await;
        assert_eq!((n.code, n.subcode), verdict, "{what}: {n}");
        until(&mut reports, |s| {
            s.last_down == Some(Down::NotificationSent(n.clone()))
        })
        .await;
        assert_eq!(router.next().await, None, "{what}: the speaker closes");
    }
    // Survived all of it: the next connection comes up and carries the route.
    let mut router = Router::accept(&listener).await;
    router.establish(90).await;
    assert_announced(&router.updates(1, 0).await, "10.77.0.200/32");
    let sent = reports.borrow()["r"]
        .status
        .as_ref()
        .unwrap()
        .notifications_sent
        .clone();
    assert_eq!(sent.values().sum::<u64>(), 6, "{sent:?}");
    peer.stop(Stop::Silent).await;
}
