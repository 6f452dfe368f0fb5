//! Which speakers are alive, learned from the speakers themselves: SWIM gossip (foca,
//! sans-IO) over UDP, sealed with an optional shared key. Independent of the API server
//! and fast: with the default profile a dead node is declared down in about 150–250 ms.
//!
//! ```text
//!   UDP socket ──open──► foca ◄── timers (heap, delivered in order)
//!        ▲                 │ notifications ──► live set (watch channel) ──► planner
//!        └──seal── to_send ┘
//!   seeds (Node addresses from the API) ──► announce to those not yet members
//! ```
//!
//! A restarted speaker joins with a higher generation (its start time), so the
//! cluster takes it at once instead of ignoring the identity it declared down.
//!
//! Speaker death is not node death. When gossip declares a member down, a TCP connect
//! to its gossip port tells which: a live kernel refuses at once (the speaker process is
//! gone but the node, its ARP caches in clients and its steering rules still carry the
//! traffic), a dead node or link does not answer. A refusing node stays in the live set
//! for a grace period (re-probed meanwhile), so a restarted speaker takes its addresses
//! back without any flap; a silent one is dropped at once. A speaker stopping on purpose
//! says goodbye first, so its addresses move at once.

mod liveness;
mod seal;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PeriodicParams, PostcardCodec, Timer};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use liveness::Liveness;
pub use seal::Sealer;

/// A speaker's identity in the gossip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its node's name.
    pub name: String,
    /// Where its gossip socket listens.
    pub addr: SocketAddr,
    /// Larger on every start and every rejoin.
    pub generation: u64,
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation + 1,
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// Failure-detection timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Death noticed in about 150–250 ms on a LAN.
    Default,
    /// Death noticed in about 30–60 ms; needs an idle, low-latency LAN.
    Fast,
    /// foca's LAN defaults (seconds): for busy or lossy networks.
    Relaxed,
}

impl Profile {
    /// The foca configuration for `members` expected members.
    pub fn config(self, members: u32) -> Config {
        let lan = Config::new_lan(NonZeroU32::new(members.max(1)).expect("at least one"));
        let every = |ms: u64, n: usize| {
            Some(PeriodicParams {
                frequency: Duration::from_millis(ms),
                num_members: NonZeroUsize::new(n).expect("positive"),
            })
        };
        let (period, rtt, suspect, gossip) = match self {
            Profile::Default => (60, 20, 60, 30),
            Profile::Fast => (10, 3, 10, 8),
            Profile::Relaxed => {
                return Config {
                    notify_down_members: true,
                    remove_down_after: Some(Duration::from_secs(600)),
                    ..lan
                };
            }
        };
        Config {
            probe_period: Duration::from_millis(period),
            probe_rtt: Duration::from_millis(rtt),
            suspect_to_down_after: Duration::from_millis(suspect),
            periodic_gossip: every(gossip, 3),
            periodic_announce: every(5_000, 1),
            periodic_announce_to_down_members: every(1_000, 2),
            // Down members are remembered so a returning one is told to rejoin.
            notify_down_members: true,
            remove_down_after: Some(Duration::from_secs(600)),
            max_packet_size: NonZeroUsize::new(1300).expect("positive"),
            // foca derives 1 from a two-node cluster: one lost refutation would then
            // turn a suspicion into a death within the short suspicion window.
            max_transmissions: lan.max_transmissions.max(NonZeroU8::new(3).expect("positive")),
            ..lan
        }
    }

    /// How long a member declared down gets to prove its node alive (kernel refusal). A
    /// LAN kernel refuses within a millisecond; the wait is on the failover path.
    pub fn probe_timeout(self) -> Duration {
        Duration::from_millis(match self {
            Profile::Default => 20,
            Profile::Fast => 4,
            Profile::Relaxed => 200,
        })
    }
}

/// How to run the gossip.
#[derive(Clone, Debug)]
pub struct Options {
    /// This node's name.
    pub name: String,
    /// The address peers reach this speaker at (its node address and the port).
    pub advertise: SocketAddr,
    /// The address to bind.
    pub bind: SocketAddr,
    /// Timing.
    pub profile: Profile,
    /// Packet protection.
    pub sealer: Sealer,
    /// How long a node whose speaker died but whose kernel answers keeps its addresses.
    pub grace: Duration,
    /// How long to wait for the kernel's answer when probing a member declared down.
    pub probe_timeout: Duration,
}

