# slurm_lib.sh: what the jobs/*.sbatch scripts share; sourced by them, never run by itself.
#
#   amd_setup_run DIR SCRIPT ARGS...
#                       makes the run folder DIR, appends the rest of the job's output to
#                       DIR/slurm-<jobid>.out (an array task's DIR/slurm-<arrayjobid>_<taskid>.out),
#                       so everything a job writes is in its run folder; the `--output` file
#                       (logs/slurm-<name>-<jobid>.out in the submit folder) gets one line that
#                       points there, and whatever Slurm itself reports (cancellation, time limit).
#                       Records the job, and sets RESUME: 1 when Slurm restarted the job
#                       (SLURM_RESTART_COUNT > 0, e.g. after our own requeue), else $RESUME or 0.
#                       SCRIPT (jobs/<name>.sbatch) and ARGS (the job's key=value overrides) are
#                       kept for the resubmission hint of amd_finish
#   amd_launch ARGS...  runs `$AMD ARGS...` on the allocation's tasks (AMD_NTASKS of them when set)
#                       and returns its exit status. Launcher: `srun --mpi=pmix` where Slurm has the
#                       PMIx plugin (`srun --mpi=list`), else `mpirun` inside the allocation (Debian's
#                       Open MPI speaks PMIx only, so --mpi=pmi2 is no fallback). AMD_LAUNCHER=srun or
#                       mpirun forces one. SIGUSR1 reaching the batch shell (from
#                       `#SBATCH --signal=B:USR1@<seconds>` or `scancel --signal=USR1 --batch`) is
#                       forwarded to the launcher, which hands it to every rank: amd writes a
#                       checkpoint and exits 75. SIGTERM is only noted: on scancel, the time limit
#                       or preemption Slurm sends it to every process of the job itself, and srun
#                       answers a SIGTERM by killing its tasks ("forcing job termination"), so
#                       forwarding one more would only hasten that; amd's own SIGTERM checkpoint
#                       then races srun's kill and is best effort, while SIGUSR1 is reliable
#   amd_finish STATUS   75 after SIGUSR1 (the time-limit warning): `scontrol requeue` this job (it
#                       must be submitted with --requeue), so it starts again, with resume=1, from
#                       the checkpoint (amd's stop event says "the jobs/ scripts requeue the job").
#                       After SIGTERM (scancel, the time limit itself, preemption), whatever the
#                       status: no requeue, since a cancelled job should stay cancelled (preemption
#                       with PreemptMode=REQUEUE requeues by itself); it prints the command that
#                       continues the run: RESUME=1 RUN=<folder>, the environment settings
#                       (AMD_SUBMIT_ENV below) the job was submitted with, sbatch, the script and its
#                       key=value overrides (a resume refuses other settings unless resume.allow=
#                       names them). amd's stop event says "not requeued"; mpirun's status is then 1
#                       even when the ranks stopped with a checkpoint and 75. Any other status ends
#                       the job with it
#
# Settings (environment, all optional): AMD_ROOT (the repository; default the submit folder), AMD
# (the binary; default $AMD_ROOT/amd), THREADS (OpenMP threads per rank; default
# SLURM_CPUS_PER_TASK, else 0 = amd's own choice), AMD_LAUNCHER (auto|srun|mpirun), AMD_NTASKS.

# The settings of the scripts' environment this job was submitted with (before any default is
# filled in), repeated by amd_finish's resubmission hint.
AMD_SUBMIT_ENV=""
for _v in CONFIG DATA TEACHER METHOD METHODS SEEDS SWEEP CELLS STEPS BATCH BATCH_PER_RANK RANKS THREADS AMD_LAUNCHER \
  AMD_NTASKS AMD_ROOT AMD; do
  if [ -n "${!_v+x}" ]; then AMD_SUBMIT_ENV+="$_v=$(printf %q "${!_v}") "; fi
