#!/usr/bin/env bash
# The CUDA backend's own kernels (cuda/*.cu, unmodified but for the launch syntax) on the CPU
# emulator of tests/cuda_emu (`make CUDA_EMU=1`, build-cuda-emu/), so machines without a GPU, CI
# included, execute them. First the emulator's own checks (emu_selftest: the barrier, shuffle,
# index and cuBLAS semantics the kernels rely on, and that each fault it claims to catch stops the
# process with a message naming it), then the device selection without a device
# (CUDA_EMU_DEVICES=0), one device per rank, no allocation per step, staging, then
# tests/scenario_cuda.sh, scenario_runctl.sh, scenario_zero.sh and scenario_images.sh end to end on
# the emulated device. test_cuda
# itself runs as cuda-emu:test_cuda in tests/run.sh. None of this stands in for a GPU run: the
# emulator uses the host's libm, sees no races between threads, and says nothing about speed.
source "$(dirname "$0")/lib.sh"
EMU=$PWD/build-cuda-emu
if [ ! -x "$EMU/amd" ] || [ ! -x "$EMU/tests/emu_selftest" ]; then
  echo "SKIP cuda_emu: no emulator build (make CUDA_EMU=1 builds build-cuda-emu/)"
  exit 0
fi

"$EMU/tests/emu_selftest" ok || fail emu_selftest_ok "exit $?"
expect_error emu_catches_out_of_bounds "out-of-bounds device access 0 bytes past the end of a 400-byte allocation (kernel write_kernel" \
  "$EMU/tests/emu_selftest" oob
expect_error emu_catches_host_access \
  "host code touched device memory (byte 12 of a 400-byte cudaMalloc allocation): a device pointer dereferenced on the host (in host code)" \
  "$EMU/tests/emu_selftest" host_access
expect_error emu_catches_deadlock "deadlock: 64 live threads, 32 of them at __syncthreads" "$EMU/tests/emu_selftest" deadlock
expect_error emu_catches_shuffle_after_exit "full-mask shuffle in warp 0 after 1 of its lanes exited" \
  "$EMU/tests/emu_selftest" shfl_exited
expect_error emu_catches_use_after_free "device memory used after its cudaFree" "$EMU/tests/emu_selftest" use_after_free
expect_error emu_catches_gemm_past_allocation "cuBLAS gemm: matrix 0 of the batch is not inside one device allocation" \
  "$EMU/tests/emu_selftest" gemm_ld

S=$SCRATCH
if CUDA_EMU_DEVICES=0 "$EMU/tests/test_cuda" >"$S/nodev.out" 2>&1 && grep -q "^PASS test_select_without_device" "$S/nodev.out" &&
   grep -q "no usable CUDA device: no CUDA-capable device is detected" "$S/nodev.out"; then
  pass emu_without_device_selection
else
  fail emu_without_device_selection "$(tail -c 600 "$S/nodev.out")"
fi

# Issue 6's "no allocation in the training step": the emulator counts cudaMalloc calls
# (CUDA_EMU_STATS); a run with twice the steps must make exactly as many, and twice the step work.
"$EMU/amd" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
TINY="model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 log.every=5 threads=1 device=cuda"
for n in 10 20; do
  CUDA_EMU_STATS="$S/train$n.stats" "$EMU/amd" train data="$S/toy.h5" run="$S/t$n" $TINY train.steps=$n ckpt.every=$n \
    >"$S/train$n.out" 2>&1 || fail "emu_train_${n}_steps" "$(tail -c 400 "$S/train$n.out")"
done
for m in dmd2 amd; do
  for n in 2 4; do
    CUDA_EMU_STATS="$S/$m$n.stats" "$EMU/amd" distill teacher="$S/t20" run="$S/$m$n" method=$m train.steps=$n \
      train.prompts=8 amd.K=4 log.every=1 device=cuda threads=1 >"$S/$m$n.out" 2>&1 ||
      fail "emu_distill_${m}_$n" "$(tail -c 400 "$S/$m$n.out")"
  done
done
py_check emu_no_device_allocation_per_step "
def stats(p):
    return {k: int(v) for k, v in (l.split() for l in open(p))}
