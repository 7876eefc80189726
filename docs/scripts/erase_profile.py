"""Where the CPU twin's time goes, erasing against no erasing: perf's samples mapped onto its compiled row loop.

    python docs/scripts/erase_profile.py run OUT          (under perf, below)
    python docs/scripts/erase_profile.py report OUT

    perf record -q -k CLOCK_MONOTONIC -e cpu-clock -F 4999 -o OUT/perf.data \\
        python docs/scripts/erase_profile.py run OUT
    perf script -i OUT/perf.data -F time,ip > OUT/ips.txt
    python docs/scripts/erase_profile.py report OUT

``run``: one thread, B=256 random 224x224 images, fp32 NCHW, mixup alpha 0.2;
ROUNDS (environment, default 12) rounds of 30 calls each without erasing,
with 'pixel' and with 'const' at PROB (default 0.25), their times written to
OUT/phases.txt (CLOCK_MONOTONIC, perf's clock with ``-k``). It compiles the
twin afresh (a new numba cache in OUT) so that numba has its machine code,
and writes where the parfor body (the row loop, with everything it
inlines) was loaded and a copy of its bytes (OUT/loop.bin).

``report``: per case, perf's samples in all and in the row loop; then the
row loop's 256-byte windows with at least 50 samples in a case, by case, and
the differences against no erasing. ``objdump -D -b binary -m i386:x86-64
OUT/loop.bin`` disassembles the windows. perf cannot name numba's JIT code,
so the windows are offsets; the loops are told apart by their instructions
(docs/benchmarks.md, sixth pass, reads them).
"""
import bisect
import collections
import ctypes
import os
import re
import sys
import time

_SIZE = 400_000  # bytes of the row loop copied: more than its code
_WINDOW = 256


def _run(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(out, "numba_cache")  # compile afresh, before numba loads
    import erase_case
    import numba

    from gpumix.kernels import mix_normalize_cpu as twin

    numba.set_num_threads(1)
    data = erase_case.case(256, 224, prob=float(os.environ.get("PROB", "0.25")))
    for mode in data.erasing:
        data.launch(twin, mode)
    kernel = twin.mix_normalize_cpu
    asm = next(iter(kernel.overloads.values())).library.get_asm_str()

    def length(name: str) -> int:
        start = asm.index(name + ":")
        return asm.index(".Lfunc_end", start) - start

    # the parfor bodies: the row loop is the larger one (the other writes the targets)
    loop = max(re.findall(r"^(_ZN\S*numba_parfor_gufunc\S+):$", asm, re.M), key=length)
    engine = kernel.targetctx.codegen()._engine._ee  # numba's LLVM execution engine: where the code was loaded
    address = engine.get_function_address(loop)
    with open(os.path.join(out, "loop.bin"), "wb") as f:
        f.write(ctypes.string_at(address, _SIZE))
    with open(os.path.join(out, "loop_address.txt"), "w") as f:
        f.write(f"{address:#x}\n")
    with open(os.path.join(out, "phases.txt"), "w") as f:
        for _ in range(int(os.environ.get("ROUNDS", "12"))):
            for mode in data.erasing:
                start = time.monotonic()
                for _ in range(30):
                    data.launch(twin, mode)
                f.write(f"{mode} {start} {time.monotonic()}\n")


def _report(out: str) -> None:
    with open(os.path.join(out, "loop_address.txt")) as f:
        base = int(f.read(), 16)
    with open(os.path.join(out, "phases.txt")) as f:
        phases = [(name, float(a), float(b)) for name, a, b in (line.split() for line in f)]
    starts = [p[1] for p in phases]
    total: collections.Counter[str] = collections.Counter()
    windows: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    with open(os.path.join(out, "ips.txt")) as f:
        for line in f:
            fields = line.split()
            if len(fields) < 2:
                continue
            t, ip = float(fields[0].rstrip(":")), int(fields[1], 16)
            k = bisect.bisect_right(starts, t) - 1
            if k < 0 or t > phases[k][2]:
                continue
            case = phases[k][0]
            total[case] += 1
            if 0 <= ip - base < _SIZE:
                windows[case][(ip - base) // _WINDOW] += 1
    cases = ["none", "pixel", "const"]
    for case in cases:
        inside = sum(windows[case].values())
        print(f"{case:6s} samples {total[case]:7d}  in the row loop {inside:7d}  elsewhere {total[case] - inside:6d}")
    print("window    " + "".join(f"{c:>8s}" for c in cases) + "   pixel-none const-none")
    for w in sorted(set().union(*(windows[c] for c in cases))):
        counts = [windows[c][w] for c in cases]
        if max(counts) >= 50:
            print(f"{w * _WINDOW:#8x}  " + "".join(f"{v:8d}" for v in counts)
                  + f"   {counts[1] - counts[0]:+10d} {counts[2] - counts[0]:+10d}")


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "report"):
        raise SystemExit(__doc__)
    (_run if sys.argv[1] == "run" else _report)(sys.argv[2])


if __name__ == "__main__":
    main()
