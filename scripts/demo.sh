#!/usr/bin/env bash
# FerroLB's main job, locally and with no cluster: builds the binaries, creates a
# network-namespace lab (a LAN bridge, two nodes, a client), starts the API test server,
# the controller and a speaker per node, applies a pool, an L2Advertisement and a
# dual-stack Service, then shows the EXTERNAL-IPs, who answers ARP and NDP, curl
# through the VIPs, and a live failover with its measured outage. Everything it creates
# is removed at the end, also when interrupted. Pass --hold to keep the lab up, --helm
# to install FerroLB with its Helm chart into an API server that enforces RBAC and run
# the chart's pods as their specs say, --bgp for BGP to a BIRD router in the client's
# namespace (see ferrolb-demo --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "The demo builds network namespaces and raw sockets: run it as root (sudo scripts/demo.sh)." >&2
    exit 2
fi
. scripts/lib.sh

ensure_debian_packages build-essential ca-certificates python3 python3-venv \
    iproute2 nftables arping ndisc6 iputils-ping curl bird2
ensure_rust
ensure_client_tools

echo "== building FerroLB"
cargo build --quiet --locked --workspace
exec target/debug/ferrolb-demo "$@"
