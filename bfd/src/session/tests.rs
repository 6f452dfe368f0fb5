//! Every RFC 5880 rule the session keeps, with simulated time and a fixed jitter.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const OURS: u32 = 7;
const THEIRS: u32 = 99;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(tx: u64, rx: u64, mult: u8) -> Config {
    Config {
        desired_min_tx: ms(tx),
        required_min_rx: ms(rx),
        detect_mult: mult,
        passive: false,
    }
}

/// A session, a clock, and the jitter's next numbers.
struct Run {
    session: Session,
    t0: Instant,
    now: Instant,
}

impl Run {
    fn new(config: Config, jitter: f64) -> Self {
        let t0 = Instant::now();
        Self {
            session: Session::new(config, OURS, t0, Box::new(move || jitter)),
            t0,
            now: t0,
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.session.handle(input, self.now)
    }

    /// Moves the clock to `t0 + at` and ticks.
    fn at(&mut self, at: Duration) -> Vec<Output> {
        self.now = self.t0 + at;
        self.feed(Input::Tick)
    }

    /// The peer's packet in `state`, with its timers.
    fn hear(&mut self, state: State, tx: u64, rx: u64, mult: u8) -> Vec<Output> {
        let your = if state == State::Down && self.session.remote_discr == 0 {
            0
        } else {
            OURS
        };
        self.feed(Input::Received(Packet {
            your_discriminator: your,
            ..peer(state, tx, rx, mult)
        }))
    }

    /// Down → Init → Up with a peer advertising `tx`/`rx`/`mult`.
    fn up(config: Config, tx: u64, rx: u64, mult: u8) -> Self {
        let mut run = Self::new(config, 0.0);
        run.hear(State::Down, tx, rx, mult);
        run.hear(State::Up, tx, rx, mult);
        assert_eq!(run.session.state(), State::Up);
        run
    }
}

fn peer(state: State, tx: u64, rx: u64, mult: u8) -> Packet {
    Packet {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: mult,
        my_discriminator: THEIRS,
        your_discriminator: OURS,
        desired_min_tx: ms(tx),
        required_min_rx: ms(rx),
        required_min_echo_rx: Duration::ZERO,
    }
}

fn sent(out: &[Output]) -> Vec<Packet> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(p) => Some(*p),
            Output::Changed(_) => None,
        })
        .collect()
}

fn changes(out: &[Output]) -> Vec<Change> {
    out.iter()
        .filter_map(|o| match o {
            Output::Changed(c) => Some(*c),
            Output::Send(_) => None,
        })
        .collect()
}

#[test]
fn the_three_way_handshake_brings_the_session_up() {
    let mut run = Run::new(config(50, 50, 3), 0.0);
    // The first packet goes out at once: Down, not knowing the peer's discriminator.
    let first = sent(&run.at(Duration::ZERO));
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].state, first[0].your_discriminator), (State::Down, 0));
    assert!(
        !first[0].control_plane_independent,
        "C = 0: shares fate with the speaker"
    );
    // The peer's Down: Init, told at once with its discriminator.
    let out = run.hear(State::Down, 1000, 1000, 3);
    assert_eq!(changes(&out)[0].state, State::Init);
    assert_eq!(
        run.session.deadline(),
        Some(run.now),
        "the new state goes out now"
    );
    let told = sent(&run.feed(Input::Tick));
    assert_eq!((told[0].state, told[0].your_discriminator), (State::Init, THEIRS));
    // The peer's Up (or Init): Up.
    let out = run.hear(State::Up, 1000, 1000, 3);
    assert_eq!(
        changes(&out),
        [Change {
            state: State::Up,
            diag: Diag::None,
            remote: State::Up
        }]
    );
    // Straight from Down on the peer's Init.
    let mut run = Run::new(config(50, 50, 3), 0.0);
    run.hear(State::Down, 1000, 1000, 3);
    let mut other = Run::new(config(50, 50, 3), 0.0);
    let out = other.feed(Input::Received(peer(State::Init, 1000, 1000, 3)));
    assert_eq!(changes(&out)[0].state, State::Up);
}

#[test]
fn not_up_the_session_sends_at_most_once_a_second() {
    let mut run = Run::new(config(50, 50, 3), 0.0);
    let first = sent(&run.at(Duration::ZERO));
    assert_eq!(first[0].desired_min_tx, ms(1000), "advertised slow while Down");
    assert_eq!(first[0].required_min_rx, ms(50));
    assert_eq!(run.session.deadline(), Some(run.t0 + ms(1000)));
    // A peer that receives slower still sets the pace.
    run.hear(State::Down, 1000, 2000, 3);
    assert_eq!(run.session.transmit_interval(), Some(ms(2000)));
}

