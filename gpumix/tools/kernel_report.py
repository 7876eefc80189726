"""``gpumix-kernel-report``: the fused CUDA kernel's static performance model, without a GPU.

Every kernel variant (output dtype x layout x clean x channels) is compiled
to PTX by numba for ``--arch``, assembled by ``ptxas -v`` (registers, spills)
and disassembled by ``cuobjdump -sass``. The hot path is the innermost loop
that holds the pixel stores; its SASS instructions per pixel, with the
per-sample setup spread over a thread's iterations, bound the kernel's time
by instruction issue. The report compares that with the time the bytes it
moves take at the device's copy bandwidth:

    time = max(bytes / copy_bandwidth, sass_per_pixel * pixels / (SMs * issue * clock))
    estimated_fraction_of_copy = (bytes / copy_bandwidth) / time

The method, and a count checked by hand, are in docs/benchmarks.md.

    gpumix-kernel-report --json kernel-report.json --ptx-dir ptx/
"""
import argparse
import contextlib
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

from gpumix.atomic import write_atomically

__all__ = ["DeviceModel", "DEVICE_MODELS", "Toolchain", "find_toolchain", "hot_path", "estimate", "report",
           "format_table", "main"]


@dataclasses.dataclass(frozen=True)
class DeviceModel:
    """What the estimate assumes of the GPU, each number with its source."""

    name: str
    sms: int
    issue_per_clock: int
    clock_hz: float
    copy_bytes_per_s: float
    sources: dict

    @property
    def instructions_per_s(self):
        return self.sms * self.issue_per_clock * self.clock_hz


DEVICE_MODELS = {
    "sm_90": DeviceModel(
        name="NVIDIA H200 SXM (sm_90)", sms=132, issue_per_clock=128, clock_hz=1.98e9, copy_bytes_per_s=4.3e12,
        sources={
            "sms": "132 SMs: NVIDIA H200 / H100 SXM5 (Hopper architecture whitepaper, GH100 in SXM5)",
            "issue_per_clock": "4 warp schedulers per SM, each issuing 1 warp instruction (32 threads) per clock: "
                               "128 thread-instructions (Hopper whitepaper, SM sub-partitions)",
            "clock_hz": "1980 MHz maximum boost clock of the H200 SXM (NVIDIA H200 datasheet)",
            "copy_bytes_per_s": "4.3 TB/s, bytes read plus bytes written, a device-to-device copy measured on an "
                                "H200 (issue 12; the HBM3e peak is 4.8 TB/s, NVIDIA H200 datasheet)",
        }),
}


@dataclasses.dataclass(frozen=True)
class Toolchain:
    ptxas: str
    disassembler: str  # cuobjdump or nvdisasm
    ptxas_version: tuple


def _version(tool):
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"release (\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _candidates(name):
    places = [shutil.which(name)]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            places.append(os.path.join(os.environ[var], "bin", name))
    places += sorted(glob.glob(f"/usr/local/cuda*/bin/{name}"))
    for root in sys.path:  # wheels: torch's triton and NVIDIA's nvcc wheel
        places += [os.path.join(root, "triton", "backends", "nvidia", "bin", name),
                   os.path.join(root, "nvidia", "cuda_nvcc", "bin", name),
                   os.path.join(root, "nvidia", "cu13", "bin", name)]
    seen = []
    for p in places:
        if p and os.path.isfile(p) and os.access(p, os.X_OK) and os.path.realpath(p) not in map(os.path.realpath,
                                                                                                  seen):
            seen.append(p)
    return seen


def find_toolchain():
    """The newest ``ptxas`` found (PATH, CUDA_HOME, /usr/local/cuda*, triton's and NVIDIA's wheels) and a disassembler.

    Raises FileNotFoundError saying what is missing. Numba's PTX may need a
    recent ptxas (CUDA 13's PTX ISA 9.0), so the newest one wins.
    """
    ptxas = [(v, p) for p in _candidates("ptxas") if (v := _version(p))]
    if not ptxas:
        raise FileNotFoundError("no ptxas found: install the CUDA toolkit (or torch's triton wheel), or set CUDA_HOME")
    version, best = max(ptxas)
    for name in ("cuobjdump", "nvdisasm"):
        tools = [(v or (0, 0), p) for p in _candidates(name) for v in [_version(p)]]
        if tools:
            return Toolchain(best, max(tools)[1], version)
    raise FileNotFoundError("no cuobjdump or nvdisasm found (CUDA toolkit, or torch's triton wheel)")


