#!/usr/bin/env bash
# What an analyst takes out of a run (issue 16, items 10 and 11):
#  - `amd export --csv|--json` of every file kind (a teacher log with a NaN, an infinity and an event
#    message holding a comma, quotes and a newline; a distillation log's /advantage; an eval file; a
#    dataset; a checkpoint's networks and compound layout) read back with Python's csv and json
#    modules (and pandas where installed) equals h5py's values exactly; its errors (missing file,
#    not an amd file, unknown group with the groups listed, both or neither of --csv and --json,
#    CSV of a group of several tables) leave no output file;
#  - `amd info RUN`: the lock holder, the log's tables and rows, the checkpoints, the resume point;
#  - sample.every: a teacher and a student write samples_<step>.png (valid, not blank) every N
#    steps, and their checkpoints and logs are the same bit for bit as without it;
#  - benchmarks/plot_log.py draws every panel of a teacher log and of a distillation log.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
TINY="model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 log.every=5 threads=1 optim.warmup=5"
"$AMD" data toy2d out="$S/toy.h5" n=2000 >/dev/null

# --- sample.every: pictures while training, the same run as without ----------------------------------
expect_ok teacher_plain "$AMD" train data="$S/toy.h5" run="$S/plain" $TINY train.steps=30 ckpt.every=10
expect_ok teacher_pictures "$AMD" train data="$S/toy.h5" run="$S/pics" $TINY train.steps=30 ckpt.every=10 sample.every=10 sample.steps=4
DSMALL="train.prompts=8 amd.K=4 log.every=5 log.advantage_every=5 threads=1 train.steps=10 ckpt.every=5"
expect_ok student_plain "$AMD" distill teacher="$S/plain" run="$S/dplain" $DSMALL
expect_ok student_pictures "$AMD" distill teacher="$S/plain" run="$S/dpics" $DSMALL sample.every=5
py_check sample_pictures_written "
import os, matplotlib.image as mpimg, numpy as np
for run, steps in (('pics', (10, 20, 30)), ('dpics', (5, 10))):
    names = sorted(n for n in os.listdir('$S/' + run) if n.startswith('samples_'))
    assert names == ['samples_%08d.png' % s for s in steps], (run, names)
    for n in names:
        b = open('$S/' + run + '/' + n, 'rb').read()
        assert b[:8] == b'\x89PNG\r\n\x1a\n', n
        img = mpimg.imread('$S/' + run + '/' + n)
        assert img.shape[:2] == (640, 640), img.shape
        assert len(np.unique(img.reshape(-1, img.shape[2]), axis=0)) > 10, (n, 'blank')
for n in os.listdir('$S/plain') + os.listdir('$S/dplain'):
    assert not n.startswith('samples_'), n
"
py_check sample_every_same_run "
import h5py
def same(a, b, where):
    assert set(a) == set(b), where
    for k in a:
        if isinstance(a[k], h5py.Group): same(a[k], b[k], where + '/' + k)
        else: assert a[k][()].tobytes() == b[k][()].tobytes(), (where, k)
for x, y, steps in (('plain', 'pics', (10, 20, 30)), ('dplain', 'dpics', (5, 10))):
    for s in steps:
        same(h5py.File('$S/%s/ckpt_%08d.h5' % (x, s), 'r'), h5py.File('$S/%s/ckpt_%08d.h5' % (y, s), 'r'), x)
    a, b = h5py.File('$S/%s/log.h5' % x, 'r')['train'], h5py.File('$S/%s/log.h5' % y, 'r')['train']
    for k in a:
        if k not in ('time', 'samples_per_s', 'comm_s'): assert a[k][()].tobytes() == b[k][()].tobytes(), (x, k)
"

# --- plot_log.py on both kinds of log --------------------------------------------------------------------
expect_ok plot_teacher_log $PY benchmarks/plot_log.py "$S/plain/log.h5" -o "$S/plot_t" --smooth 3
expect_ok plot_distill_log $PY benchmarks/plot_log.py "$S/dplain/log.h5" -o "$S/plot_d" --smooth 3
py_check plot_panels_not_blank "
import matplotlib.image as mpimg, numpy as np
for name, rows, cols in (('plot_t_losses', 2, 2), ('plot_d_losses', 2, 3), ('plot_d_reward', 1, 2),
                         ('plot_d_forbidden', 1, 2)):
    img = mpimg.imread('$S/' + name + '.png')[:, :, :3]
    h, w = img.shape[0] // rows, img.shape[1] // cols
    for r in range(rows):
        for c in range(cols):
            cell = img[r * h:(r + 1) * h, c * w:(c + 1) * w].reshape(-1, 3)
            assert len(np.unique(cell, axis=0)) > 20, (name, r, c, 'blank panel')
