//! Membership traffic per node: N speakers' gossip in one process on loopback (each on
//! its own 127.32.x.y address), sealed with a key as in production. Prints, per profile
//! and cluster size, the packets and bytes each node sends per second once the cluster
//! has converged, and how many members were wrongly declared down meanwhile.
//!
//! `cargo bench -p ferrolb-speaker --bench gossip [-- SIZES…]` (default 10 100).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferrolb_speaker::l2::membership::{Membership, Options, Profile, Sealer};

const MEASURE: Duration = Duration::from_secs(10);

fn addr(run: u8, n: usize) -> SocketAddr {
    SocketAddr::from(([127, 32, run, n as u8 + 1], 7946))
}

struct Totals {
    packets: u64,
    bytes: u64,
    failures: u64,
}

fn totals(all: &[Membership]) -> Totals {
    let sum = |f: fn(&Membership) -> u64| all.iter().map(f).sum();
    Totals {
        packets: sum(|m| m.counters.sent_packets.load(Ordering::Relaxed)),
        bytes: sum(|m| m.counters.sent_bytes.load(Ordering::Relaxed)),
        failures: sum(|m| m.counters.failures.load(Ordering::Relaxed)),
    }
}

async fn measure(run: u8, size: usize, profile: Profile) {
    let mut all = Vec::new();
    for n in 0..size {
        let at = addr(run, n);
        all.push(
            Membership::start(Options {
                name: format!("node-{n}"),
                advertise: at,
                bind: at,
                profile,
                sealer: Sealer::new(Some(b"bench key")),
                grace: Duration::from_secs(10),
                probe_timeout: profile.probe_timeout(),
            })
            .await
            .expect("loopback bind"),
        );
    }
    let seeds: Vec<SocketAddr> = (0..size).map(|n| addr(run, n)).collect();
    let started = Instant::now();
    for m in &all {
        m.seeds(seeds.clone()).await;
    }
    let everyone: BTreeSet<String> = (0..size).map(|n| format!("node-{n}")).collect();
    for m in &mut all {
        let converged = tokio::time::timeout(Duration::from_secs(60), m.live.wait_for(|l| *l == everyone));
        converged.await.expect("cluster converges").expect("gossip alive");
    }
    let converged_after = started.elapsed();
    // Let the join's burst of updates settle before measuring the steady state.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = totals(&all);
    tokio::time::sleep(MEASURE).await;
    let after = totals(&all);
    let per_node_s = |a: u64, b: u64| (b - a) as f64 / size as f64 / MEASURE.as_secs_f64();
    println!(
        "gossip profile={profile:?} members={size} converged_ms={} packets_per_node_s={:.1} bytes_per_node_s={:.0} false_downs={}",
        converged_after.as_millis(),
        per_node_s(before.packets, after.packets),
        per_node_s(before.bytes, after.bytes),
        after.failures - before.failures,
    );
    for m in &all {
        m.leave().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .filter(|&n| (2..=250).contains(&n))
        .collect();
    let sizes = if sizes.is_empty() { vec![10, 100] } else { sizes };
    let mut run = 0u8;
    for profile in [Profile::Default, Profile::Fast, Profile::Relaxed] {
        for &size in &sizes {
            run += 1;
            measure(run, size, profile).await;
        }
    }
}