for a, b, what in (('train10', 'train20', 'train'), ('dmd22', 'dmd24', 'distill dmd2'), ('amd2', 'amd4', 'distill amd')):
    x, y = stats('$S/' + a + '.stats'), stats('$S/' + b + '.stats')
    assert x['cudaMalloc'] > 0 and x['cudaMalloc'] == y['cudaMalloc'], (what, 'cudaMalloc', x['cudaMalloc'], y['cudaMalloc'])
    assert y['launch'] > 1.8 * x['launch'] and y['gemm'] > 1.8 * x['gemm'], (what, 'work did not grow', x, y)
    print(what, 'cudaMalloc', x['cudaMalloc'], 'launches', x['launch'], '->', y['launch'])
"
# ... and at exit nothing is held: every device and pinned allocation, stream, cuBLAS handle and
# CUDA graph that the runs made is given back (the emulator counts what is live after the exit handlers)
py_check emu_nothing_held_at_exit "
def stats(p):
    return {k: int(v) for k, v in (l.split() for l in open(p))}
for r in ('train10', 'dmd22', 'amd4'):
    x = stats('$S/' + r + '.stats')
    live = {k: v for k, v in x.items() if k.startswith('live_')}
    assert len(live) == 5 and not any(live.values()), (r, live)
print('nothing held at exit')
"
# ... and the host waits for the device only where it must read (docs/cuda.md, "What the host reads"):
# once per teacher step (losses and gradient norm together), once per fake update (its losses and
# the fake teacher's and discriminator's gradient norms together; amd: and before it the rewards
# that weight it), twice per generator update (the rewards; then statistics and gradient norm).
# dmd2 and amd run 5 fake updates per step.
py_check emu_host_waits_per_step "
def stats(p):
    return {k: int(v) for k, v in (l.split() for l in open(p))}
for a, b, n, most, what in (('train10', 'train20', 10, 1, 'train'), ('dmd22', 'dmd24', 2, 5 * 1 + 2, 'distill dmd2'),
                            ('amd2', 'amd4', 2, 5 * 2 + 2, 'distill amd')):
    x, y = stats('$S/' + a + '.stats'), stats('$S/' + b + '.stats')
    per = (y['host_wait'] - x['host_wait']) / n
    assert 0 < per <= most, (what, 'host waits per step', per, 'expected at most', most)
    print(what, 'host waits per step', per, '(at most', most, ')')
"

# One device per rank, (node-local rank) mod (device count): 3 ranks on 2 emulated devices use
# devices 0, 1, 0; on 1 device all use device 0.
for nd in 2 1; do
  CUDA_EMU_DEVICES=$nd CUDA_EMU_STATS="$S/ranks$nd.%r.stats" $MPIRUN -x CUDA_EMU_DEVICES -x CUDA_EMU_STATS -np 3 \
    "$EMU/amd" train data="$S/toy.h5" run="$S/ranks$nd" $TINY train.steps=2 ckpt.every=2 >"$S/ranks$nd.out" 2>&1 ||
    fail "emu_3_ranks_on_${nd}_devices" "$(tail -c 400 "$S/ranks$nd.out")"
done
py_check emu_device_per_rank "
for nd, want in ((2, [0, 1, 0]), (1, [0, 0, 0])):
    got = [int(open('$S/ranks%d.%d.stats' % (nd, r)).readline().split()[1]) for r in range(3)]
    assert got == want, ('devices', nd, 'ranks got', got, 'want', want)
"

# Host-to-device copies through a 4 KiB staging buffer (a host wait every few copies) train exactly
# as through the default 8 MiB one; a staging size out of range is refused by name.
AMD_CUDA_STAGING=4 "$EMU/amd" train data="$S/toy.h5" run="$S/t20s" $TINY train.steps=20 ckpt.every=20 \
  >"$S/t20s.out" 2>&1 || fail emu_small_staging_trains "$(tail -c 400 "$S/t20s.out")"
py_check emu_small_staging_same_losses "
import h5py, numpy as np
a = h5py.File('$S/t20/log.h5', 'r')['train']; b = h5py.File('$S/t20s/log.h5', 'r')['train']
for k in ('loss', 'grad_norm'):
    assert len(a[k]) == 20 and np.array_equal(a[k][:], b[k][:]), (k, a[k][:], b[k][:])
"
AMD_CUDA_STAGING=1 expect_error emu_staging_out_of_range "AMD_CUDA_STAGING=1: expected the staging size in KiB, 4 to 4194304" \
  "$EMU/amd" train data="$S/toy.h5" run="$S/bad" $TINY train.steps=2

