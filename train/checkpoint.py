"""The trainer's checkpoints: their schema, the run identity, the resume checks, and the file I/O.

- ``CHECKPOINT_FORMAT`` and ``training_state``: what a checkpoint holds;
  ``restore_training`` puts it back into a model, optimizer, scaler and RNGs.
- ``RUN_IDENTITY``/``RUN_IDENTITY_DEFAULTS`` and ``prepare_output``: which
  settings must match for ``--resume`` to continue the same run, and the checks.
- ``load_trained_model``: a checkpoint's CIFAR model for the tools that read
  trained runs (``gpumix-attack``, ``gpumix-label-fit``), one set of checks.

``save_checkpoint`` writes through ``gpumix.atomic`` (a temporary file
beside the target, fsync, rename, fsync of the folder), so a crash or a full
disk leaves the previous checkpoint whole. It refuses, before writing anything,
state that ``torch.load(weights_only=True)`` could not read back (NumPy
values, enums, custom classes). ``load_checkpoint`` never unpickles code.
"""
from __future__ import annotations

import collections
import dataclasses
import errno
import os
import pickle
import random
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gpumix.atomic import atomic_writer, remove_partial_writes
from gpumix.datasets import CIFAR_DATASETS, NUM_CLASSES

if TYPE_CHECKING:
    from gpumix.train.config import TrainConfig
    from gpumix.train.dist import Dist

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "RUN_IDENTITY", "RUN_IDENTITY_DEFAULTS",
           "save_checkpoint", "load_checkpoint", "latest_checkpoint", "rng_state", "set_rng_state",
           "training_state", "restore_training", "check_same_run", "prepare_output", "TrainedModel",
           "load_trained_model"]

CHECKPOINT_NAME = "checkpoint.pt"  # the one checkpoint file the trainer keeps in its output folder
CHECKPOINT_FORMAT = "gpumix.train/1"  # the "format" entry of every checkpoint the trainer writes
# Settings that must match for a checkpoint to continue the same run.
RUN_IDENTITY = ("dataset", "arch", "global_batch_size", "seed", "mixup_alpha", "cutmix_alpha", "label_smoothing",
                "loss", "crop", "base_lr", "peak_lr", "warmup_epochs", "milestones", "gamma", "momentum",
                "weight_decay", "nesterov", "amp", "channels_last", "epochs")
# Added later (issue 15): a checkpoint written before them has none and ran with these defaults.
RUN_IDENTITY_DEFAULTS = {"mixup_off_epoch": None, "mixup_mode": "batch", "mixup_prob": 1.0, "mixup_switch_prob": 0.5,
                         "bce_target_thresh": None, "bce_sum": False, "auto_augment": None,
                         "randaug_num_ops": 2, "randaug_magnitude": 9, "optimizer": "sgd", "lr_decay": "step",
                         "min_lr": 0.0, "clip_grad": None, "model_ema_decay": None,
                         "reprob": 0.0, "remode": "const", "recount": 1}

_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)
_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set)


def _check_loadable(value: Any, where: str) -> None:
    """TypeError naming the first value under ``where`` that weights_only loading would refuse."""
    kind = type(value)
    if kind in _LEAVES or isinstance(value, torch.Tensor):
        return
    if kind not in _CONTAINERS:
        raise TypeError(f"checkpoint {where} is a {kind.__module__}.{kind.__qualname__}, which "
                        f"torch.load(weights_only=True) refuses; store tensors, numbers, strings, lists or dicts")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_loadable(key, f"{where} key {key!r}")
            _check_loadable(item, f"{where}[{key!r}]")
    else:
        for i, item in enumerate(value):
            _check_loadable(item, f"{where}[{i}]")