@contextlib.contextmanager
def _compile_without_gpu(cc):
    # numba compiles device functions for "the current device"; without a GPU there is none, so name one.
    import numba.cuda.dispatcher as dispatcher
    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def compile_variant(variant, arch, toolchain, workdir):
    """PTX text, ptxas's ``-v`` log and the SASS text of ``variant`` for ``arch`` (e.g. 'sm_90')."""
    from numba import cuda

    from gpumix.kernels import mix_normalize_cuda
    cc = (int(arch[3:-1]), int(arch[-1]))
    with _compile_without_gpu(cc):
        ptx, _ = cuda.compile_ptx(mix_normalize_cuda.kernel(variant).py_func, mix_normalize_cuda.signature(variant),
                                  cc=cc)
    base = os.path.join(workdir, variant.name)
    with open(base + ".ptx", "w", encoding="utf-8") as f:
        f.write(ptx)
    run = subprocess.run([toolchain.ptxas, f"-arch={arch}", "-v", base + ".ptx", "-o", base + ".cubin"],
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"{toolchain.ptxas} failed on {variant.name}: {run.stderr.strip()[-2000:]}")
    tool = toolchain.disassembler
    args = [tool, "-sass", base + ".cubin"] if os.path.basename(tool).startswith("cuobjdump") else [tool,
                                                                                                     base + ".cubin"]
    sass = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True).stdout
    return ptx, run.stderr, sass


_INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_BRANCH = re.compile(r"\bBRA\b(?:.*?)\s(0x[0-9a-f]+)\s*$")


def parse_sass(sass):
    """[(address, text)] of every instruction in a disassembly, in order."""
    return [(int(m.group(1), 16), m.group(2)) for m in _INSTRUCTION.finditer(sass)]


def loops(instructions):
    """[(start, end)] address ranges of the loops: each backward branch at ``end`` to ``start``."""
    found = []
    for address, text in instructions:
        m = _BRANCH.search(text)
        if m and int(m.group(1), 16) <= address:
            found.append((int(m.group(1), 16), address))
    return found


def hot_path(sass, store_opcode="STG"):
    """(loop instructions, setup instructions) of the kernel's pixel loop.

    The pixel loop is the innermost loop (no other backward branch inside)
    holding the most stores; every instruction in its address range counts,
    both sides of its branches included, so the count is an upper bound. The
    setup is the enclosing sample loop's instructions outside the pixel loop,
    paid once per sample and thread.
    """
    instructions = parse_sass(sass)
    ranges = loops(instructions)
    inner = [r for r in ranges if not any(o != r and r[0] <= o[0] and o[1] <= r[1] for o in ranges)]
    if not inner:
        raise ValueError("no loop found in the SASS")

    def count(lo, hi, pred=lambda t: True):
        return sum(1 for a, t in instructions if lo <= a <= hi and pred(t))

    def stores(text):
        return any(word.startswith(store_opcode) for word in text.split())

    pixel = max(inner, key=lambda r: (count(*r, stores), count(*r)))
    loop_n = count(*pixel)
    outer = [r for r in ranges if r != pixel and r[0] <= pixel[0] and pixel[1] <= r[1]]
    setup = 0
    if outer:
        lo, hi = min(outer, key=lambda r: r[1] - r[0])
        setup = count(lo, hi) - loop_n
    return loop_n, setup


def estimate(sass_per_pixel, pixels, nbytes, model):
    """(memory seconds, issue seconds, estimated fraction of copy) of the model in the module docstring."""
    memory = nbytes / model.copy_bytes_per_s
    issue = sass_per_pixel * pixels / model.instructions_per_s
    return memory, issue, memory / max(memory, issue)


def variant_bytes(variant, batch_size, size, num_classes):
    """Bytes the kernel moves: both images read (mixup, the most), outputs (and clean) and targets written."""
    pixels = batch_size * size * size
    element = 4 if variant.dtype == "float32" else 2
    outputs = 2 if variant.clean else 1
    return pixels * variant.channels * (2 + outputs * element) + batch_size * num_classes * 4


