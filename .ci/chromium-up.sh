#!/bin/sh
# Debian's Chromium for the browser tests (Python playwright drives it; never `playwright
# install`, which downloads a browser). Exit 2: cannot be installed here (the test skips).
set -eu
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then echo "chromium is missing and installing it needs root" >&2; exit 2; fi
export DEBIAN_FRONTEND=noninteractive
# apt's lock may be held by another installer on a shared machine: wait for it.
apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
