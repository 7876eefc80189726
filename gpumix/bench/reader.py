"""How fast gpumix's WebDataset source reads, against DALI's own WebDataset reader, in one process.

Reading only (no decoding): encoded images and int32 labels per batch, as
each pipeline's first stage delivers them. The two sides:

1. DALI's ``fn.readers.webdataset`` (C++ reads, buffer shuffle) with the
   ``.cls`` label parsed by ``fn.python_function`` (what gpumix ran before);
2. gpumix's ``WebDatasetSource`` (per-sample ``external_source`` callback,
   per-epoch shard permutation, label parsed in the callback).

They take turns in interleaved rounds; each figure is the median samples/s
over rounds with its min-max.

    python -m gpumix.bench.reader SHARD.tar [SHARD.tar ...] [--batch-size 64] [--threads 2] [--rounds 7]
"""
from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpumix.bench.fields import add_round_flags
from gpumix.bench.harness import interleaved, seconds_for
from gpumix.bench.report import median_line

__all__ = ["main", "measure_readers"]


def _parse_cls(raw: Any) -> np.ndarray:
    return np.array([int(bytes(raw).decode("ascii"))], dtype=np.int32)


def _dali_reader(tars: list[str], indexes: list[str], batch_size: int, threads: int, seed: int) -> Any:
    from nvidia.dali import fn, pipeline_def, types

    # device_id None (CPU only) is DALI's documented value; its stubs say int
    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed)  # type: ignore[call-overload]
    def pipe():
        images, labels = fn.readers.webdataset(paths=tars, index_paths=indexes, ext=["jpg;jpeg;png", "cls"],
                                               random_shuffle=True, initial_fill=1024, seed=seed, name="Reader")
        return images, fn.cast(fn.python_function(labels, function=_parse_cls), dtype=types.INT32)

    return pipe()


def _gpumix_reader(tars: list[str], indexes: list[str], batch_size: int, threads: int, seed: int) -> Any:
    from nvidia.dali import fn, pipeline_def, types

    from gpumix.pipelines.webdataset import WebDatasetSource

    source = WebDatasetSource(tars, indexes, batch_size=batch_size, shard_id=0, num_shards=1, seed=seed,
                              shuffle=True, buffer=1024)

    # device_id None (CPU only) is DALI's documented value; its stubs say int
    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed)  # type: ignore[call-overload]
    def pipe():
        return tuple(fn.external_source(source=source, num_outputs=2, batch=False, dtype=[types.UINT8, types.INT32]))

    return pipe()


def measure_readers(tars: Sequence[str], *, batch_size: int = 64, threads: int = 2, rounds: int = 7,
                    batches: int = 40, seed: int = 0) -> dict[str, list[float]]:
    """{name: [samples/s per round]} for both readers over ``tars`` (their ``.idx`` beside them)."""
    tars = list(tars)
    indexes = [t[:-4] + ".idx" for t in tars]
    pipes = {"DALI readers.webdataset + python_function label": _dali_reader(tars, indexes, batch_size, threads, seed),
             "gpumix WebDatasetSource (external_source)": _gpumix_reader(tars, indexes, batch_size, threads, seed)}
    for p in pipes.values():
        p.build()
        for _ in range(5):
            p.run()
    def rate(pipe: Any) -> float:
        return batches * batch_size / seconds_for(pipe.run, batches)
    return interleaved({name: functools.partial(rate, p) for name, p in pipes.items()}, rounds)


def main(argv: Sequence[str] | None = None) -> int:
    """Time both readers over the shards given and print samples/s; 0 on success, 2 for bad flags."""
    p = argparse.ArgumentParser(prog="python -m gpumix.bench.reader", description=(__doc__ or "").splitlines()[0])
    p.add_argument("tars", nargs="+", help="WebDataset .tar shards with their .idx beside them")
    add_round_flags(p, batch_size=64, threads=2, rounds=7, batches=40)
    args = p.parse_args(argv)
    rates = measure_readers(args.tars, batch_size=args.batch_size, threads=args.threads, rounds=args.rounds,
                            batches=args.batches)
    print(f"reading only, batch {args.batch_size}, {args.threads} threads, median of {args.rounds} interleaved "
          f"turns of {args.batches} batches")
    for name, r in rates.items():
        print(median_line(name, r, "samples/s", width=52))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
