"""``gpumix-bench``: how many mixed training images per second this machine feeds, against today's loaders.

In one process, on the same data, cores and batch size, it measures the
gpumix DALI pipeline through ``MixupIterator`` with mixup, the same pipeline
with normalization only, through DALI's ``DALIGenericIterator`` with
``gpumix.normalize`` and with the unfused torch mixup chain, torchvision's
``DataLoader`` + ``v2.MixUp`` and timm's loader + ``Mixup``; then the
operator alone (``gpumix.bench.operator``). Loaders are measured in
interleaved turns (see ``measure``); every figure is a median with its
min-max, printed with ratios against gpumix, saved as JSON and drawn as PNG.

    gpumix-bench [--data DIR | --data a.tar b.tar] [--device auto|gpu|cpu] [--json out.json] [--plot out.png]
"""
import argparse
import dataclasses
import gc
import json
import os
import random
import statistics
import sys
import time

import torch
from tqdm import tqdm

from gpumix.validation import check_bool, check_float, check_int
from gpumix.bench import loaders, operator
from gpumix.device import gpu_problem, resolve_device
from gpumix.runinfo import run_record

__all__ = ["BenchConfig", "GpuMemory", "auto_augment_cost", "format_loader_table", "format_report", "main",
           "measure", "parse_args", "run"]

# The clock every loader timing reads; tests replace it to prove figures are measured.
_clock = time.perf_counter
# After a turn, wait this many times the time its loader needs to refill what it prefetches (its
# stock of ready batches at its measured rate), so the next turn starts on an idle machine.
REFILL_MARGIN = 1.5


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Settings of one ``gpumix-bench`` run; ``__post_init__`` checks every field, naming it.

    data: None (the embedded default) or paths; device: 'auto', 'gpu' or
    'cpu'; batch_size: None for 256 on a GPU, 64 on the CPU; seconds: timed
    seconds per turn; repeats: interleaved rounds for the loaders and timed
    calls for the operator; warmup: untimed batches per loader (and, up to 2,
    untimed calls per operator variant); threads: 0 for the cores this
    process may use; image_size: crop side of the ImageNet loaders and the
    operator's image side (CIFAR: 32); num_classes: None for 1000 (ImageNet)
    or 10/100 (CIFAR).
    """

    data: tuple = None
    device: str = "auto"
    batch_size: int = None
    seconds: float = 2.0
    repeats: int = 7
    warmup: int = 10
    threads: int = 0
    image_size: int = 224
    operator_batch_size: int = 256
    num_classes: int = None
    seed: int = 0
    auto_augment: tuple = ()
    json: str = None
    plot: str = None
    progress: bool = True

    def __post_init__(self):
        if self.data is not None:
            if isinstance(self.data, (str, os.PathLike)) or not all(
                    isinstance(p, (str, os.PathLike)) for p in self.data):
                raise TypeError(f"data must be None or a sequence of paths, got {self.data!r}")
            object.__setattr__(self, "data", tuple(os.fspath(p) for p in self.data))
        if self.device not in ("auto", "gpu", "cpu"):
            raise ValueError(f"device must be 'auto', 'gpu' or 'cpu', got {self.device!r}")
        if self.device == "gpu" and gpu_problem() is not None:
            raise ValueError(f"device 'gpu' cannot run on this machine: {gpu_problem()}")
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1)
        check_float("seconds", self.seconds, 0.0, float("inf"))
        if self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds!r}")
        check_int("repeats", self.repeats, 1)
        check_int("warmup", self.warmup, 0)
        check_int("threads", self.threads, 0)
        check_int("image_size", self.image_size, 8)
        check_int("operator_batch_size", self.operator_batch_size, 1)
        if self.num_classes is not None:
            check_int("num_classes", self.num_classes, 2)
        check_int("seed", self.seed, 0)
        check_bool("progress", self.progress)
        from gpumix.pipelines.auto_augment import POLICIES
        policies = () if self.auto_augment is None else self.auto_augment
        if isinstance(policies, str) or any(p not in POLICIES for p in policies) or len(set(policies)) < len(policies):
            raise ValueError(f"auto_augment must be distinct names among {', '.join(POLICIES)}, "
                             f"got {self.auto_augment!r}")
        object.__setattr__(self, "auto_augment", tuple(policies))

    @property
    def gpu(self):
        return resolve_device(self.device) == "gpu"


# --- memory -----------------------------------------------------------------------------------------------
def _status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _children():
    """Pids of this process's children (DataLoader workers), from /proc; empty where there is none."""
    me, found = str(os.getpid()), set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.add(pid)
    return found


