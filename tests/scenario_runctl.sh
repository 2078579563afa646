#!/usr/bin/env bash
# Run control without Slurm (src/runctl.h):
#  - SIGUSR1 (sent by one rank to itself, or from outside to the process or to mpirun) and SIGTERM:
#    every rank stops at the same step boundary, a checkpoint of that step appears, the exit status
#    is 75 (the requeue status), and resume=1 continues the same loss curve, bit-identical to an
#    uninterrupted run (teacher at -np 1 and -np 2, distillation at -np 2);
#  - kill -9 inside a checkpoint write (fault.slow_ckpt_ms holds the write window open): the .tmp
#    is left, the previous checkpoint loads, resume=1 finishes bit-identically;
#  - kill -9 inside a log flush (fault.slow_log_ms), in the log itself and in its .bak copy: `amd
#    info` still reads the log, resume=1 repairs it and finishes bit-identically, no marker stays;
#  - a rollback's learning-rate backoff survives a crash and resume;
#  - `amd info` on a log: the run summary, /timing per rank, the events with their steps;
#  - the run folder's lock: one job per folder, stale locks removed, live ones refused;
#  - SIGINT and SIGHUP stop like SIGTERM; the stop event says whether the scripts requeue; SIGTERM to
#    the ranks of an mpirun job makes mpirun return 75 (to mpirun itself: Open MPI's rule, 1);
#  - the watchdog ends a job one of whose ranks is stopped (SIGSTOP), not one suspended as a whole
#    for longer than watchdog.seconds and continued (SIGCONT);
#  - a lost log.h5 comes back from log.h5.bak; sample/eval out= never replaces another kind of file.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
CFG="data=$S/toy.h5 model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 train.steps=40 log.every=5 ckpt.every=10 threads=1"

# same_run NAME A B: the logs of runs A and B hold bit-identical /train losses, gradient norms and
# learning rates, and their final checkpoints the same parameters and moments
same_run() {
  py_check "$1" "
import h5py, numpy as np
a = h5py.File('$S/$2/log.h5', 'r'); b = h5py.File('$S/$3/log.h5', 'r')
for col in ('step', 'loss', 'grad_norm', 'lr'):
    x, y = a['train/' + col][:], b['train/' + col][:]
    assert x.shape == y.shape == (40,) and np.array_equal(x, y), (col, x.shape, y.shape)
pa = h5py.File('$S/$2/ckpt_00000040.h5', 'r')['teacher']; pb = h5py.File('$S/$3/ckpt_00000040.h5', 'r')['teacher']
for k in ('params', 'adam_m', 'adam_v'):
    assert np.array_equal(pa[k][:], pb[k][:]), k
"
}

