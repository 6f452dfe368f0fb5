//! Process plumbing shared by FerroLB's binaries: logging to stderr, SIGTERM/SIGINT,
//! the API client, errors on one line, duration flags, and the `/metrics`, `/healthz`,
//! `/readyz` endpoint.

pub mod duration;

pub use duration::{FlagDuration, deprecated_bare};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// What the endpoint serves.
pub trait Exporter: Send + Sync + 'static {
    /// The metrics in Prometheus text format.
    fn render(&self) -> String;
    /// Whether `/readyz` says ready.
    fn ready(&self) -> bool;
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the task is dropped.
pub async fn serve<E: Exporter>(addr: SocketAddr, exporter: Arc<E>) -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(e): State<Arc<E>>| async move { e.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(e): State<Arc<E>>| async move {
                if e.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(exporter);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// Logs to stderr (`RUST_LOG`, default `info`), with colours only on a terminal.
pub fn init_logging() {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    tracing_subscriber::fmt()
        .with_env_filter(filter(&spec))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The log filter for `RUST_LOG=spec`.
///
/// kube's HTTP layer logs every failed request at ERROR ("failed with error client
/// error (Connect)"), without saying what the request was for. Our callers get the same
/// error, log it with its context and summarise repeats; kube's line would add one per
/// retry while the API is away. It is silenced unless `spec` names a kube target.
fn filter(spec: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let filter = if spec.is_empty() {
        EnvFilter::new("info")
    } else {
        EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"))
    };
    if spec.contains("kube") {
        filter
    } else {
        filter.add_directive(KUBE_REQUEST_ERRORS.parse().expect("a valid directive"))
    }
}

const KUBE_REQUEST_ERRORS: &str = "kube_client::client::builder=off";

/// Why there is no API client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither a kubeconfig nor the pod's in-cluster configuration could be loaded.
    #[error("no usable configuration: kubeconfig: {kubeconfig}; in-cluster: {in_cluster}")]
    NoConfig { kubeconfig: String, in_cluster: String },
    /// The configuration was loaded but makes no client.
    #[error(transparent)]
    Client(#[from] kube::Error),
}

/// A client for the API server, configured as kube's `Client::try_default` does (the
/// kubeconfig, else the pod's in-cluster configuration), with an error that says once
/// why neither worked.
pub async fn kube_client() -> Result<kube::Client, ClientError> {
    let infer = match kube::Config::infer().await {
        Ok(config) => return Ok(kube::Client::try_from(config)?),
        Err(infer) => infer,
    };
    let kubeconfig = match std::error::Error::source(&infer)
        .and_then(|e| e.downcast_ref::<kube::config::KubeconfigError>())
    {
        // kube quotes the path twice ('"/path"').
        Some(kube::config::KubeconfigError::ReadConfig(error, path)) => {
            format!("cannot read {}: {error}", path.display())
        }
        Some(other) => one_line(other),
        None => one_line(&infer),
    };
    // kube keeps its in-cluster error private; asking again gives the same answer.
    let in_cluster = match kube::Config::incluster() {
        Err(error) => one_line(&error),
        Ok(_) => "available only after the kubeconfig failed".into(),
    };
    Err(ClientError::NoConfig {
        kubeconfig,
        in_cluster,
    })
}

/// `error` and its sources on one line, each said once. kube's errors repeat their
/// source's message in their own, so `{:#}` says it again at every level (a missing
/// kubeconfig came out three times over).
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut last = String::new();
    let mut cause = Some(error);
    while let Some(error) = cause {
        let text = error.to_string();
        if !last.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
            last = text;
        }
        cause = error.source();
    }
    line
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What reaches the log under `RUST_LOG=spec` of an error from kube's HTTP layer and
    /// an info line of ours.
    fn logged(spec: &str) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buffer = buffer.clone();
            move || Sink(buffer.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(spec))
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "kube_client::client::builder", "failed with error");
            tracing::info!(target: "ferrolb_speaker::api::watch", "watch failed");
        });
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner: {0}")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn one_line_says_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let nested = anyhow::Error::new(Outer(Inner(io()))).context("connecting");
        assert_eq!(
            format!("{nested:#}"),
            "connecting: outer: inner: gone: inner: gone: gone"
        );
        assert_eq!(one_line(nested.as_ref()), "connecting: outer: inner: gone");
        // Sources that do not repeat are all kept.
        let plain = anyhow::Error::new(io()).context("reading").context("starting");
        assert_eq!(one_line(plain.as_ref()), "starting: reading: gone");
    }

    #[test]
    fn kube_request_errors_are_left_to_the_callers() {
        for spec in ["", "info", "debug", "warn,ferrolb_speaker=debug", "not a filter!"] {
            let text = logged(spec);
            assert!(!text.contains("failed with error"), "RUST_LOG={spec:?}: {text}");
        }
        assert!(logged("info").contains("watch failed"));
        assert!(logged("info,kube_client=error").contains("failed with error"));
    }
}
