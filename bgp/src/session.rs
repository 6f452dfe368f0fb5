//! One BGP session to one peer (RFC 4271 §8), as a plain state machine: an [`Input`] and
//! the time in, [`Output`]s out. The speaker dials its peers and never listens, so
//! `Active` here means "waiting to dial again"; the first dial goes out at once, later
//! ones after a backoff.
//!
//! The receive-side hold timer is kept in every state that has a connection: a peer that
//! goes silent is noticed at the hold time (MetalLB's native speaker never notices).
//! Stopping chooses what the peer is told: a Cease with a reason (its routes go now), or
//! nothing at all (graceful restart: the peer keeps them stale).

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::message::{Family, GracefulRestart, Message, Notification, Open, code, fsm_error, open_error};

/// The hold time a session in OpenSent waits for the peer's OPEN (RFC 4271 §8: "a large
/// value", 4 minutes suggested).
const OPEN_WAIT: Duration = Duration::from_secs(240);

/// The session states (RFC 4271 §8.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not trying: stopped, or never started.
    Idle,
    /// Dialling.
    Connect,
    /// Waiting to dial again.
    Active,
    /// Connected, our OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Up: routes may be sent.
    Established,
}

/// Which AS the peer must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAsn {
    /// Exactly this one (`peerASN`).
    Fixed(u32),
    /// Our own (`dynamicASN: internal`).
    Internal,
    /// Any other than our own (`dynamicASN: external`).
    External,
}

/// How the session runs (a BGPPeer's fields, as they apply on one node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our AS (`myASN`).
    pub local_asn: u32,
    /// The peer's AS.
    pub peer_asn: PeerAsn,
    /// Our BGP Identifier (`routerID`, default the node's IPv4 address).
    pub router_id: Ipv4Addr,
    /// The hold time we propose (`holdTime`): zero, or at least 3 s.
    pub hold_time: Duration,
    /// Time between KEEPALIVEs (`keepaliveTime`); `None`: a third of the negotiated hold time.
    pub keepalive_time: Option<Duration>,
    /// Time between dials (`connectTime`); `None`: 1 s doubling up to 60 s.
    pub connect_time: Option<Duration>,
    /// How long a dial may take before it is abandoned and retried.
    pub connect_timeout: Duration,
    /// The families we advertise.
    pub families: BTreeSet<Family>,
    /// Graceful restart (`enableGracefulRestart`): the restart time we ask the peer to
    /// keep our routes for; `None`: not offered.
    pub graceful_restart: Option<Duration>,
}

/// Why a session is stopped, and so what the peer is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A Cease (subcode from [`crate::message::cease`]) with a shutdown communication:
    /// the peer drops our routes now.
    Cease {
        /// The Cease subcode.
        subcode: u8,
        /// Why, for the peer's operator (RFC 9003).
        reason: String,
    },
    /// Coming back soon (a planned restart): with graceful restart negotiated, close the
    /// connection without a NOTIFICATION, so the peer keeps our routes stale until we
    /// are back; without, a Cease / Administrative Shutdown with this reason.
    Restart {
        /// Why, for the peer's operator, should it come to a Cease.
        reason: String,
    },
    /// Close the connection without a NOTIFICATION: a peer helping with graceful
    /// restart keeps our routes stale until we are back.
    Silent,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start trying (configured, or started again).
    Start,
    /// Stop, telling the peer as said.
    Stop(Stop),
    /// The dial succeeded.
    Connected,
    /// The dial failed (refused, unreachable, timed out in the kernel).
    ConnectFailed,
    /// The connection closed or broke.
    Closed,
    /// A whole message arrived.
    Received(Message),
    /// The bytes that arrived are not a valid message: this NOTIFICATION says why.
    Malformed(Notification),
    /// Time passed: the timers due at `now` fire.
    Tick,
    /// BFD says the peer is gone (RFC 9384: Cease / BFD Down, then try again).
    BfdDown,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Dial the peer.
    Connect,
    /// Send a message.
    Send(Message),
    /// Close the connection (after what was sent before).
    Close,
    /// The session moved to another state.
    State(State),
    /// The session is Established with these terms: send the routes.
    Up(Negotiated),
    /// The session left Established, or a try failed: why.
    Down(Down),
    /// The peer asks for our routes of a family again (ROUTE-REFRESH).
    Refresh(Family),
}