/// Counters for the metrics and the traffic benchmark.
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets sent.
    pub sent_packets: AtomicU64,
    /// Bytes sent (UDP payload).
    pub sent_bytes: AtomicU64,
    /// Packets received and accepted.
    pub received_packets: AtomicU64,
    /// Packets received that did not open (wrong key, garbage) or foca refused.
    pub rejected_packets: AtomicU64,
    /// Members declared down.
    pub failures: AtomicU64,
}

/// The running gossip.
#[derive(Debug)]
pub struct Membership {
    /// Names of the live speakers, this one included.
    pub live: watch::Receiver<BTreeSet<String>>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// The address the others reach this speaker at.
    pub advertise: SocketAddr,
    commands: mpsc::Sender<Command>,
}

enum Command {
    Seeds(Vec<SocketAddr>),
    Leave(tokio::sync::oneshot::Sender<()>),
}

/// Sent (sealed) to every member by a speaker stopping on purpose; never valid foca data.
const GOODBYE: &[u8] = b"\xffferrolb-goodbye:";

/// What a probe of a member declared down found.
struct Probed {
    member: Member,
    /// The kernel refused the connection: the node lives.
    kernel_alive: bool,
}

/// Probes a member's node: a TCP connect to its gossip port (nobody listens there).
async fn probe(member: Member, timeout: Duration, results: mpsc::Sender<Probed>) {
    let kernel_alive = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(member.addr)).await
    {
        Ok(Err(err)) => err.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(Ok(_)) => true,
        Err(_) => false,
    };
    let _ = results.send(Probed { member, kernel_alive }).await;
}

impl Membership {
    /// Binds the socket and starts the gossip task.
    pub async fn start(options: Options) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(options.bind).await?;
        let (live_tx, live) = watch::channel(BTreeSet::from([options.name.clone()]));
        let (commands, rx) = mpsc::channel(16);
        let counters = Arc::new(Counters::default());
        let advertise = options.advertise;
        tokio::spawn(drive(options, socket, live_tx, rx, counters.clone()));
        Ok(Self {
            live,
            counters,
            advertise,
            commands,
        })
    }

    /// Sets the addresses of the other speakers to join (from the Nodes).
    pub async fn seeds(&self, seeds: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::Seeds(seeds)).await;
    }

    /// Tells the others this speaker leaves, so they take over at once.
    pub async fn leave(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(500), rx).await;
        }
    }
}

/// How often seeds that are not members yet are announced to.
const SEED_RETRY: Duration = Duration::from_secs(1);

