//! Running a container of a pod spec as a plain process, as close to what a kubelet
//! would do as a machine without containers allows: the spec's command and arguments,
//! its environment with the downward-API fields filled in, its Secret volumes written
//! out, and its securityContext's user, group and capabilities applied with `setpriv`.
//!
//! What cannot be had without a container runtime is translated, and said here:
//! - files are not mounted at their `mountPath`: each Secret volume is written to the
//!   pod's directory and every argument or variable naming a path under the
//!   `mountPath` is rewritten to point there;
//! - the ServiceAccount token reaches the process through a kubeconfig
//!   (`KUBECONFIG`), since kube clients read the in-cluster token from a fixed path;
//! - the image is this build: `/usr/bin/<name>` runs `target/<profile>/<name>`;
//! - `readOnlyRootFilesystem` and seccomp profiles are not enforced.
//!
//! [`PodPlan::of`] is pure: the spec and the pod's facts in, the command out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

/// What a kubelet knows of a pod besides its spec.
#[derive(Clone, Debug)]
pub struct PodFacts {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.nodeName`.
    pub node: String,
    /// `status.hostIP` (and `status.podIP` for host-network pods).
    pub host_ip: String,
    /// Where the pod's files go.
    pub dir: PathBuf,
}

/// A file the process needs before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFile {
    /// Where it goes.
    pub path: PathBuf,
    /// What it holds.
    pub contents: Vec<u8>,
    /// Its permission bits.
    pub mode: u32,
}

/// How to start one container: the command line (behind `setpriv`), the environment
/// and the files to write first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    /// `setpriv …` then the container's command and arguments.
    pub argv: Vec<String>,
    /// The container's environment.
    pub env: Vec<(String, String)>,
    /// Files to write before starting.
    pub files: Vec<PodFile>,
    /// Whether the pod shares the node's network namespace.
    pub host_network: bool,
}

/// The capabilities a container runtime (containerd, CRI-O) grants by default, what
/// `drop` and `add` start from.
const RUNTIME_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

impl PodPlan {
    /// The plan for container `container` of `pod_spec` (a PodSpec as JSON), with
    /// `secrets` (name → `data`, base64 as the API serves it) for its Secret volumes
    /// and `kubeconfig` for its ServiceAccount, finding binaries with `binary`.
    pub fn of(
        pod_spec: &Value,
        container: &str,
        facts: &PodFacts,
        secrets: &BTreeMap<String, Value>,
        kubeconfig: &str,
        binary: impl Fn(&str) -> PathBuf,
    ) -> anyhow::Result<Self> {
        let spec = pod_spec
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["name"] == container)
            .with_context(|| format!("the pod spec has no container {container:?}"))?;
        let mut files = Vec::new();
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in spec["volumeMounts"].as_array().into_iter().flatten() {
            let name = mount["name"].as_str().context("a volumeMount without a name")?;
            let volume = pod_spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == name)
                .with_context(|| format!("volumeMount {name:?} names no volume"))?;
            let dir = facts.dir.join("volumes").join(name);
            files.extend(secret_volume(volume, secrets, &dir)?);
            let path = mount["mountPath"]
                .as_str()
                .context("a volumeMount without a mountPath")?;
            mounts.push((path.trim_end_matches('/').to_string(), dir));
        }
        let translate = |text: &str| -> String {
            for (mount_path, dir) in &mounts {
                if let Some(rest) = text.strip_prefix(mount_path.as_str())
                    && (rest.is_empty() || rest.starts_with('/'))
                {
                    return format!("{}{rest}", dir.display());
                }
            }
            text.to_string()
        };
        let kubeconfig_path = facts.dir.join("kubeconfig");
        files.push(PodFile {
            path: kubeconfig_path.clone(),
            contents: kubeconfig.as_bytes().to_vec(),
            mode: 0o644,
        });
        let mut env = vec![("KUBECONFIG".to_string(), kubeconfig_path.display().to_string())];
        for var in spec["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().context("an env entry without a name")?;
            let value = match (&var["value"], &var["valueFrom"]) {
                (Value::String(v), _) => v.clone(),
                (_, Value::Object(from)) => {
                    env_from(from, facts, secrets).with_context(|| format!("env {name:?}"))?
                }
                _ => String::new(),
            };
            env.push((name.to_string(), translate(&value)));
        }
        let mut command: Vec<String> = strings(&spec["command"]);
        command.extend(strings(&spec["args"]));
        let Some(program) = command.first_mut() else {
            bail!("container {container:?} has no command (the image's entrypoint is not known here)");
        };
        let file_name = Path::new(program.as_str())
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        *program = binary(&file_name).display().to_string();
        let command: Vec<String> = command.iter().map(|a| translate(a)).collect();
        let mut argv = setpriv(&pod_spec["securityContext"], &spec["securityContext"])?;
        argv.extend(command);
        Ok(Self {
            argv,
            env,
            files,
            host_network: pod_spec["hostNetwork"].as_bool() == Some(true),
        })
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// The files of a Secret volume (other volume kinds are refused: the chart uses none).
fn secret_volume(
    volume: &Value,
    secrets: &BTreeMap<String, Value>,
    dir: &Path,
) -> anyhow::Result<Vec<PodFile>> {
    use base64::Engine;
    let source = volume
        .get("secret")
        .with_context(|| format!("volume {} is not a Secret volume", volume["name"]))?;
    let secret_name = source["secretName"]
        .as_str()
        .context("a Secret volume without secretName")?;
    let data = secrets
        .get(secret_name)
        .with_context(|| format!("Secret {secret_name:?} does not exist (the pod would not start)"))?;
    let mode = source["defaultMode"].as_u64().unwrap_or(0o644) as u32;
    let items: Vec<(String, String, u32)> = match source["items"].as_array() {
        Some(items) => items
            .iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap_or_default().to_string(),
                    i["path"].as_str().unwrap_or_default().to_string(),
                    i["mode"].as_u64().map_or(mode, |m| m as u32),
                )
            })
            .collect(),
        None => data
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| (k.clone(), k.clone(), mode))
            .collect(),
    };
    items
        .into_iter()
        .map(|(key, path, mode)| {
            let encoded = data[&key]
                .as_str()
                .with_context(|| format!("Secret {secret_name:?} has no key {key:?}"))?;
            let contents = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .with_context(|| format!("Secret {secret_name:?} key {key:?} is not base64"))?;
            Ok(PodFile {
                path: dir.join(path),
                contents,
                mode,
            })
        })
        .collect()
}

/// A `valueFrom`: the downward API's fields, or a Secret's key.
fn env_from(
    from: &serde_json::Map<String, Value>,
    facts: &PodFacts,
    secrets: &BTreeMap<String, Value>,
) -> anyhow::Result<String> {
    if let Some(field) = from.get("fieldRef") {
        let path = field["fieldPath"].as_str().unwrap_or_default();
        return Ok(match path {
            "metadata.name" => facts.name.clone(),
            "metadata.namespace" => facts.namespace.clone(),
            "spec.nodeName" => facts.node.clone(),
            "status.hostIP" | "status.podIP" => facts.host_ip.clone(),
            other => bail!("fieldRef {other:?} is not filled in by the lab"),
        });
    }
    if let Some(key_ref) = from.get("secretKeyRef") {
        use base64::Engine;
        let (name, key) = (
            key_ref["name"].as_str().unwrap_or(""),
            key_ref["key"].as_str().unwrap_or(""),
        );
        let encoded = secrets
            .get(name)
            .and_then(|d| d[key].as_str())
            .with_context(|| format!("Secret {name:?} key {key:?} not found"))?;
        return Ok(String::from_utf8(
            base64::engine::general_purpose::STANDARD.decode(encoded)?,
        )?);
    }
    bail!("a valueFrom the lab does not fill in: {from:?}")
}

/// `setpriv` arguments for the container's user, group, capabilities and
/// no_new_privs (container settings over the pod's).
fn setpriv(pod: &Value, container: &Value) -> anyhow::Result<Vec<String>> {
    let field = |name: &str| {
        container
            .get(name)
            .filter(|v| !v.is_null())
            .or_else(|| pod.get(name))
    };
    if container["privileged"].as_bool() == Some(true) {
        bail!("privileged containers are not run by the lab (and the chart must not ask for one)");
    }
    let mut argv = vec!["setpriv".to_string()];
    let uid = field("runAsUser").and_then(Value::as_u64);
    let gid = field("runAsGroup").and_then(Value::as_u64);
    if field("runAsNonRoot").and_then(Value::as_bool) == Some(true) && uid.unwrap_or(0) == 0 {
        bail!("runAsNonRoot without a non-zero runAsUser: the kubelet would refuse to start it");
    }
    if let Some(uid) = uid {
        argv.push(format!("--reuid={uid}"));
    }
    if let Some(gid) = gid {
        argv.push(format!("--regid={gid}"));
    }
    if uid.is_some() || gid.is_some() {
        argv.push("--clear-groups".into());
    }
    let caps = &container["capabilities"];
    let drop: Vec<String> = strings(&caps["drop"])
        .iter()
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let add: Vec<String> = strings(&caps["add"])
        .iter()
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let mut kept: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        RUNTIME_DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    for cap in add {
        if !kept.contains(&cap) {
            kept.push(cap);
        }
    }
    let set: String = std::iter::once("-all".to_string())
        .chain(kept.iter().map(|c| format!("+{}", c.to_ascii_lowercase())))
        .collect::<Vec<_>>()
        .join(",");
    argv.push(format!("--bounding-set={set}"));
    argv.push("--inh-caps=-all".into());
    if container["allowPrivilegeEscalation"].as_bool() == Some(false) {
        argv.push("--no-new-privs".into());
    }
    argv.push("--".into());
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same(name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    fn facts() -> PodFacts {
        PodFacts {
            name: "ferrolb-speaker-n1".into(),
            namespace: "ferrolb-system".into(),
            node: "n1".into(),
            host_ip: "10.77.0.11".into(),
            dir: "/tmp/pod".into(),
        }
    }

    fn speaker_spec() -> Value {
        json!({
            "hostNetwork": true,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "speaker",
                "command": ["/usr/bin/ferrolb-speaker"],
                "args": ["--dataplane", "nftables"],
                "env": [
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "FERROLB_NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                    {"name": "RUST_LOG", "value": "info"},
                    {"name": "FERROLB_GOSSIP_KEY_FILE", "value": "/etc/ferrolb/gossip/key"},
                ],
                "securityContext": {
                    "runAsUser": 0, "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]},
                },
                "volumeMounts": [{"name": "gossip-key", "mountPath": "/etc/ferrolb/gossip", "readOnly": true}],
            }],
            "volumes": [{"name": "gossip-key", "secret": {"secretName": "ferrolb-gossip-key", "defaultMode": 256,
                         "items": [{"key": "key", "path": "key"}]}}],
        })
    }

    fn secrets() -> BTreeMap<String, Value> {
        [("ferrolb-gossip-key".to_string(), json!({"key": "c2VjcmV0"}))].into()
    }

    #[test]
    fn a_speaker_runs_as_its_spec_says() {
        let plan = PodPlan::of(&speaker_spec(), "speaker", &facts(), &secrets(), "kc", |n| {
            PathBuf::from("/build").join(n)
        })
        .unwrap();
        assert_eq!(
            plan.argv,
            [
                "setpriv",
                "--reuid=0",
                "--clear-groups",
                "--bounding-set=-all,+net_raw,+net_admin",
                "--inh-caps=-all",
                "--no-new-privs",
                "--",
                "/build/ferrolb-speaker",
                "--dataplane",
                "nftables",
            ]
        );
        let env: BTreeMap<_, _> = plan.env.iter().cloned().collect();
        assert_eq!(env["NODE_NAME"], "n1");
        assert_eq!(env["FERROLB_NODE_IP"], "10.77.0.11");
        assert_eq!(env["FERROLB_GOSSIP_KEY_FILE"], "/tmp/pod/volumes/gossip-key/key");
        assert_eq!(env["KUBECONFIG"], "/tmp/pod/kubeconfig");
        assert!(plan.host_network);
        assert!(plan.files.contains(&PodFile {
            path: "/tmp/pod/volumes/gossip-key/key".into(),
            contents: b"secret".to_vec(),
            mode: 0o400,
        }));
    }

    #[test]
    fn non_root_and_default_capabilities() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532},
            "containers": [{"name": "c", "command": ["/usr/bin/ferrolb-controller", "run"],
                            "securityContext": {"capabilities": {"drop": ["NET_RAW", "MKNOD"]}}}],
        });
        let plan = PodPlan::of(&spec, "c", &facts(), &BTreeMap::new(), "kc", same).unwrap();
        assert_eq!(
            &plan.argv[1..4],
            ["--reuid=65532", "--regid=65532", "--clear-groups"]
        );
        let bounding = &plan.argv[4];
        assert!(bounding.contains("+chown") && !bounding.contains("net_raw") && !bounding.contains("mknod"));
        assert!(!plan.host_network);
    }

    #[test]
    fn what_a_kubelet_would_refuse_is_refused() {
        let mut spec = speaker_spec();
        spec["containers"][0]["securityContext"]["privileged"] = json!(true);
        assert!(PodPlan::of(&spec, "speaker", &facts(), &secrets(), "kc", same).is_err());
        assert!(PodPlan::of(&speaker_spec(), "speaker", &facts(), &BTreeMap::new(), "kc", same).is_err());
        let root = json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c", "command": ["x"]}]});
        assert!(PodPlan::of(&root, "c", &facts(), &BTreeMap::new(), "kc", same).is_err());
        assert!(PodPlan::of(&speaker_spec(), "other", &facts(), &secrets(), "kc", same).is_err());
    }
}
