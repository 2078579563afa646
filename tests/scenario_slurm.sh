#!/usr/bin/env bash
# The real jobs/*.sbatch scripts on a throwaway single-node Slurm cluster (tests/lib_slurm.sh:
# munged, slurmctld, slurmd under this test's scratch folder, stopped by their PIDs on exit), with
# tiny configurations passed as environment and key=value arguments:
#  - teacher.sbatch (srun --mpi=pmix, 2 ranks), distill.sbatch (METHOD=dmd2, chained to the teacher
#    with --dependency=afterok), sweep_array.sbatch (2 seeds x 2 methods), scaling_weak.sbatch and
#    scaling_strong.sbatch (1, 2, 4 ranks): each completes, and its log, checkpoints, job output and
#    tables are in the run folder it names;
#  - a teacher job signalled before its time limit (scancel --signal=USR1 --batch: the signal
#    `#SBATCH --signal=B:USR1@<seconds>` delivers) checkpoints, exits 75, requeues itself, resumes
#    and finishes with losses bit-identical to the uninterrupted job;
#  - the mpirun fallback of jobs/slurm_lib.sh (AMD_LAUNCHER=mpirun) runs too;
#  - the sweep keeps the scripts' own --output: each task's logs/slurm-amd-sweep-<id>_<task>.out
#    (removed after the check) points to its run folder's slurm-<id>_<task>.out;
#  - a study's cells (benchmarks/study.py --slurm --submit: CELLS= of sweep_array.sbatch) distill,
#    sample and evaluate under srun, and the study's table then finds every cell.
# Skipped when slurm-wlm or munge are missing (jobs/setup.sh installs them), except the first check,
# which needs no cluster: the resubmission hint of a job stopped by SIGTERM repeats its settings.
source "$(dirname "$0")/lib.sh"

# Without a cluster: a job stopped by SIGTERM (no requeue) prints the command that continues it,
# with the settings and key=value overrides it was submitted with. A stand-in mpirun signals the
# batch shell as Slurm would and exits 75 as amd does after its checkpoint.
H=$(cd "$SCRATCH" && pwd)/hint
mkdir -p "$H/bin"
printf '#!/bin/bash\nkill -TERM $PPID\nsleep 0.3\nexit 75\n' >"$H/bin/mpirun"
chmod +x "$H/bin/mpirun"
env -u SLURM_JOB_ID -u SLURM_ARRAY_TASK_ID -u CONFIG -u TEACHER -u METHOD PATH="$H/bin:$PATH" AMD_ROOT="$PWD" \
  AMD_LAUNCHER=mpirun RUN="$H/run" DATA="$H/my data.h5" bash jobs/teacher.sbatch train.steps=400 optim.lr=5e-3 >/dev/null 2>&1
rc=$?
want="continue with: RESUME=1 RUN=$H/run DATA=$H/my\\ data.h5 AMD_LAUNCHER=mpirun AMD_ROOT=$PWD"
if [ "$rc" -eq 75 ] && grep -qF -- "$want" "$H/run/slurm-nojob.out" &&
  grep -qF "sbatch jobs/teacher.sbatch train.steps=400 optim.lr=5e-3" "$H/run/slurm-nojob.out"; then
  pass slurm_hint_repeats_overrides
else fail slurm_hint_repeats_overrides "rc $rc: $(grep -a 'continue with' "$H/run/slurm-nojob.out" 2>&1)"; fi

for b in munged slurmctld slurmd sbatch srun; do
  if ! command -v $b >/dev/null; then echo "SKIP slurm: $b is not installed (bash jobs/setup.sh installs slurm-wlm and munge)"; exit 0; fi
done
source "$(dirname "$0")/lib_slurm.sh"
S=$(cd "$SCRATCH" && pwd)
export AMD
trap slurm_stop EXIT
if slurm_start "$S/cluster"; then pass slurm_cluster_up; else fail slurm_cluster_up "$(tail -5 "$S"/cluster/log/* 2>&1)"; exit 0; fi
if srun --mpi=list 2>&1 | grep -qw pmix; then pass srun_has_pmix; else fail srun_has_pmix "$(srun --mpi=list 2>&1)"; fi

