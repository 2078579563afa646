#!/usr/bin/python3
"""Every relative link in the project's markdown files points at a file that exists and, where it
names an #anchor in a markdown file, at a heading that exists there (GitHub's slugs).

    /usr/bin/python3 tests/check_links.py FILE.md...

Prints PASS/FAIL lines (one check per file); exits 1 when a link is broken."""
import functools
import os
import re
import sys

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```", re.S)


def slug(heading):
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    h = heading.strip().lower()
    h = re.sub(r"[^\w\- ]", "", h)  # keeps letters, digits, underscores, hyphens and spaces
    return h.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path):
    """The anchors of path's headings (read once per file, however many links point into it)."""
    seen, out = {}, set()
    text = CODE.sub("", open(path, encoding="utf-8").read())
    for line in text.splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken(path):
    text = CODE.sub("", open(path, encoding="utf-8").read())
    text = re.sub(r"`[^`\n]*`", "", text)
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.exists(dest):
            bad.append(f"{target} (no file {dest})")
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            bad.append(f"{target} (no heading with anchor #{anchor} in {dest})")
    return bad


def main(paths):
    failed = 0
    for p in paths:
        bad = broken(p)
        if bad:
            failed += 1
            print(f"FAIL links_{p}: " + "; ".join(bad))
        else:
            print(f"PASS links_{p}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
