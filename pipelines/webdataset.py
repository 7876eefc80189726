"""WebDataset shards fed to DALI by gpumix: the shards dealt out afresh to the ranks every epoch.

DALI's own ``fn.readers.webdataset`` keeps each rank on the same tar files
every epoch (or moves them all by one shard), and shuffles only through a
buffer. ``WebDatasetSource`` gives the shards webdataset's ``shardshuffle``
behaviour instead, with DALI's exactly-once guarantee:

1. epoch ``e``'s tar order is a permutation drawn from ``(seed, e)``, the same
   on every rank (validation keeps the given order);
2. the samples of the tars in that order are split into ``num_shards``
   contiguous slices, DALI's boundaries ``[n*s//S, n*(s+1)//S)``: each rank
   reads whole tars but at most the two at its slice's ends, and every sample
   is read exactly once per epoch across the ranks, the ranks' counts within 1;
3. each rank shuffles its slice locally, from ``(seed, e, rank)``: every
   sample moves at most ``buffer`` places, so reads stay within a few
   consecutive tars, as with a shuffle buffer of that size.

Samples are read by their byte offsets in the DALI index (``wds2idx``'s
``.idx`` beside each ``.tar``), one ``os.pread`` per component (it releases
the GIL while reading). The indexes are parsed when the pipeline is created:
for ImageNet-sized shards (1281 tars of 1000 samples) about 17 s and 85 MB
on this project's 2-core machine (a one-off measurement with generated
indexes, not a benchmark); the offsets are kept as numpy arrays, the keys
only read again to name a bad sample. The ``.cls`` label is parsed in the same callback,
with no extra operator: DALI has no operator that parses decimal ASCII, and
building one from arithmetic operators could not name a malformed file,
which this source does (``ValueError`` naming the tar and the member).
"""
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpumix.pipelines.sharding import ShardedSource

