#!/usr/bin/env bash
# The include graph is layered (tests/check_layers.py, docs/DESIGN.md section 1): io/ includes
# nothing above core/common.h, mpi/ nothing above core/, no cycle between modules or folders. The
# checker is also run on a small tree that breaks each rule, and must name every break.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
$PY tests/check_layers.py .
# a tree that breaks the rules: io/ reaching into core/ops.h, src/ and mpi/; the cycle
# io/ckpt -> mpi/zero -> src/timing -> io/ckpt between modules and between folders
mkdir -p "$S/bad/core" "$S/bad/io" "$S/bad/mpi" "$S/bad/src" "$S/bad/cuda"
echo '#include "zero.h"' >"$S/bad/io/ckpt.c"
echo '#include "runctl.h"' >"$S/bad/io/trainlog.c"
echo '#include "ops.h"' >"$S/bad/io/png.c"
printf '#include "ops.h"\n#include "timing.h"\n' >"$S/bad/mpi/zero.c"
touch "$S/bad/mpi/zero.h" "$S/bad/core/ops.h" "$S/bad/io/trainlog.h" "$S/bad/io/ckpt.h"
touch "$S/bad/src/runctl.h"
echo '#include "ckpt.h"' >"$S/bad/src/timing.h"
out=$($PY tests/check_layers.py "$S/bad")
rc=$?
for needle in "FAIL layers_io: io/ckpt.c includes mpi/zero.h; io/png.c includes core/ops.h; io/trainlog.c includes src/runctl.h" \
  "FAIL layers_mpi: mpi/zero.c includes src/timing.h" "FAIL no_cycle_between_modules: io/ckpt -> mpi/zero -> src/timing -> io/ckpt" \
  "FAIL no_cycle_between_folders"; do
  if [ "$rc" -ne 0 ] && grep -qF -- "$needle" <<<"$out"; then pass "check_layers_catches: ${needle:5:40}"
  else fail check_layers_catches "exit $rc, no '$needle' in: $(tr '\n' '|' <<<"$out")"; fi
done
