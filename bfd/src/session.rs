//! One BFD session in asynchronous mode (RFC 5880 §6), as a plain state machine: an
//! [`Input`] and the time in, [`Output`]s out, randomness for the jitter injected. The
//! shell owns the sockets, picks the discriminators, and sends [`Input::Tick`] at
//! [`Session::deadline`].
//!
//! The rules other implementations were reported for getting wrong, kept here:
//! - the interval between our packets is max(our Desired Min TX, the peer's Required
//!   Min RX), at least 1 s while the session is not Up, reduced by 0–25 % of jitter
//!   (to 75–90 % with a detection multiplier of 1); none while the peer asks for none;
//! - the detection time is the peer's multiplier × max(our Required Min RX, the peer's
//!   Desired Min TX);
//! - a change of our intervals while Up goes through a Poll sequence, never a reset; a
//!   slower transmit interval, and a shorter detection time, apply only once the Final
//!   comes back; every Poll is answered by a Final at once;
//! - the Control Plane Independent bit is 0: this BFD runs in the speaker and dies with it;
//! - a peer going AdminDown takes the session Down but is not a failure
//!   ([`Change::is_failure`]): its clients must not act on it (RFC 5882 §3.2).

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::packet::{Diag, Packet, State};

/// The slowest rate a session that is not Up sends at (RFC 5880 §6.8.3).
const SLOW: Duration = Duration::from_secs(1);

/// A BFDProfile's timers, as they apply to one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Desired Min TX Interval (`transmitInterval`).
    pub desired_min_tx: Duration,
    /// Required Min RX Interval (`receiveInterval`).
    pub required_min_rx: Duration,
    /// Detect Mult (`detectMultiplier`).
    pub detect_mult: u8,
    /// Wait for the peer's first packet before sending (`passiveMode`).
    pub passive: bool,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A packet for this session arrived (already decoded, see [`Packet::decode`]).
    Received(Packet),
    /// Time passed: the timers due at `now` fire.
    Tick,
    /// The profile changed.
    Configure(Config),
    /// Going away on purpose: tell the peer AdminDown (not a failure on its side).
    AdminDown,
}

/// A change of the session's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The new state.
    pub state: State,
    /// Why, when it went Down.
    pub diag: Diag,
    /// The peer's state as last heard.
    pub remote: State,
}

impl Change {
    /// Whether this is the failure BFD exists to report: leaving Up for Down because the
    /// peer went silent or said it was Down, not because it went AdminDown.
    pub fn is_failure(&self) -> bool {
        self.state == State::Down && self.remote != State::AdminDown
    }
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this packet to the peer.
    Send(Packet),
    /// The session changed state.
    Changed(Change),
}

/// One session.
pub struct Session {
    config: Config,
    local_discr: u32,
    remote_discr: u32,
    state: State,
    diag: Diag,
    remote_state: State,
    remote_demand: bool,
    /// The peer's Required Min RX (RFC 5880: initially 1 µs).
    remote_min_rx: Duration,
    /// The peer's Desired Min TX and Detect Mult, as last received.
    remote_min_tx: Duration,
    remote_mult: u8,
    /// The Desired Min TX our transmit interval uses: a larger one waits for the Final.
    tx_in_force: Duration,
    /// The Required Min RX our detection time uses: a smaller one waits for the Final.
    rx_in_force: Duration,
    /// A Poll sequence is running: our packets carry P until a Final arrives.
    polling: bool,
    /// The intervals our packets carried when the session was last Up or polled.
    advertised: (Duration, Duration),
    /// A packet came from the peer (a passive session starts sending then).
    heard: bool,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    /// A number in [0, 1) for each interval's jitter.
    random: Box<dyn FnMut() -> f64 + Send>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("local_discr", &self.local_discr)
            .field("remote_discr", &self.remote_discr)
            .field("state", &self.state)
            .field("remote_state", &self.remote_state)
            .field("polling", &self.polling)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session Down, with our discriminator `local_discr` (unique, not 0), sending at
    /// once unless passive; `random` gives a number in [0, 1) for each jitter.
    pub fn new(
        config: Config,
        local_discr: u32,
        now: Instant,
        random: Box<dyn FnMut() -> f64 + Send>,
    ) -> Self {
        let mut session = Self {
            config,
            local_discr,
            remote_discr: 0,
            state: State::Down,
            diag: Diag::None,
            remote_state: State::Down,
            remote_demand: false,
            remote_min_rx: Duration::from_micros(1),
            remote_min_tx: Duration::ZERO,
            remote_mult: 0,
            tx_in_force: SLOW.max(config.desired_min_tx),
            rx_in_force: config.required_min_rx,
            polling: false,
            advertised: (SLOW.max(config.desired_min_tx), config.required_min_rx),
            heard: false,
            next_tx: None,
            detect_at: None,
            random,
        };
        if !config.passive {
            session.next_tx = Some(now);
        }
        session
    }

    /// Its state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The diagnostic of its last change.
    pub fn diag(&self) -> Diag {
        self.diag
    }

    /// Our discriminator.
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// When the next timer is due (the shell then sends [`Input::Tick`]).
    pub fn deadline(&self) -> Option<Instant> {
        [self.next_tx, self.detect_at].into_iter().flatten().min()
    }

    /// The time between two of our packets now, before jitter; `None` while none are due
    /// (the peer asks for none, or is in demand mode with both sides Up).
    pub fn transmit_interval(&self) -> Option<Duration> {
        let quiet = self.remote_min_rx.is_zero()
            || (self.remote_demand && self.state == State::Up && self.remote_state == State::Up);
        (!quiet).then(|| self.tx_in_force.max(self.remote_min_rx))
    }

