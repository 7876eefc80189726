"""Operator microbenchmark: the fused ``mix_normalize`` against the chains users write today.

All variants run in one process, on the same uint8 batch, the same mix
parameters and the same threads. Each figure is the median of ``--repeats``
timed calls after ``--warmup`` untimed ones, with min and max shown. On a GPU
it also times a device-to-device copy of the fused kernel's bytes and reports
the kernel's bandwidth as a fraction of it. ``gpumix-bench`` runs this as its
operator section, through ``OperatorConfig`` and ``run``.

    gpumix-bench-operator --batch-size 256 --json op.json
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numba
import torch
from tqdm import tqdm

import gpumix
from gpumix.bench import chains, kernel_timing
from gpumix.bench.config import DEVICES, check_device
from gpumix.bench.fields import add_flags, from_args, option, validate
from gpumix.bench.harness import paired_calls, time_calls
from gpumix.datasets import STATS
from gpumix.device import resolve_device
from gpumix.kernels.reference import unfused_chain
from gpumix.runinfo import run_record
from gpumix.validation import check_bool, check_float, check_int

__all__ = ["DTYPES", "ERASING_VARIANT", "OperatorConfig", "format_table", "main", "parse_args", "run"]

# the operator is timed with ImageNet's statistics (torchvision's, in pixel units)
MEAN, STD = STATS["imagenet"].mean, STATS["imagenet"].std
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The fused operator with random erasing in the same pass (its cost over mixup alone is reported).
ERASING_VARIANT = "gpumix fused + erasing"


def _int_at_least(minimum: int) -> Callable[[str, Any], int]:
    return lambda name, value: check_int(name, value, minimum)


def _dtype(name: str, value: Any) -> str:
    if value not in DTYPES:
        raise ValueError(f"{name} must be one of {', '.join(DTYPES)}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """Settings of one operator microbenchmark run; ``__post_init__`` checks every field, naming it.

    Each field's meaning is its ``help`` (``gpumix-bench-operator --help`` shows them).
    """

    device: str = option("auto", "where it runs: auto (the GPU if usable), gpu or cpu", check=check_device,
                         choices=DEVICES)
    batch_size: int = option(256, "images per call", check=_int_at_least(1), type=int)
    size: int = option(224, "image side in pixels", check=_int_at_least(1), type=int)
    num_classes: int = option(1000, "K of the targets", check=_int_at_least(2), type=int)
    alpha: float = option(0.2, "mixup's Beta(alpha, alpha)",
                          check=lambda name, value: check_float(name, value, 0.0, float("inf")), type=float)
    dtype: str = option("fp32", "output dtype", check=_dtype, choices=tuple(DTYPES))
    channels_last: bool = option(False, "channels_last output instead of NCHW", check=check_bool)
    threads: int = option(0, "torch and numba threads (0: leave them as they are, all cores)",
                          check=_int_at_least(0), type=int)
    warmup: int = option(2, "untimed calls per variant", check=_int_at_least(0), type=int)
    repeats: int = option(7, "timed calls per variant", check=_int_at_least(1), type=int)
    # On the 2-core CPU single pairs scatter by +-5 points: 37 pairs gave medians from +2 to +7% for the same
    # code, 401 give a 95% interval about 1-2 points wide (docs/benchmarks.md, seventh pass on erasing).
    erasing_pairs: int = option(401, "interleaved pairs of calls timing random erasing's cost over mixup alone",
                                check=_int_at_least(1), type=int)
    seed: int = option(0, "seed of the batch and the mix parameters", check=_int_at_least(0), type=int)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def torch_device(self) -> torch.device:
        return torch.device("cuda" if resolve_device(self.device) == "gpu" else "cpu")


def _measure(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = time_calls(device, fn, repeats)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "peak_bytes": peak}


def _variants(config: OperatorConfig, batch: torch.Tensor, labels: torch.Tensor, params: Any,
              dtype: torch.dtype) -> tuple[dict[str, Callable[[], Any]], list[dict[str, str]]]:
    """(variants by name, skipped [{name, reason}]): every chain over the same batch and parameters."""
    common: dict[str, Any] = dict(mean=MEAN, std=STD, dtype=dtype, channels_last=config.channels_last)
    k = config.num_classes
    # DeiT's random erasing (timm --reprob 0.25 --remode pixel), drawn once like the mix parameters
    erasing = gpumix.RandomErasing(prob=0.25, mode="pixel", seed=config.seed).sample(
        batch.shape[0], (batch.shape[1], batch.shape[2]), batch.shape[3], epoch=0, step=0)
    found: dict[str, Callable[[], Any]] = {
        "gpumix fused": lambda: gpumix.mix_normalize(batch, labels, params, num_classes=k, **common),
        ERASING_VARIANT: lambda: gpumix.mix_normalize(batch, labels, params, num_classes=k, erasing=erasing, **common),
        "unfused torch chain": lambda: unfused_chain(batch, labels, params, num_classes=k, **common),
    }
    skipped = []
    try:
        from timm.data import Mixup as timm_mixup
    except ImportError:
        timm_mixup = None  # type: ignore[misc,assignment]  # timm is optional (the bench extra)
    for mode in ("batch", "elem"):
        name = f"timm Mixup ({mode})"
        if timm_mixup is None:
            skipped.append({"name": name, "reason": "timm is not installed (pip install -e '.[bench]')"})
        elif config.batch_size % 2:
            skipped.append({"name": name, "reason": f"timm's Mixup needs an even batch, got {config.batch_size}"})
        else:
            fn = timm_mixup(mixup_alpha=config.alpha, mode=mode, num_classes=k, label_smoothing=0.0)
            found[name] = (lambda f: lambda: chains.timm_chain(f, batch, labels, **common))(fn)
    from torchvision.transforms import v2
    tv = v2.MixUp(alpha=config.alpha, num_classes=k)
    found["torchvision v2.MixUp"] = lambda: chains.torchvision_chain(tv, batch, labels, **common)
    return found, skipped


def run(config: OperatorConfig, progress: bool = True) -> dict[str, Any]:
    """Run every variant of ``config`` (an ``OperatorConfig``); return the JSON-ready result dict.

    ``results`` holds one entry per variant, gpumix first: name, images_per_s
    (batch over the median time) with min_/max_images_per_s, median_s,
    min_s, max_s and peak_bytes (GPU only); ``bandwidth`` the kernel alone
    against a copy of the same bytes, ``host`` the host's time per call
    (``gpumix.bench.kernel_timing``) and ``erasing`` random erasing's cost
    over mixup alone (``harness.paired_calls``, ``erasing_pairs`` pairs).
    """
    if not isinstance(config, OperatorConfig):
        raise TypeError(f"config must be an OperatorConfig, got {type(config).__name__}")
    device = config.torch_device
    if config.threads:
        torch.set_num_threads(config.threads)
        numba.set_num_threads(min(config.threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
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
    ref_img, ref_tgt = unfused_chain(batch, labels, params, mean=MEAN, std=STD, num_classes=k,
                                            dtype=torch.float32, channels_last=config.channels_last)
    max_err = float((fused_img.float() - ref_img).abs().max())
    del fused_img, fused_tgt, ref_img, ref_tgt

    results = []
    variants, skipped = _variants(config, batch, labels_dev if device.type == "cuda" else labels, params, dtype)
    for name, fn in tqdm(variants.items(), desc="operator", unit="variant", disable=not progress):
        stats = _measure(fn, device, config.warmup, config.repeats)
        results.append({"name": name, "images_per_s": b / stats["median_s"],
                        "min_images_per_s": b / stats["max_s"], "max_images_per_s": b / stats["min_s"], **stats})

    # Erasing's cost over mixup alone, in interleaved pairs of calls (the rows above run one after the other,
    # and this machine's speed drifts by more than the difference).
    erasing = paired_calls(device, variants["gpumix fused"], variants[ERASING_VARIANT], config.erasing_pairs,
                           warmup=1)
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
            "bandwidth": bandwidth, "host": host, "erasing": erasing}


def format_table(report: dict[str, Any]) -> str:
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
    erasing = report.get("erasing")
    if erasing:
        interval = ("" if erasing["ci_low"] is None else f"{100 * erasing['ci_level']:.0f}% interval "
                    f"{100 * erasing['ci_low']:+.1f}% to {100 * erasing['ci_high']:+.1f}%, ")
        lines.append(f"random erasing (p=0.25, pixel) adds {100 * erasing['median']:+.1f}% to the fused operator "
                     f"(median of {erasing['pairs']} interleaved pairs of calls; {interval}quartiles "
                     f"{100 * erasing['q1']:+.1f}% to {100 * erasing['q3']:+.1f}%)")
    lines.append(f"max |fused - unfused| = {report['max_abs_diff_vs_unfused']:.2e}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> tuple[OperatorConfig, str | None]:
    """The command line as an ``OperatorConfig`` and the JSON path; bad values exit 2 naming the flag."""
    p = argparse.ArgumentParser(prog="gpumix-bench-operator", description=(__doc__ or "").splitlines()[0])
    flags = add_flags(p, OperatorConfig)
    p.add_argument("--json", metavar="PATH", help="write the results and the run record here")
    args = p.parse_args(argv)
    return from_args(p, OperatorConfig, flags, args), args.json


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gpumix-bench-operator``: print the table, write the JSON if asked; 0 on success."""
    from gpumix.bench.report import write_json

    config, json_path = parse_args(argv)
    report = run(config)
    print(format_table(report))
    if json_path:
        device = config.torch_device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        write_json(json_path, {"run": run_record(report["settings"], name), **report})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
