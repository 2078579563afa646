#!/usr/bin/env bash
# The documentation's links: every relative link in the repository's markdown files (README.md,
# docs/, benchmarks/, the kept studies' READMEs) points at a file that exists and, where it names an
# #anchor of a markdown file, at a heading there (tests/check_links.py, GitHub's slugs). A section
# renamed in benchmarks/RESULTS.md otherwise leaves the README's links to it dead without a sign.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
CHECK="$PY tests/check_links.py"

mapfile -t mds < <(git ls-files '*.md' 2>/dev/null || find . -name '*.md' -not -path './tests/out/*')
if [ "${#mds[@]}" -lt 5 ]; then fail docs_found "only ${#mds[@]} markdown files found"; else pass docs_found; fi
$CHECK "${mds[@]}"

# the checker itself: a dead anchor, a missing file and a heading's anchor with punctuation and a
# repeated heading (GitHub appends -1)
mkdir -p "$S/d"
cat >"$S/d/a.md" <<'MD'
# Title: one, `two` (issue 17)
## Again
## Again
[ok](#title-one-two-issue-17) [ok2](#again-1) [ok3](b.md) [ok4](b.md#b-section)
MD
printf '# B section\n' >"$S/d/b.md"
cat >"$S/d/bad.md" <<'MD'
[dead anchor](a.md#title-one-two) [no file](c.md) [dead too](b.md#b)
MD
if $CHECK "$S/d/a.md" "$S/d/b.md" >"$S/ok.out"; then pass links_checker_accepts; else fail links_checker_accepts "$(cat "$S/ok.out")"; fi
if $CHECK "$S/d/bad.md" >"$S/bad.out"; then
  fail links_checker_refuses "exited 0 on dead links: $(cat "$S/bad.out")"
elif [ "$(grep -o 'no heading\|no file' "$S/bad.out" | wc -l)" -eq 3 ]; then
  pass links_checker_refuses
else
  fail links_checker_refuses "expected 3 broken links: $(cat "$S/bad.out")"
fi
