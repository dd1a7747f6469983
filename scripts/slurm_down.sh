#!/usr/bin/env bash
# Stop exactly the daemons that scripts/slurm_up.sh started (the PIDs it recorded in
# $SEEDSOIL_SLURM_DIR/<daemon>.pid), newest first. Daemons it found already running are left
# alone. Running it twice is harmless.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SEEDSOIL_SLURM_DIR:-$REPO/.slurm-ci}

for daemon in slurmd slurmctld munged; do
    pidfile=$STATE/$daemon.pid
    [[ -s $pidfile ]] || continue
    pid=$(<"$pidfile")
    # only signal the PID if it still belongs to that daemon (PIDs get recycled)
    if [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$daemon" ]]; then
        kill -TERM "$pid"
        for _ in $(seq 40); do
            [[ -e /proc/$pid ]] || break
            sleep 0.25
        done
        if [[ -e /proc/$pid ]]; then
            kill -KILL "$pid"
            echo "slurm_down: killed $daemon (pid $pid) after 10 s"
        else
            echo "slurm_down: stopped $daemon (pid $pid)"
        fi
    fi
    rm -f "$pidfile"
done
