#!/usr/bin/env python3
"""Assertions over the chart's rendered manifests (scripts/chart-check.sh renders them).

Usage:
  check_rendered.py REPO_ROOT WORK_DIR
      WORK_DIR holds one folder per case with meta.json ({"release", "namespace"}),
      values.yaml (the fixture, possibly empty), manifest.yaml (helm template) and
      install.txt (helm install --dry-run=client: manifest and NOTES).
  check_rendered.py builtin IN.yaml OUT.yaml
      copies the objects of built-in kinds (not monitoring.coreos.com, not ferrolb.io)
      for kubernetes-validate, and fails when IN has none.

Prints one line per check and "check_rendered.py: N checks passed, M failed"; exits 1
on any failure. Set FERROLB_MONITORING_CRDS to a folder with the Prometheus Operator's
CRD files to also validate ServiceMonitor/PodMonitor/PrometheusRule against them.
"""

import base64
import copy
import json
import os
import pathlib
import re
import sys

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from crdschema import CrdSet  # noqa: E402

try:
    import promql_parser
except ImportError:  # reported as a failed check below
    promql_parser = None

RBAC_FIELDS = ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")
DANGEROUS_VERBS = {"escalate", "bind", "impersonate", "deletecollection", "*"}
MONITORING = "monitoring.coreos.com/v1"
CUSTOM_GROUPS = ("monitoring.coreos.com/", "ferrolb.io/")


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, problems):
        """Records one check; `problems` is a list of strings (empty: passed) or a bool."""
        if isinstance(problems, bool):
            problems = [] if problems else ["false"]
        if problems:
            self.failed += 1
            print(f"not ok - {name}")
            for p in problems:
                print(f"    {p}")
        else:
            self.passed += 1
            print(f"ok - {name}")


# ---------------------------------------------------------------- helpers


