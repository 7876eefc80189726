"""The ``gpumix-bench`` report as a PNG bar chart: loaders and operator, images/s with their min-max."""
from __future__ import annotations

import os
import textwrap
from typing import Any

from gpumix.atomic import atomic_writer

__all__ = ["plot_report"]

_GPUMIX, _OTHER = "#d9534f", "#5b7fa6"


def _panel(ax: Any, rows: list[dict[str, Any]], title: str) -> None:
    names = [textwrap.fill(r["name"], 44) for r in rows]
    rates = [r["images_per_s"] for r in rows]
    low = [r["images_per_s"] - r["min_images_per_s"] for r in rows]
    high = [r["max_images_per_s"] - r["images_per_s"] for r in rows]
    y = list(range(len(rows)))[::-1]
    ax.barh(y, rates, xerr=[low, high], color=[_GPUMIX] + [_OTHER] * (len(rows) - 1), capsize=3,
            error_kw={"elinewidth": 1})
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("images/s (median; bars: min-max)")
    ax.set_title(title, fontsize=10, loc="left")
    top = max(r["max_images_per_s"] for r in rows)
    ax.set_xlim(0, top * 1.25)
    for i, (yi, r) in enumerate(zip(y, rows)):
        label = f"{r['images_per_s']:.0f}" + ("" if i == 0 else f"  (gpumix is {r['gpumix_is']:.2f}x)")
        ax.text(r["max_images_per_s"] + top * 0.01, yi, label, va="center", fontsize=8)


def plot_report(report: dict[str, Any], path: str | os.PathLike) -> str | os.PathLike:
    """Draw ``report`` (from ``gpumix.bench.runner.run``) into the PNG file ``path``, written atomically.

    Uses matplotlib's Agg canvas directly, so no GUI backend is touched and
    the global backend is left as it is. Labels show images/s and how many
    times faster gpumix is.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    loaders, op = report["loaders"], report["operator"]
    run = report["run"]
    rows = len(loaders["results"]) + len(op["results"])
    fig = Figure(figsize=(10, 1.6 + 0.42 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, height_ratios=[len(loaders["results"]), len(op["results"])])
    _panel(axes[0], loaders["results"],
           f"End to end: training-ready mixed batches, batch {loaders['batch_size']}, "
           f"{loaders['threads']} threads/workers, median of {loaders['rounds']} interleaved turns")
    s = op["settings"]
    _panel(axes[1], op["results"],
           f"Operator only: batch {s['batch_size']}, {s['size']}x{s['size']} uint8 -> {s['dtype']}, "
           f"median of {s['repeats']} calls")
    machine = run["machine"]
    fig.suptitle(f"gpumix-bench, {run['date'][:10]}, git {(run['git'] or 'unknown')[:10]}, {run['device']} "
                 f"({machine.get('cpu_model') or machine['processor']}, {machine['cpu_count']} cores); "
                 f"{report['data']['kind']} data" + (" (embedded default)" if report["data"]["embedded_default"]
                                                     else ""), fontsize=10)
    with atomic_writer(path, "the plot ") as f:
        fig.savefig(f, format="png", dpi=110)
    return path
