"""The official Python client `kubernetes` against the FerroLB test server.

Usage: client_checks.py KUBECONFIG SERVER_URL CRD_YAML
Prints one line per check and a closing 'N passed, M failed'; exits 1 on a failure.
"""

import datetime
import json
import sys
import urllib.request

import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

KUBECONFIG, SERVER, CRD_FILE = sys.argv[1:4]
config.load_kube_config(config_file=KUBECONFIG)
core = client.CoreV1Api()
discovery = client.DiscoveryV1Api()
coordination = client.CoordinationV1Api()
events = client.EventsV1Api()
extensions = client.ApiextensionsV1Api()
custom = client.CustomObjectsApi()
MERGE = "application/merge-patch+json"
NS = "default"
results = []


def check(name):
    def run(fn):
        try:
            fn()
            results.append((name, None))
        except Exception as err:  # a failed check is reported, the rest still run
            results.append((name, repr(err)))
    return run


def expect_status(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as err:
        assert err.status == code, f"expected {code}, got {err.status}: {err.reason}"
        return
    raise AssertionError(f"expected HTTP {code}, the call succeeded")


def meta(name, **labels):
    return client.V1ObjectMeta(name=name, labels=labels or None)


def fault(body):
    request = urllib.request.Request(f"{SERVER}/_testserver/faults", data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request).read()


@check("services: create, read, replace, 409 on stale, patch, patch status, 404 after delete")
def _():
    svc = client.V1Service(
        metadata=meta("web", app="web"),
        spec=client.V1ServiceSpec(type="LoadBalancer", selector={"app": "web"},
                                  ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )
    created = core.create_namespaced_service(NS, svc)
    assert created.spec.cluster_ip and created.spec.ports[0].node_port
    expect_status(409, core.create_namespaced_service, NS, svc)
    current = core.read_namespaced_service("web", NS)
    current.metadata.annotations = {"note": "1"}
    replaced = core.replace_namespaced_service("web", NS, current)
    assert replaced.metadata.resource_version != current.metadata.resource_version
    expect_status(409, core.replace_namespaced_service, "web", NS, current)
    core.patch_namespaced_service("web", NS, {"metadata": {"labels": {"tier": "front"}}}, _content_type=MERGE)
    core.patch_namespaced_service("web", NS, [{"op": "add", "path": "/metadata/labels/team", "value": "lb"}])
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "10.42.0.200"}]}}}
    patched = core.patch_namespaced_service_status("web", NS, status, _content_type=MERGE)
    assert patched.status.load_balancer.ingress[0].ip == "10.42.0.200"
    listed = core.list_namespaced_service(NS, label_selector="app=web,tier in (front),team")
    assert [s.metadata.name for s in listed.items] == ["web"]
    core.delete_namespaced_service("web", NS)
    expect_status(404, core.read_namespaced_service, "web", NS)


@check("nodes: create with conditions, patch status, list by label, delete")
def _():
    node = client.V1Node(
        metadata=meta("node-a", **{"kubernetes.io/hostname": "node-a", "zone": "a"}),
        status=client.V1NodeStatus(conditions=[client.V1NodeCondition(type="Ready", status="True")]),
    )
    core.create_node(node)
    core.patch_node_status("node-a", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                           _content_type=MERGE)
    assert core.read_node("node-a").status.conditions[0].status == "False"
    assert len(core.list_node(label_selector="zone=a").items) == 1
    assert len(core.list_node(label_selector="zone!=a").items) == 0
    core.delete_node("node-a")
    expect_status(404, core.read_node, "node-a")


@check("endpointslices: create, list by service label, replace")
def _():
    eps = client.V1EndpointSlice(
        metadata=meta("web-abc", **{"kubernetes.io/service-name": "web"}),
        address_type="IPv4",
        endpoints=[client.V1Endpoint(addresses=["10.244.0.5"], node_name="node-a",
                                     conditions=client.V1EndpointConditions(ready=True))],
        ports=[client.DiscoveryV1EndpointPort(port=8080, protocol="TCP")],
    )
    discovery.create_namespaced_endpoint_slice(NS, eps)
    listed = discovery.list_namespaced_endpoint_slice(NS, label_selector="kubernetes.io/service-name=web")
    assert listed.items[0].endpoints[0].node_name == "node-a"
    current = listed.items[0]
    current.endpoints[0].conditions.ready = False
    replaced = discovery.replace_namespaced_endpoint_slice("web-abc", NS, current)
    assert replaced.endpoints[0].conditions.ready is False