async fn drive(
    options: Options,
    socket: UdpSocket,
    live: watch::Sender<BTreeSet<String>>,
    mut commands: mpsc::Receiver<Command>,
    counters: Arc<Counters>,
) {
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let me = Member {
        name: options.name.clone(),
        addr: options.advertise,
        generation,
    };
    let config = options.profile.config(2);
    let mut buf = vec![0u8; 2048];
    let rng: StdRng = rand::make_rng();
    let mut foca = Foca::new(me, config, rng, PostcardCodec);
    let mut runtime = AccumulatingRuntime::new();
    let mut timers: BinaryHeap<Reverse<(Instant, Timer<Member>)>> = BinaryHeap::new();
    let mut seeds: Vec<SocketAddr> = Vec::new();
    let mut next_seeding = Instant::now();
    let mut leaving: Option<tokio::sync::oneshot::Sender<()>> = None;
    let (probed_tx, mut probed) = mpsc::channel::<Probed>(16);
    let mut liveness = Liveness::new(options.grace);
    let probe = |member: Member| {
        tokio::spawn(probe(member, options.probe_timeout, probed_tx.clone()));
    };
    loop {
        let next_timer = timers.peek().map(|Reverse((at, _))| *at);
        let mut wake = next_timer.map_or(next_seeding, |t| t.min(next_seeding));
        if let Some(at) = liveness.next_wake() {
            wake = wake.min(Instant::from_std(at));
        }
        let mut changed = false;
        let result = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, _)) => match options.sealer.open(&buf[..n]) {
                    Some(data) if data.starts_with(GOODBYE) => {
                        let name = String::from_utf8_lossy(&data[GOODBYE.len()..]).into_owned();
                        tracing::info!(member = %name, "speaker leaving");
                        changed |= liveness.goodbye(&name);
                        Ok(())
                    }
                    Some(data) => {
                        counters.received_packets.fetch_add(1, Ordering::Relaxed);
                        foca.handle_data(&data, &mut runtime)
                    }
                    None => {
                        counters.rejected_packets.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                },
                Err(err) => {
                    tracing::debug!(error = %err, "gossip receive failed");
                    Ok(())
                }
            },
            Some(result) = probed.recv() => {
                changed |= liveness.probed(&result.member.name, result.kernel_alive);
                Ok(())
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if next_timer.is_some_and(|t| t <= now) {
                    let Reverse((_, timer)) = timers.pop().expect("peeked");
                    foca.handle_timer(timer, &mut runtime)
                } else if liveness.next_wake().is_some_and(|at| at <= now.into_std()) {
                    let (ended, probes) = liveness.tick(now.into_std());
                    changed |= ended;
                    probes.into_iter().for_each(probe);
                    Ok(())
                } else {
                    next_seeding = Instant::now() + SEED_RETRY;
                    announce_to_strangers(&mut foca, &seeds, &mut runtime);
                    Ok(())
                }
            }
            command = commands.recv() => match command {
                Some(Command::Seeds(list)) => {
                    // Dissemination (retransmissions) scales with the cluster's size.
                    let size = u32::try_from(list.len() + 1).unwrap_or(u32::MAX);
                    if let Err(err) = foca.set_config(options.profile.config(size)) {
                        tracing::debug!(error = %err, "gossip configuration kept");
                    }
                    seeds = list;
                    announce_to_strangers(&mut foca, &seeds, &mut runtime);
                    Ok(())
                }
                Some(Command::Leave(done)) => {
                    let mut goodbye = GOODBYE.to_vec();
                    goodbye.extend_from_slice(options.name.as_bytes());
                    let packet = options.sealer.seal(&goodbye);
                    for member in foca.iter_members() {
                        let _ = socket.send_to(&packet, member.id().addr).await;
                    }
                    leaving = Some(done);
                    foca.leave_cluster(&mut runtime)
                }
                None => return,
            },
        };
        if let Err(err) = result {
            counters.rejected_packets.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %err, "gossip input refused");
        }
        while let Some((to, data)) = runtime.to_send() {
            let packet = options.sealer.seal(&data);
            if socket.send_to(&packet, to.addr).await.is_ok() {
                counters.sent_packets.fetch_add(1, Ordering::Relaxed);
                counters
                    .sent_bytes
                    .fetch_add(packet.len() as u64, Ordering::Relaxed);
            }
        }
        if let Some(done) = leaving.take() {
            let _ = done.send(());
            return;
        }
        let now = Instant::now();
        while let Some((after, timer)) = runtime.to_schedule() {
            timers.push(Reverse((now + after, timer)));
        }
        while let Some(notification) = runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(m) => {
                    tracing::info!(member = %m.name, addr = %m.addr, "speaker joined");
                    changed |= liveness.up(&m.name);
                }
                OwnedNotification::MemberDown(m) => {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(member = %m.name, addr = %m.addr, "speaker down");
                    // Kept live until the probe tells the node is gone too.
                    if let Some(m) = liveness.down(m, Instant::now().into_std()) {
                        probe(m);
                    }
                    changed = true;
                }
                OwnedNotification::Rename(_, m) | OwnedNotification::Rejoin(m) => {
                    tracing::info!(member = %m.name, generation = m.generation, "speaker rejoined");
                    changed |= liveness.up(&m.name);
                }
                other => tracing::debug!(?other, "gossip"),
            }
        }
        if changed {
            let names = liveness.live(foca.iter_members().map(|m| m.id().name.as_str()), &options.name);
            live.send_if_modified(|old| std::mem::replace(old, names.clone()) != names);
        }
    }
}

