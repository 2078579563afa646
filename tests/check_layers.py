#!/usr/bin/python3
"""check_layers.py [ROOT]: checks that the include graph of amd's sources is layered
(docs/DESIGN.md section 1). Each `#include "x.h"` is resolved as the compiler does (the including
file's folder, then -Icore -Isrc -Iio -Impi -Icuda). Rules:
  - core/ (the shared base) includes only core/;
  - io/ includes only io/ and core/common.h (it reads and writes host buffers);
  - mpi/ includes only mpi/ and core/ (common.h, ops.h, optim.h);
  - cuda/ includes only cuda/ and core/;
  - src/ includes anything but tests/;
  - no cycle between modules (x.c with x.h: an edge when either includes the other's header) and
    none between folders.
Prints one PASS or FAIL line per rule; exits 1 when any fails."""
import os, re, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
FOLDERS = ["core", "src", "io", "mpi", "cuda"]
ALLOWED = {
    "core": lambda f: f.startswith("core/"),
    "io": lambda f: f.startswith("io/") or f == "core/common.h",
    "mpi": lambda f: f.startswith("mpi/") or f in ("core/common.h", "core/ops.h", "core/optim.h"),
    "cuda": lambda f: f.startswith("cuda/") or f.startswith("core/"),
    "src": lambda f: not f.startswith("tests/"),
}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    for d in FOLDERS:
        p = os.path.join(ROOT, d)
        if not os.path.isdir(p):
            continue
        for name in sorted(os.listdir(p)):
            if name.endswith((".c", ".h", ".cu", ".cuh")):
                yield f"{d}/{name}"


def resolve(src, name):
    for d in [os.path.dirname(src)] + FOLDERS:
        cand = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(os.path.join(ROOT, cand)):
            return cand
    return None  # a system header or one generated elsewhere


def cycle(graph):
    """One cycle of the graph (a list of nodes), or None."""
    color, stack = {}, []

    def dfs(u):
        color[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if color.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if not color.get(v):
                c = dfs(v)
                if c:
                    return c
        stack.pop()
        color[u] = 2
        return None

    for u in sorted(graph):
        if not color.get(u):
            c = dfs(u)
            if c:
                return c
    return None


def module(f):
    return os.path.splitext(f)[0]


def main():
    edges = []
    for f in sources():
        text = open(os.path.join(ROOT, f), errors="replace").read()
        for name in INC.findall(text):
            g = resolve(f, name)
            if g:
                edges.append((f, g))
    failed = 0
    for folder in FOLDERS:
        bad = [f"{a} includes {b}" for a, b in edges if a.startswith(folder + "/") and not ALLOWED[folder](b)]
        if bad:
            failed += 1
            print(f"FAIL layers_{folder}: " + "; ".join(bad))
        else:
            print(f"PASS layers_{folder}")
    mods, dirs = {}, {}
    for a, b in edges:
        if module(a) != module(b):
            mods.setdefault(module(a), set()).add(module(b))
        da, db = a.split("/")[0], b.split("/")[0]
        if da != db:
            dirs.setdefault(da, set()).add(db)
    for what, graph in (("modules", mods), ("folders", dirs)):
        c = cycle(graph)
        if c:
            failed += 1
            print(f"FAIL no_cycle_between_{what}: " + " -> ".join(c))
        else:
            print(f"PASS no_cycle_between_{what}")
    sys.exit(1 if failed else 0)


main()