def _pss_kib(pid):
    # proportional set size: shared (copy-on-write) pages split between the processes sharing them
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return _status_kib(pid, "VmRSS")


class _HostMemory:
    """The host memory one loader adds: the process's peak RSS while it is built and warmed up, above the
    RSS before, plus the proportional set size of the worker processes it started."""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # reset VmHWM, the peak RSS, to the current RSS
            self.peak_field = "VmHWM"
        except OSError:
            self.peak_field = "VmRSS"  # no reset: the RSS after warm-up is the best we have
        self.before = _status_kib("self", "VmRSS")
        self.children = _children()
        self.added = None
        return self

    def __exit__(self, *exc):
        peak = _status_kib("self", self.peak_field)
        if peak is None or self.before is None:
            return False
        workers = sum(_pss_kib(p) or 0 for p in _children() - self.children)
        self.added = 1024 * (max(0, peak - self.before) + workers)
        return False


class GpuMemory:
    """The GPU memory one loader adds while it is built and warmed up: the device's used memory
    (``cudaMemGetInfo``: DALI's pools and nvJPEG's buffers, torch's cache, everything) after, minus before.

    ``added`` is None without CUDA. Like host memory, memory that loaders
    share is counted for the first one that allocates it.
    """

    def __init__(self, cuda):
        self.cuda, self.added = cuda, None

    @staticmethod
    def used():
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        return total - free

    def __enter__(self):
        self.before = self.used() if self.cuda else None
        return self

    def __exit__(self, *exc):
        if self.cuda and exc[0] is None:
            self.added = max(0, self.used() - self.before)
        return False


# --- interleaved measurement ------------------------------------------------------------------------------
def _turn(variant, seconds, cuda):
    """One timed turn: the stock the loader prepared while idle is served untimed, then ``seconds`` of batches.

    Returns (images, elapsed seconds, batches, CUDA bytes allocated above the turn's start or None).
    """
    for _ in range(variant.ready + 1):
        variant.step()
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    images, batches, t0 = 0, 0, _clock()
    while True:
        images += variant.step()
        batches += 1
        elapsed = _clock() - t0
        if elapsed >= seconds:
            break
    peak = None
    if cuda:
        torch.cuda.synchronize()
        elapsed = _clock() - t0
        peak = torch.cuda.max_memory_allocated() - base
    return images, elapsed, batches, peak


def _round_order(variants, rng, adjacent):
    """One round's turns in a random order, with the variants keyed in ``adjacent`` back to back."""
    pair = [v for v in variants if v.key in adjacent]
    units = [[v] for v in variants if v.key not in adjacent] + ([pair] if pair else [])
    rng.shuffle(units)
    rng.shuffle(pair)  # in place: the unit holding the pair sees the new order too
    return [v for unit in units for v in unit]


