#!/usr/bin/env python3
"""launch_rewrite.py IN.cu OUT.cpp: the one source change the CUDA emulator (tests/cuda_emu) needs.
Each launch `kernel<<<grid, block[, shmem[, stream]]>>>(args)` becomes
`cuda_emu_launch("kernel", grid, block, shmem, stream, [=] { kernel(args); })` (the arguments
captured by value, as a launch copies them: it may run after the caller's variables are gone); everything else is
kept byte for byte, newlines included, so compiler messages name the .cu file's own lines."""
import re
import sys


def split_top(text):
    """text split at the commas outside parentheses, brackets and braces"""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def close_paren(text, i):
    """index just past the parenthesis that closes the one at text[i]"""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    raise SystemExit(f"launch_rewrite: unbalanced parentheses after offset {i}")


def rewrite(src, name):
    out, pos = [], 0
    for m in re.finditer(r"([A-Za-z_]\w*)\s*<<<", src):
        if m.start() < pos:
            continue
        end_cfg = src.index(">>>", m.end())
        cfg = split_top(src[m.end():end_cfg])
        if not 2 <= len(cfg) <= 4:
            line = src.count("\n", 0, m.start()) + 1
            raise SystemExit(f"{name}:{line}: a launch needs 2 to 4 configuration arguments, got {len(cfg)}")
        cfg += ["0", "0"][: 4 - len(cfg)]
        lp = end_cfg + 3
        while src[lp].isspace():
            lp += 1
        if src[lp] != "(":
            raise SystemExit(f"{name}: expected '(' after the launch configuration of {m.group(1)}")
        rp = close_paren(src, lp)
        kernel = m.group(1)
        out.append(src[pos:m.start()])
        out.append(f'cuda_emu_launch("{kernel}", {", ".join(cfg)}, [=] {{ {kernel}{src[lp:rp]}; }})')
        pos = rp
    out.append(src[pos:])
    return f'#line 1 "{name}"\n' + "".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: launch_rewrite.py IN.cu OUT.cpp")
    with open(sys.argv[1]) as f:
        text = f.read()
    result = rewrite(text, sys.argv[1])
    with open(sys.argv[2], "w") as f:
        f.write(result)
