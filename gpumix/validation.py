"""gpumix's one validation module: argument checks whose errors name the argument and the bad value."""
import math
import numbers
import os
import typing
from collections.abc import Sequence

import torch

E = typing.TypeVar("E", bound=BaseException)

__all__ = ["OUTPUT_DTYPES", "field_of", "tagged", "check_int", "check_float", "check_bool", "check_text",
           "channel_floats", "check_label_range", "check_output"]

# The dtypes the fused operator writes.
OUTPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_FLOAT32_MAX = torch.finfo(torch.float32).max


def tagged(error: E, field: str) -> E:
    """``error`` marked as being about the setting ``field`` (``field_of``), and returned.

    Every check here tags its errors with the name it was given, so a command
    line maps a refused value back to its flag through ``field_of``, never
    through the message's text.
    """
    setattr(error, "field", field)  # noqa: B010 (builtin exceptions take attributes)
    return error


def field_of(error: BaseException) -> str | None:
    """The setting a ``tagged`` error is about, or None."""
    return getattr(error, "field", None)


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as int; TypeError unless an integer (bools refused), ValueError if < minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise tagged(TypeError(f"{name} must be an int, got {value!r}"), name)
    if value < minimum:
        raise tagged(ValueError(f"{name} must be >= {minimum}, got {value!r}"), name)
    return int(value)


def check_float(name: str, value: object, low: float, high: float, *, high_open: bool = False) -> float:
    """Return ``value`` as float; it must be a finite real in ``[low, high]`` (``[low, high)`` if high_open).

    ``high`` may be ``math.inf`` for no upper bound.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise tagged(TypeError(f"{name} must be a float, got {value!r}"), name)
    value = float(value)
    above = value >= high if high_open else value > high
    if not math.isfinite(value) or value < low or above:
        interval = f"[{low}, {high})" if high_open else (f"[{low}, {high}]" if math.isfinite(high) else f">= {low}")
        raise tagged(ValueError(f"{name} must be {'in ' if math.isfinite(high) else ''}{interval}, got {value!r}"),
                     name)
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value``; TypeError unless it is a bool."""
    if not isinstance(value, bool):
        raise tagged(TypeError(f"{name} must be a bool, got {value!r}"), name)
    return value


def channel_floats(name: str, values: Sequence[float] | torch.Tensor, channels: int) -> list[float]:
    """``values`` (a sequence or tensor) as ``channels`` finite floats; errors name ``name``."""
    if isinstance(values, torch.Tensor):
        if values.device.type == "meta":
            raise TypeError(f"{name} must hold values, got a tensor on the meta device")
        values = values.detach().cpu().reshape(-1).tolist()
    if not isinstance(values, (list, tuple)) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be a sequence of {channels} floats, got {values!r}")
    if len(values) != channels:
        raise ValueError(f"{name} must have one value per channel ({channels}), got {len(values)}: {list(values)!r}")
    for c, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(f"{name}[{c}] must be finite, got {v!r}")
    return [float(v) for v in values]


def check_label_range(labels: torch.Tensor, num_classes: int) -> None:
    """ValueError naming the first of the integer ``labels`` outside ``[0, num_classes)``; one device sync on CUDA."""
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"labels must be in [0, {num_classes}), got labels[{i}] = {int(labels[i])}")


def check_output(channels: int, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor,
                 dtype: torch.dtype, channels_last: bool) -> tuple[list[float], list[float]]:
    """The output settings checked: (mean, std) as float lists, refused if ``dtype`` cannot hold the results."""
    mean = channel_floats("mean", mean, channels)
    std = channel_floats("std", std, channels)
    for c, s in enumerate(std):
        if s <= 0:
            raise ValueError(f"std[{c}] must be > 0, got {s!r}")
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(map(str, OUTPUT_DTYPES))}, got {dtype!r}")
    check_bool("channels_last", channels_last)
    # The kernels compute in float32 and store ``dtype``: refuse statistics whose
    # outputs cannot be represented, rather than write inf or nan.
    limit = torch.finfo(dtype).max
    for c, (m, s) in enumerate(zip(mean, std)):
        if abs(m) > _FLOAT32_MAX:
            raise ValueError(f"mean[{c}] must be within float32's range (+-{_FLOAT32_MAX:.4g}), got {m!r}")
        reach = max(abs(m), abs(255.0 - m)) / s
        if reach * (1 + 1e-6) > limit:
            raise ValueError(f"mean[{c}] = {m!r} and std[{c}] = {s!r} map pixel values 0-255 to magnitudes up to "
                             f"{reach:.4g}, beyond the largest {dtype} ({limit:.4g})")
    return mean, std


@typing.overload
def check_text(name: str, value: object, optional: typing.Literal[False] = False) -> str: ...


@typing.overload
def check_text(name: str, value: object, optional: bool) -> str | None: ...


def check_text(name: str, value: object, optional: bool = False) -> str | None:
    """``value`` as a non-empty str (a path-like is converted), or None when ``optional`` and None; TypeError
    naming ``name`` otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise tagged(TypeError(f"{name} must be a non-empty string{' or None' if optional else ''}, got {value!r}"),
                     name)
    return value