def measure(variants, *, rounds, seconds, warmup, seed=0, cuda=False, progress=True, prepare=None,
            adjacent=("gpumix", "normalize_only", "gpumix_aliased")):
    """Build, warm up and time ``variants`` (``loaders.Variant``) in interleaved turns; one result dict each.

    Each variant is built once (torch-side ones first: their workers fork
    before any DALI or numba thread exists) and warmed up by ``warmup``
    batches. Then, in each of ``rounds`` rounds, every variant gets one turn
    in a fresh seeded random order: its first ``ready + 1`` batches come from
    the stock it prefetched while idle and are not timed; then batches are
    timed for ``seconds``. After a turn the benchmark sleeps while that
    loader refills its stock (``REFILL_MARGIN`` times the time its measured
    rate implies, at most ``seconds``), so the next turn starts on an idle
    machine. The variants keyed in ``adjacent`` (gpumix, normalize only and
    the aliased pipeline, whose ratios are mixup's and antialiasing's costs)
    take their turns back to back, in random order, so that their paired
    ratios see the same machine state.
    A variant's images/s is the median over rounds, with min and max.
    ``prepare()``, if given, runs once after the torch-side variants are
    built and before the others (shared one-off costs: kernel compilation).
    """
    order = sorted(variants, key=lambda v: not v.torch_side)
    memory, gpu_memory = {}, {}
    for v in tqdm(order, desc="build + warm-up", unit="loader", disable=not progress):
        if prepare is not None and not v.torch_side:
            prepare()
            prepare = None
        with _HostMemory() as mem, GpuMemory(cuda) as gpu_mem:
            v.start()
            for _ in range(warmup):
                v.step()
        memory[v.key], gpu_memory[v.key] = mem.added, gpu_mem.added
    rates = {v.key: [] for v in variants}
    stats = {v.key: {"images": 0, "seconds": 0.0, "cuda_peak": None} for v in variants}
    rng = random.Random(seed)
    with tqdm(total=rounds * len(variants), desc="timed turns", unit="turn", disable=not progress) as bar:
        for _ in range(rounds):
            for v in _round_order(variants, rng, adjacent):
                images, elapsed, batches, peak = _turn(v, seconds, cuda)
                rates[v.key].append(images / elapsed)
                s = stats[v.key]
                s["images"] += images
                s["seconds"] += elapsed
                if peak is not None:
                    s["cuda_peak"] = max(s["cuda_peak"] or 0, peak)
                bar.update()
                time.sleep(min(seconds, REFILL_MARGIN * v.ready * elapsed / batches))
    results = []
    for v in variants:
        r = rates[v.key]
        results.append({"key": v.key, "name": v.name, "images_per_s": statistics.median(r),
                        "min_images_per_s": min(r), "max_images_per_s": max(r), "per_round_images_per_s": r,
                        "timed_images": stats[v.key]["images"], "timed_seconds": stats[v.key]["seconds"],
                        "untimed_batches_per_turn": v.ready + 1, "host_memory_added_bytes": memory[v.key],
                        "gpu_memory_added_bytes": gpu_memory[v.key],
                        "cuda_peak_added_bytes": stats[v.key]["cuda_peak"]})
    return results


def _overhead(results, key="gpumix", base="normalize_only"):
    """Mixup's cost over normalization alone, paired round by round: 1 - rate(gpumix) / rate(normalize only)."""
    by_key = {r["key"]: r for r in results}
    if key not in by_key or base not in by_key:
        return None
    per_round = [1 - a / b for a, b in zip(by_key[key]["per_round_images_per_s"],
                                           by_key[base]["per_round_images_per_s"])]
    return {"of": key, "over": base, "median": statistics.median(per_round), "min": min(per_round),
            "max": max(per_round), "per_round": per_round}


def auto_augment_cost(results, threads, policies=None):
    """Per policy: wall ms per image with and without it, paired round by round against plain gpumix.

    ``added_ms`` is ``1000/rate(policy) - 1000/rate(gpumix)`` per round (wall time per image with
    ``threads`` DALI threads); ``added_core_ms`` multiplies it by ``threads``, the CPU time per image
    if every thread is busy. ``policies``: the policy names run (the ``gpumix_<policy>`` rows; other
    ``gpumix_`` rows, such as the aliased resize, are not policies); None takes every such row.
    """
    by_key = {r["key"]: r for r in results}
    base = by_key.get("gpumix")
    out = []
    for r in results:
        if not r["key"].startswith("gpumix_") or base is None:
            continue
        if policies is not None and r["key"][len("gpumix_"):] not in policies:
            continue
        added = [1000 / a - 1000 / b for a, b in zip(r["per_round_images_per_s"], base["per_round_images_per_s"])]
        out.append({"key": r["key"], "policy": r["key"][len("gpumix_"):], "threads": threads,
                    "ms_per_image": 1000 / r["images_per_s"], "base_ms_per_image": 1000 / base["images_per_s"],
                    "added_ms": statistics.median(added), "added_ms_min": min(added), "added_ms_max": max(added),
                    "added_core_ms": threads * statistics.median(added), "per_round_added_ms": added})
    return out


# --- the run ----------------------------------------------------------------------------------------------
def _cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _with_ratios(rows):
    gpumix_rate = rows[0]["images_per_s"]
    for r in rows:
        r["gpumix_is"] = gpumix_rate / r["images_per_s"]
    return rows