#[test]
fn up_the_fast_rate_starts_with_a_poll_and_applies_at_once() {
    let mut run = Run::up(config(50, 50, 3), 1000, 20, 3);
    // Faster than the slow rate: applies now; the peer learns it by a Poll.
    assert_eq!(run.session.transmit_interval(), Some(ms(50)));
    let poll = sent(&run.feed(Input::Tick));
    assert!(poll[0].poll && !poll[0].final_);
    assert_eq!(poll[0].desired_min_tx, ms(50));
    // Polls keep going at the transmit rate until the Final.
    assert_eq!(run.session.deadline(), Some(run.now + ms(50)));
    assert!(sent(&run.at(ms(50)))[0].poll);
    let mut fin = peer(State::Up, 50, 20, 3);
    fin.final_ = true;
    run.feed(Input::Received(fin));
    assert!(!sent(&run.at(ms(100)))[0].poll, "the Poll is over");
}

#[test]
fn the_transmit_interval_is_the_larger_of_ours_and_the_peer_s_receive_interval() {
    let run = Run::up(config(50, 50, 3), 300, 500, 3);
    assert_eq!(run.session.transmit_interval(), Some(ms(500)));
    let run = Run::up(config(300, 50, 3), 300, 100, 3);
    assert_eq!(run.session.transmit_interval(), Some(ms(300)));
    // A peer asking for no packets gets none.
    let mut run = Run::up(config(50, 50, 3), 300, 100, 3);
    run.feed(Input::Received(peer(State::Up, 300, 0, 3)));
    assert_eq!(run.session.transmit_interval(), None);
    run.feed(Input::Tick);
    assert!(sent(&run.at(ms(900))).is_empty());
}

#[test]
fn jitter_takes_off_up_to_a_quarter_or_10_to_25_percent_with_a_multiplier_of_1() {
    for (mult, r, expected) in [
        (3, 0.0, 100.0),
        (3, 0.5, 87.5),
        (3, 0.999_999, 75.0),
        (1, 0.0, 90.0),
        (1, 0.999_999, 75.0),
    ] {
        let mut run = Run::up(config(100, 100, mult), 100, 100, 3);
        run.session.random = Box::new(move || r);
        let last = run.now;
        run.feed(Input::Tick);
        let next = run.session.deadline().unwrap() - last;
        let percent = next.as_secs_f64() * 1e3;
        assert!(
            (percent - expected).abs() < 0.01,
            "mult {mult}, r {r}: {percent} ms of 100"
        );
    }
}

#[test]
fn the_detection_time_is_the_peer_s_multiplier_times_the_slower_side() {
    let mut run = Run::up(config(50, 300, 3), 100, 50, 5);
    assert_eq!(run.session.detection_time(), ms(1500), "5 × max(300, 100)");
    run.feed(Input::Tick);
    // Silence: at the detection time, Down, the peer's discriminator forgotten.
    let heard_at = run.now;
    assert!(changes(&run.at(ms(1499))).is_empty());
    let out = run.at(heard_at - run.t0 + ms(1500));
    assert_eq!(
        changes(&out),
        [Change {
            state: State::Down,
            diag: Diag::TimeExpired,
            remote: State::Up
        }]
    );
    assert!(changes(&out)[0].is_failure());
    assert_eq!(run.session.remote_discr, 0);
    let told = sent(&out);
    assert_eq!(
        (told[0].state, told[0].diag),
        (State::Down, Diag::TimeExpired),
        "told at once"
    );
}

#[test]
fn a_slower_profile_goes_through_a_poll_without_a_reset() {
    let mut run = Run::up(config(50, 50, 3), 50, 50, 3);
    let mut fin = peer(State::Up, 50, 50, 3);
    fin.final_ = true;
    run.feed(Input::Tick);
    run.feed(Input::Received(fin));
    assert_eq!(run.session.transmit_interval(), Some(ms(50)));
    // Slower sending and a shorter wait asked for: the session stays Up...
    let out = run.feed(Input::Configure(config(300, 20, 3)));
    assert!(changes(&out).is_empty());
    let poll = sent(&run.feed(Input::Tick));
    assert!(poll[0].poll);
    assert_eq!(
        (poll[0].desired_min_tx, poll[0].required_min_rx),
        (ms(300), ms(20))
    );
    // ...the old interval and detection time hold until the Final...
    assert_eq!(run.session.transmit_interval(), Some(ms(50)));
    assert_eq!(run.session.detection_time(), ms(150));
    run.feed(Input::Received(fin));
    // ...then the new ones apply.
    assert_eq!(run.session.transmit_interval(), Some(ms(300)));
    assert_eq!(
        run.session.detection_time(),
        ms(150),
        "3 × max(20, the peer's 50)"
    );
    assert_eq!(run.session.state(), State::Up);
}

#[test]
fn a_peer_asking_for_packets_sooner_gets_the_next_one_within_its_new_interval() {
    // Up while the peer still receives slowly: our next packet is a second away.
    let mut run = Run::up(config(50, 50, 3), 1000, 1000, 3);
    run.feed(Input::Tick);
    assert_eq!(run.session.deadline(), Some(run.now + ms(1000)));
    // Its Poll brings 50 ms: the packet already scheduled a second away comes sooner.
    let mut poll = peer(State::Up, 50, 50, 3);
    poll.poll = true;
    run.now += ms(5);
    run.feed(Input::Received(poll));
    assert!(
        run.session.deadline().is_some_and(|d| d <= run.now + ms(50)),
        "next packet at {:?} after now",
        run.session.deadline().map(|d| d - run.now)
    );
}