def report(arch="sm_90", batch_size=1024, size=224, num_classes=1000, ptx_dir=None, model=None, progress=True):
    """Compile every variant and return the JSON-ready report (see ``main``)."""
    from gpumix.kernels import mix_normalize_cuda as mnc
    model = model or DEVICE_MODELS[arch]
    toolchain = find_toolchain()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in mnc.variants():
            if progress:
                print(f"compiling {variant.name} ...", file=sys.stderr, flush=True)
            ptx, log, sass = compile_variant(variant, arch, toolchain, tmp)
            if ptx_dir:
                os.makedirs(ptx_dir, exist_ok=True)
                write_atomically(os.path.join(ptx_dir, variant.name + ".ptx"), ptx, "the PTX ")
            registers = int(re.search(r"Used (\d+) registers", log).group(1))
            spills = sum(int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", log))
            loop_n, setup = hot_path(sass)
            (blocks_x, _), _ = mnc.grid(variant, batch_size, size, size)
            groups = size * (size // mnc.PIXELS)
            iterations = groups / (blocks_x * mnc.BLOCK)
            per_pixel = loop_n / mnc.PIXELS + setup / (mnc.PIXELS * iterations)
            nbytes = variant_bytes(variant, batch_size, size, num_classes)
            memory_s, issue_s, fraction = estimate(per_pixel, batch_size * size * size, nbytes, model)
            rows.append({"name": variant.name, "dtype": variant.dtype, "channels_last": variant.channels_last,
                         "clean": variant.clean, "channels": variant.channels, "pixels_per_thread": mnc.PIXELS,
                         "registers": registers, "spill_bytes": spills, "sass_per_pixel": round(per_pixel, 2),
                         "loop_instructions": loop_n, "setup_instructions": setup,
                         "iterations_per_thread": round(iterations, 3), "bytes": nbytes,
                         "memory_time_s": memory_s, "issue_time_s": issue_s,
                         "estimated_fraction_of_copy": round(fraction, 4)})
    return {"arch": arch, "batch_size": batch_size, "image_size": size, "num_classes": num_classes,
            "toolchain": {"ptxas": toolchain.ptxas, "ptxas_version": ".".join(map(str, toolchain.ptxas_version)),
                          "disassembler": toolchain.disassembler},
            "device_model": {**{k: v for k, v in dataclasses.asdict(model).items() if k != "sources"},
                             "instructions_per_s": model.instructions_per_s, "sources": model.sources},
            "variants": rows}


def format_table(result):
    lines = [f"{'variant':<20} {'regs':>4} {'spill':>5} {'SASS/px':>8} {'MB moved':>9} {'est. of copy':>12}"]
    for r in result["variants"]:
        lines.append(f"{r['name']:<20} {r['registers']:>4} {r['spill_bytes']:>5} {r['sass_per_pixel']:>8.1f} "
                     f"{r['bytes'] / 1e6:>9.0f} {100 * r['estimated_fraction_of_copy']:>11.0f}%")
    m = result["device_model"]
    lines.append(f"model: {m['name']}: {m['sms']} SMs x {m['issue_per_clock']} instructions/clock x "
                 f"{m['clock_hz'] / 1e9:.2f} GHz, copy {m['copy_bytes_per_s'] / 1e12:.1f} TB/s; "
                 f"B={result['batch_size']}, {result['image_size']}x{result['image_size']}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="gpumix-kernel-report", description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="sm_90", help="GPU architecture to compile for (default sm_90; the device "
                                                   f"model is known for {', '.join(DEVICE_MODELS)})")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000, help="soft-target classes (bytes of the targets)")
    p.add_argument("--json", help="write the report here")
    p.add_argument("--ptx-dir", help="write DIR/<variant>.ptx for each variant")
    args = p.parse_args(argv)
    if args.arch not in DEVICE_MODELS:
        p.error(f"--arch: no device model for {args.arch!r}; known: {', '.join(DEVICE_MODELS)}")
    for flag in ("batch_size", "image_size", "num_classes"):
        value = getattr(args, flag)
        if value < (2 if flag == "num_classes" else 1):
            p.error(f"--{flag.replace('_', '-')} must be >= {2 if flag == 'num_classes' else 1}, got {value}")
    if args.image_size % 4:
        p.error(f"--image-size must be a multiple of 4 (the word path's width), got {args.image_size}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from numba import config
    if config.ENABLE_CUDASIM:
        raise SystemExit("gpumix-kernel-report compiles real CUDA code: unset NUMBA_ENABLE_CUDASIM")
    try:
        result = report(args.arch, args.batch_size, args.image_size, args.num_classes, args.ptx_dir)
    except FileNotFoundError as e:
        raise SystemExit(f"gpumix-kernel-report: {e}") from None
    print(format_table(result))
    if args.json:
        write_atomically(args.json, json.dumps(result, indent=2) + "\n", "the report ")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