def run(config, spec=None):
    """Run the whole benchmark for ``config`` (a ``BenchConfig``); return the JSON-ready report."""
    if not isinstance(config, BenchConfig):
        raise TypeError(f"config must be a BenchConfig, got {type(config).__name__}")
    spec = spec or loaders.resolve_data(config.data, num_classes=config.num_classes, image_size=config.image_size)
    threads = config.threads or _cores()
    torch.set_num_threads(threads)  # numba's come in loaders.prepare_process, after the workers fork
    device = "gpu" if config.gpu else "cpu"
    batch_size = config.batch_size or (256 if device == "gpu" else 64)
    settings = loaders.LoaderSettings(batch_size=batch_size, threads=threads, device=device, seed=config.seed)
    variants, skipped = loaders.build_variants(spec, settings, config.auto_augment)
    try:
        rows = measure(variants, rounds=config.repeats, seconds=config.seconds, warmup=config.warmup,
                       seed=config.seed, cuda=device == "gpu", progress=config.progress,
                       prepare=lambda: loaders.prepare_process(spec, settings))
    finally:
        for v in variants:
            v.close()
        gc.collect()
    op = operator.run(operator.OperatorConfig(
        device=device, batch_size=config.operator_batch_size, size=spec.image_size, num_classes=spec.num_classes,
        alpha=loaders.ALPHA, threads=threads, warmup=min(config.warmup, 2), repeats=config.repeats,
        seed=config.seed), progress=config.progress)
    _with_ratios(op["results"])
    record = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("json", "plot", "progress")}
    record.update(batch_size=batch_size, threads=threads, device=device, data=spec.describe(),
                  num_classes=spec.num_classes, image_size=spec.image_size)
    name = torch.cuda.get_device_name() if device == "gpu" else "cpu"
    record = run_record(record, name)
    record["machine"]["cpu_model"] = _cpu_model()
    return {"run": record,
            "data": {"kind": spec.kind, "description": spec.describe(), "num_classes": spec.num_classes,
                     "image_size": spec.image_size, "embedded_default": spec.embedded},
            "loaders": {"batch_size": batch_size, "threads": threads, "device": device,
                        "seconds_per_turn": config.seconds, "rounds": config.repeats, "warmup_batches": config.warmup,
                        "results": _with_ratios(rows), "skipped": skipped,
                        "mixup_overhead": _overhead(rows),
                        "antialias_overhead": _overhead(rows, "gpumix", "gpumix_aliased"),
                        "auto_augment_cost": auto_augment_cost(rows, threads, config.auto_augment)},
            "operator": op}


def _mb(n):
    return "-" if n is None else f"{n / 2**20:.0f}"


def format_loader_table(report):
    """The loaders section as a text table, with how many times faster gpumix is than each loader."""
    sec = report["loaders"]
    width = max(len(r["name"]) for r in sec["results"] + sec["skipped"])
    gpu = any(r.get("gpu_memory_added_bytes") is not None for r in sec["results"])
    lines = [f"{'loader':<{width}} {'images/s':>9} {'min-max':>13} {'MB added':>9}"
             + (f" {'GPU MB':>7}" if gpu else "") + f" {'gpumix is':>10}"]
    for r in sec["results"]:
        spread = f"{r['min_images_per_s']:.0f}-{r['max_images_per_s']:.0f}"
        lines.append(f"{r['name']:<{width}} {r['images_per_s']:>9.0f} {spread:>13} "
                     f"{_mb(r['host_memory_added_bytes']):>9}"
                     + (f" {_mb(r.get('gpu_memory_added_bytes')):>7}" if gpu else "")
                     + f" {r['gpumix_is']:>9.2f}x")
    for s in sec["skipped"]:
        lines.append(f"{s['name']:<{width}} skipped: {s['reason']}")
    o = sec["mixup_overhead"]
    if o:
        lines.append(f"mixup costs {100 * o['median']:.1f}% over normalization alone (paired rounds, "
                     f"{100 * o['min']:.1f}% to {100 * o['max']:.1f}%)")
    a = sec.get("antialias_overhead")
    if a:
        lines.append(f"antialiasing the training resize costs {100 * a['median']:.1f}% against antialias=False "
                     f"(paired rounds, {100 * a['min']:.1f}% to {100 * a['max']:.1f}%)")
    for c in sec.get("auto_augment_cost") or ():
        lines.append(f"{c['policy']} costs {c['ms_per_image']:.2f} ms per image against {c['base_ms_per_image']:.2f} "
                     f"without: +{c['added_ms']:.2f} ms wall (paired rounds {c['added_ms_min']:.2f} to "
                     f"{c['added_ms_max']:.2f}), about {c['added_core_ms']:.2f} core-ms on {c['threads']} threads")
    lines.append("MB added: host memory the loader added while built and warmed up (docs/benchmarks.md)"
                 + ("; GPU MB: the same for the device's memory (cudaMemGetInfo)" if gpu else ""))
    return "\n".join(lines)


