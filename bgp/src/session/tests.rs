//! Every transition and timer of the session, with simulated time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::message::{AfiSafi, cease, code, fsm_error, open_error};

const LOCAL_ASN: u32 = 64512;
const PEER_ASN: u32 = 64513;

fn config() -> Config {
    Config {
        local_asn: LOCAL_ASN,
        peer_asn: PeerAsn::Fixed(PEER_ASN),
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        hold_time: Duration::from_secs(90),
        keepalive_time: None,
        connect_time: None,
        connect_timeout: Duration::from_secs(10),
        families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
        graceful_restart: None,
    }
}

fn peer_open() -> Open {
    Open {
        version: 4,
        asn: PEER_ASN,
        hold_time: 30,
        router_id: Ipv4Addr::new(10, 0, 0, 254),
        families: Some(BTreeSet::from([Family::Ipv4Unicast])),
        four_octet: true,
        route_refresh: true,
        graceful_restart: None,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A session and a clock.
struct Run {
    session: Session,
    t0: Instant,
    now: Instant,
}

impl Run {
    fn new(config: Config) -> Self {
        let t0 = Instant::now();
        Self {
            session: Session::new(config),
            t0,
            now: t0,
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.session.handle(input, self.now)
    }

    fn receive(&mut self, message: Message) -> Vec<Output> {
        self.feed(Input::Received(message))
    }

    /// Moves the clock to `t0 + at` and ticks.
    fn at(&mut self, at: Duration) -> Vec<Output> {
        self.now = self.t0 + at;
        self.feed(Input::Tick)
    }

    /// Start, connect, exchange OPENs and KEEPALIVEs: Established.
    fn established(config: Config, open: Open) -> (Self, Negotiated) {
        let mut run = Self::new(config);
        run.feed(Input::Start);
        run.feed(Input::Connected);
        run.receive(Message::Open(open));
        let out = run.receive(Message::Keepalive);
        let terms = out
            .iter()
            .find_map(|o| match o {
                Output::Up(t) => Some(t.clone()),
                _ => None,
            })
            .expect("Up");
        (run, terms)
    }
}

fn sent_notification(out: &[Output]) -> Option<&Notification> {
    out.iter().find_map(|o| match o {
        Output::Send(Message::Notification(n)) => Some(n),
        _ => None,
    })
}

#[test]
fn the_first_dial_goes_out_at_once_and_our_open_follows_the_connection() {
    let mut run = Run::new(config());
    assert_eq!(run.session.state(), State::Idle);
    assert_eq!(run.session.deadline(), None, "Idle waits for nothing");
    assert_eq!(
        run.feed(Input::Start),
        [Output::State(State::Connect), Output::Connect]
    );
    assert_eq!(
        run.session.deadline(),
        Some(run.t0 + secs(10)),
        "the dial's timeout"
    );
    let out = run.feed(Input::Connected);
    let Output::Send(Message::Open(open)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(open.asn, LOCAL_ASN);
    assert_eq!(open.hold_time, 90);
    assert!(open.four_octet && open.route_refresh);
    assert_eq!(open.families, Some(config().families));
    assert_eq!(out[1], Output::State(State::OpenSent));
    assert_eq!(
        run.session.deadline(),
        Some(run.t0 + OPEN_WAIT),
        "waiting for the peer's OPEN"
    );
    assert!(run.feed(Input::Start).is_empty(), "already started");
}

#[test]
fn opens_and_keepalives_lead_to_established_with_the_smaller_hold_time() {
    let mut run = Run::new(config());
    run.feed(Input::Start);
    run.feed(Input::Connected);
    let out = run.receive(Message::Open(peer_open()));
    assert_eq!(
        out,
        [
            Output::Send(Message::Keepalive),
            Output::State(State::OpenConfirm)
        ]
    );
    let out = run.receive(Message::Keepalive);
    assert_eq!(out[0], Output::State(State::Established));
    let Output::Up(terms) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        terms.hold_time,
        secs(30),
        "the peer's 30 s is smaller than our 90 s"
    );
    assert_eq!(terms.keepalive, secs(10));
    assert_eq!(
        terms.families,
        BTreeSet::from([Family::Ipv4Unicast]),
        "both sides' families"
    );
    assert!(!terms.internal && terms.four_octet);
    assert_eq!(terms.peer_id, Ipv4Addr::new(10, 0, 0, 254));
    assert_eq!(run.session.negotiated(), Some(terms));
    // A peer without multiprotocol capabilities offers IPv4 unicast.
    let (_, terms) = Run::established(
        config(),
        Open {
            families: None,
            ..peer_open()
        },
    );
    assert_eq!(terms.families, BTreeSet::from([Family::Ipv4Unicast]));
}

#[test]
fn keepalives_go_out_every_third_of_the_hold_time_and_traffic_keeps_the_session() {
    let (mut run, _) = Run::established(config(), peer_open());
    assert_eq!(
        run.session.deadline(),
        Some(run.t0 + secs(10)),
        "the first keepalive"
    );
    assert!(run.at(secs(9)).is_empty());
    assert_eq!(run.at(secs(10)), [Output::Send(Message::Keepalive)]);
    assert_eq!(run.at(secs(20)), [Output::Send(Message::Keepalive)]);
    // The peer's messages restart the hold timer: at 29 s an UPDATE, so 30 s passes.
    run.now = run.t0 + secs(29);
    assert!(run.receive(Message::Update).is_empty());
    let out = run.at(secs(30));
    assert_eq!(out, [Output::Send(Message::Keepalive)]);
    assert_eq!(run.session.state(), State::Established);
    // A configured keepaliveTime shorter than a third of the hold time is used.
    let faster = Config {
        keepalive_time: Some(secs(3)),
        ..config()
    };
    let (run, terms) = Run::established(faster, peer_open());
    assert_eq!(terms.keepalive, secs(3));
    assert_eq!(run.session.deadline(), Some(run.t0 + secs(3)));
}

#[test]
fn a_silent_peer_is_noticed_at_the_hold_time() {
    let (mut run, _) = Run::established(config(), peer_open());
    for s in [10, 20] {
        run.at(secs(s));
    }
    let out = run.at(secs(30));
    let n = sent_notification(&out).expect("a NOTIFICATION");
    assert_eq!((n.code, n.subcode), (code::HOLD_TIMER_EXPIRED, 0));
    assert!(out.contains(&Output::Close));
    assert!(out.contains(&Output::Down(Down::NotificationSent(n.clone()))));
    assert_eq!(run.session.state(), State::Active);
    assert_eq!(run.session.negotiated(), None);
    // And a peer that never sends its OPEN, at the OpenSent wait.
    let mut run = Run::new(config());
    run.feed(Input::Start);
    run.feed(Input::Connected);
    let out = run.at(OPEN_WAIT);
    assert_eq!(
        sent_notification(&out).map(|n| n.code),
        Some(code::HOLD_TIMER_EXPIRED)
    );
}

#[test]
fn a_zero_hold_time_means_no_keepalives_and_no_hold_timer() {
    let (run, terms) = Run::established(
        config(),
        Open {
            hold_time: 0,
            ..peer_open()
        },
    );
    assert_eq!(
        (terms.hold_time, terms.keepalive),
        (Duration::ZERO, Duration::ZERO)
    );
    assert_eq!(run.session.deadline(), None);
}

#[test]
fn bad_opens_are_answered_with_the_right_notification() {
    let answer = |config: Config, open: Open| {
        let mut run = Run::new(config);
        run.feed(Input::Start);
        run.feed(Input::Connected);
        let out = run.receive(Message::Open(open));
        assert_eq!(run.session.state(), State::Active, "{out:?}");
        let n = sent_notification(&out).cloned().expect("a NOTIFICATION");
        assert!(out.contains(&Output::Down(Down::NotificationSent(n.clone()))));
        (n.code, n.subcode, n.data)
    };
    let open_error = |subcode| (code::OPEN, subcode, vec![]);
    assert_eq!(
        answer(
            config(),
            Open {
                version: 3,
                ..peer_open()
            }
        ),
        (code::OPEN, open_error::UNSUPPORTED_VERSION, vec![0, 4])
    );
    assert_eq!(
        answer(
            config(),
            Open {
                asn: 65000,
                ..peer_open()
            }
        ),
        open_error(open_error::BAD_PEER_AS)
    );
    let internal = Config {
        peer_asn: PeerAsn::Internal,
        ..config()
    };
    assert_eq!(
        answer(internal.clone(), peer_open()),
        open_error(open_error::BAD_PEER_AS)
    );
    let external = Config {
        peer_asn: PeerAsn::External,
        ..config()
    };
    assert_eq!(
        answer(
            external.clone(),
            Open {
                asn: LOCAL_ASN,
                ..peer_open()
            }
        ),
        open_error(open_error::BAD_PEER_AS)
    );
    assert_eq!(
        answer(
            config(),
            Open {
                router_id: Ipv4Addr::UNSPECIFIED,
                ..peer_open()
            }
        ),
        open_error(open_error::BAD_BGP_IDENTIFIER)
    );
    // Our own identifier: refused from an internal peer only (RFC 6286).
    let same_id = Open {
        asn: LOCAL_ASN,
        router_id: config().router_id,
        ..peer_open()
    };
    assert_eq!(
        answer(internal.clone(), same_id.clone()),
        open_error(open_error::BAD_BGP_IDENTIFIER)
    );
    let (_, terms) = Run::established(
        external,
        Open {
            router_id: config().router_id,
            ..peer_open()
        },
    );
    assert!(!terms.internal);
    for hold_time in [1, 2] {
        assert_eq!(
            answer(
                config(),
                Open {
                    hold_time,
                    ..peer_open()
                }
            ),
            open_error(open_error::UNACCEPTABLE_HOLD_TIME)
        );
    }
    let (_, terms) = Run::established(
        internal,
        Open {
            asn: LOCAL_ASN,
            ..peer_open()
        },
    );
    assert!(terms.internal, "dynamicASN internal accepts our own AS");
}

#[test]
fn unexpected_messages_are_state_machine_errors() {
    let subcode_after = |steps: &[Message], unexpected: Message| {
        let mut run = Run::new(config());
        run.feed(Input::Start);
        run.feed(Input::Connected);
        for m in steps {
            run.receive(m.clone());
        }
        let out = run.receive(unexpected);
        let n = sent_notification(&out).cloned().expect("a NOTIFICATION");
        assert_eq!(n.code, code::FSM);
        n.subcode
    };
    let open = Message::Open(peer_open());
    assert_eq!(subcode_after(&[], Message::Update), fsm_error::IN_OPEN_SENT);
    assert_eq!(subcode_after(&[], Message::Keepalive), fsm_error::IN_OPEN_SENT);
    assert_eq!(
        subcode_after(std::slice::from_ref(&open), Message::Update),
        fsm_error::IN_OPEN_CONFIRM
    );
    assert_eq!(
        subcode_after(&[open.clone(), Message::Keepalive], open),
        fsm_error::IN_ESTABLISHED
    );
}

#[test]
fn failures_back_off_doubling_and_a_working_session_resets_the_backoff() {
    let mut run = Run::new(config());
    run.feed(Input::Start);
    let mut waits = Vec::new();
    for _ in 0..8 {
        let failed_at = run.now;
        let out = run.feed(Input::ConnectFailed);
        assert!(out.contains(&Output::Down(Down::ConnectFailed)));
        assert_eq!(run.session.state(), State::Active);
        let next = run.session.deadline().expect("a dial is due");
        waits.push((next - failed_at).as_secs());
        run.now = next;
        assert_eq!(
            run.feed(Input::Tick),
            [Output::State(State::Connect), Output::Connect]
        );
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    // Established once: the next failure waits 1 s again.
    run.feed(Input::Connected);
    run.receive(Message::Open(peer_open()));
    run.receive(Message::Keepalive);
    let out = run.feed(Input::Closed);
    assert!(out.contains(&Output::Down(Down::ConnectionLost)));
    assert_eq!(run.session.deadline(), Some(run.now + secs(1)));
    // With connectTime, always that.
    let fixed = Config {
        connect_time: Some(secs(5)),
        ..config()
    };
    let mut run = Run::new(fixed);
    run.feed(Input::Start);
    for _ in 0..3 {
        run.feed(Input::ConnectFailed);
        assert_eq!(run.session.deadline(), Some(run.now + secs(5)));
        run.now += secs(5);
        run.feed(Input::Tick);
    }
}

#[test]
fn a_dial_that_hangs_is_abandoned_and_a_late_connection_closed() {
    let mut run = Run::new(config());
    run.feed(Input::Start);
    let out = run.at(secs(10));
    assert_eq!(
        out,
        [
            Output::Close,
            Output::Down(Down::ConnectFailed),
            Output::State(State::Active)
        ]
    );
    assert_eq!(run.feed(Input::Connected), [Output::Close], "given up: not used");
    assert_eq!(run.session.state(), State::Active);
    assert!(
        run.feed(Input::ConnectFailed).is_empty(),
        "a late report changes nothing"
    );
}

#[test]
fn a_received_notification_ends_the_session_and_is_reported() {
    let (mut run, _) = Run::established(config(), peer_open());
    let n = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN, "maintenance");
    let out = run.receive(Message::Notification(n.clone()));
    assert_eq!(
        out,
        [
            Output::Close,
            Output::Down(Down::NotificationReceived(n)),
            Output::State(State::Active)
        ]
    );
}

#[test]
fn stopping_with_a_cease_tells_the_peer_why_and_stays_idle() {
    let (mut run, _) = Run::established(config(), peer_open());
    let out = run.feed(Input::Stop(Stop::Cease {
        subcode: cease::PEER_DECONFIGURED,
        reason: "BGPPeer deleted".into(),
    }));
    let n = sent_notification(&out).expect("a Cease");
    assert_eq!((n.code, n.subcode), (code::CEASE, cease::PEER_DECONFIGURED));
    assert_eq!(
        out[1..],
        [
            Output::Close,
            Output::Down(Down::Stopped),
            Output::State(State::Idle)
        ]
    );
    assert_eq!(run.session.deadline(), None, "no dial after a stop");
    assert!(run.at(secs(600)).is_empty());
    // Started again, it dials at once.
    assert_eq!(
        run.feed(Input::Start),
        [Output::State(State::Connect), Output::Connect]
    );
}

#[test]
fn stopping_silently_closes_without_a_notification() {
    let (mut run, _) = Run::established(config(), peer_open());
    let out = run.feed(Input::Stop(Stop::Silent));
    assert_eq!(
        out,
        [
            Output::Close,
            Output::Down(Down::Stopped),
            Output::State(State::Idle)
        ]
    );
    // Stopped while waiting to dial: nothing to close, nothing to report.
    let mut run = Run::new(config());
    run.feed(Input::Start);
    run.feed(Input::ConnectFailed);
    assert_eq!(run.feed(Input::Stop(Stop::Silent)), [Output::State(State::Idle)]);
    // Stopped while dialling: the dial is abandoned.
    let mut run = Run::new(config());
    run.feed(Input::Start);
    assert_eq!(
        run.feed(Input::Stop(Stop::Silent)),
        [Output::Close, Output::State(State::Idle)]
    );
}

/// A configuration offering graceful restart, and a helper's OPEN (BIRD's and FRR's
/// default: the capability with no families, N set).
fn with_restart() -> (Config, Open) {
    let config = Config {
        graceful_restart: Some(secs(120)),
        ..config()
    };
    let open = Open {
        graceful_restart: Some(GracefulRestart {
            notification: true,
            restart_time: 120,
            ..GracefulRestart::default()
        }),
        ..peer_open()
    };
    (config, open)
}

fn our_open(out: &[Output]) -> &Open {
    out.iter()
        .find_map(|o| match o {
            Output::Send(Message::Open(open)) => Some(open),
            _ => None,
        })
        .expect("an OPEN")
}

#[test]
fn graceful_restart_is_offered_with_forwarding_kept_and_restart_state_after_a_restart() {
    let (config, open) = with_restart();
    // Not offered unless configured.
    let mut run = Run::new(super::tests::config());
    run.feed(Input::Start);
    assert_eq!(our_open(&run.feed(Input::Connected)).graceful_restart, None);
    // A new process: R set, F set for every family, N set, the restart time.
    let mut run = Run {
        session: Session::after_restart(config.clone()),
        ..Run::new(config.clone())
    };
    run.feed(Input::Start);
    let gr = our_open(&run.feed(Input::Connected))
        .graceful_restart
        .clone()
        .expect("offered");
    assert!(gr.restarting && gr.notification);
    assert_eq!(gr.restart_time, 120);
    assert_eq!(
        gr.families,
        BTreeMap::from([(Family::Ipv4Unicast, true), (Family::Ipv6Unicast, true)])
    );
    // A failed try does not clear R: the restart is not over until a session is up.
    run.feed(Input::Closed);
    run.at(secs(1));
    let again = run.feed(Input::Connected);
    assert!(our_open(&again).graceful_restart.as_ref().unwrap().restarting);
    run.receive(Message::Open(open));
    let up = run.receive(Message::Keepalive);
    let Some(Output::Up(terms)) = up.iter().find(|o| matches!(o, Output::Up(_))) else {
        panic!("{up:?}")
    };
    assert!(terms.graceful_restart && terms.hard_reset);
    // Once up, later sessions of the same process clear R.
    run.feed(Input::Closed);
    run.at(secs(10));
    let later = run.feed(Input::Connected);
    assert!(!our_open(&later).graceful_restart.as_ref().unwrap().restarting);
    // A restart time beyond the capability's 12 bits is cut to 4095 s.
    let long = Config {
        graceful_restart: Some(secs(100_000)),
        ..config
    };
    let mut run = Run::new(long);
    run.feed(Input::Start);
    let gr = our_open(&run.feed(Input::Connected)).graceful_restart.clone();
    assert_eq!(gr.map(|g| g.restart_time), Some(4095));
}

#[test]
fn graceful_restart_needs_both_sides_and_n_needs_both_bits() {
    let (config, open) = with_restart();
    let (_, terms) = Run::established(super::tests::config(), open.clone());
    assert!(!terms.graceful_restart && !terms.hard_reset, "not offered by us");
    let (_, terms) = Run::established(config.clone(), peer_open());
    assert!(
        !terms.graceful_restart && !terms.hard_reset,
        "not offered by the peer"
    );
    let no_n = Open {
        graceful_restart: Some(GracefulRestart::default()),
        ..open
    };
    let (_, terms) = Run::established(config, no_n);
    assert!(terms.graceful_restart && !terms.hard_reset);
}

#[test]
fn a_planned_restart_closes_silently_only_when_graceful_restart_was_negotiated() {
    let restart = || Stop::Restart {
        reason: "rolling update".into(),
    };
    let (config, open) = with_restart();
    let (mut run, _) = Run::established(config.clone(), open.clone());
    assert_eq!(run.session.resolve(restart()), Stop::Silent);
    assert_eq!(
        run.feed(Input::Stop(restart())),
        [
            Output::Close,
            Output::Down(Down::Stopped),
            Output::State(State::Idle)
        ],
        "no NOTIFICATION: the peer keeps the routes stale"
    );
    // Without graceful restart the peer must drop the routes now: a Cease.
    let (mut run, _) = Run::established(super::tests::config(), open.clone());
    let out = run.feed(Input::Stop(restart()));
    let n = sent_notification(&out).expect("a Cease");
    assert_eq!((n.code, n.subcode), (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN));
    assert_eq!(n.communication(), Some("rolling update"));
    // Leaving for good with N negotiated: a Hard Reset carrying the Cease.
    let (mut run, _) = Run::established(config.clone(), open.clone());
    let out = run.feed(Input::Stop(Stop::Cease {
        subcode: cease::PEER_DECONFIGURED,
        reason: "gone".into(),
    }));
    let n = sent_notification(&out).expect("a Hard Reset");
    assert_eq!((n.code, n.subcode), (code::CEASE, cease::HARD_RESET));
    assert_eq!(&n.data[..2], &[code::CEASE, cease::PEER_DECONFIGURED]);
    // Without N, a plain Cease flushes already.
    let no_n = Open {
        graceful_restart: Some(GracefulRestart::default()),
        ..open
    };
    let (mut run, _) = Run::established(config, no_n);
    let out = run.feed(Input::Stop(Stop::Cease {
        subcode: cease::PEER_DECONFIGURED,
        reason: "gone".into(),
    }));
    assert_eq!(
        sent_notification(&out).map(|n| n.subcode),
        Some(cease::PEER_DECONFIGURED)
    );
}

#[test]
fn bfd_down_ends_the_session_with_a_cease_and_dials_again() {
    let (mut run, _) = Run::established(config(), peer_open());
    let out = run.feed(Input::BfdDown);
    let n = Notification::new(code::CEASE, cease::BFD_DOWN);
    assert_eq!(out[0], Output::Send(Message::Notification(n.clone())));
    assert!(out.contains(&Output::Down(Down::NotificationSent(n))));
    assert_eq!(
        run.session.state(),
        State::Active,
        "it tries again after the backoff"
    );
    // Not connected: nothing to end.
    assert!(run.feed(Input::BfdDown).is_empty());
}

#[test]
fn route_refresh_is_honoured_for_negotiated_families_only() {
    let (mut run, _) = Run::established(config(), peer_open());
    assert_eq!(
        run.receive(Message::RouteRefresh(Family::Ipv4Unicast.into())),
        [Output::Refresh(Family::Ipv4Unicast)]
    );
    assert!(
        run.receive(Message::RouteRefresh(Family::Ipv6Unicast.into()))
            .is_empty()
    );
    assert!(
        run.receive(Message::RouteRefresh(AfiSafi(1, 128))).is_empty(),
        "not a family of ours"
    );
}

#[test]
fn malformed_input_is_answered_with_the_decoder_s_notification() {
    let (mut run, _) = Run::established(config(), peer_open());
    let n = Notification {
        data: vec![0, 1],
        ..Notification::new(code::HEADER, 2)
    };
    let out = run.feed(Input::Malformed(n.clone()));
    assert_eq!(out[0], Output::Send(Message::Notification(n.clone())));
    assert!(out.contains(&Output::Down(Down::NotificationSent(n))));
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (0u8..6, any::<u32>(), any::<u16>(), any::<u32>(), any::<bool>()).prop_map(
            |(version, asn, hold_time, id, v6)| {
                let families = v6.then(|| BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]));
                Message::Open(Open {
                    version,
                    asn: if asn % 2 == 0 { PEER_ASN } else { asn },
                    hold_time: hold_time % 200,
                    router_id: Ipv4Addr::from(id),
                    families,
                    four_octet: true,
                    route_refresh: true,
                    graceful_restart: v6.then(GracefulRestart::default),
                })
            }
        ),
        Just(Message::Update),
        Just(Message::Keepalive),
        Just(Message::RouteRefresh(Family::Ipv6Unicast.into())),
        (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(code, subcode, data)| Message::Notification(Notification {
                code,
                subcode,
                data
            })),
    ]
}

