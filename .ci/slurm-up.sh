#!/usr/bin/env bash
# Bring up a single-node Slurm cluster on this machine (idempotent), for the dask-jobqueue tests
# and for trying the HPC backend by hand.
#
# - installs Debian's slurm-wlm and munge with apt if they are missing;
# - starts munged as the munge user (it refuses a log file owned by root);
# - writes a slurm.conf for this host (only if ours is absent or differs) and starts slurmctld
#   and slurmd as root. proctrack/linuxproc and task/none because cgroups are not delegated to us
#   inside a container;
# - waits until `srun` runs a job, or fails with a message.
#
# Exit status: 0 when Slurm runs jobs; 2 when Slurm cannot be installed here (no root, no apt);
# 1 on any other failure. Test fixtures skip on 2 and fail on 1.
set -euo pipefail

log() { echo "slurm-up: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    log "needs root (installs packages and runs slurmctld/slurmd)"; exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if ! command -v apt-get >/dev/null; then
        log "slurm-wlm/munge are missing and apt-get is not available"; exit 2
    fi
    log "installing slurm-wlm and munge with apt"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || { log "apt-get update failed"; exit 2; }
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
            || { log "apt-get install slurm-wlm munge failed"; exit 2; }
    fi
fi

# --- munge -------------------------------------------------------------------------------------
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey -c -k /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }
fi

# --- slurm.conf ----------------------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
# Leave the OS 1 GiB, and never claim more memory than the machine has (slurmd would drain the node).
mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
wanted=$(cat <<EOF
# Written by eosc-pangeo .ci/slurm-up.sh: a single-node cluster for tests.
ClusterName=eosc-pangeo
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
)
if [[ ! -f $conf_dir/slurm.conf ]] || [[ "$(cat "$conf_dir/slurm.conf")" != "$wanted" ]]; then
    log "writing $conf_dir/slurm.conf"
    printf '%s\n' "$wanted" > "$conf_dir/slurm.conf"
    # A changed configuration needs restarted daemons.
    pkill_pidfile() { [[ -f $1 ]] && kill "$(cat "$1")" 2>/dev/null || true; }
    pkill_pidfile /run/slurmd.pid
    pkill_pidfile /run/slurmctld.pid
    sleep 1
fi

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! running /run/slurmctld.pid; then
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
if ! running /run/slurmd.pid; then
    log "starting slurmd"
    /usr/sbin/slurmd
fi

for _ in $(seq 60); do
    if timeout 10 srun --quiet -N1 -n1 -t 1 true 2>/dev/null; then
        log "slurm runs jobs on ${host} (${cpus} CPUs, ${mem_mb} MB)"
        exit 0
    fi
    # A node left DOWN/DRAIN by an earlier run comes back with an explicit resume.
    scontrol update NodeName="$host" State=RESUME 2>/dev/null || true
    sleep 1
done
log "srun did not run a job within 60 s; see /var/log/slurm/"
exit 1
