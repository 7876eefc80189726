"""``gpumix-attack``: top-1 error of a trainer checkpoint under FGSM and I-FGSM, white-box or black-box.

The mixup paper's Table 3 attacks, on a CIFAR-format test split (such as
``gpumix-make-fashion``'s). Perturbations live on the 0-255 pixel scale, as in
the paper: FGSM moves every pixel by ``eps`` in the direction of the sign of
the loss gradient; I-FGSM takes ``steps`` steps of ``eps / steps``, each time
projecting back into the ``eps`` ball around the image. Adversarial pixels are
clamped to [0, 255] and kept as floats (not rounded to integers). Gradients go
through ``normalize_pixels``, the trainer's normalization arithmetic
(``gpumix.normalize``'s ``(x - mean) * (1 / std)`` in float32), into the model
in eval mode. With ``--source``, the examples are made on the source model and
classified by the target (black-box); otherwise on the target itself.

    gpumix-attack runs/erm/checkpoint.pt --data fashion --eps 1 2 4 8 --steps 10 --limit 1000 --json erm.json
    gpumix-attack runs/mixup/checkpoint.pt --data fashion --source runs/erm/checkpoint.pt --json bb.json
"""
import argparse
import dataclasses
import json
import math
import os
import pickle
import sys
from typing import Any

__all__ = ["AttackConfig", "AttackModel", "normalize_pixels", "load_attack_model", "fgsm", "ifgsm", "attack",
           "read_results", "plot_attack_errors", "build_parser", "main"]

ATTACKS = ("fgsm", "ifgsm")
DEVICES = ("auto", "cuda", "cpu")


@dataclasses.dataclass
class AttackConfig:
    """The settings of one gpumix-attack run; validated on construction, errors name the field and the value.

    ``eps``: perturbation sizes in pixel units (0-255 scale), each finite and
    >= 0, at least one, no repeats; ``steps``: I-FGSM iterations (step size
    ``eps / steps``); ``source``: the checkpoint that makes the examples (None:
    the target itself, white-box); ``limit``: attack only the first ``limit``
    test images (None: all); ``json``: where the results are written.
    """

    checkpoint: str
    data: str
    json: str
    eps: tuple = (4.0,)
    steps: int = 10
    source: str | None = None
    limit: int | None = None
    batch_size: int = 250
    device: str = "cpu"

    def __post_init__(self):
        from gpumix.validation import check_float, check_int, check_text

        self.checkpoint = check_text("checkpoint", self.checkpoint)
        self.data = check_text("data", self.data)
        self.json = check_text("json", self.json)
        self.source = check_text("source", self.source, optional=True)
        if isinstance(self.eps, (str, bytes)) or not hasattr(self.eps, "__iter__"):
            raise TypeError(f"eps must be a sequence of floats, got {self.eps!r}")
        eps = tuple(check_float(f"eps[{i}]", e, 0.0, math.inf) for i, e in enumerate(self.eps))
        if not eps:
            raise ValueError("eps must hold at least one value, got ()")
        if len(set(eps)) != len(eps):
            raise ValueError(f"eps must not repeat a value, got {eps!r}")
        self.eps = eps
        self.steps = check_int("steps", self.steps, 1)
        self.limit = None if self.limit is None else check_int("limit", self.limit, 1)
        self.batch_size = check_int("batch_size", self.batch_size, 1)
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(map(repr, DEVICES))}, got {self.device!r}")

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["eps"] = list(self.eps)
        return values


def normalize_pixels(pixels, mean, std):
    """``(pixels - mean[c]) * (1 / std[c])`` in float32: ``gpumix.normalize``'s arithmetic, differentiable.

    ``pixels``: float32 (B, C, H, W) on the 0-255 scale (not modified);
    ``mean``, ``std``: C floats in pixel units. The constants are rounded to
    float32 as the fused kernel rounds them (``1 / std`` taken in double), so on
    integer pixels the result equals ``gpumix.normalize`` bit for bit.
    Returns a new float32 (B, C, H, W) tensor.
    """
    import torch

    mean_t = torch.tensor(mean, dtype=torch.float32, device=pixels.device).view(1, -1, 1, 1)
    inv_std = torch.tensor([1.0 / s for s in std], dtype=torch.float32, device=pixels.device).view(1, -1, 1, 1)
    return (pixels - mean_t) * inv_std


@dataclasses.dataclass
class AttackModel:
    """A trainer checkpoint's model in eval mode, with the statistics and layout it was trained with."""

    model: object
    mean: tuple
    std: tuple
    channels_last: bool
    dataset: str
    path: str
    step: int | None
    last_eval: dict | None

    def logits(self, pixels):
        """Float32 logits (B, K) of float32 pixels (B, C, H, W) on the 0-255 scale; differentiable in ``pixels``."""
        import torch

        x = normalize_pixels(pixels, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x).float()


