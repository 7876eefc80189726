"""Operator microbenchmark: the fused ``mix_normalize`` against the chains users write today.

All variants run in one process, on the same uint8 batch, the same mix
parameters and the same threads. Each figure is the median of ``--repeats``
timed calls after ``--warmup`` untimed ones, with min and max shown. On a GPU
it also times a device-to-device copy of the fused kernel's bytes and reports
the kernel's bandwidth as a fraction of it. ``gpumix-bench`` runs this as its
operator section, through ``OperatorConfig`` and ``run``.

    gpumix-bench-operator --batch-size 256 --json op.json
"""
import argparse
import dataclasses
import json
import statistics
import time

import numba
import torch
from tqdm import tqdm

import gpumix
from gpumix.datasets import STATS
from gpumix.validation import check_bool, check_float, check_int
from gpumix.device import gpu_problem, resolve_device
from gpumix.bench import chains, kernel_timing
from gpumix.runinfo import run_record

__all__ = ["DTYPES", "OperatorConfig", "format_table", "main", "parse_args", "run"]

# torchvision's ImageNet statistics, in pixel units.
# the operator is timed with ImageNet's statistics
MEAN, STD = STATS["imagenet"].mean, STATS["imagenet"].std
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The fused operator with random erasing in the same pass (its cost over mixup alone is reported).
ERASING_VARIANT = "gpumix fused + erasing"
# The clock every CPU timing reads; tests replace it to prove figures are measured.
_clock = time.perf_counter


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """Settings of one operator microbenchmark run; ``__post_init__`` checks every field.

    device: 'auto', 'gpu' or 'cpu'; threads: torch and numba threads (0:
    leave them as they are); warmup/repeats: untimed and timed calls per variant.
    """

    device: str = "auto"
    batch_size: int = 256
    size: int = 224
    num_classes: int = 1000
    alpha: float = 0.2
    dtype: str = "fp32"
    channels_last: bool = False
    threads: int = 0
    warmup: int = 2
    repeats: int = 7
    seed: int = 0

    def __post_init__(self):
        if self.device not in ("auto", "gpu", "cpu"):
            raise ValueError(f"device must be 'auto', 'gpu' or 'cpu', got {self.device!r}")
        if self.device == "gpu" and gpu_problem() is not None:
            raise ValueError(f"device 'gpu' cannot run on this machine: {gpu_problem()}")
        check_int("batch_size", self.batch_size, 1)
        check_int("size", self.size, 1)
        check_int("num_classes", self.num_classes, 2)
        check_float("alpha", self.alpha, 0.0, float("inf"))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        check_bool("channels_last", self.channels_last)
        check_int("threads", self.threads, 0)
        check_int("warmup", self.warmup, 0)
        check_int("repeats", self.repeats, 1)
        check_int("seed", self.seed, 0)

    @property
    def torch_device(self):
        return torch.device("cuda" if resolve_device(self.device) == "gpu" else "cpu")


def _timer(device):
    if device.type == "cuda":
        def timed(fn):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) / 1e3
    else:
        def timed(fn):
            t0 = _clock()
            fn()
            return _clock() - t0
    return timed


def _measure(fn, device, warmup, repeats):
    timed = _timer(device)
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = [timed(fn) for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "peak_bytes": peak}


def _variants(config, batch, labels, params, dtype):
    """(variants by name, skipped [{name, reason}]): every chain over the same batch and parameters."""
    common = dict(mean=MEAN, std=STD, dtype=dtype, channels_last=config.channels_last)
    k = config.num_classes
    # DeiT's random erasing (timm --reprob 0.25 --remode pixel), drawn once like the mix parameters
    erasing = gpumix.RandomErasing(prob=0.25, mode="pixel", seed=config.seed).sample(
        batch.shape[0], tuple(batch.shape[1:3]), batch.shape[3], epoch=0, step=0)
    found = {
        "gpumix fused": lambda: gpumix.mix_normalize(batch, labels, params, num_classes=k, **common),
        ERASING_VARIANT: lambda: gpumix.mix_normalize(batch, labels, params, num_classes=k, erasing=erasing, **common),
        "unfused torch chain": lambda: chains.unfused_chain(batch, labels, params, num_classes=k, **common),
    }
    skipped = []
    try:
        from timm.data import Mixup as TimmMixup
    except ImportError:
        TimmMixup = None
    for mode in ("batch", "elem"):
        name = f"timm Mixup ({mode})"
        if TimmMixup is None:
            skipped.append({"name": name, "reason": "timm is not installed (pip install -e '.[bench]')"})
        elif config.batch_size % 2:
            skipped.append({"name": name, "reason": f"timm's Mixup needs an even batch, got {config.batch_size}"})
        else:
            fn = TimmMixup(mixup_alpha=config.alpha, mode=mode, num_classes=k, label_smoothing=0.0)
            found[name] = (lambda f: lambda: chains.timm_chain(f, batch, labels, **common))(fn)
    from torchvision.transforms import v2
    tv = v2.MixUp(alpha=config.alpha, num_classes=k)
    found["torchvision v2.MixUp"] = lambda: chains.torchvision_chain(tv, batch, labels, **common)
    return found, skipped


