"""Training metrics as JSON lines (``OUTPUT/metrics.jsonl``) and their plot.

Each line is one JSON object. The plot reads records with ``"kind": "step"``
(fields ``step``, ``loss``) and ``"kind": "epoch"`` (fields ``epoch``,
``top1``, ``top5``); other records are kept in the file and ignored by the plot.
"""
import json
import os

from gpumix.atomic import atomic_writer, write_atomically

__all__ = ["METRICS_NAME", "MetricsLog", "read_metrics", "plot_metrics", "plot_runs", "error_summary"]

METRICS_NAME = "metrics.jsonl"


class MetricsLog:
    """Appends one JSON line per ``write(record)`` to ``output/metrics.jsonl``, flushed at once.

    Lines already in the file are kept, except with ``keep_through_step``: the
    step the run starts from (0 for a fresh run, the checkpoint's step on
    resume). Lines with a larger ``"step"`` were written after that checkpoint
    by a run that then died; they are dropped (the file is rewritten
    atomically) so the resumed run does not log those steps twice. Lines
    without an integer step are kept.
    Use as a context manager or call ``close()``.
    """

    def __init__(self, output, *, keep_through_step=None):
        output = os.fspath(output)
        if keep_through_step is not None and (isinstance(keep_through_step, bool)
                                              or not isinstance(keep_through_step, int) or keep_through_step < 0):
            raise ValueError(f"keep_through_step must be None or an int >= 0, got {keep_through_step!r}")
        os.makedirs(output, exist_ok=True)
        self.path = os.path.join(output, METRICS_NAME)
        if keep_through_step is not None and os.path.exists(self.path):
            self._drop_after(keep_through_step)
        self._file = open(self.path, "a", encoding="utf-8")

    def _drop_after(self, step):
        records = read_metrics(self.path)
        kept = [r for r in records if not isinstance(r.get("step"), int) or r["step"] <= step]
        if len(kept) == len(records):
            return
        write_atomically(self.path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in kept), "metrics ")

    def write(self, record):
        """Write ``record`` (a dict of JSON-serializable values) as one line; an OSError names the file."""
        if not isinstance(record, dict):
            raise TypeError(f"record must be a dict, got {type(record).__name__}")
        line = json.dumps(record, allow_nan=True)
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as e:  # a full disk: say which file
            raise OSError(e.errno, f"writing metrics {self.path}: {e.strerror or e}") from e

    def close(self):
        try:
            self._file.close()  # flushes what a failed write left in the buffer
        except OSError as e:
            raise OSError(e.errno, f"writing metrics {self.path}: {e.strerror or e}") from e

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path):
    """The records of a metrics.jsonl file, in order, as a list of dicts (blank lines skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {number} is not JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {number} is a {type(record).__name__}, not a JSON object")
            records.append(record)
    return records


def error_summary(path, last=5):
    """Top-1 test error of a run from its metrics.jsonl epoch records (1 - top1).

    Returns ``{"best": min error, "best_epoch": its epoch (the first if tied),
    "last_mean": mean error of the last ``last`` epoch records, "last_epochs":
    how many were averaged, "epochs": the last epoch}``. ValueError naming
    ``path`` if it holds no epoch record with top1; ``last`` >= 1.
    """
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ValueError(f"last must be an int >= 1, got {last!r}")
    epochs = [r for r in _plotted(read_metrics(path))[1] if "top1" in r]
    if not epochs:
        raise ValueError(f"{path}: no epoch records with top1")
    errors = [1.0 - r["top1"] for r in epochs]
    best = min(range(len(errors)), key=errors.__getitem__)
    tail = errors[-last:]
    return {"best": errors[best], "best_epoch": epochs[best]["epoch"], "last_mean": sum(tail) / len(tail),
            "last_epochs": len(tail), "epochs": epochs[-1]["epoch"]}


def _plotted(records):
    """The step records (with step and loss) and the epoch records (with epoch) among ``records``."""
    steps = [r for r in records if r.get("kind") == "step" and "step" in r and "loss" in r]
    epochs = [r for r in records if r.get("kind") == "epoch" and "epoch" in r]
    return steps, epochs


def _loss_and_accuracy_axes(caller):
    """A figure on matplotlib's Agg canvas (no display, no pyplot state) and its loss and accuracy axes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"{caller} needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, 2)


