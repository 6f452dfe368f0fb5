//! What the binary says when it cannot start.

use std::process::Command;

#[test]
fn a_missing_kubeconfig_is_reported_once_and_plainly() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["run", "--identity", "cli-test", "--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ferrolb-controller: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert_eq!(
        line.matches("/nonexistent/kubeconfig").count(),
        1,
        "the path once: {line}"
    );
    assert_eq!(line.matches("No such file").count(), 1, "the cause once: {line}");
    assert!(!line.contains("'\""), "the path quoted once: {line}");
    assert!(line.contains("connecting to the API server: "), "{line}");
    assert!(line.contains("in-cluster: "), "{line}");
}
