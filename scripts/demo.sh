#!/usr/bin/env bash
# FerroLB's main job, locally. Today: validate a configuration with the same model the
# controller and speakers use, and show what it reports. The network-namespace lab
# demo (API test server, controller, two speakers, ARP/NDP, curl through the VIP and a
# live failover) replaces this with the speaker issue; the command stays the same.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_debian_packages build-essential ca-certificates
ensure_rust

cargo build --quiet --locked -p ferrolb-controller
bin=target/debug/ferrolb-controller

echo "== A healthy configuration: a dual-stack pool announced in Layer 2"
"$bin" validate -f examples/l2-dual-stack.yaml
echo
echo "== The same plus two mistakes: the valid objects stay in force, each mistake is named"
"$bin" validate -f examples/l2-dual-stack.yaml -f examples/mistakes.yaml || true
echo
echo "The lab demo (announcing the address, curl through it, failover) arrives with the speaker."