"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
MODEL="model.width=16 model.depth=1 model.temb_dim=8 threads=1"
TEACH="$MODEL train.batch=32 train.steps=150 log.every=5 ckpt.every=50"
DIST="train.prompts=8 amd.K=2 fake_per_gen=1 train.steps=6 log.every=2 ckpt.every=3 threads=1"
sub() { sbatch --parsable -o "$S/%x-%j.out" "$@"; }

t=$(RUN=$S/teacher DATA=$S/toy.h5 sub jobs/teacher.sbatch $TEACH)
sig=$(RUN=$S/sig DATA=$S/toy.h5 sub jobs/teacher.sbatch $TEACH fault.slow_log_ms=25)
d=$(METHOD=dmd2 TEACHER=$S/teacher RUN=$S/dmd2 sub --dependency=afterok:$t jobs/distill.sbatch $DIST)
# the sweep keeps its own --output (logs/ of the repository, removed below): one line per task there
a=$(SEEDS="0 1" METHODS="dmd2 amd" TEACHER=$S/teacher SWEEP=$S/sweep sbatch --parsable --array=0-3 \
  --dependency=afterok:$t jobs/sweep_array.sbatch $DIST)
w=$(RUN=$S/weak DATA=$S/toy.h5 STEPS=20 BATCH_PER_RANK=16 THREADS=1 sub --overcommit jobs/scaling_weak.sbatch $MODEL)
st=$(RUN=$S/strong DATA=$S/toy.h5 STEPS=20 BATCH=64 THREADS=1 sub --overcommit jobs/scaling_strong.sbatch $MODEL)
m=$(RUN=$S/mpirun DATA=$S/toy.h5 AMD_LAUNCHER=mpirun sub jobs/teacher.sbatch $MODEL train.batch=32 train.steps=20 ckpt.every=10)
echo "jobs: teacher $t, signalled $sig, distill $d, sweep $a, weak $w, strong $st, mpirun $m"

# the signal a time limit would bring, once the job has its step-50 checkpoint
for _ in $(seq 1 600); do [ -f "$S/sig/ckpt_00000050.h5" ] && break; sleep 0.2; done
if [ -f "$S/sig/ckpt_00000050.h5" ]; then scancel --signal=USR1 --batch "$sig"; pass signalled_job_running
else fail signalled_job_running "no step-50 checkpoint after 120 s: $(squeue 2>&1)"; fi

for id in $t $sig $d $a $w $st $m; do
  slurm_wait "$id" 240 || fail "job_${id}_ends" "still queued after 240 s: $(squeue 2>&1)"
done
squeue >"$S/squeue_at_end.txt" 2>&1

# completed: the last record of each job in the job-completion log says COMPLETED with exit 0
completed() { # NAME JOBID
  local rec
  rec=$(grep "^JobId=$2 " "$S/cluster/log/jobcomp.txt" | tail -1)
  if echo "$rec" | grep -q "JobState=COMPLETED" && echo "$rec" | grep -q " ExitCode=0:0"; then pass "$1"
  else fail "$1" "job $2: ${rec:-no record}; $(tail -5 "$S"/*-"$2".out 2>/dev/null)"; fi
}
completed teacher_job_completed $t
completed signalled_job_completed $sig
completed distill_job_completed $d
for i in 0 1 2 3; do
  tid=$(grep "Name=amd-sweep" "$S/cluster/log/jobcomp.txt" | sed -n "s/^JobId=\([0-9]*\) .*/\1/p" | sort -un | sed -n "$((i + 1))p")
  [ -n "$tid" ] && completed "sweep_task_${i}_completed" "$tid" || fail "sweep_task_${i}_completed" "no record"
done
completed scaling_weak_job_completed $w
completed scaling_strong_job_completed $st
completed mpirun_fallback_job_completed $m

