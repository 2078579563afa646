# lib_slurm.sh: a throwaway single-node Slurm 22.05 cluster under a scratch folder, without systemd
# (shared/PLATFORM.md): munged with its own key, socket and pid file; slurmctld -D -i and
# slurmd -D -N localhost in the background, on free ports; every daemon stopped by its recorded PID
# (after its jobs are cancelled; a step daemon left behind is found by the slurm.conf it names).
# TmpFS is under the folder too: the PMIx plugin keeps /tmp/spmix_appdir_<uid>_<job>.<step> there,
# and a leftover of another cluster's job with the same number would fail the step's launch.
# Sourced by tests/scenario_slurm.sh. Usage:
#   slurm_start DIR    starts the cluster, exports SLURM_CONF; returns non-zero if it did not come up
#   slurm_stop         stops the daemons started by slurm_start (safe to call twice; use in a trap)
# Not here: anything about amd or its jobs.

SLURM_DIR=""
SLURM_PIDS=()

slurm_free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

slurm_start() {
  SLURM_DIR=$1
  local d=$SLURM_DIR
  mkdir -p "$d/munge" "$d/state" "$d/spool" "$d/log" "$d/tmp"
  chmod 700 "$d/munge"
  dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$d/munge/munge.key"
  munged --key-file="$d/munge/munge.key" --socket="$d/munge/munge.socket" --pid-file="$d/munge/munged.pid" \
    --log-file="$d/log/munged.log" --seed-file="$d/munge/munge.seed" --force 2>>"$d/log/munged.err" || return 1
  SLURM_PIDS+=("$(cat "$d/munge/munged.pid")")
  local ctld_port slurmd_port
  ctld_port=$(slurm_free_port)
  slurmd_port=$(slurm_free_port)
  # cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
  cat >"$d/slurm.conf" <<EOF
ClusterName=amdtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.socket,cred_expire=5
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
TmpFS=$d/tmp
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$d/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
KillWait=10
SchedulerParameters=bf_interval=1,sched_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=20000
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  export SLURM_CONF=$d/slurm.conf
  slurmctld -D -i -f "$SLURM_CONF" >"$d/log/slurmctld.out" 2>&1 &
  SLURM_PIDS+=("$!")
  slurmd -D -N localhost -f "$SLURM_CONF" >"$d/log/slurmd.out" 2>&1 &
  SLURM_PIDS+=("$!")
  local i state
  for i in $(seq 1 100); do
    state=$(sinfo -h -o %t 2>/dev/null)
    [ "$state" = idle ] && return 0
    sleep 0.2
  done
  echo "slurm_start: the node did not become idle (state '$state'); logs in $d/log" >&2
  return 1
}

slurm_stop() {
  local p ids
  # jobs first, so no step outlives the daemons that track it
  if [ -n "$SLURM_DIR" ] && [ ${#SLURM_PIDS[@]} -gt 2 ]; then
    ids=$(squeue -h -o %i 2>/dev/null)
    if [ -n "$ids" ]; then
      scancel $ids 2>/dev/null
      for _ in $(seq 1 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.25; done
    fi
  fi
  for p in "${SLURM_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${SLURM_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  SLURM_PIDS=()
  # a step daemon of this cluster that outlived slurmd (its environment names our slurm.conf)
  for p in $(pgrep -x slurmstepd); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_DIR/slurm.conf" && kill -9 "$p" 2>/dev/null
  done
}

# slurm_wait JOBID [TIMEOUT_S]: polls squeue until the job (all array tasks) has left the queue.
slurm_wait() {
  local id=$1 limit=${2:-120} t0=$SECONDS
  while [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; do
    [ $((SECONDS - t0)) -ge "$limit" ] && return 1
    sleep 0.5
  done
  return 0
}