def run(config, progress=True):
    """Run every variant of ``config`` (an ``OperatorConfig``); return the JSON-ready result dict.

    ``results`` holds one entry per variant, gpumix first: name, images_per_s
    (batch over the median time) with min_/max_images_per_s, median_s,
    min_s, max_s and peak_bytes (GPU only); ``bandwidth`` the kernel alone
    against a copy of the same bytes and ``host`` the host's time per call
    (``gpumix.bench.kernel_timing``).
    """
    if not isinstance(config, OperatorConfig):
        raise TypeError(f"config must be an OperatorConfig, got {type(config).__name__}")
    device = config.torch_device
    if config.threads:
        torch.set_num_threads(config.threads)
        numba.set_num_threads(min(config.threads, numba.config.NUMBA_NUM_THREADS))
    dtype = DTYPES[config.dtype]
    b, size, k = config.batch_size, config.size, config.num_classes
    gen = torch.Generator().manual_seed(config.seed)
    batch = torch.randint(0, 256, (b, size, size, 3), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, k, (b,), generator=gen)
    params = gpumix.Mixup(num_classes=k, alpha=config.alpha, seed=config.seed).sample(b, (size, size), epoch=0,
                                                                                    step=0)
    labels_dev = labels.to(device)

    # Same answer first: the fused result must match the unfused chain on this very batch.
    fused_img, fused_tgt = gpumix.mix_normalize(batch, labels, params, mean=MEAN, std=STD, num_classes=k,
                                                dtype=dtype, channels_last=config.channels_last)
    ref_img, ref_tgt = chains.unfused_chain(batch, labels, params, mean=MEAN, std=STD, num_classes=k,
                                            dtype=torch.float32, channels_last=config.channels_last)
    max_err = float((fused_img.float() - ref_img).abs().max())
    del fused_img, fused_tgt, ref_img, ref_tgt

    results = []
    variants, skipped = _variants(config, batch, labels_dev if device.type == "cuda" else labels, params, dtype)
    for name, fn in tqdm(variants.items(), desc="operator", unit="variant", disable=not progress):
        stats = _measure(fn, device, config.warmup, config.repeats)
        results.append({"name": name, "images_per_s": b / stats["median_s"],
                        "min_images_per_s": b / stats["max_s"], "max_images_per_s": b / stats["min_s"], **stats})

    del batch, labels, labels_dev, params, variants
    # The kernel alone on preallocated tensors against a copy of the same bytes, then the host's share of a call.
    bandwidth = kernel_timing.kernel_bandwidth(device, b, size, dtype, config.channels_last, k, config.repeats,
                                               config.warmup, config.seed)
    host = kernel_timing.host_overhead(device, b, k, seed=config.seed)
    settings = dataclasses.asdict(config)
    settings["threads"] = torch.get_num_threads()
    settings["numba_threads"] = numba.get_num_threads()
    settings["device"] = device.type
    return {"settings": settings, "max_abs_diff_vs_unfused": max_err, "results": results, "skipped": skipped,
            "bandwidth": bandwidth, "host": host}


def format_table(report):
    """The results of ``run`` as a text table, with how many times faster gpumix is than each variant."""
    rows = report["results"]
    fused = rows[0]["images_per_s"]
    lines = [f"{'variant':<24} {'images/s':>10} {'median ms':>10} {'min-max ms':>15} {'gpumix is':>10}"]
    for r in rows:
        spread = f"{r['min_s'] * 1e3:.1f}-{r['max_s'] * 1e3:.1f}"
        lines.append(f"{r['name']:<24} {r['images_per_s']:>10.0f} {r['median_s'] * 1e3:>10.1f} "
                     f"{spread:>15} {fused / r['images_per_s']:>9.1f}x")
    for s in report.get("skipped", ()):
        lines.append(f"{s['name']:<24} skipped: {s['reason']}")
    bw = report.get("bandwidth")
    if bw:
        where = "device-to-device" if report["settings"]["device"] == "cuda" else "same-process"
        lines.append(f"fused kernel alone {bw['kernel_GBps']:.1f} GB/s = {bw['fraction_of_copy']:.2f} of a {where} "
                     f"copy of the same {bw['bytes'] / 1e6:.0f} MB ({bw['copy_GBps']:.1f} GB/s, read + written)")
    host = report.get("host")
    if host:
        lines.append(f"host per call at B={host['batch_size']}: {host['host_us']:.0f} us beyond the kernel "
                     f"(sample {host['sample_us']:.0f} + call {host['call_us']:.0f} - kernel {host['kernel_us']:.0f})")
    erasing = [r for r in rows if r["name"] == ERASING_VARIANT]
    if erasing:
        extra = 100 * (erasing[0]["median_s"] / rows[0]["median_s"] - 1)
        lines.append(f"random erasing (p=0.25, pixel) adds {extra:+.1f}% to the fused operator")
    lines.append(f"max |fused - unfused| = {report['max_abs_diff_vs_unfused']:.2e}")
    return "\n".join(lines)


def parse_args(argv=None):
    """The command line as an ``OperatorConfig`` and the JSON path; bad values exit 2 naming the flag."""
    p = argparse.ArgumentParser(prog="gpumix-bench-operator", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "gpu", "cpu"), default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="image side in pixels")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--alpha", type=float, default=0.2)
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch and numba threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results and the run record here")
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(OperatorConfig)}
    try:
        config = OperatorConfig(**{k: v for k, v in vars(args).items() if k in fields})
    except (TypeError, ValueError) as e:
        name = str(e).split(" ", 1)[0]
        p.error(f"--{name.replace('_', '-')}: {e}" if name in fields else str(e))
    return config, args.json


def main(argv=None):
    config, json_path = parse_args(argv)
    report = run(config)
    print(format_table(report))
    if json_path:
        device = config.torch_device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        report = {"run": run_record(report["settings"], name), **report}
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