/// The terms both sides agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_asn: u32,
    /// The peer's BGP Identifier.
    pub peer_id: Ipv4Addr,
    /// Hold time (zero: none).
    pub hold_time: Duration,
    /// Time between our KEEPALIVEs (zero: none).
    pub keepalive: Duration,
    /// Families both sides advertise.
    pub families: BTreeSet<Family>,
    /// Both sides use 4-octet AS numbers.
    pub four_octet: bool,
    /// The peer is in our AS.
    pub internal: bool,
    /// Both sides sent the graceful restart capability: the peer keeps our routes
    /// through a restart (we offer forwarding state for every family we carry).
    pub graceful_restart: bool,
    /// Both sides set the N bit (RFC 8538): only a Cease / Hard Reset flushes our
    /// routes; any other NOTIFICATION keeps them as a restart does.
    pub hard_reset: bool,
}

/// Why a session went down or a try failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Down {
    /// The dial failed or timed out.
    ConnectFailed,
    /// The connection closed or broke.
    ConnectionLost,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent this NOTIFICATION (the peer broke a rule, or its hold timer expired).
    NotificationSent(Notification),
    /// Stopped on purpose.
    Stopped,
}

/// One session.
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: State,
    /// When to dial (Active) or when a dial has taken too long (Connect).
    connect_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// The next wait between dials.
    backoff: Duration,
    negotiated: Option<Negotiated>,
    /// Set the Restart State bit in our OPENs (a new process, until its first
    /// Established session).
    restarting: bool,
}

/// The first wait between dials without `connectTime`, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

impl Session {
    /// A session, Idle until [`Input::Start`].
    pub fn new(config: Config) -> Self {
        let backoff = config.connect_time.unwrap_or(BACKOFF.0);
        Self {
            config,
            state: State::Idle,
            connect_at: None,
            hold_at: None,
            keepalive_at: None,
            backoff,
            negotiated: None,
            restarting: false,
        }
    }

    /// A session of a speaker that has just (re)started: with graceful restart offered,
    /// its OPENs set the Restart State bit until it is first Established, so a peer
    /// holding our routes as stale takes the new ones without waiting for its own
    /// End-of-RIB.
    pub fn after_restart(config: Config) -> Self {
        Self {
            restarting: true,
            ..Self::new(config)
        }
    }

    /// What stopping as `stop` will tell the peer: a `Restart` becomes `Silent` when
    /// graceful restart was negotiated, else a Cease / Administrative Shutdown.
    pub fn resolve(&self, stop: Stop) -> Stop {
        match stop {
            Stop::Restart { .. } if self.negotiated.as_ref().is_some_and(|t| t.graceful_restart) => {
                Stop::Silent
            }
            Stop::Restart { reason } => Stop::Cease {
                subcode: crate::message::cease::ADMINISTRATIVE_SHUTDOWN,
                reason,
            },
            other => other,
        }
    }

    /// Its state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The terms, while Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// When the next timer is due (the shell then sends [`Input::Tick`]).
    pub fn deadline(&self) -> Option<Instant> {
        [self.connect_at, self.hold_at, self.keepalive_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Takes in what happened at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(now, &mut out),
            Input::Stop(stop) => self.stop(stop, &mut out),
            Input::Connected => self.connected(now, &mut out),
            Input::ConnectFailed if self.state == State::Connect => {
                self.fail(Down::ConnectFailed, None, now, &mut out);
            }
            Input::Closed if self.connected_state() => {
                self.fail(Down::ConnectionLost, None, now, &mut out);
            }
            Input::Received(message) if self.connected_state() => self.received(message, now, &mut out),
            Input::Malformed(notification) if self.connected_state() => {
                self.fail(
                    Down::NotificationSent(notification.clone()),
                    Some(notification),
                    now,
                    &mut out,
                );
            }
            Input::Tick => self.tick(now, &mut out),
            Input::BfdDown if self.connected_state() => {
                let n = Notification::new(code::CEASE, crate::message::cease::BFD_DOWN);
                self.fail(Down::NotificationSent(n.clone()), Some(n), now, &mut out);
            }
            Input::BfdDown => {}
            // A late report of a connection already given up.
            Input::ConnectFailed | Input::Closed | Input::Received(_) | Input::Malformed(_) => {}
        }
        out
    }