done
unset _v
AMD_ROOT=${AMD_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
AMD=${AMD:-$AMD_ROOT/amd}
THREADS=${THREADS:-${SLURM_CPUS_PER_TASK:-0}}
AMD_LAUNCHER=${AMD_LAUNCHER:-auto}
AMD_EXIT_REQUEUE=75

amd_setup_run() {
  RUN=$1
  AMD_JOB_SCRIPT=${2:-jobs/<script>.sbatch}
  AMD_JOB_ARGS=("${@:3}")
  mkdir -p "$RUN" || exit 1
  local out=$RUN/slurm-${SLURM_JOB_ID:-nojob}.out
  [ -n "${SLURM_ARRAY_TASK_ID:-}" ] && out=$RUN/slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.out
  echo "$(date '+%F %T') job ${SLURM_JOB_ID:-none} restart ${SLURM_RESTART_COUNT:-0}: output continues in $out"
  exec >>"$out" 2>&1
  if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then RESUME=1; else RESUME=${RESUME:-0}; fi
  # a signal before amd runs is kept and handed to it when it starts
  AMD_PENDING_SIGNAL=""
  AMD_GOT_TERM=0
  trap 'AMD_PENDING_SIGNAL=USR1' USR1
  trap 'AMD_PENDING_SIGNAL=TERM; AMD_GOT_TERM=1' TERM
  echo "=== $(date '+%F %T') job ${SLURM_JOB_ID:-none} (${SLURM_JOB_NAME:-}) restart ${SLURM_RESTART_COUNT:-0}" \
    "on ${SLURM_JOB_NODELIST:-$(hostname)}, ${SLURM_NTASKS:-1} tasks; run folder $RUN; resume=$RESUME"
}

amd_pick_launcher() {
  case $AMD_LAUNCHER in
    srun | mpirun) echo "$AMD_LAUNCHER" ;;
    *) if srun --mpi=list 2>&1 | grep -qw pmix; then echo srun; else echo mpirun; fi ;;
  esac
}

amd_launch() {
  local launcher pid rc
  launcher=$(amd_pick_launcher)
  local n=()
  if [ "$launcher" = srun ]; then
    [ -n "${AMD_NTASKS:-}" ] && n=(--ntasks="$AMD_NTASKS")
    echo "+ srun --mpi=pmix ${n[*]} $AMD $*"
    srun --mpi=pmix "${n[@]}" "$AMD" "$@" &
  else
    [ -n "${AMD_NTASKS:-}" ] && n=(-np "$AMD_NTASKS")
    echo "+ mpirun ${n[*]} $AMD $* (AMD_LAUNCHER=$AMD_LAUNCHER; srun --mpi=pmix is not used)"
    mpirun "${n[@]}" "$AMD" "$@" &
  fi
  pid=$!
  # bash runs a trap only between commands, so the launcher runs in the background and we wait;
  # a trapped signal interrupts `wait`, which then has to be called again for the real status
  trap 'echo "batch shell: SIGUSR1, forwarded to the ranks"; kill -USR1 '"$pid"' 2>/dev/null' USR1
  trap 'echo "batch shell: SIGTERM (Slurm signals the ranks itself)"; AMD_GOT_TERM=1' TERM
  if [ "${AMD_PENDING_SIGNAL:-}" = USR1 ]; then
    kill -USR1 "$pid" 2>/dev/null
    AMD_PENDING_SIGNAL=""
  fi
  wait "$pid"
  rc=$?
  while kill -0 "$pid" 2>/dev/null; do
    wait "$pid"
    rc=$?
  done
  trap 'AMD_PENDING_SIGNAL=USR1' USR1
  trap 'AMD_PENDING_SIGNAL=TERM; AMD_GOT_TERM=1' TERM
  return "$rc"
}