#[test]
fn every_poll_is_answered_by_a_final_at_once() {
    let mut run = Run::up(config(50, 50, 3), 50, 50, 3);
    let mut poll = peer(State::Up, 300, 300, 3);
    poll.poll = true;
    let out = sent(&run.feed(Input::Received(poll)));
    assert_eq!(out.len(), 1);
    assert!(out[0].final_ && !out[0].poll);
    assert_eq!(
        run.session.transmit_interval(),
        Some(ms(300)),
        "the peer's new Required Min RX"
    );
}

#[test]
fn a_peer_going_admin_down_takes_the_session_down_without_a_failure() {
    let mut run = Run::up(config(50, 50, 3), 50, 50, 3);
    let mut bye = peer(State::AdminDown, 50, 50, 3);
    bye.diag = Diag::AdminDown;
    let out = changes(&run.feed(Input::Received(bye)));
    assert_eq!(out[0].state, State::Down);
    assert_eq!(out[0].diag, Diag::NeighborDown);
    assert!(!out[0].is_failure(), "the client must not act on it");
    // A peer saying Down is a failure.
    let mut run = Run::up(config(50, 50, 3), 50, 50, 3);
    let out = changes(&run.hear(State::Down, 50, 50, 3));
    assert!(out[0].is_failure());
}

#[test]
fn going_admin_down_tells_the_peer_and_ignores_it_after() {
    let mut run = Run::up(config(50, 50, 3), 50, 50, 3);
    let out = run.feed(Input::AdminDown);
    let told = sent(&out);
    assert_eq!((told[0].state, told[0].diag), (State::AdminDown, Diag::AdminDown));
    assert!(!changes(&out)[0].is_failure());
    assert!(changes(&run.hear(State::Down, 50, 50, 3)).is_empty());
    assert!(
        changes(&run.at(ms(10_000))).is_empty(),
        "no detection while AdminDown"
    );
}

#[test]
fn a_passive_session_waits_for_the_peer() {
    let passive = Config {
        passive: true,
        ..config(50, 50, 3)
    };
    let mut run = Run::new(passive, 0.0);
    assert_eq!(run.session.deadline(), None);
    assert!(sent(&run.at(ms(5000))).is_empty());
    run.hear(State::Down, 1000, 1000, 3);
    assert!(!sent(&run.feed(Input::Tick)).is_empty(), "it answers once heard");
}

#[test]
fn packets_for_another_session_or_too_early_are_ignored() {
    let mut run = Run::new(config(50, 50, 3), 0.0);
    let mut other = peer(State::Down, 50, 50, 3);
    other.your_discriminator = 12345;
    assert!(run.feed(Input::Received(other)).is_empty());
    // No discriminator of ours yet but claiming Up: discarded.
    let mut early = peer(State::Up, 50, 50, 3);
    early.your_discriminator = 0;
    assert!(run.feed(Input::Received(early)).is_empty());
    assert_eq!(run.session.state(), State::Down);
}

fn any_packet() -> impl Strategy<Value = Packet> {
    (
        0u8..4,
        any::<bool>(),
        any::<bool>(),
        1u8..6,
        prop_oneof![Just(0u32), Just(OURS), Just(5)],
        0u64..2000,
        0u64..2000,
    )
        .prop_map(|(state, poll, final_, mult, your, tx, rx)| Packet {
            state: match state {
                0 => State::AdminDown,
                1 => State::Down,
                2 => State::Init,
                _ => State::Up,
            },
            poll,
            final_,
            your_discriminator: your,
            ..peer(State::Up, tx, rx, mult)
        })
}

fn any_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        any_packet().prop_map(Input::Received),
        Just(Input::Tick),
        Just(Input::AdminDown),
        (1u64..500, 1u64..500, 1u8..5).prop_map(|(tx, rx, m)| Input::Configure(config(tx, rx, m))),
    ]
}

proptest! {
    /// Whatever arrives in whatever order, the session never panics, never sends a
    /// packet the RFC forbids, and keeps a timer while it has something to time.
    #[test]
    fn any_sequence_keeps_the_session_consistent(
        steps in proptest::collection::vec((any_input(), 0u64..3000), 1..80)
    ) {
        let mut run = Run::new(config(50, 50, 3), 0.5);
        for (input, step) in steps {
            run.now += ms(step);
            for output in run.feed(input) {
                if let Output::Send(p) = output {
                    prop_assert!(!p.control_plane_independent);
                    prop_assert!(!(p.poll && p.final_));
                    prop_assert_eq!(p.my_discriminator, OURS);
                    prop_assert!(p.detect_mult > 0);
                    prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
                    if p.state != State::Up {
                        prop_assert!(p.desired_min_tx >= ms(1000));
                    }
                }
            }
            // A Tick at `now` leaves no timer due at `now`.
            run.feed(Input::Tick);
            prop_assert!(run.session.deadline().is_none_or(|d| d > run.now));
        }
    }
}