# outputs where the scripts say: the run folder holds the log, the checkpoints and the job output
ok=1
for f in teacher/log.h5 teacher/log.h5.bak teacher/ckpt_00000150.h5 "teacher/slurm-$t.out" dmd2/ckpt_00000006.h5 \
  "dmd2/slurm-$d.out" sweep/dmd2_seed0/ckpt_00000006.h5 sweep/amd_seed0/ckpt_00000006.h5 sweep/dmd2_seed1/ckpt_00000006.h5 \
  sweep/amd_seed1/ckpt_00000006.h5 weak/scaling.txt weak/np1/log.h5 weak/np2/log.h5 weak/np4/log.h5 strong/scaling.txt \
  strong/np4/ckpt_00000020.h5 mpirun/ckpt_00000020.h5; do
  [ -f "$S/$f" ] || { fail outputs_in_run_folders "missing $f"; ok=0; }
done
[ $ok = 1 ] && pass outputs_in_run_folders
if grep -q "finished with status 0" "$S/teacher/slurm-$t.out" && grep -q "^+ srun --mpi=pmix" "$S/teacher/slurm-$t.out"
then pass teacher_ran_under_srun_pmix; else fail teacher_ran_under_srun_pmix "$(head -5 "$S/teacher/slurm-$t.out")"; fi
if grep -q "^+ mpirun" "$S/mpirun/slurm-$m.out"; then pass mpirun_fallback_used
else fail mpirun_fallback_used "$(head -5 "$S/mpirun/slurm-$m.out")"; fi
# issue 16, item 12: an array task's output names its task, in the run folder and in logs/, which
# points to the run folder; nothing lands in the submit folder itself
ok=1
for i in 0 1 2 3; do
  meth=(dmd2 amd); run=$S/sweep/${meth[$((i % 2))]}_seed$((i / 2))
  [ -s "$run/slurm-${a}_$i.out" ] || { fail array_task_output_named "missing $run/slurm-${a}_$i.out: $(ls "$run")"; ok=0; }
  grep -q "output continues in $run/slurm-${a}_$i.out" "logs/slurm-amd-sweep-${a}_$i.out" 2>/dev/null ||
    { fail array_task_output_named "logs/slurm-amd-sweep-${a}_$i.out: $(cat "logs/slurm-amd-sweep-${a}_$i.out" 2>&1)"; ok=0; }
done
[ $ok = 1 ] && pass array_task_output_named
if ls slurm-*"$a"*.out >/dev/null 2>&1; then fail no_output_in_submit_folder "$(ls slurm-*"$a"*.out)"
else pass no_output_in_submit_folder; fi
rm -f logs/slurm-amd-sweep-"${a}"_*.out
py_check distill_and_sweep_settings "
import h5py
def cfg(run):
    return dict(l.split(' = ', 1) for l in h5py.File(run + '/log.h5', 'r').attrs['config'].splitlines() if ' = ' in l)
c = cfg('$S/dmd2')
assert c['method'] == 'dmd2' and c['teacher'] == '$S/teacher' and c['train.steps'] == '6', c
for method in ('dmd2', 'amd'):
    for seed in (0, 1):
        run = '$S/sweep/%s_seed%d' % (method, seed)
        c = cfg(run)
        assert c['method'] == method and c['seed'] == str(seed), (run, c)
        assert h5py.File(run + '/ckpt_00000006.h5', 'r').attrs['seed'] == seed
"
py_check scaling_tables "
for kind, batches in (('weak', ['16', '32', '64']), ('strong', ['64', '64', '64'])):
    rows = [l.split() for l in open('$S/%s/scaling.txt' % kind) if not l.startswith('#')]
    assert rows[0] == ['ranks', 'batch', 'samples/s', 'efficiency', 'comm_share'], rows
    assert [r[0] for r in rows[1:]] == ['1', '2', '4'] and [r[1] for r in rows[1:]] == batches, rows
    assert all(float(r[2]) > 0 for r in rows[1:]) and rows[1][3] == '1.00' and rows[1][4].endswith('%'), rows