@check("leases: create, take over, 409 for the loser")
def _():
    lease = client.V1Lease(metadata=meta("ferrolb-controller"),
                           spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15))
    created = coordination.create_namespaced_lease(NS, lease)
    mine = coordination.read_namespaced_lease("ferrolb-controller", NS)
    mine.spec.holder_identity = "b"
    coordination.replace_namespaced_lease("ferrolb-controller", NS, mine)
    created.spec.holder_identity = "c"
    expect_status(409, coordination.replace_namespaced_lease, "ferrolb-controller", NS, created)
    assert coordination.read_namespaced_lease("ferrolb-controller", NS).spec.holder_identity == "b"


@check("events: core/v1 and events.k8s.io/v1")
def _():
    ref = client.V1ObjectReference(kind="Service", name="web", namespace=NS)
    core.create_namespaced_event(NS, client.CoreV1Event(metadata=meta("web.1"), involved_object=ref,
                                                        reason="IPAllocated", message="Assigned IP", type="Normal"))
    assert core.list_namespaced_event(NS, field_selector="metadata.name=web.1").items[0].reason == "IPAllocated"
    now = datetime.datetime.now(datetime.timezone.utc)
    events.create_namespaced_event(NS, client.EventsV1Event(
        metadata=meta("web.2"), event_time=now, reporting_controller="ferrolb.io/controller",
        reporting_instance="controller-0", action="Allocate", reason="IPAllocated", regarding=ref,
        note="Assigned IP", type="Normal"))
    assert events.read_namespaced_event("web.2", NS).note == "Assigned IP"


@check("secrets: stringData becomes base64 data")
def _():
    core.create_namespaced_secret(NS, client.V1Secret(metadata=meta("bgp"), type="kubernetes.io/basic-auth",
                                                      string_data={"password": "s3cret"}))
    assert core.read_namespaced_secret("bgp", NS).data["password"] == "czNjcmV0"


@check("custom resources: CRD, create, 422, list by label, patch status, 404")
def _():
    with open(CRD_FILE) as f:
        crd = next(d for d in yaml.safe_load_all(f) if d)
    extensions.create_custom_resource_definition(crd)
    group, version, plural, ns = "ferrolb.io", "v1beta1", "ipaddresspools", "ferrolb-system"
    pool = {"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lan", "labels": {"site": "home"}}, "spec": {"addresses": ["10.42.0.0/24"]}}
    created = custom.create_namespaced_custom_object(group, version, ns, plural, pool)
    assert created["spec"]["autoAssign"] is True
    bad = dict(pool, metadata={"name": "bad"}, spec={"addresses": ["10.42.1.9-10.42.1.1"]})
    expect_status(422, custom.create_namespaced_custom_object, group, version, ns, plural, bad)
    listed = custom.list_namespaced_custom_object(group, version, ns, plural, label_selector="site=home")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["lan"]
    custom.patch_namespaced_custom_object_status(group, version, ns, plural, "lan",
                                                 {"status": {"assignedIPv4": 1, "availableIPv4": 255}})
    assert custom.get_namespaced_custom_object(group, version, ns, plural, "lan")["status"]["assignedIPv4"] == 1
    custom.delete_namespaced_custom_object(group, version, ns, plural, "lan")
    expect_status(404, custom.get_namespaced_custom_object, group, version, ns, plural, "lan")


@check("watch: ordered events from a resourceVersion")
def _():
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("w"), data={"k": "1"}))
    core.patch_namespaced_config_map("w", NS, {"data": {"k": "2"}}, _content_type=MERGE)
    core.delete_namespaced_config_map("w", NS)
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=5):
        seen.append(event["type"])
        if len(seen) == 3:
            w.stop()
    assert seen == ["ADDED", "MODIFIED", "DELETED"], seen


@check("watch: 410 Gone from a compacted resourceVersion")
def _():
    fault({"compact": 0})
    try:
        for _event in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version="1",
                                           timeout_seconds=5):
            pass
    except ApiException as err:
        assert err.status == 410, err.status
        return
    raise AssertionError("no 410")


for name, error in results:
    print(("ok     " if error is None else "FAILED ") + name + ("" if error is None else f"\n       {error}"))
failed = sum(1 for _, e in results if e)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