# wait_for NAME PID PATH: waits (10 s at most) until PATH exists while the process lives
wait_for() {
  local i
  for i in $(seq 1 400); do
    [ -e "$3" ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.025
  done
  fail "$1" "$3 did not appear"
  return 1
}

expect_ok ref_np1 "$AMD" train $CFG run="$S/ref1"
expect_ok ref_np2 $MPIRUN -np 2 "$AMD" train $CFG run="$S/ref2"

# SIGUSR1 on the last rank only, before step 17: both ranks stop there together
$MPIRUN -np 2 "$AMD" train $CFG run="$S/usr1" fault.signal_step=17 >"$S/usr1.out" 2>&1
rc=$?
if [ "$rc" -eq 75 ] && [ -f "$S/usr1/ckpt_00000017.h5" ] && grep -q "SIGUSR1 received: stopping at step 17" "$S/usr1.out"
then pass sigusr1_checkpoints_and_exits_75; else fail sigusr1_checkpoints_and_exits_75 "rc $rc: $(tail -c 600 "$S/usr1.out")"; fi
expect_ok sigusr1_resume $MPIRUN -np 2 "$AMD" train $CFG run="$S/usr1" resume=1
if grep -q "resuming from $S/usr1/ckpt_00000017.h5" "$S/sigusr1_resume.out"; then pass sigusr1_resumes_at_17
else fail sigusr1_resumes_at_17 "$(grep -i resum "$S/sigusr1_resume.out")"; fi
same_run sigusr1_resume_bit_identical_np2 ref2 usr1
py_check sigusr1_events "
import h5py
f = h5py.File('$S/usr1/log.h5', 'r')
m = [x.decode() if isinstance(x, bytes) else x for x in f['events/message'][:]]
assert list(f['events/step'][:]) == [17, 17], f['events/step'][:]
assert m[0].startswith('stop: SIGUSR1 at step 17') and m[1].startswith('resume from step 17'), m
"

# from outside, at whatever step the signal lands: SIGUSR1 to the process, SIGTERM, SIGINT and
# SIGHUP to the process (each stops like SIGTERM: a checkpoint, exit 75), SIGUSR1 to mpirun (which
# forwards it to every rank), SIGTERM to both ranks of an mpirun job (as Slurm signals every
# process): mpirun's own status is 75 too; the slow log flushes keep the run going
for kind in usr1_proc term_proc int_proc hup_proc usr1_mpirun term_ranks; do
  sig=USR1
  case $kind in term_*) sig=TERM ;; int_proc) sig=INT ;; hup_proc) sig=HUP ;; esac
  launch=("$AMD"); ref=ref1
  case $kind in *_mpirun | term_ranks) launch=($MPIRUN -np 2 "$AMD"); ref=ref2 ;; esac
  "${launch[@]}" train $CFG run="$S/$kind" fault.slow_log_ms=40 >"$S/$kind.out" 2>&1 &
  pid=$!
  wait_for "$kind" $pid "$S/$kind/ckpt_00000010.h5"
  if [ $kind = term_ranks ]; then kill -TERM $(pgrep -P $pid); else kill -$sig $pid; fi
  wait $pid
  rc=$?
  stop=$(sed -n 's/.*stopping at step \([0-9]*\).*/\1/p' "$S/$kind.out")
  if [ "$rc" -eq 75 ] && [ -n "$stop" ] && [ -f "$S/$kind/$(printf 'ckpt_%08d.h5' "$stop")" ]; then
    pass "${kind}_stops_with_checkpoint"
  else fail "${kind}_stops_with_checkpoint" "rc $rc, stop step '$stop': $(tail -c 400 "$S/$kind.out")"; fi
  if [ $sig = USR1 ]; then what="the jobs/ scripts requeue the job"; else what="not requeued: continue with resume=1"; fi
  py_check "${kind}_event_says_what_follows" "
import h5py
m = [x.decode() for x in h5py.File('$S/$kind/log.h5', 'r')['events/message'][:]]
assert m[-1] == 'stop: SIG$sig at step $stop; checkpoint and exit 75 ($what)', m
"
  expect_ok "${kind}_resume" "${launch[@]}" train $CFG run="$S/$kind" resume=1
  same_run "${kind}_resume_bit_identical" $ref $kind
done

# distillation: SIGUSR1 at -np 2, resume, bit-identical to the uninterrupted run
expect_ok teacher "$AMD" train $CFG run="$S/teacher"
DCFG="teacher=$S/teacher train.prompts=8 amd.K=2 fake_per_gen=2 train.steps=12 log.every=4 ckpt.every=4 threads=1"
expect_ok distill_ref $MPIRUN -np 2 "$AMD" distill $DCFG run="$S/dref"
$MPIRUN -np 2 "$AMD" distill $DCFG run="$S/dsig" fault.signal_step=6 >"$S/dsig.out" 2>&1
rc=$?
if [ "$rc" -eq 75 ] && [ -f "$S/dsig/ckpt_00000006.h5" ]; then pass distill_sigusr1_exit_75
else fail distill_sigusr1_exit_75 "rc $rc: $(tail -c 600 "$S/dsig.out")"; fi
expect_ok distill_sigusr1_resume $MPIRUN -np 2 "$AMD" distill $DCFG run="$S/dsig" resume=1
py_check distill_sigusr1_bit_identical "
import h5py, numpy as np
a = h5py.File('$S/dref/log.h5', 'r'); b = h5py.File('$S/dsig/log.h5', 'r')
for k in ('loss_dm', 'loss_fake', 'loss_gan_d', 'grad_norm_student', 'grad_norm_fake', 'lr_student'):
    assert a['train'][k].shape == (12,) and np.array_equal(a['train'][k][:], b['train'][k][:]), k