"

# the signalled job: checkpoint, exit 75, requeue, resume, and the same losses as the teacher job
out=$S/sig/slurm-$sig.out
if grep -q "batch shell: SIGUSR1, forwarded" "$out" && grep -q "stopping at step" "$out" && grep -q "exited 75: requeueing job $sig" "$out" &&
  grep -q "restart 1 .*resume=1" "$out" && grep -q "resuming from $S/sig/ckpt_" "$out"; then pass signalled_job_requeued_and_resumed
else fail signalled_job_requeued_and_resumed "$(grep '^===\|stopp\|resum\|SIGUSR1' "$out")"; fi
if grep "^JobId=$sig " "$S/cluster/log/jobcomp.txt" | head -1 | grep -q "DerivedExitCode=75:0"; then pass requeue_recorded_exit_75
else fail requeue_recorded_exit_75 "$(grep "^JobId=$sig " "$S/cluster/log/jobcomp.txt")"; fi
py_check signalled_job_bit_identical "
import h5py, numpy as np
a = h5py.File('$S/teacher/log.h5', 'r'); b = h5py.File('$S/sig/log.h5', 'r')
for col in ('step', 'loss', 'grad_norm', 'lr'):
    assert a['train/' + col].shape == (150,) and np.array_equal(a['train/' + col][:], b['train/' + col][:]), col
m = [x.decode() if isinstance(x, bytes) else x for x in b['events/message'][:]]
s = b['events/step'][:]
assert len(m) == 2 and m[0].startswith('stop: SIGUSR1') and m[1].startswith('resume from step') and s[0] == s[1], (m, s)
pa = h5py.File('$S/teacher/ckpt_00000150.h5', 'r')['teacher']; pb = h5py.File('$S/sig/ckpt_00000150.h5', 'r')['teacher']
for k in ('params', 'adam_m', 'adam_v'):
    assert np.array_equal(pa[k][:], pb[k][:]), k
"

# a study's cells as an array of sweep_array.sbatch (benchmarks/study.py --slurm --submit, docs/study.md):
# each task distills, samples and evaluates its cell under srun, and the study's table then finds them all
$PY -c "
import json
s = json.load(open('benchmarks/study_ci.json'))
s.update(teacher='$S/teacher', budgets=[6], seeds=[0], sample={'n': 256},
         distill={'settings': {'train.prompts': 8, 'amd.K': 2, 'fake_per_gen': 1, 'log.every': 2, 'ckpt.every': 3}})
json.dump(s, open('$S/study.json', 'w'))"
$PY benchmarks/study.py "$S/study.json" --out "$S/study" --slurm --submit >"$S/study_submit.out" 2>&1
sa=$(sed -n 's/^study: submitted array job \([0-9]*\)$/\1/p' "$S/study_submit.out")
if [ -n "$sa" ] && slurm_wait "$sa" 240; then
  ok=1
  for i in 0 1; do
    c=$(sed -n "$((i + 1))p" "$S"/study/slurm_cells_*.txt | cut -f1)
    grep -q "^+ srun --mpi=pmix .* eval " "$S/study/runs/$c/slurm-${sa}_$i.out" &&
      grep -q "finished with status 0" "$S/study/runs/$c/slurm-${sa}_$i.out" ||
      { fail study_array_tasks "task $i ($c): $(tail -5 "$S/study/runs/$c/slurm-${sa}_$i.out" 2>&1)"; ok=0; }
  done
  [ $ok = 1 ] && pass study_array_tasks
  expect_ok study_array_report $PY benchmarks/study.py "$S/study.json" --out "$S/study" --report
else
  fail study_array_tasks "no array job, or still queued after 240 s: $(cat "$S/study_submit.out"; squeue 2>&1)"
fi
rm -f logs/slurm-amd-sweep-"${sa:-none}"_*.out