def load_attack_model(path: str | os.PathLike, device: Any = "cpu") -> AttackModel:
    """An ``AttackModel`` from a gpumix-train checkpoint, loaded with ``weights_only=True`` (nothing is run).

    ValueError if ``path`` is not a trainer checkpoint or its run did not train
    on a CIFAR-format dataset (``gpumix.train.checkpoint.load_trained_model``'s checks).
    """
    import torch

    from gpumix.datasets import STATS
    from gpumix.train.checkpoint import load_trained_model

    trained = load_trained_model(path, "gpumix-attack", device)
    model = trained.model
    channels_last = bool(trained.config.get("channels_last", False))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    stats = STATS[trained.dataset]
    return AttackModel(model=model, mean=stats.mean, std=stats.std, channels_last=channels_last,
                       dataset=trained.dataset, path=trained.path, step=trained.step, last_eval=trained.last_eval)


def _input_gradient_sign(source, pixels, labels):
    import torch
    import torch.nn.functional as F

    x = pixels.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(source.logits(x), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def fgsm(source, pixels, labels, eps):
    """FGSM: ``clamp(pixels + eps * sign(d CE / d pixels), 0, 255)``, the gradient taken through ``source``.

    ``pixels``: float32 (B, C, H, W) on the 0-255 scale (not modified);
    ``labels``: int64 (B,); ``eps`` >= 0 in pixel units. Returns new float32
    pixels; ``eps == 0`` returns a copy of ``pixels`` without a gradient.
    """
    if eps == 0:
        return pixels.clone()
    return (pixels + eps * _input_gradient_sign(source, pixels, labels)).clamp(0.0, 255.0)


def ifgsm(source, pixels, labels, eps, steps):
    """I-FGSM: ``steps`` FGSM steps of ``eps / steps``, each projected onto the ``eps`` ball and [0, 255].

    Arguments and result as ``fgsm``; ``steps`` >= 1.
    """
    import torch

    if eps == 0:
        return pixels.clone()
    step = eps / steps
    low, high = (pixels - eps).clamp_min(0.0), (pixels + eps).clamp_max(255.0)
    x = pixels.clone()
    for _ in range(steps):
        x = x + step * _input_gradient_sign(source, x, labels)
        x = torch.minimum(torch.maximum(x, low), high)
    return x


def _predictions(target, images):
    import torch

    with torch.no_grad():
        return target.logits(images).argmax(1)


def attack(cfg: AttackConfig) -> dict[str, Any]:
    """Run ``cfg`` (an AttackConfig); returns ``{"results": [...], "run": {...}}`` and writes it to ``cfg.json``.

    One result per (attack, eps), FGSM first: ``{"attack", "eps", "top1_error",
    "source", "n"}``, ``source`` the source checkpoint's path or None. The
    test split's first ``cfg.limit`` images are attacked, in ``batch_size``
    batches; nothing is modified on disk but ``cfg.json``.
    """
    import numpy as np
    import torch

    from gpumix.atomic import write_atomically
    from gpumix.pipelines.cifar_files import load_cifar
    from gpumix.runinfo import run_record
    from gpumix.train.dist import resolve_device

    device = resolve_device(cfg.device, 0)
    target = load_attack_model(cfg.checkpoint, device)
    source = target if cfg.source is None else load_attack_model(cfg.source, device)
    if source.dataset != target.dataset:
        raise ValueError(f"source: {cfg.source} was trained on {source.dataset}, the target {cfg.checkpoint} on "
                         f"{target.dataset}; a black-box attack needs the same classes")
    images, labels = load_cifar(cfg.data, target.dataset, "test")
    if cfg.limit is not None:
        images, labels = images[:cfg.limit], labels[:cfg.limit]
    wrong = {(kind, eps): 0 for kind in ATTACKS for eps in cfg.eps}
    for start in range(0, len(images), cfg.batch_size):
        # uint8 HWC -> float32 CHW pixels on the 0-255 scale; integer values, as the trainer's pipeline feeds them
        pixels = torch.from_numpy(np.ascontiguousarray(images[start:start + cfg.batch_size].transpose(0, 3, 1, 2)))
        pixels = pixels.to(device, torch.float32)
        y = torch.from_numpy(labels[start:start + cfg.batch_size].astype(np.int64)).to(device)
        for eps in cfg.eps:
            for kind in ATTACKS:
                adv = fgsm(source, pixels, y, eps) if kind == "fgsm" else ifgsm(source, pixels, y, eps, cfg.steps)
                wrong[(kind, eps)] += int((_predictions(target, adv) != y).sum())
    n = len(images)
    results = [{"attack": kind, "eps": eps, "top1_error": wrong[(kind, eps)] / n, "source": cfg.source, "n": n}
               for kind in ATTACKS for eps in cfg.eps]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    settings = {**cfg.to_dict(), "checkpoint_step": target.step, "source_step": source.step,
                "checkpoint_last_eval": target.last_eval}
    out = {"results": results, "run": run_record(settings, device_name)}
    write_atomically(cfg.json, json.dumps(out, indent=2))
    return out


def read_results(path: str | os.PathLike) -> list[dict]:
    """The ``results`` list of a gpumix-attack JSON file; ValueError naming ``path`` if it has none."""
    with open(path, encoding="utf-8") as f:
        try:
            out = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e.msg})") from None
    if not isinstance(out, dict) or not isinstance(out.get("results"), list):
        raise ValueError(f"{path}: not a gpumix-attack result (no results list)")
    return out["results"]


