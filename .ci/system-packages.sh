#!/bin/sh
# The Debian packages the test suite's real services need, installed in one apt transaction
# before the tests start (make test runs this). The suite runs in parallel processes, and each
# service's own script (.ci/*-up.sh, images/build.sh) installs what it lacks: installing it all
# here first means no two of them wait on apt's lock, and one `apt-get update` serves all.
# Without root or apt this does nothing: each script then says what it lacks, and its tests skip.
set -eu
PACKAGES="slurm-wlm munge postgresql-15 postgresql-15-postgis-3 chromium fonts-dejavu-core
buildah debootstrap fuse-overlayfs openssh-server iptables"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then exit 0; fi
missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
echo "system-packages: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# apt's lock may be held by another installer on a shared machine: wait for it.
apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
# shellcheck disable=SC2086  # one word per package
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
