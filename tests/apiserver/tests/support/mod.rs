//! Running the real client tools (kubectl, helm) against a test server.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_testserver::TestServer;

/// The tool named by `$env` (set by scripts/test.sh) or found on PATH as `name`, if
/// `name version_args…` runs; `None` (and a printed reason) outside CI, where a
/// missing tool fails the test.
pub fn binary(env: &str, name: &str, version_args: &[&str]) -> Option<PathBuf> {
    let candidate = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| name.into());
    if Command::new(&candidate)
        .args(version_args)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(candidate);
    }
    assert!(
        std::env::var("CI").is_err(),
        "{name} is required in CI: scripts/test.sh installs it"
    );
    eprintln!("skipping: {name} not found (set {env} or run scripts/test.sh)");
    None
}

/// A client tool bound to one kubeconfig.
pub struct Tool {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Tool {
    /// Runs the tool; (succeeded, stdout then stderr).
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut command = Command::new(&self.binary);
        command.args(args).env("KUBECONFIG", &self.kubeconfig);
        let stdin = stdin.map(str::to_string);
        let output = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::process::Stdio;
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if let Some(text) = stdin {
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            }
            drop(child.stdin.take());
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let text =
            String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// Runs the tool and fails the test unless it succeeds.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (success, text) = self.run(args, stdin).await;
        assert!(success, "{} {args:?} failed:\n{text}", self.binary.display());
        text
    }

    /// The same tool with another kubeconfig.
    pub fn with_kubeconfig(&self, kubeconfig: PathBuf) -> Self {
        Self {
            binary: self.binary.clone(),
            kubeconfig,
        }
    }
}

/// A server enforcing RBAC over HTTPS, a scratch directory, and `binary` bound to the
/// server's admin kubeconfig in it.
pub async fn secure(binary: PathBuf) -> (TestServer, Dir, Tool) {
    let server = TestServer::start_secure().await.unwrap();
    let dir = Dir::new();
    let tool = Tool {
        binary,
        kubeconfig: admin_kubeconfig(&server, &dir),
    };
    (server, dir, tool)
}

/// Writes `server`'s admin kubeconfig into `dir` and returns its path.
pub fn admin_kubeconfig(server: &TestServer, dir: &Dir) -> PathBuf {
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, server.kubeconfig()).unwrap();
    path
}

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A temporary directory removed on drop (std only).
pub struct Dir(PathBuf);

impl Dir {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ferrolb-tools-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