"
expect_error plot_mixed_kinds "plot them apart" $PY benchmarks/plot_log.py "$S/plain/log.h5" "$S/dplain/log.h5" -o "$S/mix"

# --- amd export: round trips -----------------------------------------------------------------------------
"$AMD" sample ckpt="$S/plain" out="$S/samples.h5" n=64 steps=4 >/dev/null
"$AMD" eval samples="$S/samples.h5" out="$S/eval.h5" >/dev/null
# a log with a NaN, an infinity and an event message that needs CSV quoting and JSON escapes
cp "$S/plain/log.h5" "$S/odd_log.h5"
$PY - "$S/odd_log.h5" <<'PYEOF'
import sys, h5py
with h5py.File(sys.argv[1], "a") as f:
    f["train/loss"][3] = float("nan")
    f["train/grad_norm"][4] = float("-inf")
    e = f["events"]
    for k in e:
        e[k].resize((1,))
    e["step"][0] = 7
    e["message"][0] = 'odd, "quoted"\nsecond line \\ tab\t'
    f["train/loss"].attrs["units"] = "1"
    f["train/loss"].attrs["window"] = [3, 4]
    f["train"].attrs["note"] = "a group attribute"
PYEOF
cat >"$S/check_export.py" <<'PYEOF'
# check_export.py H5 csv|json EXPORTED [GROUP]: the export equals h5py's reading of the file.
import csv, json, math, sys
import h5py, numpy as np

h5, fmt, exported = sys.argv[1:4]
group = sys.argv[4] if len(sys.argv) > 4 else "/"
f = h5py.File(h5, "r")


def columns(d, prefix):
    """[(name, values, dtype)] of a dataset, named as amd export names them."""
    a = np.atleast_1d(d[()])
    out = []
    fields = d.dtype.names or [None]
    for m in fields:
        v = a[m] if m else a
        dt = d.dtype[m].base if m else d.dtype
        base = (m if not prefix else prefix + "." + m) if m else d.name.split("/")[-1]
        v = v.reshape(v.shape[0], int(np.prod(v.shape[1:])))
        if v.shape[1] == 1 and not (m and d.dtype[m].shape):
            out.append((base, v[:, 0], dt))
        else:
            out += [("%s_%d" % (base, j), v[:, j], dt) for j in range(v.shape[1])]
    return out


def tables(path):
    """{table path: [(column, values, dtype)]} by amd export's rule: a group's datasets of the
    length most of them share are its table, every other dataset a table of its own."""
    obj = f[path]
    if isinstance(obj, h5py.Dataset):
        return {obj.name: columns(obj, None)}
    out = {}
    ds = [obj[k] for k in obj if isinstance(obj[k], h5py.Dataset)]
    rows = [d.shape[0] if d.ndim else 1 for d in ds]
    best = max(rows, key=rows.count) if rows else None
    common = best if rows and (rows.count(best) > 1 or len(ds) == 1) else None
    mine = [d for d, r in zip(ds, rows) if r == common]
    if mine:
        out[obj.name] = [c for d in mine for c in columns(d, d.name.split("/")[-1] if len(mine) > 1 else None)]
    for d, r in zip(ds, rows):
        if r != common:
            out[d.name] = columns(d, None)
    for k in obj:
        if isinstance(obj[k], h5py.Group):
            out.update(tables(obj[k].name))
    return out


def check(got, want, dt, where):
    if dt.kind == "f":
        x = float(want)
        if math.isnan(x) or (fmt == "json" and math.isinf(x)):
            assert got in ("", None), (where, got, x)
        elif fmt == "json":
            assert (np.float32(got) if dt.itemsize == 4 else float(got)) == want, (where, got, want)
        else:
            y = float(got)  # "inf", "-inf" and digits
            assert (np.float32(y) if dt.itemsize == 4 else y) == want, (where, got, want)
    elif dt.kind in "iu":
        assert int(got) == int(want), (where, got, want)
    else:
        w = want.decode() if isinstance(want, bytes) else str(want)
        assert got == w, (where, got, w)


