"""JSON Schema validation of custom resources against their CRD's openAPIV3Schema.

Kubernetes' structural schemas are OpenAPI v3 with extensions; this turns one into a
draft 2020-12 JSON Schema that behaves like the API server with strict field validation
(kubectl's default): unknown fields are errors, `nullable` admits null,
`x-kubernetes-int-or-string` admits both, `x-kubernetes-preserve-unknown-fields` keeps
anything. CEL rules (`x-kubernetes-validations`) are not evaluated here: the Rust tests
evaluate them (crds/tests, tests/apiserver).
"""

import copy
import pathlib

import jsonschema
import yaml

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def to_json_schema(node):
    """Converts one OpenAPI v3 structural schema node (recursively)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format", "example", "externalDocs"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "pattern" and "(?i)" in value:
            # Go's RE2 takes inline flags anywhere; Python only at the start.
            out[key] = "(?i)" + value.replace("(?i)", "")
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-embedded-resource") or node.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
    elif out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def object_schema(crd, version):
    """The JSON Schema of a whole object of `crd` at `version` (a served version's name)."""
    spec = crd["spec"]
    for v in spec["versions"]:
        if v["name"] == version and v.get("served", True):
            body = to_json_schema(v["schema"]["openAPIV3Schema"])
            break
    else:
        raise KeyError(f"{crd['metadata']['name']} serves no version {version}")
    props = body.setdefault("properties", {})
    props["apiVersion"] = {"const": f"{spec['group']}/{version}"}
    props["kind"] = {"const": spec["names"]["kind"]}
    metadata = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    if spec["scope"] == "Namespaced":
        metadata["properties"]["namespace"] = {"type": "string", "maxLength": 63}
    props["metadata"] = metadata
    body["required"] = sorted(set(body.get("required", [])) | {"apiVersion", "kind", "metadata"})
    body["type"] = "object"
    body["additionalProperties"] = False
    body["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(body)
    return body


class CrdSet:
    """The CRDs of one or more directories, indexed by (apiVersion, kind)."""

    def __init__(self, *directories):
        self.schemas = {}
        for directory in directories:
            for path in sorted(pathlib.Path(directory).glob("*.yaml")):
                for crd in yaml.safe_load_all(path.read_text()):
                    if not crd or crd.get("kind") != "CustomResourceDefinition":
                        continue
                    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                    for v in crd["spec"]["versions"]:
                        if v.get("served", True):
                            self.schemas[(f"{group}/{v['name']}", kind)] = object_schema(crd, v["name"])

    def knows(self, obj):
        return (obj.get("apiVersion"), obj.get("kind")) in self.schemas

    def errors(self, obj):
        """Every schema error of `obj` as 'path: message' strings; [] when it is valid."""
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key not in self.schemas:
            return [f"no CRD serves {key[0]} {key[1]}"]
        validator = jsonschema.Draft202012Validator(self.schemas[key])
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        ]
