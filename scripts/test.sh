#!/usr/bin/env bash
# FerroLB's whole test suite: formatting, lints, unit, property, integration and lab
# tests. On a fresh Debian machine, run as root: it installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# A C compiler for crates with C parts (ring); Python for the client tools.
ensure_debian_packages build-essential ca-certificates python3 python3-venv
ensure_rust
# The Layer 2 lab (tests/lab): namespaces, nftables, kernel clients, keepalived for the
# failover comparison; BIRD 2, FRR, GoBGP and ExaBGP as the BGP labs' routers.
ensure_debian_packages iproute2 nftables arping ndisc6 iputils-ping curl keepalived tcpdump bird2 frr gobgpd exabgp
# kubectl, helm and the Python client drive the API test server in tests/apiserver and
# the chart lab; kubernetes-validate and jsonschema check the rendered chart.
ensure_client_tools

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo deny (licences, duplicate versions, sources: deny.toml)"
"$FERROLB_CARGO_DENY" --offline --locked check licenses bans sources
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== chart"
scripts/chart-check.sh
echo "== cargo build (the lab runs the binaries; the fuzz target is built, fuzzing needs nightly)"
cargo build --workspace --locked
# The image from the debug binaries just built: the same root filesystem, libraries
# and configuration as a release image, without a second (10-minute) build in CI;
# `scripts/image.sh` alone builds the release image.
echo "== image"
FERROLB_IMAGE_BINARIES=target/debug scripts/image.sh --smoke --image ferrolb:test
echo "== cargo test"
cargo test --workspace --locked