fn any_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        Just(Input::Start),
        Just(Input::Stop(Stop::Silent)),
        Just(Input::Stop(Stop::Restart { reason: "x".into() })),
        Just(Input::Stop(Stop::Cease {
            subcode: cease::ADMINISTRATIVE_SHUTDOWN,
            reason: "x".into()
        })),
        Just(Input::Connected),
        Just(Input::ConnectFailed),
        Just(Input::Closed),
        Just(Input::Tick),
        Just(Input::BfdDown),
        Just(Input::Malformed(Notification::new(code::HEADER, 1))),
        any_message().prop_map(Input::Received),
    ]
}

proptest! {
    /// Whatever happens in whatever order, the session never panics and its state and
    /// timers stay consistent.
    #[test]
    fn any_sequence_keeps_the_session_consistent(
        steps in proptest::collection::vec((any_input(), 0u64..200_000), 1..60)
    ) {
        let mut run = Run::new(config());
        for (input, ms) in steps {
            run.now += Duration::from_millis(ms);
            let out = run.feed(input);
            let state = run.session.state();
            prop_assert_eq!(run.session.negotiated().is_some(), matches!(state, State::OpenConfirm | State::Established));
            match state {
                State::Idle => prop_assert_eq!(run.session.deadline(), None),
                State::Connect | State::Active | State::OpenSent => prop_assert!(run.session.deadline().is_some()),
                State::OpenConfirm | State::Established => {}
            }
            // A connection is closed at most once per step, and an Up only on entering Established.
            prop_assert!(out.iter().filter(|o| **o == Output::Close).count() <= 1);
            if out.iter().any(|o| matches!(o, Output::Up(_))) {
                prop_assert_eq!(state, State::Established);
            }
        }
    }
}