want = tables(group)
if fmt == "csv":
    rows = list(csv.reader(open(exported, newline="")))
    header, body = rows[0], rows[1:]
    g = group if group in want else next(iter(want))
    cols = want[g]
    assert sorted(header) == sorted(c[0] for c in cols), (header, [c[0] for c in cols])
    n = len(cols[0][1])
    assert len(body) == n, (len(body), n)
    for name, v, dt in cols:
        j = header.index(name)
        for r in range(n):
            check(body[r][j], v[r], dt, (g, name, r))
    try:
        import pandas
    except ImportError:
        pandas = None
    if pandas is not None:
        df = pandas.read_csv(exported, keep_default_na=True)
        for name, v, dt in cols:
            if dt.kind == "f":
                got = df[name].to_numpy(dtype=float)
                ok = (got == v.astype(float)) | (np.isnan(got) & np.isnan(v.astype(float)))
                assert ok.all(), ("pandas", name)
else:
    doc = json.load(open(exported))
    assert doc["format"] == f.attrs["format"], doc["format"]
    def plain(x):  # an h5py attribute as JSON holds it
        if isinstance(x, np.ndarray):
            return [plain(e) for e in x.tolist()]
        if isinstance(x, (list, tuple)):
            return [plain(e) for e in x]
        if isinstance(x, np.generic):
            x = x.item()
        if isinstance(x, bytes):
            return x.decode()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x
    for k, v in f.attrs.items():
        assert plain(doc["attributes"][k]) == plain(v), (k, doc["attributes"][k], v)
    assert sorted(doc["tables"]) == sorted(want), (sorted(doc["tables"]), sorted(want))
    for path, cols in want.items():
        t = doc["tables"][path]
        assert sorted(t["columns"]) == sorted(c[0] for c in cols), (path, t["columns"])
        assert len(t["rows"]) == len(cols[0][1]), path
        for name, v, dt in cols:
            j = t["columns"].index(name)
            for r, row in enumerate(t["rows"]):
                check(row[j], v[r], dt, (path, name, r))
        for name, attrs in t.get("attributes", {}).items():
            obj = f[path] if name == "" or isinstance(f[path], h5py.Dataset) else f[path][name]
            assert plain(attrs) == {k: plain(v) for k, v in obj.attrs.items()}, (path, name, attrs)
    if h5.endswith("odd_log.h5"):
        a = doc["tables"]["/train"]["attributes"]
        assert a["loss"]["units"] == "1" and a["loss"]["window"] == [3, 4], a
        assert a["loss"]["description"] == f["train/loss"].attrs["description"], a
        assert a[""] == {"note": "a group attribute"}, a
