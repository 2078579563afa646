#!/usr/bin/env bash
# The CUDA build's binary (build-cuda/amd, `make CUDA=1`) end to end. Without a GPU (no device listed
# by nvidia-smi): device=cuda stops with exit 2 and "no usable CUDA device: <reason>", device=auto
# says so and trains on the CPU. With a GPU: device=cuda and device=auto train on it, the losses
# follow the CPU run's to float rounding, sampling and a distillation step run on it, and two
# ranks (staged gradient allreduce) give the one-rank losses.
# Without build-cuda/amd it reports itself skipped. tests/scenario_cuda_emu.sh runs it with CUDA_EMU=1
# and CUDA_AMD=build-cuda-emu/amd: the GPU checks, on the CPU emulator's device.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
CUDA_AMD=${CUDA_AMD:-$PWD/build-cuda/amd}
if [ ! -x "$CUDA_AMD" ]; then
  echo "SKIP cuda_scenario: no CUDA build (make CUDA=1 builds build-cuda/amd)"
  exit 0
fi
TINY="model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 train.steps=20 log.every=5 ckpt.every=20 threads=1"
"$CUDA_AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null

if [ -z "${CUDA_EMU:-}" ] && ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  "$CUDA_AMD" train data="$S/toy.h5" run="$S/cuda" $TINY device=cuda >"$S/cuda.out" 2>"$S/cuda.err"
  rc=$?
  if [ "$rc" -eq 2 ] && grep -q "device=cuda: no usable CUDA device: " "$S/cuda.err"; then
    pass device_cuda_without_gpu_exit_2
  else
    fail device_cuda_without_gpu_exit_2 "exit $rc, stderr: $(head -c 400 "$S/cuda.err")"
  fi
  [ ! -e "$S/cuda/log.h5" ] && pass device_cuda_without_gpu_writes_nothing ||
    fail device_cuda_without_gpu_writes_nothing "$S/cuda/log.h5 exists"
  expect_ok device_auto_without_gpu "$CUDA_AMD" train data="$S/toy.h5" run="$S/auto" $TINY device=auto
  if grep -q "no usable CUDA device: .*running on the CPU" "$S/device_auto_without_gpu.out" &&
     grep -q "backend cpu" "$S/device_auto_without_gpu.out"; then
    pass device_auto_says_cpu
  else
    fail device_auto_says_cpu "$(head -c 600 "$S/device_auto_without_gpu.out")"
  fi
  exit 0
fi

expect_ok train_cpu "$CUDA_AMD" train data="$S/toy.h5" run="$S/cpu" $TINY device=cpu
expect_ok train_cuda "$CUDA_AMD" train data="$S/toy.h5" run="$S/cuda" $TINY device=cuda
grep -q "backend cuda" "$S/train_cuda.out" && pass train_cuda_says_cuda || fail train_cuda_says_cuda "$(head -c 600 "$S/train_cuda.out")"
expect_ok train_auto "$CUDA_AMD" train data="$S/toy.h5" run="$S/auto" $TINY device=auto
grep -q "backend cuda" "$S/train_auto.out" && pass auto_picks_cuda || fail auto_picks_cuda "$(head -c 600 "$S/train_auto.out")"
py_check cuda_losses_follow_cpu "
import h5py, numpy as np
a = h5py.File('$S/cpu/log.h5', 'r')['train']; b = h5py.File('$S/cuda/log.h5', 'r')['train']
for k in ('loss', 'grad_norm'):
    x, y = a[k][:], b[k][:]
    assert len(x) == len(y) == 20, (k, len(x), len(y))
    assert np.allclose(y, x, rtol=1e-3, atol=1e-6), (k, np.abs(y - x).max())
"
expect_ok train_cuda_2ranks $MPIRUN -np 2 "$CUDA_AMD" train data="$S/toy.h5" run="$S/cuda2" $TINY device=cuda
py_check cuda_2ranks_match_1rank "
import h5py, numpy as np
a = h5py.File('$S/cuda/log.h5', 'r')['train']['loss'][:]; b = h5py.File('$S/cuda2/log.h5', 'r')['train']['loss'][:]
assert np.allclose(a, b, rtol=1e-4, atol=1e-7), np.abs(a - b).max()
"
expect_ok sample_cuda "$CUDA_AMD" sample ckpt="$S/cuda" out="$S/s.h5" steps=10 n=512 device=cuda
expect_ok distill_cuda "$CUDA_AMD" distill teacher="$S/cuda" run="$S/amd" method=amd train.steps=3 \
  train.prompts=8 amd.K=4 log.every=1 device=cuda threads=1
