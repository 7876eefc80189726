"""Benchmark settings as dataclass fields that carry their meaning and check, and the CLI flags made from them.

A settings class declares each field with ``option(...)``: its default, the
one-line meaning (the flag's help) and a check ``check(name, value)`` that
returns the value (normalized) or raises TypeError/ValueError naming it.
``validate`` runs the checks in ``__post_init__`` and tags a failure with the
field (``field_of``), so a command line maps it back to its flag through the
table ``add_flags`` returned, never through the message text (the tags are
``gpumix.validation``'s, which the shared checks set too).
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from gpumix.validation import field_of, tagged

__all__ = ["add_flags", "add_round_flags", "at_least", "field_error", "float_range", "from_args", "option",
           "report_field_error", "validate"]

T = TypeVar("T")
_UNSET: Any = object()


def option(default: Any = None, help: str = "", *, check: Callable[[str, Any], Any] | None = None,
           type: Callable[[str], Any] | None = None, choices: Iterable[Any] | None = None, nargs: str | None = None,
           metavar: str | None = None) -> Any:
    """A dataclass field with its flag's help, its check and how argparse reads it (``type``, ``nargs``, ...)."""
    if help == "":
        raise ValueError("help must say what the field means")
    meta = {"help": help, "check": check, "type": type, "choices": None if choices is None else tuple(choices),
            "nargs": nargs, "metavar": metavar}
    return dataclasses.field(default=default, metadata=meta)


def field_error(exc_type: type[Exception], field: str, reason: str) -> Exception:
    """``exc_type("<field>: <reason>")`` tagged with ``field`` (``gpumix.validation.tagged``), for errors raised
    outside a field check."""
    return tagged(exc_type(f"{field}: {reason}"), field)


def validate(config: Any) -> None:
    """Run every field's check on the frozen dataclass ``config``, storing what it returns.

    A TypeError or ValueError from a check is re-raised unchanged, tagged
    with the field's name (see ``field_of``).
    """
    for f in dataclasses.fields(config):
        check = f.metadata.get("check")
        if check is None:
            continue
        try:
            value = check(f.name, getattr(config, f.name))
        except (TypeError, ValueError) as e:
            if field_of(e) is None:
                tagged(e, f.name)
            raise
        object.__setattr__(config, f.name, value)


def add_flags(parser: argparse.ArgumentParser, cls: type) -> dict[str, str]:
    """Add one flag per field of the dataclass ``cls`` (``--a-b`` for ``a_b``); return {field: flag}.

    Booleans become ``--x/--no-x`` (``argparse.BooleanOptionalAction``);
    the help is the field's documented meaning, with its default.
    """
    flags = {}
    for f in dataclasses.fields(cls):
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        if "help" not in meta:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with option(...)")
        default = f.default
        shown = "" if default is None or default == () or "default" in meta["help"] else " (default: %(default)s)"
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": meta["help"] + shown}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            for key in ("type", "choices", "nargs", "metavar"):
                if meta[key] is not None:
                    kwargs[key] = meta[key]
        parser.add_argument(flag, **kwargs)
        flags[f.name] = flag
    return flags


def report_field_error(parser: argparse.ArgumentParser, flags: dict[str, str], error: Exception,
                       default_field: str | None = None) -> None:
    """Exit 2 through ``parser.error``, naming the flag of the field ``error`` is about.

    The flag comes from ``flags`` (field -> flag) by ``field_of(error)``, or
    ``default_field`` when the error is untagged. A message that already
    starts with ``<field>: `` is shown after the flag instead.
    """
    field = field_of(error) or default_field
    message = str(error)
    if field is None or field not in flags:
        parser.error(message)
    prefix = f"{field}: "
    parser.error(f"{flags[field]}: {message[len(prefix):] if message.startswith(prefix) else message}")


def from_args(parser: argparse.ArgumentParser, cls: Callable[..., T], flags: dict[str, str],
              args: argparse.Namespace) -> T:
    """``cls(**fields)`` from the parsed ``args``; a bad value exits 2 naming its flag (``report_field_error``)."""
    try:
        return cls(**{name: getattr(args, name) for name in flags})
    except (TypeError, ValueError) as e:
        report_field_error(parser, flags, e)
        raise  # not reached: parser.error exits


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an int >= ``minimum``; argparse names the flag when it refuses one."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"int >= {minimum}"
    return parse


def float_range(low: float, high: float = float("inf"), *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a float in [low, high] (low excluded with ``low_open``); argparse names the flag."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a float, got {text!r}") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}" + (f" and <= {high:g}" if high != float("inf") else "")
                                             + f", got {value:g}")
        return value
    parse.__name__ = "float"
    return parse


def add_round_flags(parser: argparse.ArgumentParser, *, batch_size: int, threads: int, rounds: int,
                    batches: int) -> None:
    """The flags of the interleaved-rounds benchmarks (reader, resize): --batch-size, --threads, --rounds, --batches."""
    parser.add_argument("--batch-size", type=at_least(1), default=batch_size, help="samples per batch")
    parser.add_argument("--threads", type=at_least(1), default=threads, help="DALI threads")
    parser.add_argument("--rounds", type=at_least(1), default=rounds, help="interleaved rounds")
    parser.add_argument("--batches", type=at_least(1), default=batches, help="batches per turn")
