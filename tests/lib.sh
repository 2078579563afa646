# lib.sh: helpers for the scenario scripts. Each check prints "PASS name" or "FAIL name: why".
# Sourced with the scratch folder as $1; AMD is the binary under test.
set -u
AMD=${AMD:-$PWD/amd}
PY=${PY:-/usr/bin/python3}
SCRATCH=$1
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
MPIRUN=${MPIRUN:-"mpirun --oversubscribe --mca btl self,vader"}

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# expect_error NAME NEEDLE COMMAND...: the command must exit non-zero and print NEEDLE on stderr.
expect_error() {
  local name=$1 needle=$2; shift 2
  local err="$SCRATCH/$name.err"
  "$@" >"$SCRATCH/$name.out" 2>"$err"
  local rc=$?
  if [ "$rc" -eq 0 ]; then fail "$name" "exited 0, expected an error naming '$needle'"; return; fi
  if ! grep -qF -- "$needle" "$err"; then fail "$name" "exit $rc but stderr lacks '$needle': $(head -c 400 "$err")"; return; fi
  pass "$name"
}

# expect_ok NAME COMMAND...: the command must exit 0.
expect_ok() {
  local name=$1; shift
  if "$@" >"$SCRATCH/$name.out" 2>&1; then pass "$name"; else fail "$name" "exit $?: $(tail -c 600 "$SCRATCH/$name.out")"; fi
}

# swap_caption_tokens IN OUT: a copy of the captioned dataset IN with every caption's first two tokens
# swapped (the same canvases under other captions: a test that the captions reach a network).
swap_caption_tokens() {
  $PY -c "
import h5py, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])
f = h5py.File(sys.argv[2], 'r+')
t = f['captions/tokens'][:]
t[:, [0, 1]] = t[:, [1, 0]]
f['captions/tokens'][...] = t
" "$1" "$2"
}

# py_check NAME SCRIPT: runs a Python snippet (h5py, numpy); its exit status decides; it prints why.
py_check() {
  local name=$1 script=$2 msg
  if msg=$($PY -c "$script" 2>&1); then pass "$name"; else fail "$name" "$msg"; fi
}