    fn connected_state(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state == State::Idle {
            self.dial(now, out);
        }
    }

    fn dial(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.connect_at = Some(now + self.config.connect_timeout);
        self.enter(State::Connect, out);
        out.push(Output::Connect);
    }

    fn stop(&mut self, stop: Stop, out: &mut Vec<Output>) {
        if self.state == State::Idle {
            return;
        }
        if self.connected_state() {
            if let Stop::Cease { subcode, reason } = self.resolve(stop) {
                let mut n = Notification::cease(subcode, &reason);
                // With the N bit, only a Hard Reset makes the peer drop our routes now.
                if self.negotiated.as_ref().is_some_and(|t| t.hard_reset) {
                    n = Notification::hard_reset(&n);
                }
                out.push(Output::Send(Message::Notification(n)));
            }
            out.push(Output::Close);
        } else if self.state == State::Connect {
            out.push(Output::Close);
        }
        self.reset_timers();
        self.negotiated = None;
        if self.connected_state() {
            out.push(Output::Down(Down::Stopped));
        }
        self.enter(State::Idle, out);
    }

    fn connected(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state != State::Connect {
            // A dial given up (timed out, stopped) that completed after all.
            out.push(Output::Close);
            return;
        }
        self.connect_at = None;
        self.hold_at = Some(now + OPEN_WAIT);
        out.push(Output::Send(Message::Open(self.open())));
        self.enter(State::OpenSent, out);
    }

    fn open(&self) -> Open {
        Open {
            version: 4,
            asn: self.config.local_asn,
            hold_time: u16::try_from(self.config.hold_time.as_secs()).unwrap_or(u16::MAX),
            router_id: self.config.router_id,
            families: Some(self.config.families.clone()),
            four_octet: true,
            route_refresh: true,
            graceful_restart: self.config.graceful_restart.map(|time| GracefulRestart {
                restarting: self.restarting,
                notification: true,
                restart_time: u16::try_from(time.as_secs())
                    .unwrap_or(u16::MAX)
                    .min(GracefulRestart::MAX_RESTART_TIME),
                // Forwarding goes on while the speaker restarts (kube-proxy or FerroLB's
                // nftables rules stay in place).
                families: self.config.families.iter().map(|f| (*f, true)).collect(),
            }),
        }
    }

    fn received(&mut self, message: Message, now: Instant, out: &mut Vec<Output>) {
        match (self.state, message) {
            (_, Message::Notification(n)) => {
                self.fail(Down::NotificationReceived(n), None, now, out);
            }
            (State::OpenSent, Message::Open(open)) => match self.negotiate(&open) {
                Ok(terms) => {
                    out.push(Output::Send(Message::Keepalive));
                    self.arm(&terms, now);
                    self.negotiated = Some(terms);
                    self.enter(State::OpenConfirm, out);
                }
                Err(n) => self.fail(Down::NotificationSent(n.clone()), Some(n), now, out),
            },
            (State::OpenConfirm, Message::Keepalive) => {
                let terms = self.negotiated.clone().expect("negotiated in OpenSent");
                self.restart_hold(now);
                // A working session: the next failure starts the backoff afresh.
                self.backoff = self.config.connect_time.unwrap_or(BACKOFF.0);
                self.restarting = false;
                self.enter(State::Established, out);
                out.push(Output::Up(terms));
            }
            (State::Established, Message::Keepalive | Message::Update) => self.restart_hold(now),
            (State::Established, Message::RouteRefresh(afi_safi)) => {
                self.restart_hold(now);
                // A family not negotiated is ignored (RFC 2918 §4).
                let negotiated =
                    |f: &Family| self.negotiated.as_ref().is_some_and(|t| t.families.contains(f));
                if let Some(family) = afi_safi.family().filter(negotiated) {
                    out.push(Output::Refresh(family));
                }
            }
            (state, _) => {
                let subcode = match state {
                    State::OpenSent => fsm_error::IN_OPEN_SENT,
                    State::OpenConfirm => fsm_error::IN_OPEN_CONFIRM,
                    _ => fsm_error::IN_ESTABLISHED,
                };
                let n = Notification::new(code::FSM, subcode);
                self.fail(Down::NotificationSent(n.clone()), Some(n), now, out);
            }
        }
    }

