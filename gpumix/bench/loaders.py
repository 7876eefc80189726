"""The loaders ``gpumix-bench`` compares, each turned into a ``Variant`` that delivers training-ready batches.

The DALI variants share one pipeline definition (gpumix's ImageNet or CIFAR
train pipeline) and differ only in what turns its uint8 output into a mixed,
normalized float32 NCHW batch: gpumix's ``MixupIterator`` with and without a
``Mixup``, or DALI's own ``DALIGenericIterator`` followed by ``gpumix.normalize``
or by the unfused torch chain users write by hand. The torch variants read the
same files (or CIFAR arrays) with torchvision's ``DataLoader`` and with timm's
``create_loader``, with the same crop, flip, normalization and mixup alpha.

``resolve_data`` turns ``--data`` into a ``DataSpec``; ``build_variants``
builds every loader of one spec.
"""
import dataclasses
import os

import torch

from gpumix.bench import chains
from gpumix.datasets import NUM_CLASSES, STATS, DataSource, SourceKind, data_source
from gpumix.validation import check_int

__all__ = ["ALPHA", "DEFAULT_CLASSES", "DEFAULT_PER_CLASS", "DataSpec", "LoaderSettings", "Variant", "build_variants",
           "default_data", "prepare_process", "resolve_data", "torch_dataset"]

# The embedded default: 10 classes x 64 ImageNet-sized JPEGs, made once and cached.
DEFAULT_CLASSES, DEFAULT_PER_CLASS = 10, 64
# Mixup's Beta(alpha, alpha) for every loader: timm's and DeiT's ImageNet recipes use 0.2 to 0.8.
ALPHA = 0.2
# The torch loaders' epoch is at least this long (the real datasets' train sizes), so that a small
# benchmark set does not make them restart their workers' prefetching every few batches.
EPOCH = {"imagenet": 1_281_167, "cifar10": 50_000, "cifar100": 50_000}
CIFAR_SIZE = 32
# DALI's prefetch depth in every DALI variant (gpumix's default).
PREFETCH_DEPTH = 2
# Batches each DataLoader worker keeps ready (torch's default prefetch_factor).
PREFETCH_FACTOR = 2
_CIFAR_FOLDERS = ("cifar-10-batches-bin", "cifar-10-batches-py", "cifar-100-binary", "cifar-100-python")