    /// The time without a packet after which the session goes Down (once the peer has
    /// been heard).
    pub fn detection_time(&self) -> Duration {
        self.rx_in_force.max(self.remote_min_tx) * u32::from(self.remote_mult)
    }

    /// Takes in what happened at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Received(packet) => self.received(packet, now, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::Configure(config) => {
                self.config = config;
                self.intervals_changed(now);
            }
            Input::AdminDown => {
                if self.state != State::AdminDown {
                    self.enter(State::AdminDown, Diag::AdminDown, now, &mut out);
                    self.detect_at = None;
                    out.push(Output::Send(self.packet(false)));
                }
            }
        }
        out
    }

    /// Our Desired Min TX as packets carry it now.
    fn desired_min_tx(&self) -> Duration {
        match self.state {
            State::Up => self.config.desired_min_tx,
            _ => SLOW.max(self.config.desired_min_tx),
        }
    }

    /// Applies a change of what our packets advertise: at once while not Up (nothing
    /// depends on it yet), through a Poll sequence while Up.
    fn intervals_changed(&mut self, now: Instant) {
        let now_advertised = (self.desired_min_tx(), self.config.required_min_rx);
        if now_advertised == self.advertised {
            return;
        }
        let (tx, rx) = now_advertised;
        self.advertised = now_advertised;
        if self.state == State::Up {
            self.polling = true;
            // Faster sending and a longer detection time are safe at once; the rest
            // waits for the peer's Final.
            self.tx_in_force = self.tx_in_force.min(tx);
            self.rx_in_force = self.rx_in_force.max(rx);
            // The Poll goes out now rather than at the next interval.
            self.next_tx = Some(now);
        } else {
            self.tx_in_force = tx;
            self.rx_in_force = rx;
        }
    }

    fn received(&mut self, p: Packet, now: Instant, out: &mut Vec<Output>) {
        // RFC 5880 §6.8.6, the checks a session makes.
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            return;
        }
        if p.your_discriminator == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return;
        }
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_demand = p.demand;
        self.remote_min_rx = p.required_min_rx;
        self.remote_min_tx = p.desired_min_tx;
        self.remote_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.polling = false;
            (self.tx_in_force, self.rx_in_force) = self.advertised;
        }
        if self.state == State::AdminDown {
            return;
        }
        let first = !std::mem::replace(&mut self.heard, true);
        if first && self.next_tx.is_none() {
            // A passive session starts sending once it has heard the peer.
            self.next_tx = Some(now);
        }
        self.detect_at = Some(now + self.detection_time());
        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) => {
                self.enter(State::Down, Diag::NeighborDown, now, out);
            }
            (State::Down, State::Down) => self.enter(State::Init, Diag::None, now, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.enter(State::Up, Diag::None, now, out);
            }
            (State::Up, State::Down) => self.enter(State::Down, Diag::NeighborDown, now, out),
            _ => {}
        }
        if p.poll {
            // A Final goes out at once, whatever the transmit timer says.
            out.push(Output::Send(Packet {
                final_: true,
                ..self.packet(false)
            }));
        }
        // A peer that now wants packets sooner (a shorter Required Min RX, often in the
        // Poll that ends its slow start) must not wait out the interval scheduled before:
        // its detection time is already the short one.
        if let (Some(interval), Some(at)) = (self.transmit_interval(), self.next_tx)
            && at > now + interval
        {
            self.next_tx = Some(now + self.jittered(interval));
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.detect_at) {
            self.detect_at = None;
            self.remote_discr = 0;
            if matches!(self.state, State::Init | State::Up) {
                self.enter(State::Down, Diag::TimeExpired, now, out);
            }
        }
        if due(self.next_tx) {
            self.next_tx = None;
            self.send_periodic(now, out);
        }
    }

    /// Sends the periodic packet (when one is due at all) and schedules the next.
    fn send_periodic(&mut self, now: Instant, out: &mut Vec<Output>) {
        // RFC 5880 §6.8.7: a passive session never speaks first.
        if self.config.passive && self.remote_discr == 0 && !self.heard {
            return;
        }
        let Some(interval) = self.transmit_interval() else {
            // Asked for nothing: check again at the slow rate, in case that changes.
            self.next_tx = Some(now + SLOW);
            return;
        };
        out.push(Output::Send(self.packet(self.polling)));
        self.next_tx = Some(now + self.jittered(interval));
    }

    /// `interval` less 0–25 % (to 75–90 % with a multiplier of 1), RFC 5880 §6.8.7.
    fn jittered(&mut self, interval: Duration) -> Duration {
        let r = (self.random)().clamp(0.0, 1.0);
        let factor = match self.config.detect_mult {
            1 => 0.75 + 0.15 * (1.0 - r),
            _ => 1.0 - 0.25 * r,
        };
        interval.mul_f64(factor)
    }

    fn enter(&mut self, state: State, diag: Diag, now: Instant, out: &mut Vec<Output>) {
        if state == self.state {
            return;
        }
        self.state = state;
        self.diag = diag;
        if state == State::Down {
            // A Poll of the Up session has no meaning any more.
            self.polling = false;
        }
        out.push(Output::Changed(Change {
            state,
            diag,
            remote: self.remote_state,
        }));
        self.intervals_changed(now);
        // A new state is told at once (the handshake needs no wait for the next interval).
        if state != State::AdminDown {
            self.next_tx = Some(now);
        }
    }

    /// Our packet as of now.
    fn packet(&self, poll: bool) -> Packet {
        Packet {
            diag: self.diag,
            state: self.state,
            poll,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: self.advertised.0,
            required_min_rx: self.advertised.1,
            required_min_echo_rx: Duration::ZERO,
        }
    }
}
