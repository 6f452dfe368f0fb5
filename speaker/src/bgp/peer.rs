//! One BGP peer, carried out: a task that dials, reads and writes, and feeds the
//! [`Session`] state machine and the [`AdjRibOut`] of `ferrolb-bgp`. The routes to
//! announce come in on a watch channel (the latest set wins); the session's state goes
//! out through its [`Reporter`].
//!
//! ```text
//!   wanted routes (watch) ─┐                     ┌─► TCP write (OPEN, KEEPALIVE, UPDATE, …)
//!   TCP read ─► frames ────┼─► Session::handle ──┤
//!   deadline / stop ───────┘    AdjRibOut::sync  └─► report (shared watch)
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_bgp::message::{Family, Message};
use ferrolb_bgp::session::{Down, Input, Negotiated, Output, Session, State, Stop};
use ferrolb_bgp::update::{AdjRibOut, Terms, family_of};
use ferrolb_bgp::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use super::report::Reporter;
pub use crate::engine::{PeerSpec, Wanted};

/// A running peer task.
pub struct Peer {
    /// The routes to announce; send a new set to change them.
    pub wanted: watch::Sender<Wanted>,
    stop: mpsc::Sender<Stop>,
    task: tokio::task::JoinHandle<bool>,
}

impl Peer {
    /// Starts the task, reporting through `reporter`: it dials at once. `restarted`:
    /// the speaker has just started (its OPENs say so while graceful restart applies).
    /// `bfd` counts the failures the BFD session beside it finds: each one ends the
    /// session (Cease / BFD Down), which then starts again.
    pub fn start(
        spec: PeerSpec,
        wanted: Wanted,
        reporter: Reporter,
        restarted: bool,
        bfd: Option<watch::Receiver<u64>>,
    ) -> Self {
        let (wanted, wanted_rx) = watch::channel(wanted);
        let (stop, stop_rx) = mpsc::channel(1);
        let channels = Channels {
            wanted: wanted_rx,
            stop: stop_rx,
            bfd,
        };
        let task = tokio::spawn(run(spec, channels, reporter, restarted));
        Self { wanted, stop, task }
    }

    /// Stops the session as `how` says and waits for the task to end; `true` when the
    /// peer was left holding our routes for a graceful restart.
    pub async fn stop(self, how: Stop) -> bool {
        let _ = self.stop.send(how).await;
        // A task stuck writing to a router that stopped reading must not hold up the
        // speaker: it is given a moment, then aborted (the connection closes with it).
        let mut task = self.task;
        match tokio::time::timeout(STOP_WAIT, &mut task).await {
            Ok(kept) => kept.unwrap_or(false),
            Err(_) => {
                tracing::warn!("BGP session task did not stop in time: aborted");
                task.abort();
                // Gone for sure before a session of the same name starts again.
                let _ = task.await;
                false
            }
        }
    }
}

/// How long a stopping session task may take before it is aborted.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long one message may take to write before the connection counts as broken.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The connection and what has been read of it.
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

