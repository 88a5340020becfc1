#!/usr/bin/env python3
"""Counts ymm/zmm moves to and from the stack in a kernel object, per function: in total, and inside the hot
loops (innermost loops that hold a vpdpbusd, vpmaddubsw, vfmadd or vdpbf16ps). A micro-kernel whose accumulator array
the compiler keeps in memory shows up here long before it shows up in a timing: GCC 12 does that to
`__m512 acc[MR][NV]` arrays whose loops it has not unrolled before scalar replacement (docs/KERNELS.md).

    objdump -d --no-show-raw-insn -C build-<you>/CMakeFiles/ark_core.dir/src/kernels/x86/vnni/<file>.o \\
        > /tmp/k.s
    python3 bench/cpu_time/stack_moves.py /tmp/k.s [function-name-substring]

A loop here is an address range closed by a backward conditional jump, which is what GCC emits for loops.
Build the object with the flags you ship: at -O2 GCC 12 leaves loops over register arrays rolled unless a
pragma unrolls them (docs/KERNELS.md).
"""
import re
import sys

FUNCTION = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSTRUCTION = re.compile(r"^\s+([0-9a-f]+):\s+(?:\{vex\}\s+)?(\S+)\s*(.*)$")  # {vex}: AVX-VNNI
STACK = re.compile(r"\(%r[sb]p[,)]")
VECTOR = re.compile(r"%[yz]mm")
ARITHMETIC = re.compile(r"v(pdpbusd|pmaddubsw|fmadd|dpbf16)")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pattern = sys.argv[2] if len(sys.argv) > 2 else ""
    functions = []
    with open(sys.argv[1]) as f:
        for line in f:
            m = FUNCTION.match(line)
            if m:
                functions.append((m.group(2), []))
                continue
            m = INSTRUCTION.match(line)
            if m and functions:
                functions[-1][1].append((int(m.group(1), 16), m.group(2), m.group(3)))
    all_total = all_hot = 0
    for name, code in functions:
        if pattern not in name:
            continue
        loops = []
        for address, op, args in code:
            target = re.match(r"([0-9a-f]+) <", args)
            if op.startswith("j") and op != "jmp" and target and int(target.group(1), 16) <= address:
                loops.append((int(target.group(1), 16), address))
        innermost = [l for l in loops if not any(o != l and l[0] <= o[0] and o[1] <= l[1] for o in loops)]
        hot = [l for l in innermost if any(l[0] <= a <= l[1] and ARITHMETIC.match(op) for a, op, _ in code)]
        in_hot = lambda a: any(b <= a <= e for b, e in hot)
        moves = [a for a, _, args in code if VECTOR.search(args) and STACK.search(args)]
        total, hot_moves = len(moves), sum(1 for a in moves if in_hot(a))
        hot_size = sum(1 for a, _, _ in code if in_hot(a))
        # Arithmetic instructions in the smallest hot loop: a register-blocked micro-kernel has one per
        # accumulator; a loop over the accumulator array left rolled has fewer (1 in a 6x4 kernel), its
        # accumulators loaded and stored through some other register than rsp/rbp (which the counts above
        # do not see).
        per_loop = [sum(1 for a, op, _ in code if b <= a <= e and ARITHMETIC.match(op)) for b, e in hot]
        all_total += total
        all_hot += hot_moves
        if total or hot:
            print(f"{total:5d} total {hot_moves:5d} in hot loops ({hot_size} instructions, arithmetic per "
                  f"loop >= {min(per_loop) if per_loop else 0})  {name[:100]}")
    print(f"all: {all_total} total, {all_hot} in hot loops")


if __name__ == "__main__":
    main()