def plot_metrics(jsonl_path, png_path):
    """Draw training loss vs step and validation top-1/top-5 vs epoch into a PNG; returns ``png_path``.

    Rendered with matplotlib's Agg canvas (no display, no pyplot state).
    ValueError if the file has no step or epoch records.
    """
    steps, epochs = _plotted(read_metrics(jsonl_path))
    if not steps and not epochs:
        raise ValueError(f"{jsonl_path}: no records to plot (need kind 'step' with step and loss, "
                         f"or kind 'epoch' with epoch, top1 and top5)")
    fig, (loss_ax, acc_ax) = _loss_and_accuracy_axes("plot_metrics")
    loss_ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], linewidth=0.8)
    loss_ax.set(xlabel="step", ylabel="training loss", title="training loss")
    for key in ("top1", "top5"):
        points = [(r["epoch"], r[key]) for r in epochs if key in r]
        if points:
            acc_ax.plot(*zip(*points), marker="o", markersize=3, label=key.replace("top", "top-"))
    if acc_ax.lines:
        acc_ax.legend()
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    for ax, data in ((loss_ax, steps), (acc_ax, epochs)):
        if not data:
            ax.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    with atomic_writer(png_path, "plot ") as f:  # whole or unchanged, like every file gpumix writes
        fig.savefig(f, format="png", dpi=100)
    return png_path


def _running_mean(values, window):
    """Means of each ``window`` consecutive values (len(values) - window + 1 of them; all of them if fewer)."""
    window = min(window, len(values))
    if window <= 1:
        return list(values)
    sums = [0.0]
    for v in values:
        sums.append(sums[-1] + v)
    return [(sums[i + window] - sums[i]) / window for i in range(len(values) - window + 1)]


def plot_runs(runs, png_path, *, smooth=1, title=None):
    """Compare runs in one PNG: training loss vs step and validation top-1 vs epoch, one line per run.

    ``runs`` maps a label to a metrics.jsonl path (a dict, in legend order).
    ``smooth``: the loss is a running mean over that many steps (1 = raw),
    drawn at the window's last step. ValueError for an empty ``runs``, a
    ``smooth`` below 1, or a run with neither step nor epoch records (named).
    Returns ``png_path``.
    """
    if not isinstance(runs, dict) or not runs:
        raise ValueError(f"runs must be a non-empty dict of label -> metrics.jsonl path, got {runs!r}")
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"smooth must be an int >= 1, got {smooth!r}")
    loaded = {}
    for label, path in runs.items():
        steps, epochs = _plotted(read_metrics(path))
        epochs = [r for r in epochs if "top1" in r]
        if not steps and not epochs:
            raise ValueError(f"run {label!r}: {path} has no step or epoch records to plot")
        loaded[label] = (steps, epochs)
    fig, (loss_ax, acc_ax) = _loss_and_accuracy_axes("plot_runs")
    for label, (steps, epochs) in loaded.items():
        color = None
        if steps:
            mean = _running_mean([r["loss"] for r in steps], smooth)
            (line,) = loss_ax.plot([r["step"] for r in steps][len(steps) - len(mean):], mean, linewidth=0.9,
                                   label=label)
            color = line.get_color()
        if epochs:
            acc_ax.plot([r["epoch"] for r in epochs], [r["top1"] for r in epochs], linewidth=1.0, label=label,
                        color=color)
    loss_ax.set(xlabel="step", ylabel="training loss" + (f" (mean of {smooth} steps)" if smooth > 1 else ""),
                title="training loss")
    acc_ax.set(xlabel="epoch", ylabel="validation top-1", title="validation top-1")
    for ax in (loss_ax, acc_ax):
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    with atomic_writer(png_path, "plot ") as f:  # whole or unchanged, like every file gpumix writes
        fig.savefig(f, format="png", dpi=100)
    return png_path
