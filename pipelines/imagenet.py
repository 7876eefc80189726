"""ImageNet DALI pipelines: uint8 HWC crops and int32 labels, on the GPU or the CPU.

``data`` is a class-folder root (ILSVRC layout, labels by sorted folder name),
a DALI file list (``path label`` per line; a relative path is relative to the
list's own folder, an absolute one is kept: ``gpumix.file_list``),
or a list of WebDataset ``.tar`` shards, each with its DALI index
(``shard.idx`` beside ``shard.tar``, made by DALI's ``wds2idx``) and samples
of a ``.jpg`` (or ``.jpeg``/``.png``) image and a decimal ``.cls`` label.
"""
import os
from collections.abc import Callable, Sequence
from typing import Any, cast

from nvidia.dali import Pipeline, fn, types
from nvidia.dali.data_node import DataNode

from gpumix.datasets import DataSource, SourceKind, data_source
from gpumix.pipelines._common import READER_NAME, pipeline_settings
from gpumix.pipelines._failures import ExplainingPipeline, ExplainingSourcePipeline
from gpumix.pipelines.auto_augment import AutoAugment, AutoAugmentPolicy, apply_auto_augment, auto_augment_config
from gpumix.pipelines.dali_compat import build_graph
from gpumix.pipelines.decoder import DecoderConfig
from gpumix.pipelines.webdataset import WebDatasetSource
from gpumix.validation import check_bool, check_int

__all__ = ["imagenet_train", "imagenet_val", "train_resize", "AREA", "ASPECT", "CROP_ATTEMPTS", "SHUFFLE_BUFFER"]

# What ``data`` may be: a folder, a file list, or WebDataset shards (``gpumix.datasets.data_source``).
DataArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

# Random-resized-crop of Szegedy et al. / torchvision: 8%-100% of the area, aspect 3/4-4/3.
AREA = (0.08, 1.0)
ASPECT = (3.0 / 4.0, 4.0 / 3.0)
# Attempts at a crop window inside the image before falling back to the whole image (torchvision uses 10).
CROP_ATTEMPTS = 10
# Places a WebDataset sample may move in its rank's local shuffle (DALI's default shuffle buffer, initial_fill).
SHUFFLE_BUFFER = 1024


def _read(source, *, shuffle, seed, shard_id, num_shards, feed, parallel=False):
    """The named reader over a ``gpumix.datasets.DataSource``: (encoded images, int32 labels).

    ``feed`` is the ``WebDatasetSource`` of a WebDataset source (None otherwise);
    ``parallel`` reads it in the pipeline's Python worker processes.
    """
    # pad the shard's last batch so that iterators can drop the padding: exactly once per epoch
    common = dict(name=READER_NAME, shard_id=shard_id, num_shards=num_shards, pad_last_batch=True)
    if source.kind is SourceKind.WEBDATASET:
        # gpumix's own source: the tars dealt out afresh to the shards every epoch (webdataset.py)
        images, labels = fn.external_source(source=feed, num_outputs=2, batch=False, parallel=parallel,
                                            dtype=[types.UINT8, types.INT32])
    else:
        # whole-epoch shuffles from one seed on every shard: the shards split one permutation
        shuffling = dict(shuffle_after_epoch=True, shuffle_after_epoch_seed=seed) if shuffle else {}
        if source.kind is SourceKind.FILE_LIST:
            # DALI's rule with file_root = the list's folder is gpumix's convention (file_list.py)
            root = os.path.dirname(os.path.abspath(source.path))
            images, labels = fn.readers.file(file_list=source.path, file_root=root, **shuffling, **common)
        else:
            images, labels = fn.readers.file(file_root=source.path, **shuffling, **common)
    return images, fn.cast(labels, dtype=types.INT32)


def _decoder(decoder: object) -> DecoderConfig:
    if decoder is None:
        return DecoderConfig()
    if not isinstance(decoder, DecoderConfig):
        raise TypeError(f"decoder must be a gpumix.pipelines.DecoderConfig or None, got {type(decoder).__name__}")
    return decoder


def train_resize(images: DataNode, crop: int, antialias: bool = True) -> DataNode:
    """The training pipeline's resize of a decoded crop window (a DALI node, HWC uint8) to ``crop`` x ``crop``.

    Bilinear; with ``antialias`` (the default) a downscale widens the filter
    to the scale (a triangle filter), as torchvision's ``RandomResizedCrop``
    (``antialias=True``) does, and matches its output within the tolerance of
    tests/pipelines/test_antialias.py. ``antialias=False`` samples the window
    at ``crop`` x ``crop`` points only, so fine texture aliases into moire
    when a window is downscaled 2-10x.
    """
    resized = fn.resize(images, resize_x=crop, resize_y=crop, interp_type=types.DALIInterpType.INTERP_LINEAR,
                        antialias=antialias)
    return cast(DataNode, resized)  # one input node, one output node


