# Shared by scripts/test.sh and scripts/demo.sh: installing what FerroLB's commands need
# on a Debian machine, idempotently.

# ensure_debian_packages PKG...: installs the packages that are not installed yet
# (needs root; apt-get update runs once, only when something is missing).
ensure_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        return 1
    fi
    echo "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_rust: cargo must be there (no toolchain can be downloaded here); rustfmt and
# clippy are added through rustup when missing.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install a Rust toolchain >= 1.89 (rustup) first" >&2
        return 1
    fi
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            rustup component add "$component"
        fi
    done
}
