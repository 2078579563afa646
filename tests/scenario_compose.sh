#!/usr/bin/env bash
# amd data compose end to end (docs/DESIGN.md section 13), on small splits:
#  - the files at 1, 2 and 3 OpenMP threads are the same, value for value; another seed differs;
#  - every category appears in both splits; each caption's items match its layout (one item, two,
#    the count it says, the relation it says); tokens decode to the text through the stored vocabulary;
#  - held-out pairs never appear in the train split and do in the test split, flagged;
#  - each item's cell holds its source image's pixels bit for bit (read here from the IDX files),
#    every empty cell is background; /labels is the first named item's class;
#  - every dataset carries units and a description, the root the provenance; the png= preview;
#  - amd info checks a file against the grammar, and refuses damaged ones (a token past the
#    vocabulary, a layout that breaks its caption, a wrong held-out flag) naming the canvas;
#  - bad inputs (missing IDX files, bad n, unknown category or key, an unknown noun or every pair held
#    out, one file for both splits) are clear errors that write nothing.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ]; then echo "SKIP compose: $FM missing (jobs/setup.sh installs it)"; exit 0; fi
C="n_train=600 n_test=300 seed=7 holdout=coat+sneaker,dress+sandal"
for t in 1 2 3; do
  expect_ok compose_threads_$t "$AMD" data compose $C threads=$t out_train="$S/t$t/train.h5" out_test="$S/t$t/test.h5" \
    png="$S/t$t/preview.png" png.n=12
done
expect_ok compose_other_seed "$AMD" data compose $C seed=8 out_train="$S/s8/train.h5" out_test="$S/s8/test.h5"
py_check same_at_any_thread_count "
import h5py, numpy as np
def walk(f):
    out = {}
    f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out
for split in ('train', 'test'):
    a = walk(h5py.File('$S/t1/' + split + '.h5', 'r'))
    assert len(a) == 10, sorted(a)
    for t in (2, 3):
        f = h5py.File('$S/t%d/%s.h5' % (t, split), 'r')
        assert f.attrs['threads'] == t, f.attrs['threads']
        b = walk(f)
        assert sorted(a) == sorted(b)
        for k in a: assert np.array_equal(a[k], b[k]), (split, t, k)
    c = walk(h5py.File('$S/s8/' + split + '.h5', 'r'))
    assert not np.array_equal(a['x'], c['x']) and not np.array_equal(a['captions/text'], c['captions/text'])