# The command that continues this job's run: the same script, settings and overrides, resume=1 (an
# array task: its own index, into the same sweep folder).
amd_resubmit_command() {
  local where="RUN=$(printf %q "$RUN")" array=""
  if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    where="SWEEP=$(printf %q "$(dirname "$RUN")")"
    array=" --array=$SLURM_ARRAY_TASK_ID"
  fi
  printf 'RESUME=1 %s %ssbatch%s %s' "$where" "$AMD_SUBMIT_ENV" "$array" "$AMD_JOB_SCRIPT"
  if [ ${#AMD_JOB_ARGS[@]} -gt 0 ]; then printf ' %q' "${AMD_JOB_ARGS[@]}"; fi
  echo
}

amd_finish() {
  local rc=$1
  if [ "${AMD_GOT_TERM:-0}" = 1 ]; then
    # mpirun returns 1 for a job it was itself told to end, whatever the ranks returned: the run's log
    # (`amd info RUN/log.h5`, its last "stop:" event) says whether they checkpointed
    echo "=== $(date '+%F %T') SIGTERM (cancelled, time limit or preempted), amd exit $rc (75: stopped with a" \
      "checkpoint): not requeueing; continue with: $(amd_resubmit_command)"
  elif [ "$rc" -eq "$AMD_EXIT_REQUEUE" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "=== $(date '+%F %T') amd checkpointed and exited $rc: requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID" && exit 0
    echo "scontrol requeue failed: resubmit with: $(amd_resubmit_command)"
  fi
  echo "=== $(date '+%F %T') finished with status $rc"
  exit "$rc"
}

# amd_scaling weak|strong: the scaling study of jobs/scaling_{weak,strong}.sbatch. For each rank
# count in RANKS that fits the allocation, trains the toy teacher (CONFIG) for STEPS steps into
# RUN/np<ranks>, with a global batch of BATCH_PER_RANK x ranks (weak) or BATCH (strong), then
# writes RUN/scaling.txt: samples/s (mean over the log intervals, from `amd info`), parallel
# efficiency rate(n) / (n rate(1)), and rank 0's communication share from the log's /timing.
amd_scaling() {
  local kind=$1 np batch rc rate1="" rate comm eff
  shift
  local table=$RUN/scaling.txt
  read -r -a ranks <<<"${RANKS:-1 2 4}"
  {
    echo "# $kind scaling, $(date '+%F %T'), job ${SLURM_JOB_ID:-none} on ${SLURM_JOB_NODELIST:-$(hostname)}"
    echo "# ${CONFIG:-jobs/toy_teacher.cfg}, ${STEPS:-300} steps, threads=$THREADS, launcher $(amd_pick_launcher)"
    printf '%-6s %-8s %-12s %-11s %s\n' ranks batch samples/s efficiency comm_share
  } >"$table"
  for np in "${ranks[@]}"; do
    if [ "$np" -gt "${SLURM_NTASKS:-1}" ]; then echo "skipping $np ranks: the allocation has ${SLURM_NTASKS:-1}"; continue; fi
    if [ "$kind" = weak ]; then batch=$((${BATCH_PER_RANK:-256} * np)); else batch=${BATCH:-1024}; fi
    AMD_NTASKS=$np amd_launch train "${CONFIG:-jobs/toy_teacher.cfg}" data="$DATA" run="$RUN/np$np" resume="$RESUME" \
      threads="$THREADS" train.batch="$batch" train.steps="${STEPS:-300}" log.every=$(((${STEPS:-300} + 4) / 5)) \
      ckpt.every="${STEPS:-300}" "$@"
    rc=$?
    [ "$rc" -eq 0 ] || amd_finish "$rc"
    "$AMD" info "$RUN/np$np/log.h5" >"$RUN/np$np/info.txt" || amd_finish 1
    rate=$(sed -n 's/^  rate \([0-9.]*\) samples\/s.*/\1/p' "$RUN/np$np/info.txt")
    comm=$(sed -n 's/^    rank 0 .* comm .*(\( *[0-9.]*%\)) .*io.*/\1/p' "$RUN/np$np/info.txt" | tr -d ' ')
    [ -n "$rate1" ] || rate1=$rate
    eff=$(awk -v r="$rate" -v r1="$rate1" -v n="$np" 'BEGIN { printf "%.2f", r / (n * r1) }')
    printf '%-6s %-8s %-12s %-11s %s\n' "$np" "$batch" "$rate" "$eff" "$comm" >>"$table"
  done
  cat "$table"
}
