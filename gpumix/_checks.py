"""Argument checks that raise errors naming the argument and the bad value."""
import math
import numbers

__all__ = ["check_int", "check_float", "check_bool"]


def check_int(name, value, minimum):
    """Return ``value`` as int; TypeError unless an integer (bools refused), ValueError if < minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_float(name, value, low, high, *, high_open=False):
    """Return ``value`` as float; it must be a finite real in ``[low, high]`` (``[low, high)`` if high_open).

    ``high`` may be ``math.inf`` for no upper bound.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {value!r}")
    value = float(value)
    above = value >= high if high_open else value > high
    if not math.isfinite(value) or value < low or above:
        interval = f"[{low}, {high})" if high_open else (f"[{low}, {high}]" if math.isfinite(high) else f">= {low}")
        raise ValueError(f"{name} must be {'in ' if math.isfinite(high) else ''}{interval}, got {value!r}")
    return value


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value
