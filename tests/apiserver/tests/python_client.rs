//! The test server driven by the official Python client (`kubernetes`, installed by
//! scripts/test.sh; $FERROLB_PYTHON names its interpreter). The checks themselves are
//! in python/client_checks.py.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_testserver::TestServer;

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("FERROLB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let has_client = Command::new(&candidate)
        .args(["-c", "import kubernetes, yaml"])
        .output();
    if has_client.is_ok_and(|o| o.status.success()) {
        return Some(candidate);
    }
    assert!(
        std::env::var("CI").is_err(),
        "the Python client is required in CI: scripts/test.sh installs it"
    );
    eprintln!(
        "skipping: no Python with the `kubernetes` package (set FERROLB_PYTHON or run scripts/test.sh)"
    );
    None
}

#[tokio::test]
async fn the_official_python_client_works() {
    let Some(python) = python() else { return };
    let server = TestServer::start().await.unwrap();
    let kubeconfig = std::env::temp_dir().join(format!("ferrolb-python-{}.kubeconfig", std::process::id()));
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = here.join("tests/python/client_checks.py");
    let crd = here.join("../../charts/ferrolb/crds/ipaddresspools.ferrolb.io.yaml");
    let url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(&kubeconfig)
            .arg(url)
            .arg(crd)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    println!("{text}");
    assert!(output.status.success(), "Python client checks failed:\n{text}");
}
