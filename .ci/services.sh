#!/usr/bin/env bash
# The services the dist tests run against, private to one CI run and stopped by PID:
#   .ci/services.sh start DIR   PostgreSQL, an MLflow server on it, munged + slurmctld + slurmd (one node, 127.0.0.1);
#                               writes DIR/env (CE_PG_URI, CE_MLFLOW_URI, SLURM_CONF) for `source`, DIR/pids
#   .ci/services.sh stop DIR    stops every process group listed in DIR/pids (each daemon leads its own), then
#                               removes DIR
# Needs root (as on the CI machine), Debian's postgresql, slurmctld, slurmd, slurm-client, munge, and `mlflow` on
# PATH. Every port is a free one on 127.0.0.1, so nothing clashes with other services on the machine.
set -euo pipefail
cmd=${1:?start|stop DIR}; dir=${2:?start|stop DIR}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
elapsed() { echo "$(( $(date +%s%N) / 1000000 - t0 ))"; }
# each daemon in the foreground, in its own session: $! is its PID and its process group's id
spawn() { local name=$1; shift; setsid "$@" >"$dir/$name.log" 2>&1 & echo "$name $!" >>"$dir/pids"; }

wait_for() {  # wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds, or fail with WHAT's log
  local what=$1 limit=$2; shift 2
  for _ in $(seq $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "services: $what did not come up in ${limit} s; its log:" >&2; tail -n 30 "$dir/$what.log" >&2 || true
  return 1
}

stop() {
  [ -f "$dir/pids" ] || { rm -rf "$dir"; return 0; }
  local t0; t0=$(( $(date +%s%N) / 1000000 ))
  # all at once (one by one took 14 s), the server before its database; then wait for each, KILL after 10 s
  tac "$dir/pids" | while read -r name pid; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  tac "$dir/pids" | while read -r name pid; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null && echo "services: $name (pid $pid) killed after 10 s" >&2 || true
  done
  rm -rf "$dir"
  echo "services: stopped after $(elapsed) ms"
}

start() {
  mkdir -p "$dir"; chmod 755 "$dir"; : >"$dir/pids"
  local t0; t0=$(( $(date +%s%N) / 1000000 ))
  local pgbin; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

  # PostgreSQL: a throwaway cluster, trust authentication, TCP on 127.0.0.1 only, its socket in $dir/pg
  local pg_port; pg_port=$(free_port)
  mkdir -p "$dir/pg" "$dir/pgsock"; chown postgres: "$dir/pg" "$dir/pgsock"
  runuser -u postgres -- "$pgbin/initdb" -A trust -U postgres -D "$dir/pg/data" >"$dir/initdb.log" 2>&1
  spawn postgres setpriv --reuid=postgres --regid=postgres --init-groups "$pgbin/postgres" -D "$dir/pg/data" \
    -c listen_addresses=127.0.0.1 -p "$pg_port" -k "$dir/pgsock" -c fsync=off
  wait_for postgres 60 "$pgbin/pg_isready" -h 127.0.0.1 -p "$pg_port"
  local pg_uri="postgresql+psycopg2://postgres@127.0.0.1:$pg_port/postgres"
  echo "services: postgres on port $pg_port after $(elapsed) ms"

  # MLflow server on it: one worker and no job execution (defaults took 121 s to answer under load, this 12-16 s)
  local mlflow_port; mlflow_port=$(free_port)
  spawn mlflow env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    mlflow server --backend-store-uri "$pg_uri" --artifacts-destination "$dir/mlartifacts" \
    --host 127.0.0.1 --port "$mlflow_port" --workers 1

  # Slurm, one node at 127.0.0.1 with every core; no cgroups, no accounting; munged on a private socket
  mkdir -p "$dir/munge" "$dir/slurm/state" "$dir/slurm/spool"; chown munge: "$dir/munge"; chmod 755 "$dir/munge"
  spawn munged setpriv --reuid=munge --regid=munge --init-groups munged -F --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  local ctld_port slurmd_port; ctld_port=$(free_port); slurmd_port=$(free_port)
  cat >"$dir/slurm/slurm.conf" <<CONF
ClusterName=ce
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/slurm/state
SlurmdSpoolDir=$dir/slurm/spool
SlurmctldPidFile=$dir/slurm/slurmctld.pid
SlurmdPidFile=$dir/slurm/slurmd.pid
SlurmctldLogFile=$dir/slurm/slurmctld.log
SlurmdLogFile=$dir/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm/slurm.conf"
  wait_for munged 20 test -S "$dir/munge/munge.socket"
  spawn slurmctld slurmctld -D -f "$SLURM_CONF"
  spawn slurmd slurmd -D -N localhost -f "$SLURM_CONF"
  wait_for slurmd 60 bash -c 'sinfo -h -N -o %t | grep -qx idle'
  echo "services: slurm node idle after $(elapsed) ms"

  wait_for mlflow 240 python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$mlflow_port/health', timeout=2)"
  echo "services: mlflow server on port $mlflow_port after $(elapsed) ms"
  cat >"$dir/env" <<ENV
export CE_PG_URI=$pg_uri
export CE_MLFLOW_URI=http://127.0.0.1:$mlflow_port
export SLURM_CONF=$SLURM_CONF
ENV
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
