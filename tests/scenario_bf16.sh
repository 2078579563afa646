#!/usr/bin/env bash
# precision=bf16 on the CPU backend (src/gemm_bf16.h: bf16 GEMM operands, float32 sums; AMX tiles
# where the processor has them, AMD_CPU_AMX=0 or no AMX: the operands rounded and OpenBLAS's sgemm):
# a toy teacher trains in bf16 both ways with a loss that falls as the fp32 run's does, by another
# path (some step differs, and the two ways differ from each other where AMX runs); the log
# records the precision and the way (cpu.bf16); a dmd2 distillation and a sample run in bf16;
# tf32 is refused on the CPU naming the backend; a resume may not change the precision; two ranks
# (ZeRO-1) train in bf16.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
TINY="model.width=32 model.depth=2 model.temb_dim=16 train.batch=64 log.every=5 threads=2 device=cpu"
for p in fp32 bf16; do
  expect_ok "bf16_train_$p" "$AMD" train data="$S/toy.h5" run="$S/$p" $TINY train.steps=150 ckpt.every=150 precision=$p
done
AMD_CPU_AMX=0 expect_ok bf16_train_round_way "$AMD" train data="$S/toy.h5" run="$S/round" $TINY train.steps=150 \
  ckpt.every=150 precision=bf16
py_check bf16_loss_falls_like_fp32 "
import h5py, numpy as np
a = h5py.File('$S/fp32/log.h5', 'r')['train']['loss'][:]
for run in ('bf16', 'round'):
    b = h5py.File('$S/%s/log.h5' % run, 'r')['train']['loss'][:]
    assert len(a) == len(b) == 150, (run, len(a), len(b))
    assert b[-30:].mean() < 0.9 * b[:10].mean(), (run, 'loss did not fall', b[:10].mean(), b[-30:].mean())
    assert abs(b[-30:].mean() - a[-30:].mean()) < 0.03 * a[-30:].mean(), (run, 'ends elsewhere', a[-30:].mean(), b[-30:].mean())
    assert not np.array_equal(a, b), (run, 'bf16 losses equal fp32 bit for bit: the GEMMs did not round')
"
py_check bf16_log_records_precision_and_way "
import h5py
way = 'amx' if 'AMX tiles' in open('$S/bf16_train_bf16.out').read() else 'round'
assert 'precision=bf16 GEMMs' in open('$S/bf16_train_bf16.out').read()
assert 'operands rounded to bf16' in open('$S/bf16_train_round_way.out').read()
for run, want in (('bf16', way), ('round', 'round')):
    at = h5py.File('$S/%s/log.h5' % run, 'r').attrs
    get = lambda k: at[k].decode() if isinstance(at[k], bytes) else at[k]
    assert get('precision') == 'bf16' and get('cpu.bf16') == want, (run, get('precision'), get('cpu.bf16'))
at = h5py.File('$S/fp32/log.h5', 'r').attrs
assert 'cpu.bf16' not in at, 'an fp32 run records a bf16 way'
"
expect_ok bf16_distill "$AMD" distill teacher="$S/bf16" run="$S/dmd2" method=dmd2 train.steps=3 train.prompts=8 \
  log.every=1 threads=2 precision=bf16
py_check bf16_distill_finite "
import h5py, numpy as np
f = h5py.File('$S/dmd2/log.h5', 'r')
for k in f['train'].keys():
    v = f['train'][k][:]
    assert v.dtype.kind != 'f' or np.all(np.isfinite(v)), (k, v)
"
expect_ok bf16_sample "$AMD" sample ckpt="$S/bf16" out="$S/s.h5" steps=4 n=256 precision=bf16
expect_error bf16_tf32_refused_on_cpu "precision=tf32: the cpu backend has no tf32 products" \
  "$AMD" train data="$S/toy.h5" run="$S/bad" $TINY train.steps=2 precision=tf32
expect_error bf16_resume_may_not_change_precision "precision: fp32 -> bf16" \
  "$AMD" train data="$S/toy.h5" run="$S/fp32" resume=1 $TINY train.steps=160 ckpt.every=150 precision=bf16
# two ranks (ZeRO-1) in bf16: the ranks' products are local, the run ends with finite losses
expect_ok bf16_two_ranks $MPIRUN -np 2 "$AMD" train data="$S/toy.h5" run="$S/mpi" model.width=32 model.depth=2 \
  model.temb_dim=16 train.batch=64 log.every=5 threads=1 device=cpu zero=1 train.steps=20 ckpt.every=20 precision=bf16
py_check bf16_two_ranks_finite "
import h5py, numpy as np
f = h5py.File('$S/mpi/log.h5', 'r')
assert f.attrs['ranks'] == 2 and f.attrs['precision'] in ('bf16', b'bf16'), dict(f.attrs)
v = f['train']['loss'][:]
assert len(v) == 20 and np.all(np.isfinite(v)), v
"