# precision=bf16 (cuda/gemm.cu: bf16 GEMM operands, float32 accumulation, everything else float32)
# through the emulator's cublasGemmEx: the toy teacher's loss falls as the fp32 run's does, by a
# different path (some step differs); a dmd2 distillation runs in bf16 to finite losses; a value
# other than fp32, tf32 or bf16 is refused naming the key, and the CPU backend refuses tf32.
for p in fp32 bf16; do
  "$EMU/amd" train data="$S/toy.h5" run="$S/prec_$p" $TINY train.steps=100 ckpt.every=100 precision=$p \
    >"$S/prec_$p.out" 2>&1 || fail "emu_train_precision_$p" "$(tail -c 400 "$S/prec_$p.out")"
done
"$EMU/amd" distill teacher="$S/t20" run="$S/dmd2_bf16" method=dmd2 train.steps=2 train.prompts=8 log.every=1 \
  device=cuda threads=1 precision=bf16 >"$S/dmd2_bf16.out" 2>&1 || fail emu_distill_bf16 "$(tail -c 400 "$S/dmd2_bf16.out")"
py_check emu_bf16_training_loss_falls_like_fp32 "
import h5py, numpy as np
a = h5py.File('$S/prec_fp32/log.h5', 'r')['train']['loss'][:]; b = h5py.File('$S/prec_bf16/log.h5', 'r')['train']['loss'][:]
assert len(a) == len(b) == 100, (len(a), len(b))
for name, x in (('fp32', a), ('bf16', b)):
    assert x[-20:].mean() < 0.95 * x[:10].mean(), (name, 'loss did not fall', x[:10].mean(), x[-20:].mean())
assert abs(b[-20:].mean() - a[-20:].mean()) < 0.02 * a[-20:].mean(), ('bf16 ends elsewhere', a[-20:].mean(), b[-20:].mean())
assert not np.array_equal(a, b), 'bf16 losses equal fp32 bit for bit: the GEMMs did not round'
assert 'precision=bf16 GEMMs' in open('$S/prec_bf16.out').read()
"
py_check emu_bf16_distillation_finite "
import h5py, numpy as np
f = h5py.File('$S/dmd2_bf16/log.h5', 'r')
assert f.attrs['precision'] in (b'bf16', 'bf16'), f.attrs['precision']
for k in f['train'].keys():
    v = f['train'][k][:]
    assert v.dtype.kind != 'f' or np.all(np.isfinite(v)), (k, v)
"
expect_error emu_precision_bad_value "config key 'precision' = 'fp16' (command line): not one of fp32|tf32|bf16" \
  "$EMU/amd" train data="$S/toy.h5" run="$S/bad" $TINY train.steps=2 precision=fp16
expect_error emu_precision_tf32_on_cpu "precision=tf32: the cpu backend has no tf32 products" \
  "$EMU/amd" train data="$S/toy.h5" run="$S/bad" $TINY train.steps=2 precision=tf32 device=cpu

# cuda.graphs=1 (cuda/graph.cu): the flow loss's device part (teacher steps, fake updates) and
# the real teacher's evaluation are captured once and replayed; the logs equal the eager runs'
# bit for bit, far fewer launches are issued one by one, as many buffers are allocated, and the
# graphs are given back at exit.
for g in 0 1; do
  CUDA_EMU_STATS="$S/graphs$g.stats" "$EMU/amd" train data="$S/toy.h5" run="$S/graphs$g" $TINY train.steps=20 \
    ckpt.every=20 cuda.graphs=$g >"$S/graphs$g.out" 2>&1 || fail "emu_train_graphs_$g" "$(tail -c 400 "$S/graphs$g.out")"
  CUDA_EMU_STATS="$S/dgraphs$g.stats" "$EMU/amd" distill teacher="$S/t20" run="$S/dgraphs$g" method=amd train.steps=4 \
    train.prompts=8 amd.K=4 log.every=1 device=cuda threads=1 cuda.graphs=$g >"$S/dgraphs$g.out" 2>&1 ||
    fail "emu_distill_graphs_$g" "$(tail -c 400 "$S/dgraphs$g.out")"
done
py_check emu_graphs_replay_bit_identical "
import h5py, numpy as np
def stats(p):
    return {k: int(v) for k, v in (l.split() for l in open(p))}
