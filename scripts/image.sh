#!/usr/bin/env bash
# Builds FerroLB's container image, ferrolb:<workspace version>, with buildah from the
# Containerfile at the top of the checkout: FROM scratch, so nothing is pulled from an
# image registry. Run as root on Debian 12 (it installs buildah and binutils if missing).
#
# The root filesystem is assembled here: the two release binaries, and from Debian's
# packages (apt-get download, verified by apt, kept in target/image/debs/) nft and exactly
# the shared libraries the three programs load (their DT_NEEDED closure, with the
# symlink names the dynamic loader looks for), the Mozilla CA bundle, /etc/protocols,
# /etc/services and /etc/debian_version; passwd and group with root (0) and nonroot
# (65532). The packages' copyright files and control records (var/lib/dpkg/status.d/,
# which image scanners read) go in too. Nothing is taken from the host's own /etc or /usr, so the image does
# not depend on what happens to be installed here; with the same binaries, packages and
# commit it is the same image, byte for byte (file times and the creation time are the
# commit's time).
#
# Usage: scripts/image.sh [--save] [--smoke | --smoke-only] [--image NAME]
#   --save        also write target/image/ferrolb-<version>.oci.tar (an OCI archive, for
#                 `skopeo copy oci-archive:…` or `podman load`)
#   --smoke       after building, test the image: mount its root filesystem and run
#                 each program under chroot (as root and as uid 65532), nft in a new
#                 network namespace, and check the image's configuration
#   --smoke-only  test the image already built, without building
#   --image NAME  the image to build or test (default ferrolb:<version>)
# Environment:
#   FERROLB_IMAGE_BINARIES=DIR  take ferrolb-controller and ferrolb-speaker from DIR
#                               (e.g. target/debug) instead of `cargo build --release`
#   STORAGE_DRIVER=vfs          buildah's storage driver; by default buildah's own
#                               (overlay), or vfs where buildah cannot start with it
#   SOURCE_DATE_EPOCH           file and creation times (default: the commit's time)
set -euo pipefail

# Resolved before the cd below, so a relative DIR means the caller's directory.
BINARIES="${FERROLB_IMAGE_BINARIES:-}"
if [ -n "$BINARIES" ]; then
    BINARIES="$(realpath "$BINARIES")"
fi

cd "$(dirname "$0")/.."
. scripts/lib.sh

SAVE=0 BUILD=1 SMOKE=0 IMAGE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --save) SAVE=1 ;;
        --smoke) SMOKE=1 ;;
        --smoke-only) SMOKE=1 BUILD=0 ;;
        --image) IMAGE="${2:?--image needs a name}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