"
py_check captions_and_layouts "
import h5py, numpy as np
nouns = 'tshirt trouser pullover dress coat sandal shirt sneaker bag boot'.split()
plural = [n + ('es' if n == 'dress' else 's') for n in nouns]
numbers = {'two': 2, 'three': 3, 'four': 4}
held = {frozenset((4, 7)), frozenset((3, 5))}
for split, n in (('train', 600), ('test', 300)):
    f = h5py.File('$S/t1/' + split + '.h5', 'r')
    g, l = f['captions'], f['layout']
    assert f['x'].shape == (n, 1, 56, 56), f['x'].shape
    cats = g.attrs['categories'].split(',')
    assert cats == ['single', 'two', 'counting', 'position'], cats
    assert g.attrs['held_out_pairs'] == 'dress+sandal,coat+sneaker' and g.attrs['split'] == split
    vocab = [w.decode() for w in g['vocab'][:]]
    assert len(vocab) == 34 and vocab[:2] == ['<pad>', 'a'], vocab
    text = [t.decode() for t in g['text'][:]]
    tok, cat, ho = g['tokens'][:], g['category'][:], g['held_out'][:]
    cls, cell, src = l['class'][:], l['cell'][:], l['source'][:]
    assert tok.shape == (n, 8) and cls.shape == (n, 4)
    counts = np.bincount(cat, minlength=4)
    assert (counts > n // 8).all(), (split, counts)  # equal weights: each near n / 4
    assert (f['labels'][:] == cls[:, 0]).all()
    for i in range(n):
        words = [vocab[t] for t in tok[i] if t != 0]
        assert ' '.join(words) == text[i], (i, words, text[i])
        k = int((cls[i] >= 0).sum())
        assert (cls[i, :k] >= 0).all() and (cls[i, k:] == -1).all() and (cell[i, k:] == -1).all() and (src[i, k:] == -1).all()
        assert len(set(cell[i, :k])) == k, (i, cell[i])
        w = text[i].split()
        c = cats[cat[i]]
        if c == 'single':
            assert k == 1 and w == ['a', nouns[cls[i, 0]]], (i, text[i], cls[i])
        elif c == 'counting':
            assert k == numbers[w[0]] and w[1] == plural[cls[i, 0]] and (cls[i, :k] == cls[i, 0]).all(), (i, text[i], cls[i])
        else:
            a, b = nouns.index(w[1]), nouns.index(w[-1])
            assert k == 2 and (cls[i, 0], cls[i, 1]) == (a, b) and a != b, (i, text[i], cls[i])
            assert ho[i] == (frozenset((a, b)) in held), (i, text[i], ho[i])
            (ra, ca), (rb, cb) = divmod(cell[i, 0], 2), divmod(cell[i, 1], 2)
            rel = ' '.join(w[2:-2])
            if c == 'two': assert rel == 'and', text[i]
            else: assert {'to the left of': ca < cb and ra == rb, 'to the right of': ca > cb and ra == rb,
                          'above': ra < rb and ca == cb, 'below': ra > rb and ca == cb}[rel], (i, text[i], cell[i])
        if c in ('single', 'counting'): assert ho[i] == 0
    if split == 'train':
        assert ho.sum() == 0, 'a held-out pair in the train split'
    else:
        pairs = [i for i in range(n) if cats[cat[i]] in ('two', 'position')]
        share = ho[pairs].mean()
        assert 0.3 < share < 0.7, ('test_holdout = 0.5 of the pair captions', share)
        both = set(cats[cat[i]] for i in pairs if ho[i])
        assert both == {'two', 'position'}, both
"
py_check pixels_from_the_idx_files "
import gzip, h5py, numpy as np
def idx(path, header):
    b = gzip.open(path).read()
    return np.frombuffer(b, np.uint8, offset=header)
for split, prefix in (('train', 'train'), ('test', 't10k')):
    px = idx('$FM/%s-images-idx3-ubyte.gz' % prefix, 16).reshape(-1, 28, 28)
    lab = idx('$FM/%s-labels-idx1-ubyte.gz' % prefix, 8)
    f = h5py.File('$S/t1/' + split + '.h5', 'r')
    x, cls, cell, src = f['x'][:, 0], f['layout/class'][:], f['layout/cell'][:], f['layout/source'][:]
    assert x.dtype == np.float32
    for i in range(len(x)):
        empty = set(range(4))
        for k in range(4):
            if cls[i, k] < 0: break
            r, c = divmod(cell[i, k], 2)
            assert lab[src[i, k]] == cls[i, k], (i, k, 'the source image is of another class')
            want = px[src[i, k]].astype(np.float32) / np.float32(127.5) - np.float32(1)
            assert np.array_equal(x[i, 28 * r:28 * r + 28, 28 * c:28 * c + 28], want), (split, i, k)
            empty.discard(cell[i, k])
        for e in empty:
            r, c = divmod(e, 2)
            assert (x[i, 28 * r:28 * r + 28, 28 * c:28 * c + 28] == -1).all(), (split, i, 'empty cell', e)
"
py_check file_explains_itself "
import h5py, struct
f = h5py.File('$S/t2/train.h5', 'r')
assert f.attrs['format'] == 'amd-dataset' and f.attrs['source'] == 'fashion-mnist compose train'
for k in ('commit', 'host', 'ranks', 'threads', 'backend', 'input.dir', 'config'): assert k in f.attrs, k
assert 'holdout = coat+sneaker,dress+sandal' in f.attrs['config']
def check(name, obj):
    if isinstance(obj, h5py.Dataset): assert 'units' in obj.attrs and 'description' in obj.attrs, name
f.visititems(check)
png = open('$S/t2/preview.png', 'rb').read()
assert png[:8] == b'\x89PNG\r\n\x1a\n'
assert struct.unpack('>II', png[16:24]) == (4 * 58 + 2, 3 * 58 + 2), struct.unpack('>II', png[16:24])
"
if [ "$(grep -c '^   *[0-9]*  ' "$S/compose_threads_2.out")" = 12 ] && grep -q "preview .*preview.png: 12 canvases" "$S/compose_threads_2.out"; then
  pass preview_captions_in_the_log
else
  fail preview_captions_in_the_log "$(tail -c 600 "$S/compose_threads_2.out")"
fi
expect_ok info_checks_the_grammar "$AMD" info "$S/t1/test.h5"
if grep -q "every caption parses and its layout holds it" "$S/info_checks_the_grammar.out"; then pass info_says_so; else
  fail info_says_so "$(cat "$S/info_checks_the_grammar.out")"; fi

# damaged files: amd info names the canvas and what is wrong
damage() { # name, python statement on the open file f (r+), needle
  cp "$S/t1/test.h5" "$S/$1.h5"
  $PY -c "
import h5py, numpy as np
f = h5py.File('$S/$1.h5', 'r+')
$2
"
  expect_error "$1" "$3" "$AMD" info "$S/$1.h5"
}
damage damaged_token "t = f['captions/tokens']; v = t[:]; v[5, 1] = 99; t[...] = v" "/captions/tokens[5, 1] = 99 is outside the vocabulary"
damage damaged_layout "
cat, c = f['captions/category'][:], f['layout/cell']
i = int(np.nonzero(cat == 3)[0][0]); v = c[:]; v[i, :2] = v[i, 1::-1]; c[...] = v
print(i)" "its layout (2 items) does not show"
damage damaged_flag "h = f['captions/held_out']; v = h[:]; i = int(np.nonzero(f['captions/category'][:] == 0)[0][0]); v[i] = 1; h[...] = v" \
  "names no held-out pair"
damage damaged_word "v = f['captions/vocab']; w = v[:]; w[20] = b'skirt'; v[...] = w" "token 20 is 'skirt' in its vocabulary"

# bad inputs: a clear error, nothing written
O="out_train=$S/bad/train.h5 out_test=$S/bad/test.h5 n_train=20 n_test=20"
expect_error missing_idx "t10k-images-idx3-ubyte.gz' does not exist" bash -c "mkdir -p '$S/half' && cp $FM/train-* '$S/half/' && \"$AMD\" data compose $O dir='$S/half'"
expect_error bad_n "config key 'n_train' = '0' (command line): out of range" "$AMD" data compose $O n_train=0
expect_error unknown_category "unknown category 'colour'" "$AMD" data compose $O mix=single:2,colour
expect_error bad_weight "the weight of 'two' is 'x'" "$AMD" data compose $O mix=two:x
expect_error unknown_key "unknown config key 'n_canvas'" "$AMD" data compose $O n_canvas=5
expect_error unknown_noun "unknown noun 'hat'" "$AMD" data compose $O holdout=coat+hat
expect_error plural_noun "unknown noun 'bags'" "$AMD" data compose $O holdout=bags+coat
all=tshirt+*,trouser+*,pullover+*,dress+*,coat+*,sandal+*,shirt+*,sneaker+*,bag+*,boot+*
expect_ok holdout_every_pair_of_bag "$AMD" data compose $O n_train=400 holdout=bag+*,coat+dress out_train="$S/bag/train.h5" \
  out_test="$S/bag/test.h5"
py_check bag_never_paired_in_train "
import h5py
f = h5py.File('$S/bag/train.h5', 'r')
assert f['captions'].attrs['held_out_pairs'] == 'tshirt+bag,trouser+bag,pullover+bag,dress+coat,dress+bag,coat+bag,sandal+bag,shirt+bag,sneaker+bag,bag+boot', f['captions'].attrs['held_out_pairs']
for t in f['captions/text'][:]:
    w = t.decode().split()
    assert not ('bag' in w and len(w) > 2) and not ('coat' in w and 'dress' in w), t
"
expect_error every_pair_held "holds out every class pair" "$AMD" data compose $O holdout="$all"
expect_ok every_pair_held_counting_only "$AMD" data compose $O holdout="$all" mix=single,counting out_train="$S/cnt/train.h5" \
  out_test="$S/cnt/test.h5"
expect_error one_file "both name" "$AMD" data compose $O out_test="$S/bad/train.h5"
if [ -e "$S/bad" ] || [ -e "$S/half/train.h5" ]; then fail bad_inputs_write_nothing "$(ls -R "$S/bad" 2>&1)"; else pass bad_inputs_write_nothing; fi
