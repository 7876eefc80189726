"""The ``gpumix-bench`` report as text tables, and any bench report as a JSON file written atomically."""
from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from typing import Any

from gpumix.atomic import write_atomically

__all__ = ["format_loader_table", "format_report", "median_line", "write_json"]


def write_json(path: str | os.PathLike, report: dict[str, Any], *,
               default: Callable[[Any], Any] | None = None) -> None:
    """Write ``report`` as indented JSON to ``path`` through gpumix's atomic writer.

    ``default``: as ``json.dumps``'s, for values JSON cannot hold (None: they raise TypeError).
    """
    write_atomically(path, json.dumps(report, indent=2, default=default) + "\n", "the report ")


def median_line(name: str, figures: list[float], unit: str, *, width: int, digits: int = 0) -> str:
    """One row: ``name``, the median of ``figures`` in ``unit``, and their min-max."""
    return (f"{name:<{width}} {statistics.median(figures):>9.{digits}f} {unit}  "
            f"({min(figures):.{digits}f}-{max(figures):.{digits}f})")


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def format_loader_table(report: dict[str, Any]) -> str:
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


def format_report(report: dict[str, Any]) -> str:
    """The whole ``gpumix-bench`` report (``runner.run``) as text: the run, the loaders, the operator."""
    from gpumix.bench.operator import format_table

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
                      format_table(report["operator"])])
