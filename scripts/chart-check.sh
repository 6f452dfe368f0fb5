#!/usr/bin/env bash
# Offline checks of the Helm chart charts/ferrolb:
#   1. helm lint --strict, with the defaults and with every good fixture;
#   2. tests/values/good-*.yaml render, tests/values/bad-*.yaml are refused with the
#      message their first line expects ("# expect: TEXT"); kubeVersion is enforced;
#   3. every rendered built-in object passes kubernetes-validate --strict against the
#      Kubernetes 1.29 and 1.35 schemas;
#   4. tests/check_rendered.py: assertions over the rendered manifests and NOTES;
#   5. tests/check_examples.py: examples/*.yaml against the CRDs' schemas.
# Uses $FERROLB_HELM (else .tools/bin/helm) and $FERROLB_PYTHON (else .tools/venv's
# python), as installed by ensure_client_tools in scripts/lib.sh. Ends with the line
# "chart: N passed, M failed" and exits 1 when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM="${FERROLB_HELM:-$PWD/.tools/bin/helm}"
PYTHON="${FERROLB_PYTHON:-$PWD/.tools/venv/bin/python}"
CHART=charts/ferrolb
TESTS=$CHART/tests
KUBE_VERSIONS=(1.29.0 1.35.0)
for tool in "$HELM" "$PYTHON"; do
    if [ ! -x "$tool" ]; then
        echo "chart-check: $tool is missing (scripts/lib.sh ensure_client_tools installs it)" >&2
        exit 1
    fi
done
VALIDATE="$(dirname "$PYTHON")/kubernetes-validate"
if [ ! -x "$VALIDATE" ]; then
    echo "chart-check: kubernetes-validate is missing from $(dirname "$PYTHON") (ensure_client_tools installs it)" >&2
    exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# helm must not find a cluster, a cache or a repository of the user's.
export KUBECONFIG="$WORK/no-kubeconfig" HELM_CACHE_HOME="$WORK/helm/cache" \
    HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

passed=0
failed=0
# check NAME CMD...: runs CMD quietly; on failure prints its output.
check() {
    local name="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        passed=$((passed + 1))
        echo "ok - $name"
    else
        failed=$((failed + 1))
        echo "not ok - $name"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}
# add_counts OUTPUT: adds a Python checker's "N checks passed, M failed" to the totals.
add_counts() {
    local line
    line="$(printf '%s\n' "$1" | grep -E '^check_[a-z_]+\.py: [0-9]+ checks passed, [0-9]+ failed$' | tail -1)"
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        echo "not ok - a Python checker ended without its summary"
        return
    fi
    passed=$((passed + $(sed -E 's/.*: ([0-9]+) checks passed.*/\1/' <<<"$line")))
    failed=$((failed + $(sed -E 's/.*, ([0-9]+) failed$/\1/' <<<"$line")))
}

# refused VALUES EXPECTED: helm template must fail and say EXPECTED.
refused() {
    local out
    if out="$("$HELM" template r "$CHART" -f "$1" 2>&1)"; then
        echo "rendered although it should not have"
        return 1
    fi
    if ! grep -qF -- "$2" <<<"$out"; then
        printf 'refused, but without "%s":\n%s\n' "$2" "$out"
        return 1
    fi
}

# validate FILE: kubernetes-validate --strict on its built-in objects, at each version;
# a built-in object with no schema counts as a failure.
validate() {
    local builtin="$1.builtin.yaml" out k
    "$PYTHON" "$TESTS/check_rendered.py" builtin "$1" "$builtin" || return 1
    for k in "${KUBE_VERSIONS[@]}"; do
        out="$("$VALIDATE" --strict --quiet -k "$k" "$builtin" 2>&1)" || { printf '%s\n' "$out"; return 1; }
        if grep -q "Couldn't find schema" <<<"$out"; then
            printf '%s\n' "$out"
            return 1
        fi
    done
}

echo "== helm lint"
check "helm lint --strict (defaults)" "$HELM" lint --strict "$CHART"
for f in "$TESTS"/values/good-*.yaml; do
    check "helm lint --strict -f $(basename "$f")" "$HELM" lint --strict "$CHART" -f "$f"
done

echo "== fixtures"
# Cases for check_rendered.py: defaults (release "ferrolb" in ferrolb-system: fullname
# "ferrolb") and every good fixture (release "edge" in "lb-system").
render_case() {
    local case="$1" values="$2" release="$3" namespace="$4" dir="$WORK/cases/$1" k
    mkdir -p "$dir"
    # (check runs this as an if condition, where set -e does not apply: hence || return)
    if [ -n "$values" ]; then cp "$values" "$dir/values.yaml"; else : >"$dir/values.yaml"; fi
    printf '{"release": "%s", "namespace": "%s"}\n' "$release" "$namespace" >"$dir/meta.json"
    "$HELM" template "$release" "$CHART" -n "$namespace" -f "$dir/values.yaml" >"$dir/manifest.yaml" || return 1
    for k in "${KUBE_VERSIONS[@]}"; do
        "$HELM" template "$release" "$CHART" -n "$namespace" -f "$dir/values.yaml" --kube-version "$k" >/dev/null || return 1
    done
    "$HELM" install --dry-run=client "$release" "$CHART" -n "$namespace" -f "$dir/values.yaml" >"$dir/install.txt" || return 1
}
check "defaults render (Kubernetes ${KUBE_VERSIONS[*]}) and install --dry-run=client" \
    render_case defaults "" ferrolb ferrolb-system
for f in "$TESTS"/values/good-*.yaml; do
    name="$(basename "$f" .yaml)"
    check "$name renders (Kubernetes ${KUBE_VERSIONS[*]}) and install --dry-run=client" \
        render_case "$name" "$f" edge lb-system
done
for f in "$TESTS"/values/bad-*.yaml; do
    expected="$(head -1 "$f" | sed -n 's/^# expect: //p')"
    if [ -z "$expected" ]; then
        check "$(basename "$f") has an '# expect:' first line" false
        continue
    fi
    check "$(basename "$f") refused: $expected" refused "$f" "$expected"
done
check "kubeVersion: Kubernetes 1.28 refused" \
    bash -c '! "$1" template r "$2" --kube-version 1.28.0 2>/dev/null' _ "$HELM" "$CHART"

echo "== kubernetes-validate --strict (${KUBE_VERSIONS[*]})"
for dir in "$WORK"/cases/*; do
    if [ -s "$dir/manifest.yaml" ]; then
        check "$(basename "$dir"): built-in objects valid" validate "$dir/manifest.yaml"
    fi
done

echo "== check_rendered.py"
out="$("$PYTHON" "$TESTS/check_rendered.py" "$PWD" "$WORK/cases" 2>&1)" || true
grep -v '^ok - ' <<<"$out" || true
add_counts "$out"

echo "== check_examples.py"
out="$("$PYTHON" "$TESTS/check_examples.py" "$CHART/crds" examples/*.yaml 2>&1)" || true
grep -v '^ok - ' <<<"$out" || true
add_counts "$out"

echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
