#!/usr/bin/env bash
# Build the platform image offline: a Debian base made by debootstrap (cached under var/image),
# the locked Python environment from a wheelhouse made on this machine, buildah to assemble.
#   images/build.sh [TAG]         (make image; TAG defaults to the package's version)
# Needs root. Installs buildah and debootstrap with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
TAG=${1:-$("$PYTHON" -c 'import eosc_pangeo; print(eosc_pangeo.__version__)')}
IMAGE=${IMAGE:-localhost/eosc-pangeo:$TAG}
BASE=localhost/eosc-pangeo-base:bookworm
CACHE=${EOSC_PANGEO_IMAGE_CACHE:-$ROOT/var/image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"

if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        buildah debootstrap fuse-overlayfs >/dev/null
fi

# 1. The base: debootstrap once (about 30 s), kept as a tarball; imported when buildah lacks it.
if [ ! -s "$CACHE/base.tar" ]; then
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
        bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$CACHE/base.tar.partial" .
    mv "$CACHE/base.tar.partial" "$CACHE/base.tar"
    rm -rf "$rootfs"
fi
if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
    container=$(buildah from scratch)
    mountpoint=$(buildah mount "$container")
    tar -C "$mountpoint" -xf "$CACHE/base.tar"
    buildah umount "$container" >/dev/null
    buildah commit --quiet --rm "$container" "$BASE" >/dev/null
fi

# 2. The wheelhouse: the locked versions (pip's usual index) and this package built here.
context="$CACHE/context"
rm -rf "$context" && mkdir -p "$context/wheels"
cp images/Containerfile "$context/"
grep -v '^eosc-pangeo==' images/requirements.txt >"$context/wheels/locked.txt"
# pip wheel takes the published wheels as they are and builds the few distributions published
# only as source (opendap-protocol), so the image installs from wheels alone.
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$CACHE/wheels" \
    -r "$context/wheels/locked.txt"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$context/wheels" "$ROOT"
cp -l "$CACHE"/wheels/*.whl "$context/wheels/" 2>/dev/null || cp "$CACHE"/wheels/*.whl "$context/wheels/"
cp images/requirements.txt "$context/wheels/requirements.txt"

# 3. The image (chroot isolation: what works in unprivileged sandboxes too).
buildah build --quiet --isolation chroot --layers=false --tag "$IMAGE" --file "$context/Containerfile" "$context" >/dev/null
echo "$IMAGE"
