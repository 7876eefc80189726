"""Checkpoints: atomic writes, weights_only loads, and the random-number state of torch, Python and NumPy.

``save_checkpoint`` writes through ``gpumix.atomic`` (a temporary file
beside the target, fsync, rename, fsync of the folder), so a crash or a full
disk leaves the previous checkpoint whole. It refuses, before writing anything,
state that ``torch.load(weights_only=True)`` could not read back (NumPy
values, enums, custom classes). ``load_checkpoint`` never unpickles code.
"""
import collections
import errno
import os
import pickle
import random
import re

import numpy as np
import torch

from gpumix.atomic import atomic_writer

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "rng_state", "set_rng_state"]

CHECKPOINT_NAME = "checkpoint.pt"  # the one checkpoint file the trainer keeps in its output folder

_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)
_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set)


def _check_loadable(value, where):
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

    def __init__(self, f):
        self._f = f
        self.error = None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        self._f.flush()


def save_checkpoint(path, state):
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
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is not None:  # torch.save wraps the OSError of a full disk in a RuntimeError
                raise writer.error from None
            raise


def _refusal_reason(message):
    """torch's one-line reason (such as the blocked global) from its long weights_only error, or ''."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", message) if p.strip()]
    found = [p for p in paragraphs if not p.startswith(boilerplate)]
    return f" ({' '.join(found[-1].split()).rstrip('.')})" if found else ""


def load_checkpoint(path):
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


def latest_checkpoint(directory):
    """``directory/checkpoint.pt`` if that file exists, else None."""
    path = os.path.join(os.fspath(directory), CHECKPOINT_NAME)
    return path if os.path.isfile(path) else None


def rng_state():
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


def set_rng_state(state):
    """Restore a ``rng_state()`` dict. CUDA states are restored when CUDA is available and some were saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
