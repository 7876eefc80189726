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
import argparse
import statistics
import time

import numpy as np

__all__ = ["main", "measure_readers"]


def _parse_cls(raw):
    return np.array([int(bytes(raw).decode("ascii"))], dtype=np.int32)


def _dali_reader(tars, indexes, batch_size, threads, seed):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed)
    def pipe():
        images, labels = fn.readers.webdataset(paths=tars, index_paths=indexes, ext=["jpg;jpeg;png", "cls"],
                                               random_shuffle=True, initial_fill=1024, seed=seed, name="Reader")
        return images, fn.cast(fn.python_function(labels, function=_parse_cls), dtype=types.INT32)

    return pipe()


def _gpumix_reader(tars, indexes, batch_size, threads, seed):
    from nvidia.dali import fn, pipeline_def, types

    from gpumix.pipelines.webdataset import WebDatasetSource

    source = WebDatasetSource(tars, indexes, batch_size=batch_size, shard_id=0, num_shards=1, seed=seed,
                              shuffle=True, buffer=1024)

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed)
    def pipe():
        return tuple(fn.external_source(source=source, num_outputs=2, batch=False, dtype=[types.UINT8, types.INT32]))

    return pipe()


def measure_readers(tars, *, batch_size=64, threads=2, rounds=7, batches=40, seed=0):
    """{name: [samples/s per round]} for both readers over ``tars`` (their ``.idx`` beside them)."""
    indexes = [t[:-4] + ".idx" for t in tars]
    pipes = {"DALI readers.webdataset + python_function label": _dali_reader(tars, indexes, batch_size, threads, seed),
             "gpumix WebDatasetSource (external_source)": _gpumix_reader(tars, indexes, batch_size, threads, seed)}
    for p in pipes.values():
        p.build()
        for _ in range(5):
            p.run()
    rates = {name: [] for name in pipes}
    for r in range(rounds):
        for name in (list(pipes) if r % 2 == 0 else list(pipes)[::-1]):
            t0 = time.perf_counter()
            for _ in range(batches):
                pipes[name].run()
            rates[name].append(batches * batch_size / (time.perf_counter() - t0))
    return rates


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gpumix.bench.reader", description=__doc__.splitlines()[0])
    p.add_argument("tars", nargs="+", help="WebDataset .tar shards with their .idx beside them")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--batches", type=int, default=40, help="batches per turn")
    args = p.parse_args(argv)
    for name in ("batch_size", "threads", "rounds", "batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    rates = measure_readers(args.tars, batch_size=args.batch_size, threads=args.threads, rounds=args.rounds,
                            batches=args.batches)
    print(f"reading only, batch {args.batch_size}, {args.threads} threads, median of {args.rounds} interleaved "
          f"turns of {args.batches} batches")
    for name, r in rates.items():
        print(f"{name:<52} {statistics.median(r):>9.0f} samples/s  ({min(r):.0f}-{max(r):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
