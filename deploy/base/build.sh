#!/usr/bin/env bash
# Build the offline base image (default agentbus/base:bookworm) from Debian packages:
# debootstrap a minimal bookworm with python3, python3-venv, git (maintainers), bubblewrap (the tool
# executor's sandbox) and ca-certificates into a
# folder, strip documentation, locales and apt lists, and `docker import` it. No registry needed.
#
#   deploy/base/build.sh [--force] [--tag TAG] [--mirror URL] [--suite SUITE]
#
# Idempotent: does nothing when the tag exists, unless --force. Needs root (debootstrap);
# installs the `debootstrap` package with apt-get when it is missing.
set -euo pipefail

TAG="${BASE_TAG:-agentbus/base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${DEBIAN_SUITE:-bookworm}"
PACKAGES="python3,python3-venv,ca-certificates,git,bubblewrap"
FORCE=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) FORCE=1 ;;
        --tag) TAG="$2"; shift ;;
        --mirror) MIRROR="$2"; shift ;;
        --suite) SUITE="$2"; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists (use --force to rebuild)"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "debootstrap needs root: run this script with sudo" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing debootstrap with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/agentbus-rootfs.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
started=$SECONDS

echo "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"

# What a container never needs: docs, man pages, locales, apt's lists and caches, logs.
rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/usr/share/lintian "$ROOTFS"/usr/share/linda \
    "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
    "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
find "$ROOTFS"/usr/lib/python3* -name '__pycache__' -type d -prune -exec rm -rf {} + 2>/dev/null || true
# Point apt at the mirror, so a derived image can still install packages when it has a network.
echo "deb $MIRROR $SUITE main" >"$ROOTFS/etc/apt/sources.list"

tar -C "$ROOTFS" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "agentbus offline base: debootstrap $SUITE minbase + $PACKAGES" \
    - "$TAG" >/dev/null

size=$(docker image inspect --format '{{.Size}}' "$TAG")
echo "built $TAG in $((SECONDS - started)) s, $((size / 1000000)) MB"
