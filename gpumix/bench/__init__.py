"""Benchmarks of gpumix against today's loaders; one module per job.

- ``main``: the ``gpumix-bench`` command line (flags made from ``BenchConfig``).
- ``config``: ``BenchConfig``, the validated settings of one run.
- ``fields``: settings fields that carry their meaning and check; the CLI flags made from them.
- ``runner``: one whole run (loaders, then operator) into the JSON-ready report.
- ``harness``: timed calls, loaders measured in interleaved turns, paired-round figures.
- ``memory``: the host (/proc) and GPU memory one loader adds.
- ``report`` / ``plot``: the report as text tables and JSON / as a PNG, written atomically.
- ``data``: ``--data`` resolved into a ``DataSpec`` (or the cached synthetic default).
- ``variants``: what every loader under test shares (``LoaderSettings``, ``Variant``).
- ``loaders``: every loader of one run, gpumix's first (``build_variants``).
- ``gpumix_loaders``: gpumix's DALI pipeline into ``MixupIterator``.
- ``baselines``: the competitors: plain DALI, torchvision's DataLoader, timm's loader.
- ``torch_data`` / ``chains``: the competitors' Datasets over the same files / their mixing chains.
- ``operator``, ``kernel_timing``: the operator alone (``gpumix-bench-operator``), the kernel against a copy.
- ``pipeline``, ``reader``, ``resize``, ``decoder``: the DALI pipeline's own knobs, one study each.
- ``gpu_check``: everything that needs a GPU in one command (``gpumix-gpu-check``).
"""
__all__: list[str] = []
