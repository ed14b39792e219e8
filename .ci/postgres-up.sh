#!/usr/bin/env bash
# Start a throwaway PostgreSQL 15 + PostGIS cluster for the pgstac tests (idempotent).
#
# Usage: .ci/postgres-up.sh DATA_DIR PORT
#
# - installs Debian's postgresql-15 and postgresql-15-postgis-3 with apt if they are missing;
# - initialises DATA_DIR (unless it already holds a cluster) as the postgres user, since postgres
#   refuses to run as root, with trust authentication: the cluster listens on 127.0.0.1 only and
#   is thrown away after the tests;
# - starts it on 127.0.0.1:PORT (unless it already runs) with its socket in DATA_DIR, so that no
#   system directory is needed, and waits until it accepts connections.
# Stop it with: runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D DATA_DIR stop
#
# Exit status: 0 when the cluster accepts connections on postgresql://postgres@127.0.0.1:PORT;
# 2 when PostgreSQL cannot be installed or run here (no root, no apt); 1 on any other failure.
# Test fixtures skip on 2 and fail on 1.
set -euo pipefail

log() { echo "postgres-up: $*" >&2; }

if [[ $# -ne 2 ]]; then
    log "usage: $0 DATA_DIR PORT"; exit 1
fi
data_dir=$1
port=$2
bin=/usr/lib/postgresql/15/bin
postgis_control=/usr/share/postgresql/15/extension/postgis.control

if [[ $(id -u) -ne 0 ]]; then
    log "needs root (installs packages and runs postgres as the postgres user)"; exit 2
fi

if [[ ! -x $bin/postgres || ! -f $postgis_control ]]; then
    if ! command -v apt-get >/dev/null; then
        log "postgresql-15/postgresql-15-postgis-3 are missing and apt-get is not available"; exit 2
    fi
    log "installing postgresql-15 and postgresql-15-postgis-3 with apt"
    export DEBIAN_FRONTEND=noninteractive
    packages=(postgresql-15 postgresql-15-postgis-3)
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || { log "apt-get update failed"; exit 2; }
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
            || { log "apt-get install ${packages[*]} failed"; exit 2; }
    fi
fi

as_postgres() { runuser -u postgres -- "$@"; }

mkdir -p "$data_dir"
chown postgres:postgres "$data_dir"
chmod 0700 "$data_dir"
if [[ ! -f $data_dir/PG_VERSION ]]; then
    log "initialising a cluster in $data_dir"
    if ! output=$(as_postgres "$bin/initdb" -D "$data_dir" -U postgres --auth=trust -E UTF8 \
                  --locale=C.UTF-8 2>&1); then
        log "initdb failed: $output"; exit 1
    fi
fi

if ! as_postgres "$bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1; then
    log "starting postgres on 127.0.0.1:$port"
    # fsync off: a throwaway cluster need not survive a crash, and it makes loading faster.
    as_postgres "$bin/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $data_dir -c fsync=off -c synchronous_commit=off" start \
        >/dev/null || { log "postgres did not start: see $data_dir/server.log"; exit 1; }
fi

"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 \
    || { log "postgres does not accept connections on 127.0.0.1:$port"; exit 1; }
