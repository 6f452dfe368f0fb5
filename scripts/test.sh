#!/usr/bin/env bash
# FerroLB's whole test suite: formatting, lints, unit, property, integration and lab
# tests. On a fresh Debian machine, run as root: it installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# A C compiler for crates with C parts (ring).
ensure_debian_packages build-essential ca-certificates
ensure_rust

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
