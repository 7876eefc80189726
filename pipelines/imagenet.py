"""ImageNet DALI pipelines: uint8 HWC crops and int32 labels, on the GPU or the CPU.

``data`` is a class-folder root (ILSVRC layout, labels by sorted folder name),
a DALI file list (``relative/path label`` per line, paths relative to the
list's folder), or a list of WebDataset ``.tar`` shards, each with its DALI
index (``shard.idx`` beside ``shard.tar``, made by DALI's ``wds2idx``) and
samples of a ``.jpg`` (or ``.jpeg``/``.png``) image and a decimal ``.cls`` label.
"""
import os

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from gpumix._checks import check_int
from gpumix.pipelines._common import READER_NAME, existing_path, pipeline_settings
from gpumix.pipelines._failures import make_explaining
from gpumix.pipelines.auto_augment import apply_auto_augment, auto_augment_config

__all__ = ["imagenet_train", "imagenet_val", "imagenet_source"]

# Random-resized-crop of Szegedy et al. / torchvision: 8%-100% of the area, aspect 3/4-4/3.
AREA = (0.08, 1.0)
ASPECT = (3.0 / 4.0, 4.0 / 3.0)
# Share of baseline JPEGs sent to the A100/H100 hardware decoder (DALI's resnet50 example value).
HW_DECODER_LOAD = 0.65
# nvJPEG scratch preallocation that avoids reallocations for ImageNet-sized images (DALI's example values).
DEVICE_MEMORY_PADDING = 211025920
HOST_MEMORY_PADDING = 140544512
# Attempts at a crop window inside the image before falling back to the whole image (torchvision uses 10).
CROP_ATTEMPTS = 10
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
# Samples in the WebDataset reader's shuffling buffer (DALI's default initial_fill).
SHUFFLE_BUFFER = 1024


def imagenet_source(data):
    """Classify ``data``: ('folder', root), ('file_list', path) or ('webdataset', tars, indexes).

    Errors name the path: a missing or empty folder, a folder without class
    subfolders, an empty file list, a shard that is not ``.tar`` or lacks its index.
    """
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("data: the list of WebDataset shards is empty")
        tars, indexes = [], []
        for shard in data:
            shard = existing_path("data", shard)
            if not shard.endswith(".tar"):
                raise ValueError(f"data: WebDataset shards must be .tar files, got {shard}")
            index = shard[:-4] + ".idx"
            if not os.path.isfile(index):
                raise FileNotFoundError(f"data: WebDataset shard {shard} has no index {index} "
                                        "(make one with DALI's wds2idx)")
            tars.append(shard)
            indexes.append(index)
        return "webdataset", tars, indexes
    path = existing_path("data", data)
    if os.path.isfile(path):
        if os.path.getsize(path) == 0:
            raise ValueError(f"data: the file list {path} is empty")
        return "file_list", path
    entries = os.listdir(path)
    if not entries:
        raise ValueError(f"data: the folder {path} is empty")
    classes = [e for e in entries if os.path.isdir(os.path.join(path, e))]
    if not classes:
        raise ValueError(f"data: the folder {path} has no class subfolders (expected ILSVRC's root/<class>/<image>)")
    return "folder", path


def _parse_cls(raw):
    # WebDataset's .cls component is the label as decimal ASCII.
    return np.array([int(bytes(raw).decode("ascii"))], dtype=np.int32)


def _read(source, *, shuffle, seed, shard_id, num_shards):
    """The named reader over ``imagenet_source(data)``: (encoded images, int32 labels)."""
    # pad the shard's last batch so that iterators can drop the padding: exactly once per epoch
    common = dict(name=READER_NAME, shard_id=shard_id, num_shards=num_shards, pad_last_batch=True)
    if source[0] == "webdataset":
        # DALI's webdataset reader does not reshuffle whole epochs; it shuffles through a buffer
        # seeded by `seed`, within each epoch of each shard. Each shard keeps its own slice of the
        # tars every epoch (stick_to_shard), which also keeps each rank's reads on the same files.
        images, labels = fn.readers.webdataset(paths=source[1], index_paths=source[2],
                                               ext=[";".join(IMAGE_EXTENSIONS), "cls"],
                                               missing_component_behavior="error", random_shuffle=shuffle,
                                               initial_fill=SHUFFLE_BUFFER, seed=seed, stick_to_shard=True,
                                               **common)
        labels = fn.python_function(labels, function=_parse_cls)
    else:
        # whole-epoch shuffles from one seed on every shard: the shards split one permutation
        shuffling = dict(shuffle_after_epoch=True, shuffle_after_epoch_seed=seed) if shuffle else {}
        if source[0] == "file_list":
            images, labels = fn.readers.file(file_list=source[1], file_root=os.path.dirname(source[1]),
                                             **shuffling, **common)
        else:
            images, labels = fn.readers.file(file_root=source[1], **shuffling, **common)
    return images, fn.cast(labels, dtype=types.INT32)