for k in ('step', 'advantage'):
    assert np.array_equal(a['advantage'][k][:], b['advantage'][k][:]), k
pa = h5py.File('$S/dref/ckpt_00000012.h5', 'r'); pb = h5py.File('$S/dsig/ckpt_00000012.h5', 'r')
for net in ('student', 'fake', 'disc'):
    for k in ('params', 'adam_m', 'adam_v'):
        assert np.array_equal(pa[net][k][:], pb[net][k][:]), (net, k)
"

# kill -9 inside the write of the step-20 checkpoint
"$AMD" train $CFG run="$S/kckpt" fault.slow_ckpt_ms=1500 >"$S/kckpt.out" 2>&1 &
pid=$!
if wait_for kill_in_checkpoint $pid "$S/kckpt/ckpt_00000020.h5.tmp"; then
  kill -9 $pid
  wait $pid 2>/dev/null
  if [ -f "$S/kckpt/ckpt_00000010.h5" ] && [ ! -e "$S/kckpt/ckpt_00000020.h5" ]; then pass kill_in_checkpoint_leaves_previous
  else fail kill_in_checkpoint_leaves_previous "$(ls "$S/kckpt")"; fi
  expect_ok kill_in_checkpoint_previous_loads "$AMD" info "$S/kckpt/ckpt_00000010.h5"
  expect_ok kill_in_checkpoint_resume "$AMD" train $CFG run="$S/kckpt" resume=1
  if grep -q "resuming from $S/kckpt/ckpt_00000010.h5" "$S/kill_in_checkpoint_resume.out"; then pass kill_in_checkpoint_resumes_at_10
  else fail kill_in_checkpoint_resumes_at_10 "$(head -3 "$S/kill_in_checkpoint_resume.out")"; fi
  same_run kill_in_checkpoint_bit_identical ref1 kckpt
fi

