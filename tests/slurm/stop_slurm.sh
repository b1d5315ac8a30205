#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by tests/slurm/start_slurm.sh: slurmd, slurmctld and
# munged, each by the pid in its pid file (never by name). Safe to run when nothing is running.
set -uo pipefail

stop() {  # stop <name> <pidfile>
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop_slurm: stopping $name (pid $pid)" >&2
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop_slurm: $name did not stop; sending KILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

if [[ $(id -u) -ne 0 ]]; then
    echo "stop_slurm: must run as root" >&2
    exit 77
fi
stop slurmd /run/slurm/slurmd.pid
stop slurmctld /run/slurm/slurmctld.pid
stop munged /run/munge/munged.pid
exit 0
