"""One whole ``gpumix-bench`` run for a ``BenchConfig``: the loaders, then the operator, as a JSON-ready report."""
from __future__ import annotations

import dataclasses
import gc
from typing import Any

import torch

from gpumix.bench import loaders, operator
from gpumix.bench.config import BenchConfig, usable_cores
from gpumix.bench.data import DataSpec, resolve_data
from gpumix.bench.harness import auto_augment_cost, measure, paired_overhead
from gpumix.bench.variants import ALPHA, LoaderSettings
from gpumix.runinfo import run_record

__all__ = ["run", "with_ratios"]


def _cpu_model() -> str:
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


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (gpumix first) with ``gpumix_is``: how many times gpumix's images/s each row's is."""
    gpumix_rate = rows[0]["images_per_s"]
    for r in rows:
        r["gpumix_is"] = gpumix_rate / r["images_per_s"]
    return rows


def run(config: BenchConfig, spec: DataSpec | None = None) -> dict[str, Any]:
    """Run the whole benchmark for ``config``; return the JSON-ready report.

    ``spec``: the data, already resolved from ``config.data`` (None: resolve it here).
    """
    if not isinstance(config, BenchConfig):
        raise TypeError(f"config must be a BenchConfig, got {type(config).__name__}")
    spec = spec or resolve_data(config.data, num_classes=config.num_classes, image_size=config.image_size)
    threads = config.threads or usable_cores()
    torch.set_num_threads(threads)  # numba's come in loaders.prepare_process, after the workers fork
    device = "gpu" if config.gpu else "cpu"
    batch_size = config.batch_size or (256 if device == "gpu" else 64)
    settings = LoaderSettings(batch_size=batch_size, threads=threads, device=device, seed=config.seed)
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
        alpha=ALPHA, threads=threads, warmup=min(config.warmup, 2), repeats=config.repeats,
        seed=config.seed), progress=config.progress)
    with_ratios(op["results"])
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
                        "results": with_ratios(rows), "skipped": skipped,
                        "mixup_overhead": paired_overhead(rows),
                        "antialias_overhead": paired_overhead(rows, "gpumix", "gpumix_aliased"),
                        "auto_augment_cost": auto_augment_cost(rows, threads, config.auto_augment)},
            "operator": op}
