#!/usr/bin/env bash
# A one-node SLURM on 127.0.0.1 to try `fusionlab sweep X.yaml --slurm` and to test it against:
# munged (as user munge), slurmctld and slurmd (as root), with this machine's CPUs and memory.
#
#   tests/cluster/start_slurm.sh            start it (again: a no-op while it runs); prints what to export
#   tests/cluster/start_slurm.sh --stop     stop the daemons it started
#
# Its files (slurm.conf, logs, spool, state) live in $FUSIONLAB_SLURM_DIR (default /tmp/fusionlab-slurm);
# nothing is written to /etc. Needs root and Debian's slurm-wlm and munge packages. On success the last
# line is `export SLURM_CONF=...`: the sbatch, squeue, scontrol and scancel of a shell that runs it talk to
# this cluster. Exits 1 with one line saying why when the cluster cannot start.
set -euo pipefail

fail() { echo "start_slurm.sh: cannot start SLURM: $*" >&2; exit 1; }

state="${FUSIONLAB_SLURM_DIR:-/tmp/fusionlab-slurm}"
conf="$state/slurm.conf"
export SLURM_CONF="$conf"

stop() {
  local name pid
  for name in slurmd slurmctld; do
    pid="$(cat "$state/$name.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" && echo "stopped $name (pid $pid)"
    fi
  done
}

if [ "${1:-}" = "--stop" ]; then
  stop
  exit 0
fi
[ "$#" -eq 0 ] || { echo "usage: $0 [--stop]" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || fail "run it as root (slurmd starts jobs as their users; munged runs as user munge)"
for tool in munged munge unmunge slurmctld slurmd scontrol sinfo; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] \
    || fail "$tool not found; install Debian's packages: apt-get install -y slurm-wlm munge"
done
PATH="$PATH:/usr/sbin"

# munged: the system one, started here when it is not running (SLURM authenticates every message with it)
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || fail "no /etc/munge/munge.key (reinstall munge, or run mungekey as user munge)"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- munged --force || fail "munged did not start; see /var/log/munge/munged.log"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null 2>&1 || fail "munged started but does not answer; see /var/log/munge/munged.log"
fi

up() { scontrol ping 2>/dev/null | grep -q "is UP" && sinfo -h -o %T 2>/dev/null | grep -Eq "^(idle|mixed|allocated)"; }

if [ -f "$conf" ] && up; then
  echo "SLURM already running on 127.0.0.1 ($(sinfo -h -o '%D node, %c CPUs, partition %P')); stop it with: $0 --stop"
  echo "export SLURM_CONF=$conf"
  exit 0
fi
stop >/dev/null  # leftovers of an earlier start that is no longer healthy

mkdir -p "$state/spool" "$state/ctld" 2>/dev/null || fail "cannot create $state (set FUSIONLAB_SLURM_DIR to a folder of yours)"
node="$(slurmd -C | head -1)"  # NodeName=<host> CPUs=... RealMemory=...: this machine as slurmd sees it
[ -n "$node" ] || fail "slurmd -C printed nothing"
host="$(hostname -s)"
cat >"$conf" <<EOF
# written by tests/cluster/start_slurm.sh: a one-node cluster on 127.0.0.1
ClusterName=fusionlab
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${FUSIONLAB_SLURMCTLD_PORT:-6817}
SlurmdPort=${FUSIONLAB_SLURMD_PORT:-6818}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
# no cgroups needed: processes tracked by their parents, tasks not bound to cores
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
# cores are the consumable resource: one-CPU array tasks run side by side
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MaxArraySize=10001
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -f "$conf" -i || fail "slurmctld did not start; see $state/slurmctld.log"
slurmd -f "$conf" || fail "slurmd did not start; see $state/slurmd.log"
for _ in $(seq 100); do up && break; sleep 0.2; done
if ! up; then
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
fi
up || fail "the node did not come up ($(sinfo -h -o '%T %E' 2>&1 | head -1)); see $state/slurmctld.log and $state/slurmd.log"
echo "SLURM running on 127.0.0.1: $(sinfo -h -o '%D node, %c CPUs, partition %P'); files in $state;" \
     "stop it with: $0 --stop"
echo "export SLURM_CONF=$conf"
