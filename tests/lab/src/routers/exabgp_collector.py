#!/usr/bin/env python3
"""ExaBGP API process for the FerroLB lab: keeps prefix -> paths from ExaBGP's parsed
JSON messages and rewrites TABLE (atomically) after each one; appends every message to
LOG. Usage (exabgp.conf): run python3 exabgp_collector.py TABLE LOG
Nothing may be printed to stdout: ExaBGP reads it as API commands."""
import json
import os
import sys

table_path, log_path = sys.argv[1], sys.argv[2]
log = open(log_path, "a", buffering=1)
rib = {}  # prefix -> {neighbor: path}


def dump():
    out = {p: [rib[p][n] for n in sorted(rib[p])] for p in sorted(rib) if rib[p]}
    tmp = table_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, table_path)


def forget(peer):
    for prefix in list(rib):
        rib[prefix].pop(peer, None)
        if not rib[prefix]:
            del rib[prefix]


def nlri(n):
    return n["nlri"] if isinstance(n, dict) else n


dump()
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    log.write(line + "\n")
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    neighbor = msg.get("neighbor", {})
    peer = neighbor.get("address", {}).get("peer")
    if msg.get("type") == "state" and neighbor.get("state") == "down" and peer:
        forget(peer)
    elif msg.get("type") == "update" and peer:
        update = neighbor.get("message", {}).get("update", {})
        attributes = update.get("attribute", {})
        for nlris in update.get("withdraw", {}).values():
            for n in nlris:
                rib.get(nlri(n), {}).pop(peer, None)
                if nlri(n) in rib and not rib[nlri(n)]:
                    del rib[nlri(n)]
        # An IPv6 next hop with its link-local comes as two keys: keep the global one.
        hops = {}
        for by_hop in update.get("announce", {}).values():
            for hop, nlris in by_hop.items():
                for n in nlris:
                    hops.setdefault(nlri(n), []).append(hop)
        for prefix, found in hops.items():
            best = [h for h in found if not h.lower().startswith("fe80:")] or found
            rib.setdefault(prefix, {})[peer] = {
                "next-hop": best[0],
                "communities": ["%d:%d" % tuple(c) for c in attributes.get("community", [])],
                "large-communities": ["%d:%d:%d" % tuple(c) for c in attributes.get("large-community", [])],
                "local-pref": attributes.get("local-preference"),
            }
    elif msg.get("type") == "notification" and msg.get("notification") == "shutdown":
        rib.clear()
    else:
        continue
    dump()