def default_data(cache=None):
    """The embedded default dataset's folder, made on first use under ``cache`` (default ~/.cache/gpumix)."""
    from gpumix.tools.make_dataset import make_dataset

    cache = cache or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "gpumix")
    root = os.path.join(cache, f"imagenet-synthetic-{DEFAULT_CLASSES}x{DEFAULT_PER_CLASS}")
    if not os.path.isdir(root):
        make_dataset("imagenet", root, classes=DEFAULT_CLASSES, images_per_class=DEFAULT_PER_CLASS, seed=0)
    return root


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What ``--data`` resolved to.

    kind: 'imagenet', 'cifar10' or 'cifar100'; data: what the gpumix pipeline
    builders take (a folder, a file list, or a tuple of WebDataset shards);
    source: for ImageNet, its ``gpumix.datasets.DataSource`` (None for CIFAR); num_classes: K of the
    targets; image_size: the side of the crops; embedded: the cached default set.
    """

    kind: str
    data: object
    source: DataSource | None
    num_classes: int
    image_size: int
    embedded: bool = False

    def __post_init__(self):
        if self.kind not in EPOCH:
            raise ValueError(f"kind must be one of {', '.join(EPOCH)}, got {self.kind!r}")
        check_int("num_classes", self.num_classes, 2)
        check_int("image_size", self.image_size, 1)

    @property
    def mean(self):
        return STATS[self.kind].mean

    @property
    def std(self):
        return STATS[self.kind].std

    def describe(self):
        """One line for the report: what was read, from where."""
        if self.kind != "imagenet":
            return f"{self.kind} folder {self.data}"
        return f"ImageNet-style {self.source.describe()}" + (" (the embedded synthetic default)" if self.embedded else "")


def _cifar_kind(folder):
    """'cifar10' or 'cifar100' if ``folder`` holds (or is) an extracted CIFAR set, else None."""
    from gpumix.pipelines.cifar_files import detect_cifar_format

    for kind in ("cifar10", "cifar100"):
        try:
            detect_cifar_format(folder, kind)
        except FileNotFoundError:
            continue
        return kind
    return None


def resolve_data(data, *, num_classes=None, image_size=224):
    """``data`` (None, one path, or several .tar paths) as a ``DataSpec``.

    None is the embedded default (made and cached on first use). A folder
    holding CIFAR files (or their cifar-10-batches-bin/-py, cifar-100-binary/
    -python subfolders) is CIFAR; a folder of .tar files (no subfolders) is
    WebDataset shards; any other folder must be an ImageNet class-folder
    root; a file is a DALI file list; .tar paths are WebDataset shards.
    ``num_classes`` defaults to 10/100 for CIFAR and 1000 (or the number of
    classes found, if more) for ImageNet. Errors (FileNotFoundError or
    ValueError) name the path.
    """
    embedded = data is None
    if embedded:
        data = [default_data()]
    paths = [os.fspath(p) for p in data]
    if not paths:
        raise ValueError("data: no path given")
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"data: {p} does not exist")
    if len(paths) > 1 or paths[0].endswith(".tar"):
        return _imagenet_spec(tuple(paths), data_source(paths), num_classes, image_size)
    path = paths[0]
    if os.path.isdir(path):
        kind = _cifar_kind(path)
        if kind is not None:
            k = NUM_CLASSES[kind]
            if num_classes is not None and num_classes < k:
                raise ValueError(f"num_classes: {path} is {kind}, with {k} classes, but num_classes is {num_classes}")
            return DataSpec(kind, path, None, num_classes or k, CIFAR_SIZE)
        entries = os.listdir(path)
        tars = sorted(os.path.join(path, e) for e in entries if e.endswith(".tar"))
        if tars and not any(os.path.isdir(os.path.join(path, e)) for e in entries):
            return _imagenet_spec(tuple(tars), data_source(tars), num_classes, image_size)
        try:
            source = data_source(path)
        except ValueError as e:
            raise ValueError(f"{e}; nor is it a CIFAR folder (CIFAR files or a {', '.join(_CIFAR_FOLDERS)} "
                             "subfolder)") from None
        return _imagenet_spec(path, source, num_classes, image_size, embedded=embedded)
    # a file list, checked: errors name its path and line
    return _imagenet_spec(path, data_source(path), num_classes, image_size)


def _imagenet_spec(data, source, num_classes, image_size, embedded=False):
    classes = source.num_classes
    if num_classes is not None and classes is not None and num_classes < classes:
        raise ValueError(f"num_classes: {data} has labels up to {classes - 1}, but num_classes is {num_classes}")
    k = num_classes or max(NUM_CLASSES["imagenet"], classes or 0)
    return DataSpec("imagenet", data, source, k, image_size, embedded)


def torch_dataset(spec):
    """The samples of ``spec`` as a torch Dataset of (PIL image, label), without a transform yet."""
    if spec.kind != "imagenet":
        from gpumix.pipelines.cifar_files import load_cifar
        return chains.ArrayImages(*load_cifar(spec.data, spec.kind, "train"))
    if spec.source.kind is SourceKind.FOLDER:
        from torchvision.datasets import ImageFolder
        return ImageFolder(spec.data)
    if spec.source.kind is SourceKind.FILE_LIST:
        return chains.FileListImages(spec.data)
    return chains.TarImages(list(spec.source.paths))


# --- the variants ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LoaderSettings:
    """What every loader shares: batch_size, threads (DALI threads = DataLoader workers = torch
    and numba threads), device ('cpu' or 'gpu') and seed."""

    batch_size: int
    threads: int
    device: str
    seed: int = 0

    def __post_init__(self):
        check_int("batch_size", self.batch_size, 1)
        check_int("threads", self.threads, 1)
        check_int("seed", self.seed, 0)
        if self.device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {self.device!r}")

    @property
    def torch_device(self):
        return torch.device("cuda" if self.device == "gpu" else "cpu")


@dataclasses.dataclass
class Variant:
    """One loader under test, built by ``start()`` and released by ``close()``.

    key: short id (JSON); name: what it is, for tables; ready: batches it
    prepares ahead while nobody asks (the first ``ready + 1`` of a turn come
    from that stock, so they are not timed); torch_side: reads with worker
    processes (built before anything starts threads, since workers fork).
    After ``start()``, ``step()`` delivers one training-ready batch (images
    and targets) and returns how many images it held.
    """

    key: str
    name: str
    ready: int
    build: object
    torch_side: bool = False
    step: object = None
    owner: object = None

    def start(self):
        self.step, self.owner = self.build()

    def close(self):
        self.step = self.owner = None


def _next(iterator):
    # DALI's iterators end each epoch with StopIteration and go on with the next one (auto reset)
    try:
        return next(iterator)
    except StopIteration:
        return next(iterator)


def _pipeline(spec, s, auto_augment=None, antialias=True):
    from gpumix.pipelines import cifar_train, imagenet_train

    common = dict(batch_size=s.batch_size, device=s.device, num_threads=s.threads, seed=s.seed,
                  prefetch_queue_depth=PREFETCH_DEPTH, auto_augment=auto_augment)
    if spec.kind == "imagenet":
        return imagenet_train(list(spec.data) if isinstance(spec.data, tuple) else spec.data,
                              crop=spec.image_size, antialias=antialias, **common)
    return cifar_train(spec.data, dataset=spec.kind, **common)


def _mixup_iterator(spec, s, with_mixup, auto_augment=None, antialias=True):
    import gpumix

    mix = gpumix.Mixup(num_classes=spec.num_classes, alpha=ALPHA, seed=s.seed) if with_mixup else None
    it = gpumix.MixupIterator(_pipeline(spec, s, auto_augment, antialias), mix, mean=spec.mean, std=spec.std)

    def step():
        images, _ = _next(it)
        return images.shape[0]
    return step, it


def _dali_iterator(spec, s, unfused):
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy
    from nvidia.dali.plugin.pytorch import DALIGenericIterator

    import gpumix

    it = DALIGenericIterator(_pipeline(spec, s), ["images", "labels"], reader_name="Reader", auto_reset=True,
                             last_batch_policy=LastBatchPolicy.PARTIAL)
    mix = gpumix.Mixup(num_classes=spec.num_classes, alpha=ALPHA, seed=s.seed)
    counter = [0]

    def step():
        out = _next(it)[0]
        images, labels = out["images"], out["labels"].reshape(-1).long()
        if unfused:
            params = mix.sample(images.shape[0], tuple(images.shape[1:3]), epoch=0, step=counter[0])
            counter[0] += 1
            chains.unfused_chain(images, labels, params, mean=spec.mean, std=spec.std, num_classes=spec.num_classes)
        else:
            gpumix.normalize(images, mean=spec.mean, std=spec.std)
            labels.to(images.device, non_blocking=True)
        return images.shape[0]
    return step, it


def _torch_transforms(spec):
    """torchvision's v2 train transforms matching the DALI pipeline's augmentation, normalize included."""
    from torchvision.transforms import v2

    from gpumix.pipelines.imagenet import AREA, ASPECT

    crop = [v2.RandomResizedCrop(spec.image_size, scale=AREA, ratio=ASPECT, antialias=True)]
    if spec.kind != "imagenet":
        crop = [v2.RandomCrop(CIFAR_SIZE, padding=4)]
    return v2.Compose(crop + [v2.RandomHorizontalFlip(), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                              v2.Normalize([m / 255 for m in spec.mean], [d / 255 for d in spec.std])])


def _epoch_loop(loader):
    """A step source over a DataLoader that starts the next epoch when one ends (workers persist)."""
    state = {"it": iter(loader)}

    def next_batch():
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            return next(state["it"])
    return next_batch, state


def _torchvision(spec, s, dataset):
    from torchvision.transforms import v2

    dataset.transform = _torch_transforms(spec)
    cuda = s.device == "gpu"
    loader = torch.utils.data.DataLoader(dataset, batch_size=s.batch_size, shuffle=True, num_workers=s.threads,
                                         drop_last=True, persistent_workers=True, pin_memory=cuda,
                                         prefetch_factor=PREFETCH_FACTOR)
    mix = v2.MixUp(alpha=ALPHA, num_classes=spec.num_classes)
    next_batch, state = _epoch_loop(loader)
    device = s.torch_device

    def step():
        images, labels = next_batch()
        if cuda:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        images, _ = mix(images, labels)
        return images.shape[0]
    return step, state


def _timm(spec, s, dataset):
    from timm.data import FastCollateMixup, Mixup, create_loader

    from gpumix.pipelines.imagenet import AREA, ASPECT

    cuda = s.device == "gpu"
    mix_args = dict(mixup_alpha=ALPHA, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=spec.num_classes)
    # What timm's train.py runs: on a GPU its prefetcher (normalize on the GPU) with mixup in the
    # workers' collate; without one, the plain loader and Mixup applied to each batch.
    loader = create_loader(dataset, input_size=(3, spec.image_size, spec.image_size), batch_size=s.batch_size,
                           is_training=True, use_prefetcher=cuda, scale=AREA, ratio=ASPECT, hflip=0.5,
                           color_jitter=None, interpolation="bilinear", mean=tuple(m / 255 for m in spec.mean),
                           std=tuple(d / 255 for d in spec.std), num_workers=s.threads, pin_memory=cuda,
                           device=s.torch_device, collate_fn=FastCollateMixup(**mix_args) if cuda else None)
    mix = None if cuda else Mixup(**mix_args)
    next_batch, state = _epoch_loop(loader)

    def step():
        images, targets = next_batch()
        if mix is not None:
            images, targets = mix(images, targets)
        return images.shape[0]
    return step, state


def prepare_process(spec, settings):
    """Pay the costs every gpumix-side loader shares once, before any of them is measured.

    Sets numba's threads to ``settings.threads`` (which starts its thread
    pool: call this after the DataLoader workers have forked), compiles the
    CPU twin (numba) or loads the CUDA kernel for this output type, and runs
    the unfused chain once, on a 2-image batch; so no loader's warm-up or
    memory figure carries the compilation.
    """
    import numba

    import gpumix

    numba.set_num_threads(min(settings.threads, numba.config.NUMBA_NUM_THREADS))
    device = settings.torch_device
    batch = torch.zeros((2, spec.image_size, spec.image_size, 3), dtype=torch.uint8, device=device)
    labels = torch.zeros(2, dtype=torch.int64)
    params = gpumix.Mixup(num_classes=spec.num_classes, alpha=ALPHA, seed=settings.seed).sample(
        2, (spec.image_size, spec.image_size), epoch=0, step=0)
    common = {"mean": spec.mean, "std": spec.std}
    gpumix.mix_normalize(batch, labels, params, num_classes=spec.num_classes, **common)
    gpumix.normalize(batch, **common)
    chains.unfused_chain(batch, labels, params, num_classes=spec.num_classes, **common)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_variants(spec, settings, auto_augment=()):
    """(variants, skipped): every loader of the benchmark over ``spec``, gpumix first, not started yet.

    ``auto_augment``: policy names ("randaugment", ...); each adds the gpumix
    variant with that policy in its DALI pipeline (key ``gpumix_<policy>``),
    default knobs, right after the plain gpumix variant. ``skipped`` lists ``{key, name, reason}`` for loaders that cannot run here
    (timm not installed, or an odd batch for timm's Mixup).
    """
    cores, gpu = settings.threads, settings.device == "gpu"
    workers = f"{cores} worker{'s' if cores != 1 else ''}"
    pipe = "DALI " + ("ImageNet" if spec.kind == "imagenet" else "CIFAR") + " train pipeline"
    if spec.kind != "imagenet":
        dataset_name = "Dataset over load_cifar arrays"
    else:
        dataset_name = "ImageFolder" if spec.source.kind is SourceKind.FOLDER else "Dataset over the same files"
    worker_ready = cores * PREFETCH_FACTOR

    def repeated():
        return chains.Repeated(torch_dataset(spec), EPOCH[spec.kind])

    variants = [
        Variant("gpumix", f"gpumix: {pipe} + MixupIterator + Mixup", PREFETCH_DEPTH,
                lambda: _mixup_iterator(spec, settings, True)),
        *[Variant(f"gpumix_{policy}", f"gpumix + {policy} (DALI auto_aug, default knobs) in the pipeline",
                  PREFETCH_DEPTH, lambda policy=policy: _mixup_iterator(spec, settings, True, policy))
          for policy in auto_augment],
        Variant("normalize_only", "same pipeline + MixupIterator, normalize only (no mixup)", PREFETCH_DEPTH,
                lambda: _mixup_iterator(spec, settings, False)),
        Variant("dali_normalize", "same pipeline + DALIGenericIterator + gpumix.normalize (no mixup)",
                PREFETCH_DEPTH, lambda: _dali_iterator(spec, settings, False)),
        Variant("dali_unfused", "same pipeline + DALIGenericIterator + unfused torch mixup chain", PREFETCH_DEPTH,
                lambda: _dali_iterator(spec, settings, True)),
        Variant("torchvision", f"torchvision {dataset_name} + DataLoader ({workers}) + normalize + v2.MixUp",
                worker_ready, lambda: _torchvision(spec, settings, repeated()), torch_side=True),
    ]
    if spec.kind == "imagenet":  # what the training resize's antialiasing costs (docs/benchmarks.md)
        variants.insert(1 + len(auto_augment), Variant("gpumix_aliased", "same pipeline with antialias=False (aliased resize) + Mixup",
                                   PREFETCH_DEPTH, lambda: _mixup_iterator(spec, settings, True, antialias=False)))
    timm_name = (f"timm create_loader ({workers}, prefetcher) + FastCollateMixup" if gpu
                 else f"timm create_loader ({workers}) + timm Mixup")
    skipped = []
    try:
        import timm  # noqa: F401
    except ImportError:
        skipped.append({"key": "timm", "name": timm_name, "reason": "timm is not installed (pip install -e '.[bench]')"})
    else:
        if settings.batch_size % 2:
            skipped.append({"key": "timm", "name": timm_name,
                            "reason": f"timm's Mixup needs an even batch size, got {settings.batch_size}"})
        else:
            variants.append(Variant("timm", timm_name, worker_ready + gpu,
                                    lambda: _timm(spec, settings, repeated()), torch_side=True))
    return variants, skipped
