//! A speaker whose API server is unreachable from the start still stops promptly on
//! request: the stop signal is watched while it waits for its first lists (it once ran
//! until SIGKILL). Needs no root: `--membership api` opens no gossip socket,
//! `--dataplane none` touches no nftables or `lo`, and `--exclude-interfaces '*'` (and
//! an empty plan) opens no raw socket.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_speaker::metrics::Metrics;
use ferrolb_speaker::run::{self, Options};
use tokio::sync::watch;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "current_thread")]
async fn run_returns_on_stop_while_the_api_is_unreachable() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let speaker = tokio::spawn(run::run(
        client,
        Options::api_only("n1", "ferrolb-system"),
        Metrics::new(),
        stop,
    ));
    // Long enough for every watch to have failed and be backing off.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!speaker.is_finished(), "the speaker gave up on its own");
    let asked = Instant::now();
    stop_tx.send_replace(true);
    let result = tokio::time::timeout(Duration::from_secs(3), speaker)
        .await
        .expect("the speaker did not stop within 3 s of the stop signal");
    result.unwrap().expect("a stopped speaker returns Ok");
    eprintln!("stopped in {:?}", asked.elapsed());
}

/// Writes a kubeconfig for `server` into a temporary file.
fn kubeconfig(server: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ferrolb-stop-test-{}.yaml", std::process::id()));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\n\
         users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n\
         current-context: c\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_binary_exits_on_sigterm_and_sigint_while_the_api_is_unreachable() {
    let config = kubeconfig(&format!("https://127.0.0.1:{}", closed_port()));
    for signal in ["TERM", "INT"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb-speaker"))
            .args(["--node-name", "n1", "--membership", "api", "--dataplane", "none"])
            .args(["--exclude-interfaces", "*", "--metrics-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", &config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // Every watch fails several times meanwhile (they back off from 0.8 s).
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the speaker exited on its own"
        );
        let asked = Instant::now();
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if asked.elapsed() > Duration::from_secs(3) {
                child.kill().unwrap();
                child.wait().unwrap();
                let log = lines.join().unwrap().join("\n");
                panic!("SIG{signal}: still running 3 s later; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = lines.join().unwrap();
        assert!(
            status.success(),
            "SIG{signal}: exit {status}; log:\n{}",
            log.join("\n")
        );
        // Repeated failures are summarised: a line per watch (ten of them) and writer at
        // most, not one per retry (it was ~6 a second); two lines at the start, one at
        // the stop.
        assert!(
            log.len() <= 14,
            "SIG{signal}: {} log lines in 3 s:\n{}",
            log.len(),
            log.join("\n")
        );
    }
    let _ = std::fs::remove_file(config);
}