VERSION="$(awk -F'"' '/^\[workspace\.package\]/ { s = 1; next } /^\[/ { s = 0 }
    s && /^version *=/ { print $2; exit }' Cargo.toml)"
[ -n "$VERSION" ] || { echo "no version in Cargo.toml's [workspace.package]" >&2; exit 1; }
IMAGE="${IMAGE:-ferrolb:$VERSION}"
OUT="$PWD/target/image"

# What the image takes from Debian: nft with everything it depends on (resolved by apt),
# the C and unwinder libraries the Rust binaries link, and data-only packages.
NFT_PACKAGE=nftables
LIBRARY_PACKAGES=(libc6 libgcc-s1)
DATA_PACKAGES=(ca-certificates netbase base-files)
NONROOT=65532

WORK="" SMOKE_CONTAINER="" INSTALLED="" PACKAGE_VERSIONS=""
cleanup() {
    if [ -n "$SMOKE_CONTAINER" ]; then
        buildah rm "$SMOKE_CONTAINER" >/dev/null 2>&1 || true
    fi
    if [ -n "$WORK" ]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

ensure_debian_packages buildah binutils

# buildah's default driver is overlay; where the kernel or the file system under
# /var/lib/containers refuses it (overlay on overlay, some sandboxes), fall back to vfs.
if [ -z "${STORAGE_DRIVER:-}" ] && ! buildah info >/dev/null 2>&1; then
    echo "buildah cannot start with its default storage driver: using vfs"
    export STORAGE_DRIVER=vfs
fi

# --- the root filesystem -----------------------------------------------------------

# debian_packages: the package names to download (nft's dependency closure, one a line).
debian_packages() {
    {
        apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "$NFT_PACKAGE" | grep -E '^[a-z0-9]'
        printf '%s\n' "${LIBRARY_PACKAGES[@]}" "${DATA_PACKAGES[@]}"
    } | sort -u
}

# download_debs DIR PKG...: the candidate version of each package into DIR, unless a
# file with apt's SHA-256 for it is there already. Prints the .deb paths.
download_debs() {
    local dir="$1" uris url file size hash missing=() paths=()
    shift
    uris="$(apt-get download --print-uris "$@")"
    while read -r url file size hash; do
        paths+=("$dir/$file")
        if [ ! -f "$dir/$file" ] || [ "$(sha256sum <"$dir/$file" | cut -d' ' -f1)" != "${hash#SHA256:}" ]; then
            rm -f "$dir/$file"
            missing+=("${file%%_*}")
        fi
    done <<<"$uris"
    if [ ${#missing[@]} -gt 0 ]; then
        echo "downloading ${#missing[@]} Debian packages: ${missing[*]}" >&2
        (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >/dev/null)
    fi
    printf '%s\n' "${paths[@]}"
}

# Paths in the image are merged-/usr: /bin, /sbin, /lib and /lib64 are symlinks into /usr.
usr_path() {
    case "$1" in
        bin/*|sbin/*|lib/*|lib64/*) echo "usr/$1" ;;
        *) echo "$1" ;;
    esac
}

declare -A USED=()
# install_from PKG PATH: copies PATH (relative to the package's root) from the extracted
# package into the root filesystem, following symlinks (each link is kept, under its
# name, and its target is installed too). Sets INSTALLED to the image path of the file
# finally reached.
install_from() {
    local pkg="$1" rel="$2" src dest target next
    src="$WORK/pkgs/$pkg/$rel"
    dest="$ROOTFS/$(usr_path "$rel")"
    USED[$pkg]=1
    mkdir -p "$(dirname "$dest")"
    if [ -L "$src" ]; then
        [ -L "$dest" ] || cp -P "$src" "$dest"
        target="$(readlink "$src")"
        case "$target" in
            /*) next="${target#/}" ;;
            *) next="$(realpath -m -s --relative-to=/ "/$(dirname "$rel")/$target")" ;;
        esac
        if [ ! -e "$WORK/pkgs/$pkg/$next" ] && [ ! -L "$WORK/pkgs/$pkg/$next" ]; then
            pkg="$(package_with "$next")" || { echo "no package has /$next ($rel's target)" >&2; return 1; }
        fi
        install_from "$pkg" "$next"
    else
        [ -e "$dest" ] || cp -p "$src" "$dest"
        INSTALLED="$(usr_path "$rel")"
    fi
}

# package_with PATH: the extracted package that has PATH (relative to its root).
package_with() {
    local dir
    for dir in "$WORK"/pkgs/*/; do
        if [ -e "$dir$1" ] || [ -L "$dir$1" ]; then
            basename "$dir"
            return 0
        fi
    done
    return 1
}

# install_closure FILE...: the program interpreter and the DT_NEEDED libraries of each
# ELF file in the root filesystem, recursively, from the directories the dynamic loader
# searches by default (no ld.so.cache in the image).
install_closure() {
    local queue=("$@") file interp soname dir pkg found
    local -A seen=()
    local triplet
    triplet="$(uname -m)-linux-gnu"
    while [ ${#queue[@]} -gt 0 ]; do
        file="${queue[0]}"
        queue=("${queue[@]:1}")
        interp="$(readelf -lW "$ROOTFS/$file" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')"
        if [ -n "$interp" ] && [ -z "${seen[$interp]:-}" ]; then
            seen[$interp]=1
            pkg="$(package_with "${interp#/}")" || { echo "no package has $interp (for /$file)" >&2; return 1; }
            install_from "$pkg" "${interp#/}"
        fi
        for soname in $(readelf -dW "$ROOTFS/$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
            [ -z "${seen[$soname]:-}" ] || continue
            seen[$soname]=1
            found=""
            for dir in "lib/$triplet" "usr/lib/$triplet" lib usr/lib; do
                if pkg="$(package_with "$dir/$soname")"; then
                    install_from "$pkg" "$dir/$soname"
                    found="$INSTALLED"
                    break
                fi
            done
            [ -n "$found" ] || { echo "no package has $soname (needed by /$file)" >&2; return 1; }
            queue+=("$found")
        done
    done
}

build_rootfs() {
    local deb name src
    mkdir -p "$OUT/debs" "$WORK/pkgs" "$WORK/control"
    if ! apt-cache show "$NFT_PACKAGE" >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] || { echo "apt's package lists are missing: run as root" >&2; return 1; }
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    debian_packages >"$WORK/packages"
    download_debs "$OUT/debs" $(cat "$WORK/packages") >"$WORK/debs"
    mapfile -t DEBS <"$WORK/debs"
    for deb in "${DEBS[@]}"; do
        name="$(dpkg-deb -f "$deb" Package)"
        dpkg-deb -x "$deb" "$WORK/pkgs/$name"
        dpkg-deb -f "$deb" >"$WORK/control/$name"
    done

    ROOTFS="$WORK/rootfs"
    mkdir -p "$ROOTFS"/usr/{bin,sbin,lib,lib64} "$ROOTFS"/etc/ssl/certs "$ROOTFS"/var/lib/dpkg/status.d
    for dir in bin sbin lib lib64; do ln -s "usr/$dir" "$ROOTFS/$dir"; done

    install -m 0755 "$BIN_DIR/ferrolb-controller" "$BIN_DIR/ferrolb-speaker" "$ROOTFS/usr/bin/"
    # Debug information off (a debug build's is most of its 200 MB; a release build has
    # none); symbols stay, so backtraces keep their function names.
    objcopy --strip-debug "$ROOTFS/usr/bin/ferrolb-controller"
    objcopy --strip-debug "$ROOTFS/usr/bin/ferrolb-speaker"
    install_from "$NFT_PACKAGE" usr/sbin/nft
    install_closure usr/bin/ferrolb-controller usr/bin/ferrolb-speaker usr/sbin/nft

    # The CA bundle update-ca-certificates would make from the default (all Mozilla)
    # selection. The host's own bundle may carry local additions: not taken.
    for src in $(LC_ALL=C ls "$WORK"/pkgs/ca-certificates/usr/share/ca-certificates/mozilla/*.crt); do
        sed -e '$a\' "$src"
    done >"$ROOTFS/etc/ssl/certs/ca-certificates.crt"
    USED[ca-certificates]=1
    # Protocol and service names, for `nft list` (`kubectl exec … -- nft list ruleset`).
    cp -p "$WORK"/pkgs/netbase/etc/{protocols,services} "$ROOTFS/etc/"
    USED[netbase]=1
    # Debian's release number, by which image scanners (with var/lib/dpkg/status.d/) match
    # the packages against Debian's security advisories.
    cp -p "$WORK"/pkgs/base-files/etc/debian_version "$ROOTFS/etc/"
    USED[base-files]=1

    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
        "$NONROOT" "$NONROOT" >"$ROOTFS/etc/passwd"
    printf 'root:x:0:\nnonroot:x:%s:\n' "$NONROOT" >"$ROOTFS/etc/group"
    # Without this file glibc would ask DNS before /etc/hosts.
    printf 'passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' \
        >"$ROOTFS/etc/nsswitch.conf"
    mkdir -p "$ROOTFS/tmp" "$ROOTFS/root" "$ROOTFS/home/nonroot"
    chmod 1777 "$ROOTFS/tmp"
    chmod 0700 "$ROOTFS/root" "$ROOTFS/home/nonroot"

    # Licences and package records of what was taken from Debian.
    mkdir -p "$ROOTFS/usr/share/doc/ferrolb"
    cp LICENSE "$ROOTFS/usr/share/doc/ferrolb/LICENSE"
    local doc
    for name in $(printf '%s\n' "${!USED[@]}" | LC_ALL=C sort); do
        # A package's doc directory may be a symlink to its source sibling's.
        doc="usr/share/doc/$name"
        if [ -L "$WORK/pkgs/$name/$doc" ]; then
            doc="usr/share/doc/$(basename "$(readlink "$WORK/pkgs/$name/$doc")")"
        fi
        if src="$(package_with "$doc/copyright")"; then
            mkdir -p "$ROOTFS/usr/share/doc/$name"
            cp "$WORK/pkgs/$src/$doc/copyright" "$ROOTFS/usr/share/doc/$name/copyright"
        else
            echo "no copyright file for $name" >&2
            return 1
        fi
        cp "$WORK/control/$name" "$ROOTFS/var/lib/dpkg/status.d/$name"
        PACKAGE_VERSIONS+="$name=$(sed -n 's/^Version: //p' "$WORK/control/$name") "
    done

    chmod 0755 "$ROOTFS"
    chown -R 0:0 "$ROOTFS"
    chown "$NONROOT:$NONROOT" "$ROOTFS/home/nonroot"
    tar --sort=name --mtime="@$EPOCH" --numeric-owner --format=gnu -C "$ROOTFS" -cf "$WORK/context/rootfs.tar" .
}

build() {
    if [ -n "$BINARIES" ]; then
        BIN_DIR="$BINARIES"
        echo "binaries from $BIN_DIR"
    else
        command -v cargo >/dev/null 2>&1 || { echo "cargo not found (or set FERROLB_IMAGE_BINARIES)" >&2; return 1; }
        echo "== cargo build --release"
        cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker
        BIN_DIR="$PWD/target/release"
    fi
    for bin in ferrolb-controller ferrolb-speaker; do
        [ -x "$BIN_DIR/$bin" ] || { echo "no $BIN_DIR/$bin" >&2; return 1; }
    done

    local revision old new
    revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
    if [ "$revision" != unknown ] && ! git diff --quiet HEAD 2>/dev/null; then
        revision="$revision-dirty"
    fi
    EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

    WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-image.XXXXXX")"
    mkdir -p "$WORK/context"
    echo "== root filesystem"
    build_rootfs

    echo "== buildah bud -t $IMAGE"
    old="$(buildah images --noheading --format '{{.ID}}' "$IMAGE" 2>/dev/null || true)"
    buildah bud --quiet --pull=never --identity-label=false --timestamp "$EPOCH" \
        --build-arg "VERSION=$VERSION" --build-arg "REVISION=$revision" \
        -f Containerfile -t "$IMAGE" "$WORK/context" >/dev/null
    new="$(buildah images --noheading --format '{{.ID}}' "$IMAGE")"
    # The image this tag named before, left untagged: removed unless something else
    # still names or uses it.
    if [ -n "$old" ] && [ "$old" != "$new" ]; then
        buildah rmi "$old" >/dev/null 2>&1 || true
    fi

    local rootfs_bytes gzip_bytes
    rootfs_bytes="$(stat -c %s "$WORK/context/rootfs.tar")"
    gzip_bytes="$(gzip -6 -n -c "$WORK/context/rootfs.tar" | wc -c)"
    echo "built $IMAGE ($new): $((rootfs_bytes / 1024)) KiB uncompressed, $((gzip_bytes / 1024)) KiB gzip-compressed layer"
    echo "Debian packages in it: $PACKAGE_VERSIONS"

    if [ "$SAVE" -eq 1 ]; then
        local archive="$OUT/ferrolb-$VERSION.oci.tar"
        rm -f "$archive"
        buildah push --quiet "$IMAGE" "oci-archive:$archive:$IMAGE" >/dev/null
        echo "wrote $archive"
    fi
    rm -rf "$WORK"
    WORK=""
}

# --- smoke test --------------------------------------------------------------------

PASSED=0 FAILED=0
# check NAME EXPECTED COMMAND...: COMMAND must succeed and print EXPECTED (a grep -E
# pattern) on stdout or stderr.
check() {
    local name="$1" expected="$2" output status=0
    shift 2
    output="$(timeout 60 "$@" 2>&1)" || status=$?
    if [ "$status" -eq 0 ] && grep -qE -- "$expected" <<<"$output"; then
        echo "ok   $name: $(grep -m1 -E -- "$expected" <<<"$output")"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $name (exit $status): $(head -c 600 <<<"$output" | tr '\n' ' ')"
        FAILED=$((FAILED + 1))
    fi
}

smoke() {
    [ "$(id -u)" -eq 0 ] || { echo "the smoke test needs root (chroot, unshare)" >&2; return 1; }
    echo "== smoke test of $IMAGE"
    SMOKE_CONTAINER="$(buildah from --quiet --pull=never --name "ferrolb-smoke-$$" "$IMAGE")"
    local root
    root="$(buildah mount "$SMOKE_CONTAINER")"
    # The image's environment, as a container runtime would pass it.
    local env=()
    mapfile -t env < <(buildah inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')
    local in_image=(env -i "${env[@]}")

    check "controller --version as root" "^ferrolb-controller $VERSION\$" \
        "${in_image[@]}" chroot "$root" /usr/bin/ferrolb-controller --version
    check "speaker --version as root" "^ferrolb-speaker $VERSION\$" \
        "${in_image[@]}" chroot "$root" /usr/bin/ferrolb-speaker --version
    check "nft --version" "^nftables v" \
        "${in_image[@]}" chroot "$root" /usr/sbin/nft --version
    check "controller --version as $NONROOT:$NONROOT" "^ferrolb-controller $VERSION\$" \
        "${in_image[@]}" chroot --userspec="$NONROOT:$NONROOT" "$root" /usr/bin/ferrolb-controller --version

    # nft as the speaker drives it (a script on stdin replacing the table) and with the
    # speaker container's privileges (root with NET_ADMIN and NET_RAW only, no new
    # privileges; SYS_CHROOT is for this test's chroot), in a network namespace of its
    # own so that the host's ruleset is never touched.
    local script
    script='table inet ferrolb
delete table inet ferrolb
table inet ferrolb {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		dnat ip to ip daddr . tcp dport map { 10.0.0.1 . 80 : 10.0.1.1 . 30080 }
		dnat ip6 to ip6 daddr . udp dport map { fd00::1 . 53 : fd00:1::1 . 30053 }
	}
}'
    check "nft -f - applies a DNAT map table with NET_ADMIN+NET_RAW (new network namespace)" \
        "dnat ip to ip daddr . tcp dport map" \
        unshare --net -- setpriv --bounding-set -all,+net_admin,+net_raw,+sys_chroot --inh-caps -all \
        --no-new-privs -- "${in_image[@]}" sh -c 'chroot "$1" nft -f - <<EOF && chroot "$1" nft list table inet ferrolb
$2
EOF' sh "$root" "$script"

    local config
    config="$(buildah inspect --type image --format 'user={{.OCIv1.Config.User}} entrypoint={{.OCIv1.Config.Entrypoint}} cmd={{.OCIv1.Config.Cmd}} version={{index .OCIv1.Config.Labels "org.opencontainers.image.version"}} licenses={{index .OCIv1.Config.Labels "org.opencontainers.image.licenses"}}' "$IMAGE")"
    check "image config (user, no entrypoint, labels)" \
        "^user=$NONROOT:$NONROOT entrypoint=\[\] cmd=\[/usr/bin/ferrolb-controller --help\] version=$VERSION licenses=Apache-2.0\$" \
        echo "$config"
    local path_dirs
    path_dirs="$(printf '%s\n' "${env[@]}" | sed -n 's/^PATH=//p')"
    check "nft found through the image's PATH ($path_dirs)" "^/usr/sbin/nft\$" \
        sh -c 'IFS=:; for d in $2; do if [ -x "$1$d/nft" ]; then echo "$d/nft"; exit 0; fi; done; exit 1' sh "$root" "$path_dirs"
    check "no shell, no package manager" "^none\$" \
        sh -c 'for f in bin/sh bin/bash bin/dash usr/bin/apt-get usr/bin/dpkg; do [ ! -e "$1/$f" ] || { echo "/$f"; exit 1; }; done; echo none' sh "$root"
    check "users root (0) and nonroot ($NONROOT), /home/nonroot owned by nonroot" "^ok\$" \
        sh -c 'grep -qx "root:x:0:0:root:/root:/sbin/nologin" "$1/etc/passwd" &&
               grep -q "^nonroot:x:$2:$2:" "$1/etc/passwd" && grep -qx "nonroot:x:$2:" "$1/etc/group" &&
               [ "$(stat -c %u:%g "$1/home/nonroot")" = "$2:$2" ] && echo ok' sh "$root" "$NONROOT"
    check "/tmp empty, mode 1777" "^1777 empty\$" \
        sh -c '[ -z "$(ls -A "$1/tmp")" ] && echo "$(stat -c %a "$1/tmp") empty"' sh "$root"
    check "CA bundle" "^[0-9]{3} certificates\$" \
        sh -c 'echo "$(grep -c "BEGIN CERTIFICATE" "$1/etc/ssl/certs/ca-certificates.crt") certificates"' sh "$root"

    buildah rm "$SMOKE_CONTAINER" >/dev/null
    SMOKE_CONTAINER=""
    echo "image: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

if [ "$BUILD" -eq 1 ]; then
    build
fi
if [ "$SMOKE" -eq 1 ]; then
    smoke
fi