# kill -9 inside a log flush after the step-10 checkpoint: in log.h5 itself, then in log.h5.bak
for copy in main bak; do
  marker="$S/klog_$copy/log.h5.dirty"; [ $copy = bak ] && marker="$S/klog_$copy/log.h5.bak.dirty"
  "$AMD" train $CFG run="$S/klog_$copy" fault.slow_log_ms=400 >"$S/klog_$copy.out" 2>&1 &
  pid=$!
  wait_for "kill_in_log_$copy" $pid "$S/klog_$copy/ckpt_00000010.h5" && wait_for "kill_in_log_$copy" $pid "$marker" || continue
  kill -9 $pid
  wait $pid 2>/dev/null
  expect_ok "kill_in_log_${copy}_info_reads" "$AMD" info "$S/klog_$copy/log.h5"
  expect_ok "kill_in_log_${copy}_resume" "$AMD" train $CFG run="$S/klog_$copy" resume=1
  same_run "kill_in_log_${copy}_bit_identical" ref1 "klog_$copy"
  if ls "$S/klog_$copy"/*.dirty >/dev/null 2>&1; then fail "kill_in_log_${copy}_repaired" "$(ls "$S/klog_$copy")"
  else pass "kill_in_log_${copy}_repaired"; fi
done
if grep -q "reading $S/klog_main/log.h5.bak" "$S/kill_in_log_main_info_reads.out"; then pass info_reads_the_whole_copy
else fail info_reads_the_whole_copy "$(head -3 "$S/kill_in_log_main_info_reads.out")"; fi

# a rollback at step 25 (learning rate x 0.5), a crash at step 35, a resume from step 30: the
# backoff comes back from the checkpoint, and the run matches the one that never crashed
expect_ok rollback_ref "$AMD" train $CFG run="$S/rb" fault.nan_step=25
expect_error rollback_crash "simulated crash at step 35" "$AMD" train $CFG run="$S/rbc" fault.nan_step=25 fault.exit_step=35
expect_ok rollback_resume "$AMD" train $CFG run="$S/rbc" resume=1
if grep -q "learning rates x 0.5 after 1 rollbacks" "$S/rollback_resume.out"; then pass rollback_backoff_resumed
else fail rollback_backoff_resumed "$(grep -i 'learning\|resum' "$S/rollback_resume.out")"; fi
same_run rollback_resume_bit_identical rb rbc

# amd info on a log: summary, timing per rank, events
expect_ok info_log "$AMD" info "$S/usr1/log.h5"
py_check info_log_summary "
out = open('$S/info_log.out').read()
for needle in ('last step 40', 'elapsed', 'samples/s', 'loss ', 'mean of the last 4 rows',
               '/timing: 16 rows, 2 ranks', 'rank 0 ', 'rank 1 ', 'comm', 'io', '2 events',
               'step 17: stop: SIGUSR1 at step 17', 'step 17: resume from step 17'):
    assert needle in out, (needle, out)
"
py_check timing_rows "
import h5py, numpy as np
t = h5py.File('$S/ref2/log.h5', 'r')['timing']
assert np.array_equal(t['step'][:], np.repeat(np.arange(5, 41, 5), 2)), t['step'][:]
assert np.array_equal(t['rank'][:], np.tile([0, 1], 8)), t['rank'][:]
for k in ('compute', 'comm', 'io'):
    v = t[k][:]
    assert np.isfinite(v).all() and (v >= 0).all(), k
assert t['comm'][:].sum() > 0 and t['io'][::2].sum() > 0 and t['compute'][:].sum() > 0
"

# the run folder's lock (src/runlock.h): a second job on a folder in use is refused and the first
# finishes a whole run; no lock stays after a run, a refused fresh run or a divergence; a stale lock
# (its process gone, or an earlier run of this same Slurm job) is removed with a message; a lock of
# a live process, or of another host, is refused naming its owner
"$AMD" train $CFG run="$S/locked" fault.slow_log_ms=100 >"$S/locked.out" 2>&1 &
pid=$!
if wait_for lock_held $pid "$S/locked/ckpt_00000010.h5"; then
  expect_error lock_refuses_second_job "is in use by process $pid on host" "$AMD" train $CFG run="$S/locked" resume=1
  wait $pid
  rc=$?
  py_check lock_first_job_whole "
import h5py, numpy as np
assert $rc == 0, 'first job exit $rc'
s = h5py.File('$S/locked/log.h5', 'r')['train/step'][:]
assert np.array_equal(s, np.arange(1, 41)), s
"
fi
if [ -e "$S/locked/amd.lock" ]; then fail lock_released_after_run "$(cat "$S/locked/amd.lock")"; else pass lock_released_after_run; fi
expect_error lock_fresh_run_refused "already holds a run" "$AMD" train $CFG run="$S/locked"
if [ -e "$S/locked/amd.lock" ]; then fail lock_released_after_error "left behind"; else pass lock_released_after_error; fi
"$AMD" train $CFG run="$S/lock_nan" fault.nan_step=5 guard.max_rollbacks=0 >/dev/null 2>&1
if [ -e "$S/lock_nan/amd.lock" ]; then fail lock_released_after_divergence "left behind"; else pass lock_released_after_divergence; fi
( : ) & dead=$!
wait $dead
echo "host $(hostname) pid $dead job -" >"$S/locked/amd.lock"
expect_ok lock_stale_process_removed "$AMD" train $CFG run="$S/locked" resume=1 train.steps=50 resume.allow=train.steps
if grep -q "removing the stale lock of process $dead" "$S/lock_stale_process_removed.out"; then pass lock_stale_process_says_so
else fail lock_stale_process_says_so "$(head -3 "$S/lock_stale_process_removed.out")"; fi
echo "host node-elsewhere pid 1 job 4242" >"$S/locked/amd.lock"
expect_ok lock_stale_same_slurm_job env SLURM_JOB_ID=4242 "$AMD" train $CFG run="$S/locked" resume=1 train.steps=60 \
  resume.allow=train.steps
echo "host node-elsewhere pid 1 job 4242" >"$S/locked/amd.lock"
expect_error lock_other_host_refused "in use by process 1 on host node-elsewhere, Slurm job 4242" \
  "$AMD" train $CFG run="$S/locked" resume=1 train.steps=70
echo "host $(hostname) pid 1 job -" >"$S/locked/amd.lock"
expect_error lock_live_process_refused "in use by process 1 on host" "$AMD" train $CFG run="$S/locked" resume=1 train.steps=70
rm -f "$S/locked/amd.lock"

# SIGTERM to mpirun itself: Open MPI's mpirun (4.1) answers it by aborting the job (SIGTERM to the
# ranks, SIGKILL after odls_base_sigkill_timeout) and returns 1 whatever the ranks return
# (docs/slurm.md); within that second the ranks still stop together with a checkpoint and exit 75
$MPIRUN -np 2 "$AMD" train $CFG run="$S/term_mpirun" train.steps=100000 fault.slow_log_ms=20 >"$S/term_mpirun.out" 2>&1 &
pid=$!
if wait_for term_mpirun $pid "$S/term_mpirun/ckpt_00000010.h5"; then
  kill -TERM $pid
  wait $pid
  py_check term_mpirun_ranks_checkpoint "
import h5py, os
m = [x.decode() for x in h5py.File('$S/term_mpirun/log.h5', 'r')['events/message'][:]]
assert m and m[-1].startswith('stop: SIGTERM at step '), m
step = int(m[-1].split()[4].rstrip(';'))
assert os.path.exists('$S/term_mpirun/ckpt_%08d.h5' % step), step
"
fi

# a stopped rank (SIGSTOP) no longer leaves the other waiting forever: the watchdog ends it with a
# message naming the step and the rank it waits for, and mpirun ends the job with a non-zero status
$MPIRUN -np 2 "$AMD" train $CFG run="$S/watchdog" train.steps=1000000 watchdog.seconds=2 fault.slow_log_ms=20 \
  >"$S/watchdog.out" 2>&1 &
pid=$!
if wait_for watchdog $pid "$S/watchdog/ckpt_00000010.h5"; then
  stopped=$(pgrep -P $pid | head -1)
  kill -STOP "$stopped"
  t0=$SECONDS
  for i in $(seq 1 300); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
  if kill -0 $pid 2>/dev/null; then
    fail watchdog_ends_the_job "mpirun still runs 15 s after SIGSTOP of one rank"
    kill -9 $pid
  fi
  wait $pid
  rc=$?
  # the waiting rank names the collective and the rank it waits for, or, when it waits inside a
  # checkpoint's collective MPI-IO write (not one of mpi/dist.c's), says so
  if [ $rc -ne 0 ] && grep -Eq "amd: error: watchdog: rank [01] has spent more than 2 s \(watchdog.seconds\) on step [0-9]*(, waiting in MPI_[A-Za-z_]*( \(MPI_[A-Za-z_]*\))? for rank [01], which is stopped|: this rank, or another it waits for inside a checkpoint or log write, is stopped)" "$S/watchdog.out"
  then pass watchdog_ends_the_job; else fail watchdog_ends_the_job "rc $rc after $((SECONDS - t0)) s: $(grep -v '^step' "$S/watchdog.out" | tail -c 500)"; fi
  for i in $(seq 1 100); do kill -0 "$stopped" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$stopped" 2>/dev/null && kill -CONT "$stopped" && kill -9 "$stopped"
fi

# the whole job suspended (every rank and mpirun stopped, as Slurm's `scontrol suspend` does) for
# longer than watchdog.seconds, then continued: the watchdog's clock restarts at SIGCONT, the job
# finishes (a suspended job is not a hung one)
$MPIRUN -np 2 "$AMD" train $CFG run="$S/suspend" train.steps=60 watchdog.seconds=2 fault.slow_log_ms=20 \
  >"$S/suspend.out" 2>&1 &
pid=$!
if wait_for suspend $pid "$S/suspend/ckpt_00000010.h5"; then
  ranks=$(pgrep -P $pid | tr '\n' ' ')
  kill -STOP $ranks $pid
  sleep 4
  kill -CONT $pid $ranks
  wait $pid
  rc=$?
  if [ $rc -eq 0 ] && ! grep -q "amd: error: watchdog" "$S/suspend.out" && [ -e "$S/suspend/ckpt_00000060.h5" ]; then
    pass watchdog_survives_suspend
  else
    fail watchdog_survives_suspend "rc $rc: $(grep -v '^step' "$S/suspend.out" | tail -c 400)"
  fi
fi

# log.h5 lost: a resume restores it from log.h5.bak (its rows up to the checkpoint stay), never the
# other way round; with log.h5.bak marked incomplete too it is an error; a fresh run refuses a
# folder that holds only log.h5.bak
rm -rf "$S/lostlog" && cp -r "$S/ref1" "$S/lostlog" && rm "$S/lostlog/log.h5" "$S/lostlog/ckpt_00000040.h5"
expect_ok lost_log_resume "$AMD" train $CFG run="$S/lostlog" resume=1
py_check lost_log_restored_from_bak "
import h5py, numpy as np
out = open('$S/lost_log_resume.out').read()
assert 'log: $S/lostlog/log.h5 was missing; restored it from $S/lostlog/log.h5.bak' in out, out[-400:]
for name in ('log.h5', 'log.h5.bak'):
    s = h5py.File('$S/lostlog/' + name, 'r')['train/step'][:]
    assert np.array_equal(s, np.arange(1, 41)), (name, s)
"
same_run lost_log_bit_identical ref1 lostlog
rm "$S/lostlog/log.h5" && touch "$S/lostlog/log.h5.bak.dirty"
expect_error lost_log_bak_incomplete "is missing and its copy '$S/lostlog/log.h5.bak' is incomplete" \
  "$AMD" train $CFG run="$S/lostlog" resume=1 train.steps=50 resume.allow=train.steps
rm -rf "$S/onlybak" && mkdir "$S/onlybak" && cp "$S/ref1/log.h5.bak" "$S/onlybak/"
expect_error fresh_run_refuses_bak "already holds a run ($S/onlybak/log.h5.bak)" "$AMD" train $CFG run="$S/onlybak"

# amd sample out= never replaces a file that is not a samples file: the run's own checkpoint, the
# dataset, a foreign file; an earlier samples file is replaced
cp "$S/ref1/ckpt_00000040.h5" "$S/ckpt_before.h5"
expect_error sample_out_own_checkpoint "exists and is an amd-checkpoint file" \
  "$AMD" sample ckpt="$S/ref1" n=16 out="$S/ref1/ckpt_00000040.h5"
if cmp -s "$S/ckpt_before.h5" "$S/ref1/ckpt_00000040.h5"; then pass sample_out_checkpoint_untouched
else fail sample_out_checkpoint_untouched "the checkpoint changed"; fi
expect_error sample_out_dataset "exists and is an amd-dataset file" "$AMD" sample ckpt="$S/ref1" n=16 out="$S/toy.h5"
echo "notes" >"$S/notes.h5"
expect_error sample_out_foreign "exists and is not an amd file" "$AMD" sample ckpt="$S/ref1" n=16 out="$S/notes.h5"
expect_ok sample_out_twice sh -c "'$AMD' sample ckpt='$S/ref1' n=16 out='$S/s.h5' && '$AMD' sample ckpt='$S/ref1' n=16 out='$S/s.h5'"
expect_error eval_out_checkpoint "exists and is an amd-checkpoint file" "$AMD" eval samples="$S/s.h5" out="$S/ckpt_before.h5"
