#!/usr/bin/env bash
# Install (Debian/Ubuntu: apt-get) and start a single-node SLURM cluster on this machine: munged,
# slurmctld and slurmd, with no systemd, no cgroups and no accounting database (see
# ../shared/SLURM_NOTES.md). Idempotent: does nothing when the cluster already answers.
# Must run as root. Stop it with tests/slurm/stop_slurm.sh.
#
# Exit status: 0 cluster up; 77 not root; 78 packages could not be installed; 1 other failure
# (the daemon logs under /var/log/slurm are printed).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARKER="# written by tests/slurm/start_slurm.sh"
PARTITION=${SLURM_TEST_PARTITION:-debug}

log() { echo "start_slurm: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (it installs packages and starts daemons)"
    exit 77
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    log "installing slurm-wlm and munge with apt-get"
    if ! command -v apt-get >/dev/null; then
        log "apt-get not found: install slurm-wlm and munge by hand"
        exit 78
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge \
            >/dev/null; }; then
        log "apt-get install slurm-wlm munge failed"
        exit 78
    fi
fi

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# --- munge -----------------------------------------------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! alive /run/munge/munged.pid; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null

# --- slurm.conf ------------------------------------------------------------------------------
HOST=$(hostname -s)
if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    log "$CONF exists and was not written by this script; refusing to overwrite it"
    exit 1
fi
NODE_LINE=$(slurmd -C | head -n 1)   # NodeName=<host> CPUs=.. ... RealMemory=..
install -d -m 0755 "$CONF_DIR"
cat >"$CONF" <<EOF
$MARKER
ClusterName=localtest
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MinJobAge=300
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
$NODE_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# --- runtime directories and daemons ---------------------------------------------------------
install -d -o slurm -g slurm -m 0755 /run/slurm /var/spool/slurmctld /var/log/slurm
install -d -m 0755 /var/spool/slurmd
if ! alive /run/slurm/slurmctld.pid; then
    log "starting slurmctld"
    slurmctld
fi
if ! alive /run/slurm/slurmd.pid; then
    log "starting slurmd"
    slurmd
fi

for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    if [[ $state == idle* || $state == mixed* || $state == alloc* ]]; then
        log "cluster up: node $HOST $state, partition $PARTITION"
        exit 0
    fi
    if [[ $state == down* || $state == drain* ]]; then
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 1
done
log "node $HOST did not become idle (state: ${state:-none}); daemon logs follow"
tail -n 30 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