def _build(graph: Callable[..., tuple[DataNode, DataNode]], source: DataSource, train: bool,
           pipeline_kwargs: dict[str, Any], *, reader_workers: int, enable_conditionals: bool = False,
           **graph_kwargs: Any) -> ExplainingPipeline:
    """The pipeline of ``graph(source, reader=..., **graph_kwargs)`` with its reader's failure explanation.

    ``pipeline_kwargs`` are the Pipeline's (``pipeline_settings``); the
    reader's seed is ``graph_kwargs["seed"]``, the user's (the shuffling's, the
    same on every shard); ``reader_workers`` > 0 reads WebDataset samples in
    that many worker processes (DALI's parallel external source; the failure
    replay reads in-process). A WebDataset source is fed by a
    ``WebDatasetSource``, whose pipeline answers ``reader_meta`` for it and
    names a bad sample as ``tar:key``.
    """
    reader = {name: graph_kwargs.pop(name) for name in ("seed", "shard_id", "num_shards")}
    feed: WebDatasetSource | None = None
    if source.kind is SourceKind.WEBDATASET:
        feed = WebDatasetSource(list(source.paths), list(source.index_files),
                                batch_size=pipeline_kwargs["batch_size"], shard_id=reader["shard_id"],
                                num_shards=reader["num_shards"], seed=reader["seed"], shuffle=train,
                                buffer=SHUFFLE_BUFFER)
    reader["feed"] = feed
    in_graph: dict[str, Any] = reader
    if feed is not None and reader_workers > 0:
        # worker processes read the samples, off the training process's GIL; spawned, as CUDA needs
        pipeline_kwargs = dict(pipeline_kwargs, py_num_workers=reader_workers, py_start_method="spawn")
        in_graph = dict(reader, parallel=True)
    explain = dict(read=lambda: _read(source, shuffle=train, **reader),
                   lookahead=pipeline_kwargs["prefetch_queue_depth"] + 1)
    pipe: ExplainingPipeline
    if feed is None:
        pipe = ExplainingPipeline(**explain, **pipeline_kwargs)
    else:
        pipe = ExplainingSourcePipeline(**explain, describe=lambda i, k: feed.describe(feed.locate(i, k)[1]),
                                        reader_meta=feed.meta(), **pipeline_kwargs)
    return build_graph(pipe, graph, source, reader=in_graph, enable_conditionals=enable_conditionals,
                       **graph_kwargs)


def _imagenet_train(source, crop, device, reader, antialias, decoder, augment=None):
    images, labels = _read(source, shuffle=True, **reader)
    if device == "gpu":
        # ROI decode: only the random crop window is decoded, on the GPU and its hardware decoder.
        images = fn.decoders.image_random_crop(images, device="mixed", output_type=types.RGB,
                                               random_area=AREA, random_aspect_ratio=ASPECT,
                                               num_attempts=CROP_ATTEMPTS, **decoder.mixed_arguments())
    else:
        images = fn.decoders.image_random_crop(images, device="cpu", output_type=types.RGB,
                                               random_area=AREA, random_aspect_ratio=ASPECT,
                                               num_attempts=CROP_ATTEMPTS)
    images = train_resize(images, crop, antialias)
    # mirror only: uint8 in, uint8 HWC out, no normalization (the fused operator normalizes)
    images = fn.crop_mirror_normalize(images, dtype=types.UINT8, output_layout="HWC",
                                      mirror=fn.random.coin_flip(probability=0.5))
    if augment is not None:  # auto-augment on the final uint8 HWC crops, on the pipeline's device
        images = apply_auto_augment(images, augment, (crop, crop))
    return images, labels


def _imagenet_val(source, crop, resize, device, reader, decoder):
    images, labels = _read(source, shuffle=False, **reader)
    if device == "gpu":
        images = fn.decoders.image(images, device="mixed", output_type=types.RGB, **decoder.mixed_arguments())
    else:
        images = fn.decoders.image(images, device="cpu", output_type=types.RGB)
    images = fn.resize(images, resize_shorter=resize, interp_type=types.INTERP_TRIANGULAR, antialias=True)
    images = fn.crop(images, crop=(crop, crop), out_of_bounds_policy="pad")
    return images, labels