@pipeline_def
def _imagenet_train(source, crop, device, reader, augment=None):
    images, labels = _read(source, shuffle=True, **reader)
    if device == "gpu":
        # ROI decode: only the random crop window is decoded, on the GPU and its hardware decoder.
        images = fn.decoders.image_random_crop(images, device="mixed", output_type=types.RGB,
                                               random_area=AREA, random_aspect_ratio=ASPECT,
                                               num_attempts=CROP_ATTEMPTS, hw_decoder_load=HW_DECODER_LOAD,
                                               device_memory_padding=DEVICE_MEMORY_PADDING,
                                               host_memory_padding=HOST_MEMORY_PADDING)
    else:
        images = fn.decoders.image_random_crop(images, device="cpu", output_type=types.RGB,
                                               random_area=AREA, random_aspect_ratio=ASPECT,
                                               num_attempts=CROP_ATTEMPTS)
    images = fn.resize(images, resize_x=crop, resize_y=crop, interp_type=types.INTERP_LINEAR, antialias=False)
    # mirror only: uint8 in, uint8 HWC out, no normalization (the fused operator normalizes)
    images = fn.crop_mirror_normalize(images, dtype=types.UINT8, output_layout="HWC",
                                      mirror=fn.random.coin_flip(probability=0.5))
    if augment is not None:  # auto-augment on the final uint8 HWC crops, on the pipeline's device
        images = apply_auto_augment(images, augment, (crop, crop))
    return images, labels


@pipeline_def
def _imagenet_val(source, crop, resize, device, reader):
    images, labels = _read(source, shuffle=False, **reader)
    images = fn.decoders.image(images, device="mixed" if device == "gpu" else "cpu", output_type=types.RGB)
    images = fn.resize(images, resize_shorter=resize, interp_type=types.INTERP_TRIANGULAR, antialias=True)
    images = fn.crop(images, crop=(crop, crop), out_of_bounds_policy="pad")
    return images, labels


def imagenet_train(data, *, batch_size, crop=224, device="auto", device_id=0, shard_id=0, num_shards=1, seed=0,
                   num_threads=4, checkpoint=None, prefetch_queue_depth=2, auto_augment=None):
    """ImageNet training pipeline: random-resized-crop to ``crop`` and a random horizontal flip.

    Returns a DALI ``Pipeline`` (not built) whose outputs are uint8 HWC
    ``(crop, crop, 3)`` images and int32 labels, on the GPU (mixed ROI decoder)
    or the CPU. Checkpointing is on; pass ``checkpoint=`` (a string from
    ``Pipeline.checkpoint()``) to resume. ``prefetch_queue_depth`` is DALI's
    (batches prepared ahead of the consumer). Shuffling depends on ``(seed, epoch)``
    only, and the ``num_shards`` shards split each epoch's permutation.
    ``auto_augment``: None, "randaugment", "trivialaugment", "autoaugment" or a
    ``gpumix.pipelines.AutoAugment`` with its knobs; it runs after the flip,
    on the pipeline's device, deterministic per seed and restored by checkpoints.
    """
    check_int("crop", crop, 1)
    augment = auto_augment_config(auto_augment)
    device, kwargs = pipeline_settings(batch_size=batch_size, device=device, device_id=device_id, shard_id=shard_id,
                                       num_shards=num_shards, seed=seed, num_threads=num_threads,
                                       checkpoint=checkpoint, prefetch_queue_depth=prefetch_queue_depth)
    source = imagenet_source(data)  # fails here, naming the path, not inside DALI's build
    reader = dict(seed=seed, shard_id=shard_id, num_shards=num_shards)
    pipe = _imagenet_train(source, crop, device, reader, augment, enable_conditionals=augment is not None, **kwargs)
    return make_explaining(pipe, lambda: _read(source, shuffle=True, **reader), prefetch_queue_depth + 1)


def imagenet_val(data, *, batch_size, crop=224, resize=None, device="auto", device_id=0, shard_id=0, num_shards=1,
                 seed=0, num_threads=4, checkpoint=None, prefetch_queue_depth=2):
    """ImageNet validation pipeline: shorter side to ``resize``, then a center ``crop``.

    ``resize`` defaults to ``crop * 256 / 224`` (256 for 224). Outputs are as
    for ``imagenet_train``, without shuffling.
    """
    check_int("crop", crop, 1)
    resize = round(crop * 256 / 224) if resize is None else check_int("resize", resize, 1)
    device, kwargs = pipeline_settings(batch_size=batch_size, device=device, device_id=device_id, shard_id=shard_id,
                                       num_shards=num_shards, seed=seed, num_threads=num_threads,
                                       checkpoint=checkpoint, prefetch_queue_depth=prefetch_queue_depth)
    source = imagenet_source(data)
    reader = dict(seed=seed, shard_id=shard_id, num_shards=num_shards)
    pipe = _imagenet_val(source, crop, resize, device, reader, **kwargs)
    return make_explaining(pipe, lambda: _read(source, shuffle=False, **reader), prefetch_queue_depth + 1)