PYEOF
# export_check NAME FILE FORMAT [GROUP]: exports to a file and checks it against h5py
export_check() {
  local name=$1 file=$2 fmt=$3 group=${4:-}
  if ! "$AMD" export "$file" --"$fmt" $group >"$S/$name.$fmt" 2>"$S/$name.err"; then
    fail "$name" "exit $?: $(head -c 400 "$S/$name.err")"
    return
  fi
  local msg
  if msg=$($PY "$S/check_export.py" "$file" "$fmt" "$S/$name.$fmt" $group 2>&1); then pass "$name"
  else fail "$name" "$(echo "$msg" | tail -c 1500)"; fi
}
export_check export_log_train_csv "$S/odd_log.h5" csv /train
export_check export_log_events_csv "$S/odd_log.h5" csv /events
export_check export_log_timing_csv "$S/odd_log.h5" csv /timing
export_check export_log_json "$S/odd_log.h5" json
export_check export_advantage_csv "$S/dplain/log.h5" csv /advantage
export_check export_distill_log_json "$S/dplain/log.h5" json
export_check export_eval_csv "$S/eval.h5" csv /eval
export_check export_eval_json "$S/eval.h5" json
export_check export_dataset_csv "$S/toy.h5" csv /
export_check export_dataset_json "$S/toy.h5" json
export_check export_samples_csv "$S/samples.h5" csv /
export_check export_ckpt_net_csv "$S/plain/ckpt_00000030.h5" csv /teacher
export_check export_ckpt_layout_csv "$S/plain/ckpt_00000030.h5" csv /teacher/layout
export_check export_ckpt_json "$S/dplain/ckpt_00000010.h5" json
py_check export_csv_quoting_and_nan "
text = open('$S/export_log_events_csv.csv').read()
assert text == 'step,message\n7,\"odd, \"\"quoted\"\"\nsecond line \\\\ tab\t\"\n', repr(text)
line = open('$S/export_log_train_csv.csv').read().split('\n')[4]
assert line.split(',')[1] == '', line  # the NaN loss of row 4
assert open('$S/export_log_train_csv.csv').read().split('\n')[0].startswith('step,loss,grad_norm,lr'), 'column order'
"
"$AMD" export "$S/plain/log.h5" --csv >"$S/default.csv" 2>/dev/null
"$AMD" export "$S/plain/log.h5" --csv /train out="$S/out_dir/train.csv" 2>/dev/null
"$AMD" info "$S/plain/log.h5" --csv >"$S/info.csv" 2>/dev/null
if [ -s "$S/default.csv" ] && cmp -s "$S/default.csv" "$S/out_dir/train.csv" && cmp -s "$S/default.csv" "$S/info.csv"
then pass export_default_train_and_out
else fail export_default_train_and_out "the log's default CSV is not /train, or out= or info --csv differ from stdout"; fi

# --- amd export: errors, and no file left behind ---------------------------------------------------------
expect_error export_missing_file "does not exist" "$AMD" export "$S/nope.h5" --csv out="$S/e1.csv"
printf 'not hdf5 at all' >"$S/text.h5"
expect_error export_not_hdf5 "not an HDF5 file" "$AMD" export "$S/text.h5" --json out="$S/e2.json"
$PY -c "import h5py; h5py.File('$S/foreign.h5', 'w')['x'] = [1, 2]"
expect_error export_foreign "not an amd file" "$AMD" export "$S/foreign.h5" --csv out="$S/e3.csv"
expect_error export_unknown_group "its groups: /, /events, /memory, /timing, /train" "$AMD" export "$S/plain/log.h5" --csv /nope out="$S/e4.csv"
expect_error export_both_formats "exactly one of --csv and --json (got both)" "$AMD" export "$S/plain/log.h5" --csv --json
expect_error export_no_format "exactly one of --csv and --json (got neither)" "$AMD" export "$S/plain/log.h5"
expect_error export_several_tables "CSV writes one: name one of" "$AMD" export "$S/plain/log.h5" --csv / out="$S/e5.csv"
expect_error export_no_file "no file given" "$AMD" export --csv
expect_error export_bad_option "unknown option '--xml'" "$AMD" export "$S/plain/log.h5" --xml
left=$(ls "$S"/e[1-5].* 2>/dev/null)
if [ -z "$left" ]; then pass export_errors_leave_no_file; else fail export_errors_leave_no_file "$left"; fi

# --- amd info RUN -------------------------------------------------------------------------------------------
expect_ok info_run "$AMD" info "$S/plain"
py_check info_run_summary "
out = open('$SCRATCH/info_run.out').read()
for want in ('$S/plain: run folder', 'not locked', '/train      30 rows, steps 1 to 30', '/timing',
             '3 checkpoints', 'ckpt_00000010.h5  step 10', 'ckpt_00000030.h5  step 30',
             'resume=1 continues from step 30'):
    assert want in out, (want, out)
"
echo "host $(hostname) pid $$ job -" >"$S/dplain/amd.lock"
expect_ok info_run_locked "$AMD" info "$S/dplain"
if grep -q "locked: host $(hostname) pid $$ job -" "$SCRATCH/info_run_locked.out" && grep -q "/advantage" "$SCRATCH/info_run_locked.out"
then pass info_run_lock_holder; else fail info_run_lock_holder "$(cat "$SCRATCH/info_run_locked.out")"; fi
rm -f "$S/dplain/amd.lock"
mkdir -p "$S/no_run"
expect_error info_folder_without_run "holds no run" "$AMD" info "$S/no_run"