def imagenet_train(data: DataArg, *, batch_size: int, crop: int = 224, device: str = "auto", device_id: int = 0,
                   shard_id: int = 0, num_shards: int = 1, seed: int = 0, num_threads: int = 4,
                   checkpoint: str | bytes | None = None, prefetch_queue_depth: int = 2, antialias: bool = True,
                   decoder: DecoderConfig | None = None, reader_workers: int = 0,
                   auto_augment: AutoAugment | AutoAugmentPolicy | str | None = None) -> Pipeline:
    """ImageNet training pipeline: random-resized-crop to ``crop`` and a random horizontal flip.

    The crop window is resized with antialiasing (``train_resize``), as
    torchvision's ``RandomResizedCrop`` and this module's validation resize
    do; ``antialias=False`` turns it off (aliased; see docs/benchmarks.md for
    what it saves). ``decoder`` (a ``DecoderConfig``, None for its defaults)
    sets the GPU decoder's hardware load and memory preallocation;
    ``num_threads`` is DALI's CPU thread count (also the GPU decoder's
    host-side threads). WebDataset shards are read by a Python callback,
    in the calling process (``reader_workers=0``) or in that many spawned
    worker processes, off the training loop's GIL; other sources ignore it.

    Returns a DALI ``Pipeline`` (not built) whose outputs are uint8 HWC
    ``(crop, crop, 3)`` images and int32 labels, on the GPU (mixed ROI decoder)
    or the CPU. Checkpointing is on; pass ``checkpoint=`` (a string from
    ``Pipeline.checkpoint()``) to resume. ``prefetch_queue_depth`` is DALI's
    (batches prepared ahead of the consumer). Shuffling depends on ``(seed, epoch)``
    only, and the ``num_shards`` shards split each epoch's permutation
    (WebDataset shards: each epoch's permutation of the tars, then a local
    shuffle per ``(seed, epoch, shard_id)``; ``gpumix.pipelines.webdataset``).
    ``auto_augment``: None, "randaugment", "trivialaugment", "autoaugment" or a
    ``gpumix.pipelines.AutoAugment`` with its knobs; it runs after the flip,
    on the pipeline's device, deterministic per seed and restored by checkpoints.
    """
    check_int("crop", crop, 1)
    antialias = check_bool("antialias", antialias)
    decoder = _decoder(decoder)
    check_int("reader_workers", reader_workers, 0)
    augment = auto_augment_config(auto_augment)
    device, kwargs = pipeline_settings(batch_size=batch_size, device=device, device_id=device_id, shard_id=shard_id,
                                       num_shards=num_shards, seed=seed, num_threads=num_threads,
                                       checkpoint=checkpoint, prefetch_queue_depth=prefetch_queue_depth)
    source = data_source(data)  # fails here, naming the path, not inside DALI's build
    return _build(_imagenet_train, source, True, kwargs, seed=seed, shard_id=shard_id, num_shards=num_shards,
                  reader_workers=reader_workers, crop=crop, device=device, antialias=antialias, decoder=decoder,
                  augment=augment, enable_conditionals=augment is not None)


def imagenet_val(data: DataArg, *, batch_size: int, crop: int = 224, resize: int | None = None, device: str = "auto",
                 device_id: int = 0, shard_id: int = 0, num_shards: int = 1, seed: int = 0, num_threads: int = 4,
                 checkpoint: str | bytes | None = None, prefetch_queue_depth: int = 2,
                 decoder: DecoderConfig | None = None, reader_workers: int = 0) -> Pipeline:
    """ImageNet validation pipeline: shorter side to ``resize``, then a center ``crop``.

    ``resize`` defaults to ``crop * 256 / 224`` (256 for 224). Outputs are as
    for ``imagenet_train``, without shuffling; ``decoder`` and
    ``reader_workers`` as there.
    """
    check_int("crop", crop, 1)
    decoder = _decoder(decoder)
    check_int("reader_workers", reader_workers, 0)
    resize = round(crop * 256 / 224) if resize is None else check_int("resize", resize, 1)
    device, kwargs = pipeline_settings(batch_size=batch_size, device=device, device_id=device_id, shard_id=shard_id,
                                       num_shards=num_shards, seed=seed, num_threads=num_threads,
                                       checkpoint=checkpoint, prefetch_queue_depth=prefetch_queue_depth)
    source = data_source(data)
    return _build(_imagenet_val, source, False, kwargs, seed=seed, shard_id=shard_id, num_shards=num_shards,
                  reader_workers=reader_workers, crop=crop, resize=resize, device=device, decoder=decoder)