class _RecordingFile:
    """File wrapper that remembers an OSError from ``write``: torch.save re-raises it as a RuntimeError."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self._f.flush()


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (a dict of tensors, numbers, strings, None and lists/tuples/dicts of them) to ``path``.

    Atomic: ``path`` holds either its previous content or all of ``state``.
    OSErrors (a full disk, a missing folder) are raised as OSError with the same
    errno and a message naming ``path``; no temporary file is left behind.
    """
    path = os.fspath(path)
    if not isinstance(state, dict):
        raise TypeError(f"checkpoint state must be a dict, got {type(state).__name__}")
    _check_loadable(state, "state")
    with atomic_writer(path, "checkpoint ") as f:
        writer = _RecordingFile(f)
        try:
            torch.save(state, writer)  # type: ignore[arg-type]  # a file-like with write and flush
        except RuntimeError:
            if writer.error is not None:  # torch.save wraps the OSError of a full disk in a RuntimeError
                raise writer.error from None
            raise


def _refusal_reason(message: str) -> str:
    """torch's one-line reason (such as the blocked global) from its long weights_only error, or ''."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", message) if p.strip()]
    found = [p for p in paragraphs if not p.startswith(boilerplate)]
    return f" ({' '.join(found[-1].split()).rstrip('.')})" if found else ""


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The dict saved at ``path``, with tensors on the CPU; loads with ``weights_only=True`` only.

    FileNotFoundError if ``path`` is missing; pickle.UnpicklingError naming the
    file if it holds anything weights_only loading refuses (such as a pickled
    function call); ValueError if it is truncated or not a checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _refusal_reason(str(e))
        raise pickle.UnpicklingError(
            f"checkpoint {path} was refused by weights_only loading{reason}: it holds something other than "
            f"tensors, numbers, strings and containers (save_checkpoint never writes such files); "
            f"nothing in it was run") from None
    except (RuntimeError, EOFError) as e:
        raise ValueError(f"checkpoint {path} is truncated or not a torch checkpoint: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def latest_checkpoint(directory: str | os.PathLike) -> str | None:
    """``directory/checkpoint.pt`` if that file exists, else None."""
    path = os.path.join(os.fspath(directory), CHECKPOINT_NAME)
    return path if os.path.isfile(path) else None


def rng_state() -> dict:
    """The random-number state of torch (CPU, and every CUDA device when available), ``random`` and NumPy.

    A dict of tensors, lists, ints, floats and strings, safe for ``save_checkpoint``.
    NumPy's state is that of the legacy global generator (``np.random.seed``).
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        "numpy": [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(state: dict) -> None:
    """Restore a ``rng_state()`` dict. CUDA states are restored when CUDA is available and some were saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# --- the schema ------------------------------------------------------------------------------------


def training_state(*, reason: str, step: int, epoch: int, epoch_step: int, world_size: int,
                   model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   schedule: dict, iterators: list, rngs: list, config: dict, last_eval: dict | None,
                   ema: torch.nn.Module | None) -> dict:
    """The dict a trainer checkpoint holds (``CHECKPOINT_FORMAT``), ready for ``save_checkpoint``.

    ``model`` is the bare model (no DDP or compile wrapper); ``iterators`` and
    ``rngs`` hold every rank's train-iterator and ``rng_state()``, by rank;
    ``schedule`` the learning rate at ``step`` and the steps per epoch;
    ``config`` is ``TrainConfig.to_dict()``; ``reason`` says why it was written
    ("epoch", "every" or "max_steps").
    """
    return {
        "format": CHECKPOINT_FORMAT, "reason": reason, "step": step, "epoch": epoch, "epoch_step": epoch_step,
        "world_size": world_size, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(), "schedule": schedule, "iterators": iterators, "rng": rngs,
        "config": config, "last_eval": last_eval, "ema": None if ema is None else ema.state_dict(),
    }


def restore_training(state: dict, *, rank: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scaler: torch.amp.GradScaler, ema: torch.nn.Module | None) -> int:
    """Load a ``training_state`` dict into the bare ``model``, the ``ema``, ``optimizer`` and ``scaler``, and set
    this ``rank``'s random-number state; returns the checkpoint's step."""
    model.load_state_dict(state["model"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"][rank])
    return int(state["step"])


# --- resume --------------------------------------------------------------------------------------


def check_same_run(state: dict, path: str, config: dict, world_size: int) -> None:
    """ValueError (naming ``--resume`` and the setting) unless ``state`` continues the run of ``config``
    (``TrainConfig.to_dict()``) on ``world_size`` ranks: the format, the ranks and the run identity match."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"--resume: {path} is not a gpumix.train checkpoint (format {state.get('format')!r})")
    if state["world_size"] != world_size:
        raise ValueError(f"--resume: {path} was written by {state['world_size']} ranks, this run has "
                         f"{world_size}; resume with the same number of ranks")
    saved = state["config"]
    expected = {**{name: saved[name] for name in RUN_IDENTITY},
                **{name: saved.get(name, default) for name, default in RUN_IDENTITY_DEFAULTS.items()}}
    for name, value in expected.items():
        if value != config[name]:
            raise ValueError(f"--resume: {name} is {config[name]!r} but the checkpoint's run used {value!r}")


def prepare_output(cfg: TrainConfig, output: str, dist: Dist) -> dict | None:
    """The checkpoint state to resume from (``cfg.resume``), or None for a fresh run in ``output``.

    A fresh run refuses an ``output`` that already holds a checkpoint
    (FileExistsError); a resumed one needs one (FileNotFoundError) that passes
    ``check_same_run``. Rank 0 creates ``output`` and removes the temporary
    files a run killed mid-write left there.
    """
    found = latest_checkpoint(output)
    if not cfg.resume:
        if found is not None:
            raise FileExistsError(f"output: {output} already holds a checkpoint ({found}); pass --resume "
                                  "to continue that run, or choose another --output")
        if dist.is_main:
            os.makedirs(output, exist_ok=True)
            remove_partial_writes(os.path.join(output, CHECKPOINT_NAME))  # a run killed mid-write left them
        return None
    if found is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {output} (expected {CHECKPOINT_NAME})")
    state = load_checkpoint(found)
    check_same_run(state, found, cfg.to_dict(), dist.world_size)
    if dist.is_main:
        remove_partial_writes(found)  # the killed run's half-written checkpoint, if it died while saving
    return state


# --- reading trained runs ------------------------------------------------------------------------


@dataclasses.dataclass
class TrainedModel:
    """A trainer checkpoint's model, weights loaded, in eval mode, with what the run recorded about it.

    ``config`` is the run's ``TrainConfig.to_dict()``; ``step`` and
    ``last_eval`` are the checkpoint's (None when absent).
    """

    model: torch.nn.Module
    dataset: str
    config: dict
    path: str
    step: int | None
    last_eval: dict | None


def load_trained_model(path: str | os.PathLike, reader: str, device: str | torch.device = "cpu") -> TrainedModel:
    """The CIFAR model of the gpumix-train checkpoint at ``path`` (loaded with ``weights_only=True``), in eval mode
    on ``device``.

    ``reader`` names the tool in the error that refuses a non-CIFAR run. ValueError
    if ``path`` is not a gpumix-train checkpoint (no model and config, or
    another format) or its run did not train on a CIFAR-format dataset.
    """
    from gpumix.train.models import build_model

    state = load_checkpoint(path)
    if "model" not in state or "config" not in state:
        raise ValueError(f"checkpoint: {path} is not a gpumix-train checkpoint (no model and config)")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: {path} is not a gpumix-train checkpoint (format {state.get('format')!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    config = state["config"]
    dataset = config.get("dataset")
    if dataset not in CIFAR_DATASETS:
        raise ValueError(f"checkpoint: {path} trained on {dataset!r}; {reader} reads CIFAR-format data "
                         f"({', '.join(CIFAR_DATASETS)})")
    model = build_model(config["arch"], config.get("num_classes") or NUM_CLASSES[dataset])
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    return TrainedModel(model=model, dataset=dataset, config=config, path=os.fspath(path), step=state.get("step"),
                        last_eval=state.get("last_eval"))
