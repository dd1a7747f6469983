#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine (munged + slurmctld + slurmd, no accounting)
# so that the workflow can be run through snakemake-executor-plugin-slurm for testing.
#
# Usage: scripts/slurm_up.sh            (as root, on Debian/Ubuntu)
#        scripts/slurm_up.sh --install-only   (only the packages: CI fetches them while tests run)
#
# - Installs slurmctld, slurmd, slurm-client and munge with apt-get when they are missing.
# - Starts only the daemons that are not already running, and records the PID of each one it
#   started in $SEEDSOIL_SLURM_DIR/<daemon>.pid; scripts/slurm_down.sh stops exactly those.
# - Running it again while the cluster is up changes nothing.
# - Without slurmdbd, `sacct` cannot answer, so clients must use `squeue` for job status
#   (profiles/slurm sets slurm-status-command: squeue).
#
# Exit status: 0 cluster ready, 1 failure (message on stderr), 2 cannot run here (not root,
# or no apt-get to install the packages) -- callers such as the test suite skip on 2.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SEEDSOIL_SLURM_DIR:-$REPO/.slurm-ci}
CONF=/etc/slurm/slurm.conf
MARKER="# written by seedsoil scripts/slurm_up.sh"

say() { echo "slurm_up: $*"; }
die() { echo "slurm_up: error: $1" >&2; exit "${2:-1}"; }

# wait_for <seconds> <command...>: retry every 0.25 s until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.25
    done
}

# alive <pidfile> <name>: the recorded process still runs and is the daemon we think it is
# (guards against a recycled PID).
alive() {
    [[ -s $1 ]] || return 1
    local pid; pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]]
}

[[ $(id -u) -eq 0 ]] || die "must run as root (starts system daemons and writes $CONF)" 2

# ---- packages ---------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "SLURM is not installed and apt-get is unavailable" 2
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
[[ ${1:-} == --install-only ]] && exit 0

controller_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
# Checked before starting anything, so that a refusal leaves nothing behind.
if ! controller_up && [[ -e $CONF ]] && ! grep -qxF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; start that cluster instead"
fi

mkdir -p "$STATE"
host=$(hostname -s)
getent hosts "$host" >/dev/null || die "hostname '$host' does not resolve; add it to /etc/hosts"

# ---- munge: authenticates every SLURM message ------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running"
else
    mkdir -p /run/munge                       # tmpfs; only systemd would create it
    chown munge:munge /run/munge
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid               # a stale one would be mistaken for ours
    runuser -u munge -- munged --force        # --force: take over a stale socket
    wait_for 10 test -s /run/munge/munged.pid || die "munged wrote no PID file"
    cp /run/munge/munged.pid "$STATE/munged.pid"
    wait_for 10 sh -c 'munge -n | unmunge' || die "munge credentials do not verify"
    say "started munged (pid $(<"$STATE/munged.pid"))"
fi

# ---- slurm.conf -------------------------------------------------------------------------
# Written only when no controller answers; never overwrites a configuration we did not write.
write_conf() {
    local node
    node=$(slurmd -C | head -n 1)             # NodeName=... CPUs=... RealMemory=... of this host
    mkdir -p /etc/slurm "$STATE/spool/slurmctld" "$STATE/spool/slurmd" "$STATE/log"
    rm -rf "${STATE:?}/spool/slurmctld/"*     # a fresh controller state: no stale jobs
    cat >"$CONF.tmp" <<EOF
$MARKER
ClusterName=seedsoil
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
# no cgroups needed on one node; task/affinity makes the job step's --cpu-bind work
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
# schedule cores and memory, so jobs without --mem do not take the whole node
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$STATE/spool/slurmctld.pid
SlurmdPidFile=$STATE/spool/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# finished jobs stay visible to 'squeue --states=all' for 5 min: the status poller relies on it
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

# ---- slurmctld + slurmd -----------------------------------------------------------------
if controller_up; then
    say "slurmctld already running"
else
    write_conf
    rm -f "$STATE/spool/slurmctld.pid"
    slurmctld -i                              # -i: ignore any leftover state
    wait_for 20 test -s "$STATE/spool/slurmctld.pid" || die "slurmctld did not start; see $STATE/log/slurmctld.log"
    cp "$STATE/spool/slurmctld.pid" "$STATE/slurmctld.pid"
    wait_for 20 controller_up || die "slurmctld does not answer; see $STATE/log/slurmctld.log"
    say "started slurmctld (pid $(<"$STATE/slurmctld.pid"))"
fi

if alive "$STATE/slurmd.pid" slurmd || pgrep -x slurmd >/dev/null; then
    say "slurmd already running"
else
    rm -f "$STATE/spool/slurmd.pid"
    slurmd
    wait_for 20 test -s "$STATE/spool/slurmd.pid" || die "slurmd did not start; see $STATE/log/slurmd.log"
    cp "$STATE/spool/slurmd.pid" "$STATE/slurmd.pid"
    say "started slurmd (pid $(<"$STATE/slurmd.pid"))"
fi

# ---- ready when the node takes work and a job step runs ---------------------------------
wait_for 30 sh -c "sinfo --noheader --format=%t | grep -Eq '^(idle|mix|alloc)'" \
    || die "no node became idle: $(sinfo --noheader 2>&1)"
srun --time=1 --mem=100 true || die "a test job step failed"
say "ready: $(sinfo --noheader --format='partition %P, node %N, %c CPUs, %m MB, %t')"