__all__ = ["WebDatasetSource", "read_index", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


def read_index(index_path: str, tar_path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The samples of one shard from its DALI index: (keys, image (offset, size) int64 (n, 2), cls int64 (n, 2)).

    The index is ``wds2idx``'s text format (``v1.2 N``, then one line per
    sample of ``ext offset size name`` groups; ``v1.1`` lines lack the names,
    and the keys are then the line numbers). A sample without an image
    (``.jpg``/``.jpeg``/``.png``) or a ``.cls`` raises a ValueError naming the
    index, its line and the tar.
    """
    keys: list[str] = []
    images: list[tuple[str, str]] = []
    labels: list[tuple[str, str]] = []
    with open(index_path, encoding="utf-8") as f:
        header = f.readline().split()
        if len(header) != 2 or header[0] not in ("v1.1", "v1.2") or not header[1].isdigit():
            raise ValueError(f"data: {index_path}: not a DALI WebDataset index (first line {' '.join(header)!r}; "
                             "make one with DALI's wds2idx)")
        width = 4 if header[0] == "v1.2" else 3
        for number, line in enumerate(f, 2):
            fields = line.split()
            if not fields:
                continue
            exts = [e.lower() for e in fields[::width]]
            image = next((exts.index(e) for e in IMAGE_EXTENSIONS if e in exts), None)
            key = fields[3].rsplit(".", 1)[0] if width == 4 and len(fields) >= 4 else str(len(keys))
            if image is None or "cls" not in exts:
                raise ValueError(f"data: {index_path}:{number}: sample {key} of {tar_path} lacks "
                                 f"an image ({'/'.join('.' + e for e in IMAGE_EXTENSIONS)}) or a .cls label")
            cls = exts.index("cls")
            keys.append(key)
            images.append((fields[image * width + 1], fields[image * width + 2]))
            labels.append((fields[cls * width + 1], fields[cls * width + 2]))
    if not keys:
        raise ValueError(f"data: the WebDataset index {index_path} lists no samples")
    return keys, np.array(images, dtype=np.int64), np.array(labels, dtype=np.int64)


class WebDatasetSource(ShardedSource):
    """Per-sample ``external_source`` callback over WebDataset shards: (encoded image uint8 (n,), int32 label (1,)).

    ``tars`` and ``indexes`` are parallel lists of paths. With ``shuffle``,
    epoch ``e`` deals the tars out afresh (see the module's docstring) and
    shuffles within ``buffer`` places; without it, the tars and their samples
    keep their order and shard ``s`` always reads the same slice. The order
    depends only on ``(seed, epoch, shard_id)``.
    """

    def __init__(self, tars: Sequence[str], indexes: Sequence[str], *, batch_size: int, shard_id: int, num_shards: int,
                 seed: int, shuffle: bool, buffer: int) -> None:
        self.tars, self.indexes = list(tars), list(indexes)
        if len(self.tars) != len(self.indexes):
            raise ValueError(f"indexes: {len(self.indexes)} indexes for {len(self.tars)} tars")
        image, label, counts = [], [], []
        for tar, index in zip(self.tars, self.indexes):
            _, img, cls = read_index(index, tar)  # the keys are not kept: describe() reads them again
            image.append(img)
            label.append(cls)
            counts.append(len(img))
        self.image, self.label = np.concatenate(image), np.concatenate(label)
        self.tar_of = np.repeat(np.arange(len(self.tars), dtype=np.int32), counts)
        self.first = np.concatenate([[0], np.cumsum(counts)])  # tar t holds samples [first[t], first[t+1])
        super().__init__(len(self.image), batch_size=batch_size, shard_id=shard_id, num_shards=num_shards)
        self.seed, self.shuffle, self.buffer = seed, shuffle, buffer
        self._epoch: int | None = None
        self._order = np.arange(0)
        self._files: dict[int, int] = {}

    def tar_order(self, epoch: int) -> np.ndarray:
        """The tars' order in ``epoch`` (indices into ``tars``), the same on every rank."""
        if not self.shuffle:
            return np.arange(len(self.tars))
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch,)))
        return rng.permutation(len(self.tars))

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices of ``epoch``: the tars in ``tar_order``, this shard's slice shuffled locally."""
        if epoch != self._epoch:
            order = np.concatenate([np.arange(self.first[t], self.first[t + 1]) for t in self.tar_order(epoch)])
            if self.shuffle:
                # A local shuffle of this shard's slice: sort by position plus a uniform jitter of up to
                # `buffer` places, so every sample moves at most `buffer` places (reads stay local).
                lo, hi = self.start, self.start + self.shard_size
                rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch, 1, self.shard_id)))
                jitter = np.arange(hi - lo) + rng.uniform(0, self.buffer, hi - lo)
                order[lo:hi] = order[lo:hi][np.argsort(jitter, kind="stable")]
            self._order, self._epoch = order, epoch
        return self._order

    def _read(self, t: int, offset: int, size: int) -> bytes:
        fd = self._files.get(t)
        if fd is None:
            fd = self._files[t] = os.open(self.tars[t], os.O_RDONLY)
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise ValueError(f"data: {self.tars[t]} ends before the {size} bytes at offset {offset} that its "
                             "index lists (a truncated tar, or a stale index)")
        return data

    def describe(self, i: int) -> str:
        """``tar:key`` of sample ``i``, for messages (reads the tar's index again)."""
        t = int(self.tar_of[i])
        keys = read_index(self.indexes[t], self.tars[t])[0]
        return f"{self.tars[t]}:{keys[i - self.first[t]]}"

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``i``: its encoded image, uint8 (n,), and its label, int32 (1,)."""
        t = int(self.tar_of[i])
        encoded = np.frombuffer(self._read(t, *self.image[i]), dtype=np.uint8)
        raw = self._read(t, *self.label[i])
        text = raw.strip()
        if not text.isdigit():
            raise ValueError(f"data: {self.describe(i)}.cls holds {raw[:20]!r}, not a decimal class label")
        return encoded, np.array([int(text)], dtype=np.int32)

    def close(self) -> None:
        """Close the tar files this source opened (it reopens them if asked for samples again)."""
        files, self._files = getattr(self, "_files", {}), {}
        for fd in files.values():
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}  # file descriptors do not travel
        return state