/// Announces this speaker to every seed address that is not a member yet.
fn announce_to_strangers(
    foca: &mut Foca<Member, PostcardCodec, StdRng, foca::NoCustomBroadcast>,
    seeds: &[SocketAddr],
    runtime: &mut AccumulatingRuntime<Member>,
) {
    let known: BTreeSet<SocketAddr> = foca
        .iter_members()
        .map(|m| m.id().addr)
        .chain([foca.identity().addr])
        .collect();
    for addr in seeds.iter().filter(|a| !known.contains(a)) {
        let stranger = Member {
            name: String::new(),
            addr: *addr,
            generation: 0,
        };
        if let Err(err) = foca.announce(stranger, &mut *runtime) {
            tracing::debug!(%addr, error = %err, "announce failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback address of its own per member and test, so tests may run in parallel.
    fn addr(test: u8, member: u8) -> SocketAddr {
        SocketAddr::from(([127, 31, test, member], 47946))
    }

    async fn member(test: u8, n: u8, key: Option<&[u8]>, grace: Duration) -> Membership {
        member_at(addr(test, n), n, key, grace).await
    }

    async fn member_at(at: SocketAddr, n: u8, key: Option<&[u8]>, grace: Duration) -> Membership {
        Membership::start(Options {
            name: format!("m{n}"),
            advertise: at,
            bind: at,
            profile: Profile::Default,
            sealer: Sealer::new(key),
            grace,
            probe_timeout: Duration::from_millis(200),
        })
        .await
        .expect("loopback bind")
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Waits (generously: these machines are shared) until `m` sees exactly `want`.
    async fn until_live(m: &mut Membership, want: &[&str]) {
        let want = names(want);
        let found = tokio::time::timeout(Duration::from_secs(20), m.live.wait_for(|live| *live == want))
            .await
            .is_ok();
        assert!(found, "live set stayed {:?}, wanted {want:?}", *m.live.borrow());
    }

    async fn cluster(test: u8, size: u8, key: Option<&[u8]>, grace: Duration) -> Vec<Membership> {
        let mut all = Vec::new();
        for n in 1..=size {
            all.push(member(test, n, key, grace).await);
        }
        let seeds: Vec<SocketAddr> = (1..=size).map(|n| addr(test, n)).collect();
        for m in &all {
            m.seeds(seeds.clone()).await;
        }
        all
    }

    #[tokio::test]
    async fn seeds_join_and_a_goodbye_removes_at_once() {
        let mut all = cluster(1, 3, Some(b"k"), Duration::from_secs(60)).await;
        for m in &mut all {
            until_live(m, &["m1", "m2", "m3"]).await;
        }
        // A goodbye needs no grace, even though m3's kernel still answers.
        all.pop().expect("three").leave().await;
        for m in &mut all {
            until_live(m, &["m1", "m2"]).await;
        }
        assert!(all[0].counters.sent_bytes.load(Ordering::Relaxed) > 0);
    }

    #[tokio::test]
    async fn a_dead_speaker_on_a_live_node_lingers_for_the_grace() {
        let mut all = cluster(2, 2, None, Duration::from_secs(600)).await;
        for m in &mut all {
            until_live(m, &["m1", "m2"]).await;
        }
        // Dropped without a goodbye: the gossip declares it down, but its "node" (the
        // loopback kernel) refuses the probe, so it stays live.
        drop(all.pop());
        let m1 = &mut all[0];
        tokio::time::timeout(Duration::from_secs(20), async {
            while m1.counters.failures.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("m2 declared down");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*m1.live.borrow(), names(&["m1", "m2"]));
        // It comes back (a restart: a higher generation) and is simply live again.
        let mut back = member(2, 2, None, Duration::from_secs(600)).await;
        back.seeds(vec![addr(2, 1)]).await;
        until_live(&mut back, &["m1", "m2"]).await;
    }

    #[tokio::test]
    async fn without_grace_a_dead_speaker_leaves_the_live_set() {
        let mut all = cluster(3, 2, None, Duration::ZERO).await;
        for m in &mut all {
            until_live(m, &["m1", "m2"]).await;
        }
        drop(all.pop());
        until_live(&mut all[0], &["m1"]).await;
    }

    #[tokio::test]
    async fn a_wrong_key_never_joins() {
        let mut keyed = member(4, 1, Some(b"right"), Duration::ZERO).await;
        let stranger = member(4, 2, Some(b"wrong"), Duration::ZERO).await;
        stranger.seeds(vec![addr(4, 1)]).await;
        keyed.seeds(vec![addr(4, 2)]).await;
        tokio::time::timeout(Duration::from_secs(20), async {
            while keyed.counters.rejected_packets.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the stranger's packets arrive and are rejected");
        until_live(&mut keyed, &["m1"]).await;
    }

    /// IPv6-only nodes gossip over IPv6 (here `::1`, one port per member).
    #[tokio::test]
    async fn members_join_over_ipv6() {
        let at = |n: u8| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 47960 + u16::from(n)));
        let mut all = Vec::new();
        for n in 1..=2 {
            all.push(member_at(at(n), n, Some(b"k"), Duration::from_secs(60)).await);
        }
        for m in &all {
            m.seeds(vec![at(1), at(2)]).await;
        }
        for m in &mut all {
            until_live(m, &["m1", "m2"]).await;
        }
        all.pop().expect("two").leave().await;
        until_live(&mut all[0], &["m1"]).await;
    }
}
