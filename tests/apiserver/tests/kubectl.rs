//! The test server driven by the real kubectl (1.35, installed by scripts/test.sh as
//! $FERROLB_KUBECTL): client-side and server-side apply, get (tables and -o yaml),
//! custom resources, patch of status, wait, delete.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_testserver::TestServer;

/// kubectl from $FERROLB_KUBECTL or PATH; `None` (and a printed reason) outside CI.
fn kubectl_binary() -> Option<PathBuf> {
    let candidate = std::env::var_os("FERROLB_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| "kubectl".into());
    if Command::new(&candidate)
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(candidate);
    }
    assert!(
        std::env::var("CI").is_err(),
        "kubectl is required in CI: scripts/test.sh installs it"
    );
    eprintln!("skipping: kubectl not found (set FERROLB_KUBECTL or run scripts/test.sh)");
    None
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
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

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (success, text) = self.run(args, stdin).await;
        assert!(success, "kubectl {args:?} failed:\n{text}");
        text
    }
}

async fn setup() -> Option<(TestServer, Kubectl, tempdir::Dir)> {
    let binary = kubectl_binary()?;
    let server = TestServer::start().await.unwrap();
    let dir = tempdir::Dir::new();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    Some((server, Kubectl { binary, kubeconfig }, dir))
}

/// A temporary directory removed on drop (std only).
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("ferrolb-kubectl-{}-{n}", std::process::id()));
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
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

#[tokio::test]
async fn kubectl_applies_gets_patches_waits_and_deletes() {
    let Some((_server, k, _dir)) = setup().await else {
        return;
    };
    assert!(
        k.ok(&["apply", "-f", "-"], Some(SERVICE))
            .await
            .contains("service/web created")
    );
    assert!(
        k.ok(&["apply", "-f", "-"], Some(SERVICE))
            .await
            .contains("unchanged")
    );
    let table = k.ok(&["get", "svc", "web"], None).await;
    assert!(
        table.contains("EXTERNAL-IP") && table.contains("<pending>"),
        "{table}"
    );
    let yaml = k.ok(&["get", "svc", "web", "-o", "yaml"], None).await;
    assert!(
        yaml.contains("clusterIP:") && yaml.contains("nodePort:"),
        "{yaml}"
    );

    let status = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"10.42.0.200"}]}}}"#;
    k.ok(
        &[
            "patch",
            "svc",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
        None,
    )
    .await;
    let waited = k
        .ok(
            &[
                "wait",
                "--for=jsonpath={.status.loadBalancer.ingress[0].ip}=10.42.0.200",
                "svc/web",
                "--timeout=10s",
            ],
            None,
        )
        .await;
    assert!(waited.contains("condition met"), "{waited}");
    assert!(k.ok(&["get", "svc", "web"], None).await.contains("10.42.0.200"));

    let changed = SERVICE.replace("port: 80", "port: 81");
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&changed)).await;
    assert!(
        k.ok(
            &["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}"],
            None
        )
        .await
        .contains("81")
    );

    k.ok(&["delete", "svc", "web"], None).await;
    let (found, text) = k.run(&["get", "svc", "web"], None).await;
    assert!(!found && text.contains("NotFound"), "{text}");
}

#[tokio::test]
async fn kubectl_installs_our_crds_and_manages_custom_resources() {
    let Some((_server, k, _dir)) = setup().await else {
        return;
    };
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/ferrolb/crds");
    k.ok(&["apply", "-f", crds.to_str().unwrap()], None).await;
    // `kubectl create namespace` would send protobuf, which the fixture does not speak.
    k.ok(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: ferrolb-system}\n"),
    )
    .await;
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/l2-dual-stack.yaml"),
    )
    .unwrap();
    k.ok(&["apply", "-f", "-"], Some(&example)).await;
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&example)).await;
    let pools = k
        .ok(&["get", "ipaddresspools", "-n", "ferrolb-system"], None)
        .await;
    assert!(
        pools.contains("AUTO ASSIGN") && pools.contains("true") && pools.contains("10.42.0.200-10.42.0.250"),
        "{pools}"
    );
    let ads = k
        .ok(&["get", "l2adv", "-n", "ferrolb-system", "-o", "yaml"], None)
        .await;
    assert!(ads.contains("ipAddressPools"), "{ads}");

    // The CRD's CEL rules reject a bad pool at apply time, naming the field.
    let bad = example.replace("10.42.0.200-10.42.0.250", "10.42.0.250-10.42.0.200");
    let (accepted, text) = k.run(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(!accepted && text.contains("spec.addresses[0]"), "{text}");

    k.ok(&["delete", "-f", "-"], Some(&example)).await;
    assert!(
        k.ok(&["get", "ipp", "-n", "ferrolb-system"], None)
            .await
            .contains("No resources")
    );
}
