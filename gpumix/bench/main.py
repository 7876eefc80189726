"""``gpumix-bench``: how many mixed training images per second this machine feeds, against today's loaders.

In one process, on the same data, cores and batch size, it measures the
gpumix DALI pipeline through ``MixupIterator`` with mixup, the same pipeline
with normalization only, through DALI's ``DALIGenericIterator`` with
``gpumix.normalize`` and with the unfused torch mixup chain, torchvision's
``DataLoader`` + ``v2.MixUp`` and timm's loader + ``Mixup``; then the
operator alone (``gpumix.bench.operator``). Loaders are measured in
interleaved turns (``gpumix.bench.harness.measure``); every figure is a median with its
min-max, printed with ratios against gpumix, saved as JSON and drawn as PNG.

    gpumix-bench [--data DIR | --data a.tar b.tar] [--device auto|gpu|cpu] [--json out.json] [--plot out.png]
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gpumix.bench.config import BenchConfig
from gpumix.bench.data import DataSpec, resolve_data
from gpumix.bench.fields import add_flags, from_args, report_field_error

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchConfig, DataSpec | None]:
    """The command line as a ``BenchConfig`` and, for ``--data``, its ``DataSpec``; bad values exit 2 naming the flag.

    One flag per ``BenchConfig`` field; the spec is None for the embedded
    default, which is made (or found in the cache) when the run starts.
    """
    p = argparse.ArgumentParser(prog="gpumix-bench", description=(__doc__ or "").splitlines()[0].replace("``", ""))
    flags = add_flags(p, BenchConfig)
    config = from_args(p, BenchConfig, flags, p.parse_args(argv))
    if config.data is None:
        return config, None
    try:
        spec = resolve_data(config.data, num_classes=config.num_classes, image_size=config.image_size)
    except (OSError, ValueError) as e:  # untagged errors are about the data
        report_field_error(p, flags, e, default_field="data")
        raise  # not reached: parser.error exits
    return config, spec


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gpumix-bench``: 0 on success, 1 if the run fails (the error on stderr), 2 for bad flags."""
    from gpumix.bench.report import format_report, write_json
    from gpumix.bench.runner import run

    config, spec = parse_args(argv)
    try:
        report = run(config, spec)
    except (OSError, ValueError) as e:
        print(f"gpumix-bench: error: {e}", file=sys.stderr)
        return 1
    print(format_report(report))
    if config.json:
        write_json(config.json, report)
        print(f"wrote {config.json}")
    if config.plot:
        from gpumix.bench.plot import plot_report
        plot_report(report, config.plot)
        print(f"wrote {config.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