async fn dial(spec: &PeerSpec) -> std::io::Result<TcpStream> {
    let socket = match spec.address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(source) = spec.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    if let Some(password) = &spec.password {
        crate::host::tcp_md5::set(&socket, spec.address, password.0.as_bytes())?;
    }
    if spec.multihop {
        // Set before the SYN: a router checking the hop count (GTSM) sees it on every
        // segment.
        let raw = socket2::SockRef::from(&socket);
        match spec.address {
            SocketAddr::V4(_) => raw.set_ttl_v4(255)?,
            SocketAddr::V6(_) => raw.set_unicast_hops_v6(255)?,
        }
    }
    let stream = socket.connect(spec.address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The UPDATE terms of an Established session over `local`.
fn terms(spec: &PeerSpec, negotiated: &Negotiated, local: Option<SocketAddr>) -> Terms {
    let local = local.map(|a| a.ip());
    Terms {
        local_asn: spec.session.local_asn,
        internal: negotiated.internal,
        four_octet: negotiated.four_octet,
        next_hop_v4: match local {
            Some(IpAddr::V4(a)) => Some(a),
            _ => spec.node_v4,
        },
        next_hop_v6: match local {
            Some(IpAddr::V6(a)) if !a.is_unicast_link_local() => Some(a),
            _ => spec.node_v6,
        },
        families: negotiated.families.clone(),
    }
}

/// Families with routes in `wanted` that the session did not negotiate.
fn not_negotiated(wanted: &Wanted, terms: &Terms) -> BTreeSet<Family> {
    wanted
        .keys()
        .map(family_of)
        .filter(|f| !terms.families.contains(f))
        .collect()
}

/// What a peer task hears from the rest of the speaker.
struct Channels {
    wanted: watch::Receiver<Wanted>,
    stop: mpsc::Receiver<Stop>,
    bfd: Option<watch::Receiver<u64>>,
}

async fn run(spec: PeerSpec, channels: Channels, report: Reporter, restarted: bool) -> bool {
    let Channels {
        mut wanted,
        mut stop,
        mut bfd,
    } = channels;
    let peer = spec.address;
    let mut session = match restarted {
        true => Session::after_restart(spec.session.clone()),
        false => Session::new(spec.session.clone()),
    };
    // Set when stopping leaves the peer our routes (graceful restart): the answer.
    let mut kept = false;
    let mut rib = AdjRibOut::default();
    let mut rib_touched = false;
    let mut conn: Option<Connection> = None;
    let mut dialing: Option<std::pin::Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>> =
        None;
    let mut up: Option<Terms> = None;
    // The last dial's error, reported with the failure it causes (a dial that times out
    // has none).
    let mut dial_error: Option<String> = None;
    let mut inputs = vec![Input::Start];
    loop {
        // Feed what happened; carry out what the session says, which may itself fail
        // (a write error is a closed connection).
        while !inputs.is_empty() {
            let now = Instant::now();
            for input in std::mem::take(&mut inputs) {
                for output in session.handle(input, now) {
                    let mut to_send: Vec<Vec<u8>> = Vec::new();
                    match output {
                        Output::Connect => {
                            dial_error = None;
                            let spec = spec.clone();
                            dialing = Some(Box::pin(async move { dial(&spec).await }));
                        }
                        Output::Send(message) => {
                            if let Message::Notification(n) = &message {
                                report.update(|s| {
                                    *s.notifications_sent.entry(n.code).or_default() += 1;
                                    true
                                });
                            }
                            to_send.push(wire::encode(&message));
                        }
                        Output::Close => {
                            if let Some(mut c) = conn.take() {
                                let _ = c.stream.shutdown().await;
                            }
                            dialing = None;
                        }
                        Output::State(state) => {
                            tracing::debug!(%peer, ?state, "BGP session");
                            report.state(state);
                        }
                        Output::Up(negotiated) => {
                            let local = conn.as_ref().and_then(|c| c.stream.local_addr().ok());
                            let t = terms(&spec, &negotiated, local);
                            tracing::info!(%peer, asn = negotiated.peer_asn, families = ?negotiated.families, "BGP session established");
                            rib.clear();
                            rib_touched = true;
                            let set = wanted.borrow_and_update().clone();
                            to_send.extend(rib.sync(&set, &t));
                            let missing = not_negotiated(&set, &t);
                            report.update(|s| {
                                s.not_negotiated = missing;
                                true
                            });
                            up = Some(t);
                        }
                        Output::Down(why) => {
                            tracing::warn!(%peer, ?why, "BGP session down");
                            rib.clear();
                            rib_touched = true;
                            up = None;
                            let failed_dial = dial_error.take();
                            report.update(|s| {
                                if let Down::NotificationReceived(n) = &why {
                                    *s.notifications_received.entry(n.code).or_default() += 1;
                                }
                                let changed =
                                    s.last_down.as_ref() != Some(&why) || s.dial_error != failed_dial;
                                s.dial_error = failed_dial;
                                s.last_down = Some(why);
                                changed
                            });
                        }
                        Output::Refresh(family) => {
                            if let Some(t) = &up {
                                to_send.extend(rib.refresh(family, t));
                            }
                        }
                    }
                    if let Some(c) = &mut conn
                        && let Err(()) = write(c, &to_send, &report).await
                    {
                        inputs.push(Input::Closed);
                    }
                }
            }
        }
        // Counted again only when the Adj-RIB-Out may have changed (not at every
        // keepalive): after a sync, a clear, or a changed wanted set.
        if std::mem::take(&mut rib_touched) {
            let mut advertised: BTreeMap<Family, usize> = BTreeMap::new();
            for net in rib.sent().keys() {
                *advertised.entry(family_of(net)).or_default() += 1;
            }
            report.update(|s| {
                let changed = s.advertised != advertised;
                s.advertised = advertised;
                changed
            });
        }
        if session.state() == State::Idle {
            return kept;
        }
        let deadline = session.deadline().map(tokio::time::Instant::from_std);
        let event = tokio::select! {
            how = stop.recv() => Event::Stop(how.unwrap_or(Stop::Silent)),
            dialed = async { dialing.as_mut().expect("guarded").await }, if dialing.is_some() => Event::Dialed(dialed),
            read = async {
                let c = conn.as_mut().expect("guarded");
                c.stream.read_buf(&mut c.buf).await
            }, if conn.is_some() => Event::Read(read),
            _ = wanted.changed(), if up.is_some() => Event::Wanted,
            changed = async { bfd.as_mut().expect("guarded").changed().await }, if bfd.is_some() => match changed {
                Ok(()) => Event::BfdDown,
                // The BFD session is gone (it could not start): nothing more to hear.
                Err(_) => Event::BfdGone,
            },
            _ = sleep_until(deadline) => Event::Tick,
        };
        match event {
            Event::Stop(how) => {
                let how = session.resolve(how);
                // Leaving for good: the routes are withdrawn first, so a router that
                // keeps them after the Cease (as a graceful-restart helper may) still
                // stops sending traffic here.
                if matches!(how, Stop::Cease { .. })
                    && let (Some(t), Some(c)) = (&up, &mut conn)
                {
                    let _ = write(c, &rib.sync(&BTreeMap::new(), t), &report).await;
                    rib_touched = true;
                }
                kept = how == Stop::Silent
                    && up.is_some()
                    && session.negotiated().is_some_and(|t| t.graceful_restart);
                if kept {
                    tracing::info!(%peer, "closing for a graceful restart: the peer keeps our routes");
                }
                inputs.push(Input::Stop(how));
            }
            Event::Dialed(Ok(stream)) => {
                dialing = None;
                conn = Some(Connection {
                    stream,
                    buf: Vec::with_capacity(wire::MAX_LEN),
                });
                inputs.push(Input::Connected);
            }
            Event::Dialed(Err(err)) => {
                dialing = None;
                tracing::debug!(%peer, error = %err, "BGP dial failed");
                dial_error = Some(err.to_string());
                inputs.push(Input::ConnectFailed);
            }
            Event::Read(Ok(0) | Err(_)) => inputs.push(Input::Closed),
            Event::Read(Ok(_)) => {
                if let Some(c) = &mut conn {
                    inputs.extend(frames(&mut c.buf));
                }
            }
            Event::Wanted => {
                if let (Some(t), Some(c)) = (&up, &mut conn) {
                    let set = wanted.borrow_and_update().clone();
                    let missing = not_negotiated(&set, t);
                    report.update(|s| {
                        let changed = s.not_negotiated != missing;
                        s.not_negotiated = missing;
                        changed
                    });
                    if let Err(()) = write(c, &rib.sync(&set, t), &report).await {
                        inputs.push(Input::Closed);
                    }
                    rib_touched = true;
                }
            }
            Event::Tick => inputs.push(Input::Tick),
            Event::BfdDown => {
                tracing::warn!(%peer, "BFD says the peer is gone: ending the session");
                inputs.push(Input::BfdDown);
            }
            Event::BfdGone => bfd = None,
        }
    }
}

/// Writes `messages` in order, then counts the UPDATEs written in the report (once per
/// batch: a table is many UPDATEs); `Err` when the connection broke.
async fn write(c: &mut Connection, messages: &[Vec<u8>], report: &Reporter) -> Result<(), ()> {
    let mut written = Ok(());
    let mut updates = 0;
    for bytes in messages {
        // A router that stops reading is a broken connection, not a reason to stop
        // keeping time (the hold timer runs only between writes).
        if !matches!(
            tokio::time::timeout(WRITE_WAIT, c.stream.write_all(bytes)).await,
            Ok(Ok(()))
        ) {
            written = Err(());
            break;
        }
        updates += u64::from(bytes.get(18) == Some(&2));
    }
    if updates > 0 {
        report.update(|s| {
            s.updates += updates;
            true
        });
    }
    written
}

/// What woke the peer task.
enum Event {
    Stop(Stop),
    Dialed(std::io::Result<TcpStream>),
    Read(std::io::Result<usize>),
    Wanted,
    Tick,
    BfdDown,
    BfdGone,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Takes every whole message out of `buf` as session inputs; a malformed one ends the
/// reading (the session sends its NOTIFICATION and closes).
fn frames(buf: &mut Vec<u8>) -> Vec<Input> {
    let mut inputs = Vec::new();
    loop {
        match wire::message_len(buf) {
            Ok(Some(len)) if buf.len() >= len => {
                let message: Vec<u8> = buf.drain(..len).collect();
                match wire::decode(&message) {
                    Ok(m) => inputs.push(Input::Received(m)),
                    Err(n) => {
                        buf.clear();
                        inputs.push(Input::Malformed(n));
                        return inputs;
                    }
                }
            }
            Ok(_) => return inputs,
            Err(n) => {
                buf.clear();
                inputs.push(Input::Malformed(n));
                return inputs;
            }
        }
    }
}

#[cfg(test)]
mod tests;
