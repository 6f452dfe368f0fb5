#!/usr/bin/env python3
"""Validates the ferrolb.io objects of examples/*.yaml against the CRDs in
charts/ferrolb/crds/ (their openAPIV3Schema, with unknown fields rejected).

examples/mistakes.yaml is validated too: its mistakes (an overlapping pool, a reversed
range) are caught by CEL rules and the config model, not by the schema, so the schema
must accept it. A self-test first checks that the validation rejects an unknown field,
a wrong type and an object of an unknown kind, so a pass means something.

Usage: check_examples.py CRD_DIR EXAMPLE.yaml...
Prints one line per check and "check_examples.py: N checks passed, M failed"; exits 1
on any failure.
"""

import copy
import pathlib
import sys

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from crdschema import CrdSet  # noqa: E402

passed = failed = 0


def check(name, problems):
    global passed, failed
    if problems:
        failed += 1
        print(f"not ok - {name}")
        for p in problems:
            print(f"    {p}")
    else:
        passed += 1
        print(f"ok - {name}")


def main():
    crd_dir, files = sys.argv[1], sys.argv[2:]
    crds = CrdSet(crd_dir)
    check(f"CRDs of {crd_dir} load ({len(crds.schemas)} kinds)", [] if crds.schemas else ["no CRD found"])

    pool = {
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "selftest", "namespace": "ferrolb-system"},
        "spec": {"addresses": ["10.0.0.0/24"]},
    }
    check("self-test: a valid pool passes", crds.errors(pool))
    typo = copy.deepcopy(pool)
    typo["spec"]["adresses"] = typo["spec"].pop("addresses")
    check("self-test: an unknown field is rejected", [] if crds.errors(typo) else ["accepted spec.adresses"])
    wrong = copy.deepcopy(pool)
    wrong["spec"]["autoAssign"] = "yes"
    check("self-test: a wrong type is rejected", [] if crds.errors(wrong) else ["accepted autoAssign: yes"])
    alien = dict(pool, kind="IPPool")
    check("self-test: an unknown kind is rejected", [] if crds.errors(alien) else ["accepted kind IPPool"])

    for path in files:
        docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
        check(f"{path}: has objects", [] if docs else ["no object"])
        for doc in docs:
            name = f"{path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            if not str(doc.get("apiVersion", "")).startswith("ferrolb.io/"):
                check(name, [f"not a ferrolb.io object: {doc.get('apiVersion')}"])
                continue
            check(name, crds.errors(doc))

    print(f"check_examples.py: {passed} checks passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