    /// Checks the peer's OPEN and agrees on the terms, or says what to answer.
    fn negotiate(&self, open: &Open) -> Result<Negotiated, Notification> {
        let error = |subcode| Notification::new(code::OPEN, subcode);
        if open.version != 4 {
            // The data: the highest version we support, as two octets.
            return Err(Notification {
                data: vec![0, 4],
                ..error(open_error::UNSUPPORTED_VERSION)
            });
        }
        let local = self.config.local_asn;
        let asn_ok = match self.config.peer_asn {
            PeerAsn::Fixed(asn) => open.asn == asn,
            PeerAsn::Internal => open.asn == local,
            PeerAsn::External => open.asn != local,
        };
        if !asn_ok {
            return Err(error(open_error::BAD_PEER_AS));
        }
        let internal = open.asn == local;
        if open.router_id.is_unspecified() || (internal && open.router_id == self.config.router_id) {
            return Err(error(open_error::BAD_BGP_IDENTIFIER));
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(error(open_error::UNACCEPTABLE_HOLD_TIME));
        }
        let hold_time = self
            .config
            .hold_time
            .min(Duration::from_secs(open.hold_time.into()));
        let keepalive = match (hold_time.is_zero(), self.config.keepalive_time) {
            (true, _) => Duration::ZERO,
            (false, Some(k)) => k.min(hold_time / 3).max(Duration::from_secs(1)),
            (false, None) => hold_time / 3,
        };
        Ok(Negotiated {
            peer_asn: open.asn,
            peer_id: open.router_id,
            hold_time,
            keepalive,
            families: self
                .config
                .families
                .intersection(&open.offered())
                .copied()
                .collect(),
            four_octet: open.four_octet,
            internal,
            graceful_restart: self.config.graceful_restart.is_some() && open.graceful_restart.is_some(),
            hard_reset: self.config.graceful_restart.is_some()
                && open.graceful_restart.as_ref().is_some_and(|g| g.notification),
        })
    }

    /// Arms the hold and keepalive timers of the agreed terms.
    fn arm(&mut self, terms: &Negotiated, now: Instant) {
        self.hold_at = (!terms.hold_time.is_zero()).then(|| now + terms.hold_time);
        self.keepalive_at = (!terms.keepalive.is_zero()).then(|| now + terms.keepalive);
    }

    fn restart_hold(&mut self, now: Instant) {
        if let Some(terms) = &self.negotiated
            && !terms.hold_time.is_zero()
        {
            self.hold_at = Some(now + terms.hold_time);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.hold_at) {
            let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
            self.fail(Down::NotificationSent(n.clone()), Some(n), now, out);
            return;
        }
        if due(self.keepalive_at) {
            out.push(Output::Send(Message::Keepalive));
            let every = self.negotiated.as_ref().map_or(Duration::ZERO, |t| t.keepalive);
            self.keepalive_at = Some(now + every);
        }
        if due(self.connect_at) {
            match self.state {
                State::Connect => self.fail(Down::ConnectFailed, None, now, out),
                State::Active => self.dial(now, out),
                _ => self.connect_at = None,
            }
        }
    }

    /// Gives up the connection (telling the peer `notification` first, if any), reports
    /// `why` and waits to dial again.
    fn fail(&mut self, why: Down, notification: Option<Notification>, now: Instant, out: &mut Vec<Output>) {
        if let Some(n) = notification {
            out.push(Output::Send(Message::Notification(n)));
        }
        out.push(Output::Close);
        self.reset_timers();
        self.negotiated = None;
        out.push(Output::Down(why));
        self.connect_at = Some(now + self.backoff);
        if self.config.connect_time.is_none() {
            self.backoff = (self.backoff * 2).min(BACKOFF.1);
        }
        self.enter(State::Active, out);
    }

    fn reset_timers(&mut self) {
        self.connect_at = None;
        self.hold_at = None;
        self.keepalive_at = None;
    }

    fn enter(&mut self, state: State, out: &mut Vec<Output>) {
        if self.state != state {
            self.state = state;
            out.push(Output::State(state));
        }
    }
}