for run, steps, launches in (('graphs', 20, 19), ('dgraphs', 4, None)):
    a = h5py.File('$S/' + run + '0/log.h5', 'r')['train']; b = h5py.File('$S/' + run + '1/log.h5', 'r')['train']
    for k in a.keys():
        if k in ('time', 'samples_per_s', 'comm_s'):
            continue
        assert len(a[k]) == steps and np.array_equal(a[k][:], b[k][:]), (run, k, a[k][:], b[k][:])
    x, y = stats('$S/' + run + '0.stats'), stats('$S/' + run + '1.stats')
    assert x['graph_launch'] == 0 and y['graph_launch'] > 0, (run, x['graph_launch'], y['graph_launch'])
    assert launches is None or y['graph_launch'] == launches, (run, y['graph_launch'])
    assert y['launch'] < 0.85 * x['launch'] and y['cudaMalloc'] == x['cudaMalloc'], (run, x, y)
    assert y['live_graphs'] == 0, (run, 'graphs held at exit', y['live_graphs'])
"

# benchmarks/gpu_speed.sh's CPU side (DRY=1: tiny sizes, amd on the emulated device, PyTorch on the
# CPU): every run of the GPU table starts, yields a time, and lands in the table with its ratios
# (torch.compile rows need PyTorch 2: n/a with torch 1.13).
if [ -x "$EMU/benchmarks/dit_speed" ]; then
  DRY=1 OUT="$S/gpu_speed" bash "$(dirname "$0")/../benchmarks/gpu_speed.sh" >"$S/gpu_speed.out" 2>&1 ||
    fail emu_gpu_speed_dry_run "$(tail -c 400 "$S/gpu_speed.out")"
  py_check emu_gpu_speed_dry_table "
rows = [l.split() for l in open('$S/gpu_speed/rows.txt')]
want = [(w, 'amd-' + p + g) for w in ('teacher', 'dmd2', 'amd') for p in ('fp32', 'tf32', 'bf16') for g in ('', '+graphs')]
want += [(w, 'torch-' + p) for w in ('teacher', 'dmd2', 'amd') for p in ('fp32', 'bf16', 'bf16+compile')]
got = {(r[1], r[2]): r[3] for r in rows}
assert sorted(got) == sorted(want), sorted(set(got) ^ set(want))
for k, ms in got.items():
    assert ms == 'n/a' if k[1].endswith('+compile') else float(ms) > 0, (k, ms)
table = open('$S/gpu_speed/table.md').read()
assert table.count('| amd-') == 18 and '| x PyTorch bf16 autocast |' in table, table
"
else
  echo "SKIP emu_gpu_speed_dry_run: no build-cuda-emu/benchmarks/dit_speed (make CUDA_EMU=1 build-cuda-emu/benchmarks/dit_speed)"
fi

# scenario_cuda.sh prints its own PASS/FAIL lines; its checks are the GPU ones, on the emulated device
CUDA_EMU=1 CUDA_AMD="$EMU/amd" bash "$(dirname "$0")/scenario_cuda.sh" "$S/scenario"

# Run control, ZeRO and the image pipeline on the emulated device (device=auto picks it in every
# run): SIGUSR1/SIGTERM checkpoints and bit-identical resumes, kill -9 inside checkpoint and log
# writes, the divergence guard's rollback; ZeRO-1/2 over 1, 2 and 4 ranks bit-identical to zero=0;
# the DiT teacher, reward and evaluator classifiers, every distillation method on the DiT,
# sampling, PNG grids, image metrics; the held-out evaluation while training (eval.every) equal to
# amd sample + amd eval. Each script's checks are passed on, renamed NAME_on_emu_*.
for sc in runctl zero images eval; do
  AMD="$EMU/amd" bash "$(dirname "$0")/scenario_$sc.sh" "$S/$sc" >"$S/$sc.log" 2>&1
  rc=$?
  sed "s/^\(PASS\|FAIL\) /\1 ${sc}_on_emu_/" "$S/$sc.log"
  grep -q '^SKIP' "$S/$sc.log" && continue
  [ "$rc" -eq 0 ] || fail "${sc}_on_emu_exit" "scenario_$sc.sh exited $rc: $(tail -c 300 "$S/$sc.log")"
  n=$(grep -l "backend cuda" "$S/$sc"/*.out 2>/dev/null | wc -l)
  [ "$n" -ge 10 ] && pass "${sc}_ran_on_the_emulated_device" || fail "${sc}_ran_on_the_emulated_device" "$n runs said so"
done