def plot_attack_errors(runs, png_path, *, title=None, dashed=()):
    """Top-1 error against eps, one panel per attack (FGSM, I-FGSM), one line per run; returns ``png_path``.

    ``runs`` maps a label to a gpumix-attack JSON path (a dict, in legend
    order); a label may map to a list of paths, whose errors at each eps are
    averaged (seeds), the spread drawn as a band from min to max; the labels in
    ``dashed`` are drawn dashed (black-box runs, say). Rendered on
    matplotlib's Agg canvas (no display, no pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(runs, dict) or not runs:
        raise ValueError(f"runs must be a non-empty dict of label -> JSON path(s), got {runs!r}")
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = dict(zip(ATTACKS, fig.subplots(1, 2, sharey=True)))
    for label, paths in runs.items():
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        per_run = [read_results(p) for p in paths]
        for kind, ax in axes.items():
            eps = sorted({r["eps"] for r in per_run[0] if r["attack"] == kind})
            errors = [[next(r["top1_error"] for r in results if r["attack"] == kind and r["eps"] == e) for e in eps]
                      for results in per_run]
            mean = [sum(col) / len(col) for col in zip(*errors)]
            (line,) = ax.plot(eps, mean, marker="o", linewidth=1.2, label=label,
                              linestyle="--" if label in dashed else "-")
            if len(errors) > 1:
                ax.fill_between(eps, [min(col) for col in zip(*errors)], [max(col) for col in zip(*errors)],
                                color=line.get_color(), alpha=0.2)
    for kind, ax in axes.items():
        ax.set(xlabel="eps (pixels, 0-255 scale)", ylabel="top-1 error", title=kind.upper().replace("IF", "I-F"),
               ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    from gpumix.atomic import atomic_writer

    with atomic_writer(png_path, "plot ") as f:  # whole or unchanged, like every file gpumix writes
        fig.savefig(f, format="png", dpi=100)
    return png_path


_HELP = {
    "checkpoint": "the target: a gpumix-train checkpoint.pt",
    "data": "the CIFAR-format folder whose test split is attacked",
    "json": "write the results here",
    "eps": "perturbation sizes in pixel units on the 0-255 scale",
    "steps": "I-FGSM iterations, each of eps / steps",
    "source": "make the examples on this checkpoint instead (black-box attack on the target)",
    "limit": "attack only the first N test images (default: all)",
    "batch_size": "images per forward/backward pass",
    "device": "where to run",
}


def build_parser() -> argparse.ArgumentParser:
    """gpumix-attack's parser, one flag per AttackConfig field, defaults from the config."""
    defaults = {f.name: f.default for f in dataclasses.fields(AttackConfig)
                if f.default is not dataclasses.MISSING}
    parser = argparse.ArgumentParser(prog="gpumix-attack", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help=_HELP["checkpoint"])
    parser.add_argument("--data", required=True, help=_HELP["data"])
    parser.add_argument("--json", required=True, metavar="PATH", help=_HELP["json"])
    parser.add_argument("--eps", type=float, nargs="+", default=list(defaults["eps"]), metavar="E",
                   help=f"{_HELP['eps']} (default: {' '.join(map(str, defaults['eps']))})")
    parser.add_argument("--steps", type=int, default=defaults["steps"], metavar="N",
                   help=f"{_HELP['steps']} (default: {defaults['steps']})")
    parser.add_argument("--source", default=None, metavar="CHECKPOINT", help=_HELP["source"])
    parser.add_argument("--limit", type=int, default=None, metavar="N", help=_HELP["limit"])
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"], metavar="N",
                   help=f"{_HELP['batch_size']} (default: {defaults['batch_size']})")
    parser.add_argument("--device", choices=DEVICES, default=defaults["device"],
                   help=f"{_HELP['device']} (default: {defaults['device']})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = AttackConfig(**vars(args))
        out = attack(cfg)
    except (ValueError, TypeError, OSError, RuntimeError, pickle.UnpicklingError) as e:  # pickle: weights_only refusal
        print(f"gpumix-attack: error: {e}", file=sys.stderr)
        return 1
    for r in out["results"]:
        print(f"{r['attack']:>6} eps {r['eps']:g}: top-1 error {r['top1_error']:.4f} on {r['n']} images"
              + (f" (examples from {r['source']})" if r["source"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