def coalesce(defaults, overrides):
    """Helm's merge of user values over chart defaults: maps merge, null deletes."""
    out = copy.deepcopy(defaults)
    for key, value in (overrides or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = coalesce(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def trunc(name, n=52):
    return name[:n].rstrip("-")


def fullname(values, release):
    if values.get("fullnameOverride"):
        return trunc(values["fullnameOverride"])
    name = values.get("nameOverride") or "ferrolb"
    return trunc(release) if name in release else trunc(f"{release}-{name}")


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs, kind, name):
    found = find(docs, kind, name)
    return found[0] if len(found) == 1 else None


def flag_value(args, flag):
    """The value after `flag` in an args list (None when absent)."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def containers(doc):
    if doc.get("kind") in ("Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"):
        spec = pod_spec(doc)
    elif doc.get("kind") == "Pod":
        spec = doc["spec"]
    else:
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])


def walk(node, path=""):
    """Yields (path, key, value) of every mapping entry."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def split_install(text):
    """(manifest text, NOTES text) of `helm install --dry-run=client` output."""
    if "\nNOTES:\n" not in text:
        return text, ""
    head, notes = text.split("\nNOTES:\n", 1)
    manifest = head.split("\nMANIFEST:\n", 1)[1] if "\nMANIFEST:\n" in head else head
    return manifest, notes


def markdown_table(text, heading):
    """Rows (lists of cells) of the first table after the line `heading`."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        return None
    rows, in_table = [], False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            rows.append(cells)
        elif in_table:
            break
        elif line.startswith("#"):
            break
    return rows[1:] if rows else []  # without the header row


def unquote(cell):
    return cell.strip().strip("`").strip()


# ------------------------------------------------------------- metric names


def rust_metrics(path, prefix_default):
    """The exposed names of every metric registered in a metrics.rs."""
    src = pathlib.Path(path).read_text()
    prefix = re.search(r'Registry::with_prefix\("(\w+)"\)', src)
    prefix = prefix.group(1) if prefix else prefix_default
    kinds = {}
    for var, decl in re.findall(r"let (\w+)\s*=\s*([^;]+);", src):
        kinds[var] = "counter" if "Counter" in decl else "histogram" if "Histogram" in decl else "gauge"
    names = set()
    for name, var in re.findall(r'register\(\s*"(\w+)",\s*"(?:[^"\\]|\\.)*",\s*(\w+)\.clone\(\)', src):
        base = f"{prefix}_{name}"
        kind = kinds.get(var, "gauge")
        if kind == "counter":
            names.add(base + "_total")
        elif kind == "histogram":
            names.update({base + "_bucket", base + "_sum", base + "_count"})
        else:
            names.add(base)
    return names


def promql_selectors(expr):
    """Every VectorSelector of a parsed PromQL expression."""
    out, stack = [], [expr]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        if isinstance(node, promql_parser.VectorSelector):
            out.append(node)
            continue
        for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                stack.append(child)
        for arg in getattr(node, "args", None) or []:
            stack.append(arg)
    return out


def check_promql(c, where, expr, known, jobs):
    """Parses `expr`; its metric names must be known and its job matchers in `jobs`."""
    if promql_parser is None:
        c.check(f"{where}: PromQL parser available", ["pip install promql-parser"])
        return
    try:
        parsed = promql_parser.parse(expr)
    except Exception as e:  # noqa: BLE001 - the parser raises ValueError, keep any
        c.check(f"{where}: PromQL parses", [f"{e}: {expr}"])
        return
    problems = []
    for sel in promql_selectors(parsed):
        if sel.name and sel.name not in known:
            problems.append(f"unknown metric {sel.name}")
        for m in re.findall(r'job\s*=\s*"([^"]*)"', str(sel.matchers)):
            if jobs is not None and m not in jobs:
                problems.append(f"job {m!r} is not one of {sorted(jobs)}")
    c.check(f"{where}: PromQL parses and names real metrics", problems)


# ------------------------------------------------------------------ checks


def check_security(c, case, docs, values):
    priv = [f"{d['kind']}/{d['metadata']['name']}{p}" for d in docs for p, k, v in walk(d) if k == "privileged" and v is True]
    c.check(f"{case}: nothing privileged: true", priv)
    for d in docs:
        for ct in containers(d):
            sc = ct.get("securityContext") or {}
            pod_sc = pod_spec(d).get("securityContext") or {}
            where = f"{case}: {d['kind']}/{d['metadata']['name']} container {ct['name']}"
            problems = []
            if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
                problems.append(f"capabilities.drop is {(sc.get('capabilities') or {}).get('drop')}, not [ALL]")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append("readOnlyRootFilesystem is not true")
            seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                problems.append(f"seccompProfile {seccomp}")
            if not ((ct.get("resources") or {}).get("limits") or {}).get("memory"):
                problems.append("no resources.limits.memory")
            c.check(f"{where}: restricted securityContext and a memory limit", problems)


def check_rbac(c, case, docs, readme_rules, full):
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    problems = []
    for d in roles:
        for i, rule in enumerate(d.get("rules", [])):
            for field in RBAC_FIELDS:
                for item in rule.get(field, []) or []:
                    if "*" in item:
                        problems.append(f"{d['kind']}/{d['metadata']['name']} rule {i} {field}: {item}")
    c.check(f"{case}: no wildcard in any RBAC rule", problems)
    c.check(
        f"{case}: no ClusterRole grants secrets",
        [d["metadata"]["name"] for d in roles if d["kind"] == "ClusterRole" and any("secrets" in r.get("resources", []) for r in d["rules"])],
    )
    # The gossip key is a mounted volume; only the speaker's namespaced Role reads
    # Secrets (list/watch, for BGPPeers' passwordSecret).
    c.check(
        f"{case}: only the speaker's Role grants secrets, and only list/watch",
        [
            f"{d['kind']}/{d['metadata']['name']}: {r.get('verbs')}"
            for d in roles
            for r in d["rules"]
            if "secrets" in r.get("resources", [])
            and (d["kind"] != "Role" or not d["metadata"]["name"].endswith("speaker") or set(r.get("verbs", [])) - {"list", "watch"})
        ],
    )
    c.check(
        f"{case}: no escalate/bind/impersonate/deletecollection verbs",
        [f"{d['metadata']['name']}: {v}" for d in roles for r in d["rules"] for v in r.get("verbs", []) if v in DANGEROUS_VERBS],
    )
    rendered = set()
    for d in roles:
        component = d["metadata"]["name"].removeprefix(full + "-")
        for r in d["rules"]:
            names = ",".join(r.get("resourceNames", [])) or "—"
            for g in r.get("apiGroups", []):
                for res in r.get("resources", []):
                    for v in r.get("verbs", []):
                        rendered.add((component, d["kind"], g or "core", res, v, names))
    if readme_rules is not None:
        c.check(
            f"{case}: RBAC rules equal the README's RBAC table",
            [f"rendered, not in README: {r}" for r in sorted(rendered - readme_rules)]
            + [f"in README, not rendered: {r}" for r in sorted(readme_rules - rendered)],
        )
    for d in docs:
        if d["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            name = d["metadata"]["name"]
            ok = (
                d["roleRef"]["name"] == name
                and d["roleRef"]["kind"] == d["kind"].replace("Binding", "")
                and one(docs, d["roleRef"]["kind"], name) is not None
                and [(s["kind"], s["name"]) for s in d["subjects"]] == [("ServiceAccount", name)]
                and one(docs, "ServiceAccount", name) is not None
            )
            c.check(f"{case}: {d['kind']}/{name} binds the role and ServiceAccount of its name", ok)


def check_image(c, case, docs, values, app_version):
    img = values["image"]
    tag = img.get("tag") or app_version
    want = f"{img['repository']}:{tag}" + (f"@{img['digest']}" if img.get("digest") else "")
    got = sorted({ct["image"] for d in docs for ct in containers(d)})
    c.check(f"{case}: every container runs {want}", [] if got == [want] else [f"images {got}"])
    if img.get("digest"):
        c.check(f"{case}: image pinned as repo:tag@sha256:…", all(re.fullmatch(r"[^@]+:[^@:/]+@sha256:[0-9a-f]{64}", g) for g in got))
    pulls = {ct.get("imagePullPolicy") for d in docs for ct in containers(d)}
    c.check(f"{case}: pull policy {img['pullPolicy']}", pulls == {img["pullPolicy"]})
    secrets = [{"name": s["name"]} for s in values.get("imagePullSecrets") or []]
    c.check(
        f"{case}: imagePullSecrets passed through",
        all((pod_spec(d).get("imagePullSecrets") or []) == secrets for d in docs if containers(d)),
    )


def env_of(ct):
    out = {}
    for e in ct.get("env", []):
        if "value" in e:
            out[e["name"]] = e["value"]
        else:
            ref = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            out[e["name"]] = f"fieldRef:{ref}"
    return out


def check_probes(c, where, ct, port):
    ports = {p["name"]: p for p in ct.get("ports", [])}
    problems = []
    if ports.get("metrics", {}).get("containerPort") != port:
        problems.append(f"port metrics is {ports.get('metrics')}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = (ct.get(probe) or {}).get("httpGet") or {}
        if got.get("path") != path or got.get("port") not in ("metrics", port):
            problems.append(f"{probe} {got}")
    c.check(f"{where}: metrics port {port}, liveness /healthz and readiness /readyz on it", problems)


def check_controller(c, case, docs, values, full):
    cv = values["controller"]
    name = f"{full}-controller"
    dep = one(docs, "Deployment", name)
    c.check(f"{case}: Deployment {name}", dep is not None)
    if dep is None:
        return
    c.check(f"{case}: ServiceAccount {name} used", one(docs, "ServiceAccount", name) is not None and pod_spec(dep)["serviceAccountName"] == name)
    c.check(f"{case}: controller replicas {cv['replicas']}", dep["spec"]["replicas"] == cv["replicas"])
    cts = pod_spec(dep)["containers"]
    c.check(f"{case}: one container named controller", [ct["name"] for ct in cts] == ["controller"])
    ct = cts[0]
    c.check(f"{case}: controller command", ct.get("command") == ["/usr/bin/ferrolb-controller", "run"])
    args = ct.get("args", [])
    want = []
    if values.get("loadBalancerClass"):
        want += ["--lb-class", values["loadBalancerClass"]]
    want += ["--metrics-addr", f"0.0.0.0:{cv['metrics']['port']}"] + list(cv.get("extraArgs") or [])
    c.check(f"{case}: controller args", [] if args == want else [f"args {args}", f"want {want}"])
    env = env_of(ct)
    c.check(
        f"{case}: controller env",
        env == {"POD_NAME": "fieldRef:metadata.name", "POD_NAMESPACE": "fieldRef:metadata.namespace", "RUST_LOG": cv["logLevel"]},
    )
    sc, psc = ct.get("securityContext", {}), pod_spec(dep).get("securityContext", {})
    c.check(
        f"{case}: controller runs as 65532:65532, non-root, no capability",
        [
            p
            for p, ok in (
                ("runAsNonRoot", sc.get("runAsNonRoot") is True and psc.get("runAsNonRoot") is True),
                ("runAsUser", sc.get("runAsUser") == 65532 and psc.get("runAsUser") == 65532),
                ("runAsGroup", sc.get("runAsGroup") == 65532 and psc.get("runAsGroup") == 65532),
                ("no added capability", not sc.get("capabilities", {}).get("add")),
            )
            if not ok
        ],
    )
    check_probes(c, f"{case}: controller", ct, cv["metrics"]["port"])
    c.check(f"{case}: controller resources as values", ct.get("resources") == cv["resources"])
    aff = pod_spec(dep).get("affinity")
    if cv.get("affinity"):
        c.check(f"{case}: controller affinity from values", aff == cv["affinity"])
    else:
        terms = (aff or {}).get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
        c.check(
            f"{case}: controller replicas prefer different nodes",
            len(terms) == 1
            and terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
            and terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"],
        )
    pdb = one(docs, "PodDisruptionBudget", name)
    if cv["podDisruptionBudget"]["enabled"]:
        c.check(
            f"{case}: PodDisruptionBudget maxUnavailable {cv['podDisruptionBudget']['maxUnavailable']}",
            pdb is not None
            and pdb["spec"]["maxUnavailable"] == cv["podDisruptionBudget"]["maxUnavailable"]
            and pdb["spec"]["selector"] == dep["spec"]["selector"],
        )
    else:
        c.check(f"{case}: no PodDisruptionBudget when disabled", pdb is None)
    for key in ("nodeSelector", "tolerations"):
        c.check(f"{case}: controller {key} from values", (pod_spec(dep).get(key) or type(cv[key])()) == cv[key])
    c.check(f"{case}: controller pod annotations", (dep["spec"]["template"]["metadata"].get("annotations") or {}) == cv["podAnnotations"])
    c.check(f"{case}: controller priorityClassName", pod_spec(dep).get("priorityClassName", "") == cv["priorityClassName"])


def check_speaker(c, case, docs, values, full):
    sv = values["speaker"]
    gossip = sv["membership"] == "gossip"
    name = f"{full}-speaker"
    ds = one(docs, "DaemonSet", name)
    c.check(f"{case}: DaemonSet {name}", ds is not None)
    if ds is None:
        return
    spec = pod_spec(ds)
    c.check(f"{case}: ServiceAccount {name} used", one(docs, "ServiceAccount", name) is not None and spec["serviceAccountName"] == name)
    cts = spec["containers"]
    c.check(f"{case}: one container named speaker", [ct["name"] for ct in cts] == ["speaker"])
    ct = cts[0]
    c.check(f"{case}: speaker command", ct.get("command") == ["/usr/bin/ferrolb-speaker"])
    args = ct.get("args", [])
    want = []
    if values.get("loadBalancerClass"):
        want += ["--lb-class", values["loadBalancerClass"]]
    want += ["--dataplane", sv["dataplane"], "--gossip-profile", sv["gossip"]["profile"], "--membership", sv["membership"]]
    if gossip:
        want += ["--gossip-port", str(sv["gossip"]["port"])]
    if sv.get("excludeInterfaces"):
        want += ["--exclude-interfaces", ",".join(sv["excludeInterfaces"])]
    want += ["--bgp-restart-time", f"{sv['bgpRestartTime']}s"]
    want += ["--metrics-addr", f"0.0.0.0:{sv['metrics']['port']}"] + list(sv.get("extraArgs") or [])
    c.check(f"{case}: speaker args", [] if args == want else [f"args {args}", f"want {want}"])
    c.check(
        f"{case}: --exclude-interfaces only with a non-empty list",
        (flag_value(args, "--exclude-interfaces") is not None) == bool(sv.get("excludeInterfaces")),
    )
    env = env_of(ct)
    want_env = {
        "NODE_NAME": "fieldRef:spec.nodeName",
        "FERROLB_NODE_IP": "fieldRef:status.hostIP",
        "POD_NAMESPACE": "fieldRef:metadata.namespace",
        "POD_NAME": "fieldRef:metadata.name",
        "RUST_LOG": sv["logLevel"],
    }
    if gossip:
        want_env["FERROLB_GOSSIP_KEY_FILE"] = "/etc/ferrolb/gossip/key"
    c.check(f"{case}: speaker env", [] if env == want_env else [f"env {env}"])
    c.check(f"{case}: host network, ClusterFirstWithHostNet", spec.get("hostNetwork") is True and spec.get("dnsPolicy") == "ClusterFirstWithHostNet")
    sc = ct.get("securityContext", {})
    caps = sc.get("capabilities", {}).get("add", [])
    want_caps = ["NET_RAW"] + (["NET_ADMIN"] if sv["dataplane"] == "nftables" else [])
    c.check(f"{case}: speaker adds exactly {want_caps}", [] if caps == want_caps else [f"adds {caps}"])
    c.check(f"{case}: speaker runs as uid 0 (capabilities without ambient ones)", sc.get("runAsUser") == 0 and sc.get("privileged") is False)
    c.check(f"{case}: speaker priorityClassName {sv['priorityClassName']!r}", spec.get("priorityClassName", "") == sv["priorityClassName"])
    c.check(f"{case}: terminationGracePeriodSeconds {sv['terminationGracePeriodSeconds']}", spec.get("terminationGracePeriodSeconds") == sv["terminationGracePeriodSeconds"])
    c.check(
        f"{case}: RollingUpdate maxUnavailable 1 maxSurge 0",
        ds["spec"].get("updateStrategy") == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
    )
    tol = spec.get("tolerations") or []
    cp = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    want_tol = ([cp] if sv["announceFromControlPlane"] else []) + list(sv.get("tolerations") or [])
    c.check(f"{case}: speaker tolerations (control plane only when announceFromControlPlane)", [] if tol == want_tol else [f"tolerations {tol}"])
    for key in ("nodeSelector", "affinity"):
        c.check(f"{case}: speaker {key} from values", (spec.get(key) or {}) == (sv[key] or {}))
    c.check(f"{case}: speaker resources as values", ct.get("resources") == sv["resources"])
    c.check(f"{case}: speaker pod annotations", (ds["spec"]["template"]["metadata"].get("annotations") or {}) == sv["podAnnotations"])
    check_probes(c, f"{case}: speaker", ct, sv["metrics"]["port"])
    ports = sorted((p["containerPort"], p["protocol"]) for p in ct.get("ports", []) if p["name"] != "metrics")
    want_ports = sorted([(sv["gossip"]["port"], "TCP"), (sv["gossip"]["port"], "UDP")]) if gossip else []
    c.check(f"{case}: gossip container ports {want_ports}", ports == want_ports)

    # The gossip key: a Secret of ours unless an existing one is named; none for api.
    secret_name = sv["gossip"]["existingSecret"] or f"{full}-gossip-key"
    ours = one(docs, "Secret", f"{full}-gossip-key")
    mounts = ct.get("volumeMounts", [])
    volumes = spec.get("volumes", [])
    if not gossip:
        c.check(f"{case}: api membership: no key Secret, volume or mount", ours is None and not mounts and not volumes and not find(docs, "Secret"))
        return
    if sv["gossip"]["existingSecret"]:
        c.check(f"{case}: existingSecret: no Secret rendered", not find(docs, "Secret"))
    else:
        key = base64.b64decode((ours or {}).get("data", {}).get("key", "")).decode()
        c.check(f"{case}: Secret {secret_name} holds a generated key", ours is not None and len(key) >= 32 and key.isalnum())
    c.check(
        f"{case}: key volume from Secret {secret_name}, mounted read-only at /etc/ferrolb/gossip",
        volumes == [{"name": "gossip-key", "secret": {"secretName": secret_name, "defaultMode": 0o400, "items": [{"key": "key", "path": "key"}]}}]
        and mounts == [{"name": "gossip-key", "mountPath": "/etc/ferrolb/gossip", "readOnly": True}],
    )


def check_monitoring(c, case, docs, values, full, known_metrics, monitoring_crds):
    p = values["prometheus"]
    jobs = {f"{full}-controller", f"{full}-speaker"}
    sms, pms, rules = find(docs, "ServiceMonitor"), find(docs, "PodMonitor"), find(docs, "PrometheusRule")
    c.check(f"{case}: ServiceMonitors iff enabled", len(sms) == (2 if p["serviceMonitor"]["enabled"] else 0))
    c.check(f"{case}: PodMonitors iff enabled", len(pms) == (2 if p["podMonitor"]["enabled"] else 0))
    c.check(f"{case}: PrometheusRule iff enabled", len(rules) == (1 if p["rule"]["enabled"] else 0))
    workloads = {f"{full}-controller": one(docs, "Deployment", f"{full}-controller"), f"{full}-speaker": one(docs, "DaemonSet", f"{full}-speaker")}

    def pod_labels(name):
        return workloads[name]["spec"]["template"]["metadata"]["labels"]

    def matches(selector, labels):
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    def relabels_job(endpoint, name):
        return any(r.get("targetLabel") == "job" and r.get("replacement") == name for r in endpoint.get("relabelings", []))

    for sm in sms:
        name = sm["metadata"]["name"]
        svc = one(docs, "Service", name)
        problems = []
        if sm.get("apiVersion") != MONITORING:
            problems.append(f"apiVersion {sm.get('apiVersion')}")
        if svc is None:
            problems.append("no Service of the same name")
        else:
            if not matches(sm["spec"]["selector"].get("matchLabels"), svc["metadata"]["labels"]):
                problems.append("selector does not match the Service")
            if not matches(svc["spec"]["selector"], pod_labels(name)):
                problems.append("Service does not select the pods")
            svc_ports = {pt["name"] for pt in svc["spec"]["ports"]}
            if not sm["spec"].get("endpoints") or any(e.get("port") not in svc_ports for e in sm["spec"]["endpoints"]):
                problems.append("endpoint port not a Service port")
        if sm["spec"].get("namespaceSelector", {}).get("matchNames") != [sm["metadata"]["namespace"]]:
            problems.append("namespaceSelector is not the release namespace")
        if not all(relabels_job(e, name) for e in sm["spec"].get("endpoints", [])):
            problems.append(f"job not set to {name}")
        c.check(f"{case}: ServiceMonitor {name} scrapes its component's pods as job {name}", problems)
    for pm in pms:
        name = pm["metadata"]["name"]
        problems = []
        if pm.get("apiVersion") != MONITORING:
            problems.append(f"apiVersion {pm.get('apiVersion')}")
        if not matches(pm["spec"]["selector"].get("matchLabels"), pod_labels(name)):
            problems.append("selector does not match the pods")
        ct_ports = {pt["name"] for ct in containers(workloads[name]) for pt in ct.get("ports", [])}
        endpoints = pm["spec"].get("podMetricsEndpoints") or []
        if not endpoints or any(e.get("port") not in ct_ports for e in endpoints):
            problems.append("podMetricsEndpoints port not a container port")
        if not all(relabels_job(e, name) for e in endpoints):
            problems.append(f"job not set to {name}")
        c.check(f"{case}: PodMonitor {name} scrapes its component's pods as job {name}", problems)
    for r in rules:
        problems = []
        if r.get("apiVersion") != MONITORING:
            problems.append(f"apiVersion {r.get('apiVersion')}")
        groups = r["spec"].get("groups") or []
        alerts = [rule for g in groups for rule in g.get("rules", [])]
        if not groups or any(not g.get("name") or not g.get("rules") for g in groups):
            problems.append("a group without name or rules")
        for rule in alerts:
            if not rule.get("alert") or not rule.get("expr") or rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                problems.append(f"incomplete rule {rule.get('alert')}")
            if not (rule.get("annotations") or {}).get("summary"):
                problems.append(f"{rule.get('alert')}: no summary")
        names = [rule.get("alert") for rule in alerts]
        if len(names) != len(set(names)):
            problems.append(f"duplicate alert names {names}")
        c.check(f"{case}: PrometheusRule {r['metadata']['name']}: groups of complete alerts", problems)
        for rule in alerts:
            check_promql(c, f"{case}: alert {rule.get('alert')}", rule["expr"], known_metrics, jobs)
        gossip_alerts = {n for n in names if n.startswith("FerroLBGossip")}
        want_gossip = values["speaker"]["membership"] == "gossip"
        c.check(f"{case}: gossip alerts iff gossip membership", bool(gossip_alerts) == want_gossip)
        want = {"FerroLBNoLeader", "FerroLBPoolNearlyFull", "FerroLBPoolExhausted", "FerroLBSpeakerDown"}
        c.check(f"{case}: the core alerts are there", sorted(want - set(names)))
        threshold = str(p["rule"]["poolUsageThreshold"])
        nearly = [rule for rule in alerts if rule["alert"] == "FerroLBPoolNearlyFull"]
        c.check(f"{case}: FerroLBPoolNearlyFull uses the threshold {threshold}", bool(nearly) and f"> {threshold}" in nearly[0]["expr"])
    if monitoring_crds is not None:
        for d in sms + pms + rules:
            c.check(f"{case}: {d['kind']} {d['metadata']['name']} valid against the Prometheus Operator CRD", monitoring_crds.errors(d))

    dash = find(docs, "ConfigMap", f"{full}-dashboard")
    g = values["grafana"]["dashboard"]
    c.check(f"{case}: dashboard ConfigMap iff enabled", len(dash) == (1 if g["enabled"] else 0))
    for cm in dash:
        c.check(f"{case}: dashboard labelled grafana_dashboard: \"1\"", cm["metadata"]["labels"].get("grafana_dashboard") == "1")
        c.check(f"{case}: dashboard annotations", (cm["metadata"].get("annotations") or {}) == g["annotations"])
        try:
            board = json.loads(cm["data"]["ferrolb.json"])
        except (KeyError, ValueError) as e:
            c.check(f"{case}: dashboard JSON parses", [str(e)])
            continue
        exprs = [(p.get("title"), t["expr"]) for p in board.get("panels", []) for t in p.get("targets", [])]
        c.check(f"{case}: dashboard has panels with queries", len(exprs) >= 8)
        for title, expr in exprs:
            concrete = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*")
            check_promql(c, f"{case}: dashboard panel {title!r}", concrete, known_metrics, None)


def check_notes(c, case, install_text, values, namespace, crds):
    manifest, notes = split_install(install_text)
    c.check(f"{case}: install --dry-run printed NOTES", bool(notes.strip()))
    docs = docs_of(manifest)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    for s in secrets:
        for value in (s.get("data") or {}).values():
            decoded = base64.b64decode(value).decode(errors="replace")
            leaks = [form for form in (value, decoded) if form and form in notes]
            c.check(f"{case}: Secret {s['metadata']['name']}'s key is not in NOTES", ["NOTES contain the key"] if leaks else [])
            elsewhere = manifest.count(value) + (manifest.count(decoded) if decoded != value else 0)
            c.check(f"{case}: the key appears once in the manifest (only in its Secret)", elsewhere == 1)
    # A key rendered afresh (a new random one) or read with lookup would differ from the
    # manifest's: no long token of key-like characters may appear at all.
    tokens = re.findall(r"[A-Za-z0-9+/=]{32,}", notes)
    c.check(f"{case}: NOTES hold no key-like token", [f"token {t[:8]}…" for t in tokens])
    c.check(
        f"{case}: NOTES say how to allow the privileged Pod Security level",
        f"kubectl label namespace {namespace} pod-security.kubernetes.io/enforce=privileged" in notes,
    )
    c.check(f"{case}: NOTES say how to see pool usage", f"kubectl get ipaddresspools -n {namespace}" in notes)
    c.check(f"{case}: NOTES name NET_ADMIN iff nftables", ("NET_ADMIN" in notes) == (values["speaker"]["dataplane"] == "nftables"))
    example = re.search(r"<<'YAML'\n(.*?)\n\s*YAML\n", notes, re.S)
    objects = docs_of(re.sub(r"(?m)^     ", "", example.group(1))) if example else []
    kinds = sorted(o.get("kind") for o in objects)
    c.check(f"{case}: NOTES show an IPAddressPool and an L2Advertisement", kinds == ["IPAddressPool", "L2Advertisement"])
    for o in objects:
        errors = crds.errors(o)
        if o.get("metadata", {}).get("namespace") != namespace:
            errors.append(f"namespace {o.get('metadata', {}).get('namespace')}")
        c.check(f"{case}: NOTES' {o.get('kind')} is valid against its CRD", errors)


def check_names(c, case, docs, full, namespace):
    problems = []
    for d in docs:
        meta = d.get("metadata", {})
        if not d.get("apiVersion") or not d.get("kind") or not meta.get("name"):
            problems.append(f"incomplete object {d.get('kind')} {meta.get('name')}")
            continue
        if len(meta["name"]) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]):
            problems.append(f"name {meta['name']!r}")
        if not meta["name"].startswith(full):
            problems.append(f"{meta['name']} does not start with {full}")
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding") and meta.get("namespace") != namespace:
            problems.append(f"{d['kind']}/{meta['name']} in namespace {meta.get('namespace')}")
        labels = meta.get("labels") or {}
        for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"):
            if k not in labels:
                problems.append(f"{d['kind']}/{meta['name']} lacks label {k}")
    c.check(f"{case}: every object named <fullname>-…, labelled, in the release namespace", problems)


# ----------------------------------------------------- chart-wide checks


def schema_node(schema, node):
    while "$ref" in node:
        name = node["$ref"].split("/")[-1]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**schema["$defs"][name], **extra}
    return node


def value_leaves(schema, node, values, prefix=""):
    """Dotted keys of values.yaml. The chart's own objects (schema with properties and
    required keys) recurse; Kubernetes structures (resources, affinity) and free-form
    maps are single keys."""
    node = schema_node(schema, node)
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        child = schema_node(schema, node.get("properties", {}).get(key, {}))
        if isinstance(value, dict) and "properties" in child and "required" in child:
            out += value_leaves(schema, child, value, path + ".")
        else:
            out.append((path, value))
    return out


def check_schema_strict(c, schema):
    problems = []

    def visit(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" or (isinstance(node.get("type"), list) and "object" in node["type"]):
                if "additionalProperties" not in node and path not in ("affinity.nodeAffinity", "affinity.podAffinity", "affinity.podAntiAffinity"):
                    problems.append(f"{path or '(root)'}: object without additionalProperties")
            for k, v in node.items():
                visit(v, f"{path}.{k}".lstrip(".") if k not in ("properties", "$defs") else path)
        elif isinstance(node, list):
            for v in node:
                visit(v, path)

    visit(schema, "")
    c.check("values.schema.json: every object says what else it admits (additionalProperties)", problems)


def check_readme(c, root, chart, values, schema):
    readme = (chart / "README.md").read_text()
    rows = markdown_table(readme, "## Values")
    c.check("README.md has a values table under '## Values'", bool(rows))
    rows = rows or []
    table = {unquote(r[0]): r for r in rows if len(r) >= 4}
    leaves = value_leaves(schema, schema, values)
    keys = [k for k, _ in leaves]
    c.check("README.md documents every key of values.yaml", [k for k in keys if k not in table])
    c.check("README.md documents no key values.yaml lacks", [k for k in table if k not in keys])
    wrong = []
    for key, value in leaves:
        if key in table:
            want = json.dumps(value)
            got = unquote(table[key][2])
            if got != want:
                wrong.append(f"{key}: README says {got}, values.yaml {want}")
            if not table[key][3]:
                wrong.append(f"{key}: no description")
    c.check("README.md's defaults equal values.yaml's and every key is described", wrong)
    rbac = markdown_table(readme, "## RBAC")
    c.check("README.md has an RBAC table under '## RBAC'", bool(rbac))
    rules, unexplained = set(), []
    for r in rbac or []:
        if len(r) < 7:
            unexplained.append(f"short row {r}")
            continue
        component, kind, group, resource, verbs, names = (unquote(x) for x in r[:6])
        for v in verbs.split(","):
            rules.add((component, kind, group, resource, unquote(v), names.replace("`", "").replace(" ", "")))
        if not r[6].strip():
            unexplained.append(f"row {r[:5]} names no code")
    c.check("README.md's RBAC rows each name the code that needs them", unexplained)
    return rules


def check_chart_yaml(c, root, chart):
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    cargo = (root / "Cargo.toml").read_text()
    m = re.search(r'\[workspace\.package\][^\[]*?\nversion\s*=\s*"([^"]+)"', cargo, re.S)
    version = m.group(1) if m else None
    c.check(
        f"Chart.yaml: apiVersion v2, name ferrolb, version = appVersion = workspace version {version}, kubeVersion >=1.29.0-0",
        meta.get("apiVersion") == "v2"
        and meta.get("name") == "ferrolb"
        and meta.get("version") == version
        and str(meta.get("appVersion")) == version
        and meta.get("kubeVersion") == ">=1.29.0-0",
    )
    return meta


# -------------------------------------------------------------------- main


def builtin(src, dst):
    docs = docs_of(pathlib.Path(src).read_text())
    keep = [d for d in docs if not str(d.get("apiVersion", "")).startswith(CUSTOM_GROUPS)]
    pathlib.Path(dst).write_text(yaml.safe_dump_all(keep, sort_keys=False))
    print(f"{len(keep)} built-in objects of {len(docs)}")
    return 0 if keep else 1


def main(root, work):
    root, work = pathlib.Path(root), pathlib.Path(work)
    chart = root / "charts" / "ferrolb"
    c = Checks()
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    meta = check_chart_yaml(c, root, chart)
    check_schema_strict(c, schema)
    readme_rules = check_readme(c, root, chart, defaults, schema)
    known = {"up"} | rust_metrics(root / "controller/src/metrics.rs", "ferrolb") | rust_metrics(root / "speaker/src/metrics.rs", "ferrolb_speaker")
    c.check(f"metric names read from the Rust sources ({len(known) - 1})", len(known) > 10)
    crds = CrdSet(chart / "crds")
    monitoring_dir = os.environ.get("FERROLB_MONITORING_CRDS")
    monitoring_crds = CrdSet(monitoring_dir) if monitoring_dir else None
    if promql_parser is None:
        c.check("the PromQL parser (pip promql-parser) is installed", False)
    cases = sorted(p for p in work.iterdir() if (p / "meta.json").exists())
    c.check(f"rendered cases found ({len(cases)})", len(cases) >= 2)
    for case_dir in cases:
        case = case_dir.name
        info = json.loads((case_dir / "meta.json").read_text())
        values = coalesce(defaults, yaml.safe_load((case_dir / "values.yaml").read_text()) or {})
        docs = docs_of((case_dir / "manifest.yaml").read_text())
        full = fullname(values, info["release"])
        check_names(c, case, docs, full, info["namespace"])
        check_security(c, case, docs, values)
        check_rbac(c, case, docs, readme_rules, full)
        check_image(c, case, docs, values, str(meta["appVersion"]))
        check_controller(c, case, docs, values, full)
        check_speaker(c, case, docs, values, full)
        check_monitoring(c, case, docs, values, full, known, monitoring_crds)
        check_notes(c, case, (case_dir / "install.txt").read_text(), values, info["namespace"], crds)
    print(f"check_rendered.py: {c.passed} checks passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "builtin":
        sys.exit(builtin(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