def format_report(report):
    run_info, sec = report["run"], report["loaders"]
    machine = run_info["machine"]
    head = (f"gpumix-bench {run_info['date']}, git {(run_info['git'] or 'unknown')[:10]}, on {run_info['device']} "
            f"({machine.get('cpu_model') or machine['processor']}, {machine['cpu_count']} cores)\n"
            f"data: {report['data']['description']}")
    loader_head = (f"Loaders: batch {sec['batch_size']}, {sec['threads']} threads/workers, median of {sec['rounds']} "
                   f"interleaved turns of {sec['seconds_per_turn']:g} s")
    o = report["operator"]["settings"]
    op_head = (f"Operator only: batch {o['batch_size']}, {o['size']}x{o['size']}x3 uint8 -> {o['dtype']} NCHW, "
               f"{o['num_classes']} classes, median of {o['repeats']}")
    return "\n".join([head, "", loader_head, format_loader_table(report), "", op_head,
                      operator.format_table(report["operator"])])


def parse_args(argv=None):
    """The command line as a ``BenchConfig``; bad values (and bad --data paths) exit 2 naming the flag."""
    p = argparse.ArgumentParser(prog="gpumix-bench", description=__doc__.splitlines()[0].replace("``", ""))
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="ImageNet class-folder root, DALI file list, WebDataset .tar shards (their .idx beside "
                        "them) or a folder of them, or a CIFAR-10/100 folder (default: a cached synthetic "
                        "ImageNet-like set)")
    p.add_argument("--device", choices=("auto", "gpu", "cpu"), default="auto")
    p.add_argument("--batch-size", type=int, help="images per batch for every loader (default: 256 GPU, 64 CPU)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per turn (default 2)")
    p.add_argument("--repeats", type=int, default=7,
                   help="interleaved rounds for the loaders, timed calls for the operator (default 7)")
    p.add_argument("--warmup", type=int, default=10, help="untimed batches per loader after building it")
    p.add_argument("--threads", type=int, default=0,
                   help="DALI threads, DataLoader workers, torch and numba threads (default: the usable cores)")
    p.add_argument("--image-size", type=int, default=224, help="crop side of the ImageNet loaders and the operator")
    p.add_argument("--operator-batch-size", type=int, default=256)
    p.add_argument("--num-classes", type=int, help="K of the targets (default: 1000 ImageNet, 10/100 CIFAR)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--auto-augment", nargs="+", default=(), metavar="POLICY",
                   help="also time gpumix with these DALI auto-augment policies in its pipeline (randaugment, "
                        "trivialaugment, autoaugment) and report the cost per image of each")
    p.add_argument("--json", metavar="PATH", help="write the report (figures and run record) here")
    p.add_argument("--plot", metavar="PATH", help="draw the figures as a PNG bar chart here")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    try:
        config = BenchConfig(**vars(args))
    except (TypeError, ValueError) as e:
        name = str(e).split(" ", 1)[0]
        p.error(f"--{name.replace('_', '-')}: {e}" if name in fields else str(e))
    for flag, path in (("--json", config.json), ("--plot", config.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            p.error(f"{flag}: the folder {folder} does not exist (for {path})")
    if config.data is not None:
        try:
            spec = loaders.resolve_data(config.data, num_classes=config.num_classes, image_size=config.image_size)
        except (OSError, ValueError) as e:
            message = str(e)
            flag = "--num-classes" if message.startswith("num_classes:") else "--data"
            p.error(f"{flag}: {message.split(': ', 1)[1] if message.startswith(('data: ', 'num_classes: ')) else message}")
        return config, spec
    return config, None


def main(argv=None):
    config, spec = parse_args(argv)
    try:
        report = run(config, spec)
    except (OSError, ValueError) as e:
        print(f"gpumix-bench: error: {e}", file=sys.stderr)
        return 1
    print(format_report(report))
    if config.json:
        with open(config.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {config.json}")
    if config.plot:
        from gpumix.bench.plot import plot_report
        plot_report(report, config.plot)
        print(f"wrote {config.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
