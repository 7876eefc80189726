"""``MixupIterator``: a DALI pipeline in, already-mixed and normalized torch batches out.

It wraps DALI's own ``DALIGenericIterator`` (sharding, last-batch policies,
epoch resets and checkpoints stay DALI's) and passes each uint8 batch through
the fused operator. Importing this module imports nvidia.dali.
"""
import collections
import enum
import typing
from collections.abc import Sequence
from typing import Any

import torch
from nvidia.dali import Pipeline
from nvidia.dali import types as dali_types
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from gpumix.erasing import RandomErasing
from gpumix.mixup import Mixup
from gpumix.ops import mix_normalize, normalize
from gpumix.validation import check_bool, check_int, check_label_range, check_output

__all__ = ["MixupIterator", "MixedBatch", "LastBatch", "STATE_FORMAT"]

# Tags the plain-data state, so a state from another kind of object is refused by name.
STATE_FORMAT = "gpumix.MixupIterator/1"
# GPU batches whose kernels may still be reading DALI's buffers; each buffer is
# released only after its kernel's event has completed, two steps later.
_IN_FLIGHT = 2
_OUTPUTS = ("images", "labels")
_INTEGER_TYPES = {getattr(dali_types.DALIDataType, t) for t in
                  ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")}


class LastBatch(str, enum.Enum):
    """What happens to a shard's last, incomplete batch (DALI's ``LastBatchPolicy``).

    PARTIAL yields it at its smaller size; DROP skips it; FILL yields a full
    batch, completed with the reader's padding (copies of the shard's last sample).
    """

    PARTIAL = "partial"
    DROP = "drop"
    FILL = "fill"


_DALI_POLICY = {LastBatch.PARTIAL: LastBatchPolicy.PARTIAL, LastBatch.DROP: LastBatchPolicy.DROP,
                LastBatch.FILL: LastBatchPolicy.FILL}


class MixedBatch(typing.NamedTuple):
    """One step with ``return_clean=True`` or ``return_params=True``, all on the pipeline's device.

    images: mixed, ``dtype`` (B, C, H, W); targets: float32 (B, K) soft targets;
    clean: the unmixed normalized batch, like images (None unless
    ``return_clean``, since it costs a second output); index: int64 (B,), the
    partner of each sample; lam: float32 (B,), the weight of each sample itself
    (for CutMix, the fraction of its own pixels); labels: int64 (B,), the
    original labels.
    """

    images: torch.Tensor
    targets: torch.Tensor
    clean: torch.Tensor | None
    # shadows tuple.index (the method): the field's name is public API, kept
    index: torch.Tensor  # type: ignore[assignment]
    lam: torch.Tensor
    labels: torch.Tensor


def _describe_outputs(pipe: Pipeline) -> str:
    dtypes, ndims = pipe.output_dtype(), pipe.output_ndim()
    return ", ".join(f"{d} with {n} dims" for d, n in zip(dtypes, ndims))


def _check_pipeline(pipe: object) -> None:
    """Build ``pipe`` and refuse it unless its outputs are (uint8 HWC images, integer labels).

    Types DALI cannot tell before running (None) are checked on the first batch.
    """
    if not isinstance(pipe, Pipeline):
        raise TypeError(f"pipeline must be a nvidia.dali Pipeline, got {type(pipe).__name__}")
    pipe.build()
    if pipe.num_outputs != 2:
        raise ValueError(f"pipeline must have 2 outputs (uint8 HWC images, integer labels), got "
                         f"{pipe.num_outputs}: {_describe_outputs(pipe)}")
    (image_type, label_type), (image_ndim, label_ndim) = pipe.output_dtype(), pipe.output_ndim()
    _check_types(image_type, image_ndim, label_type, label_ndim)


def _check_types(image_type: Any, image_ndim: int | None, label_type: Any, label_ndim: int | None) -> None:
    if image_type not in (None, dali_types.DALIDataType.UINT8, torch.uint8) or image_ndim not in (None, 3):
        raise ValueError(f"pipeline output 0 must be uint8 HWC images (3 dims), got {image_type} with "
                         f"{image_ndim} dims")
    integer = label_type is None or label_type in _INTEGER_TYPES or (
        isinstance(label_type, torch.dtype) and not label_type.is_floating_point and not label_type.is_complex
        and label_type != torch.bool)
    if not integer or label_ndim not in (None, 0, 1):
        raise ValueError(f"pipeline output 1 must be integer labels (a scalar or 1 element per sample), got "
                         f"{label_type} with {label_ndim} dims")


def _check_batch(images: torch.Tensor, labels: torch.Tensor, channels: int) -> None:
    """Refuse a batch that breaks the pipeline contract, saying what it got (torch tensors, batch first)."""
    _check_types(images.dtype, images.dim() - 1, labels.dtype, labels.dim() - 1)
    if images.shape[-1] != channels:
        raise ValueError(f"pipeline images must be HWC with {channels} channels (as mean and std), got a batch "
                         f"of shape {tuple(images.shape)}")
    if labels.numel() != images.shape[0]:
        raise ValueError(f"pipeline labels must be one per sample, got shape {tuple(labels.shape)} for "
                         f"{images.shape[0]} images")


def _initial_checkpoint(dali: DALIGenericIterator) -> str | bytes | None:
    try:
        return dali.checkpoints()[0]
    except ValueError:  # "Cannot access checkpoints with checkpointing disabled"
        return None


def _channel_count(mean: object) -> int | None:
    if isinstance(mean, torch.Tensor):
        return mean.numel()
    return len(mean) if isinstance(mean, (list, tuple)) else None


class MixupIterator:
    """Iterate a DALI pipeline as mixed, normalized, training-ready torch batches.

    Args:
        pipeline: a DALI ``Pipeline`` (built here if needed) with two outputs:
            uint8 HWC images of one fixed size and integer labels (scalars or
            one element per sample), and a reader named ``reader_name``. Any
            other pipeline is refused with a message naming what it has.
        mixup: a ``gpumix.Mixup``, or None to only normalize (validation).
        mean, std: per-channel floats in pixel units (0-255); std > 0.
        dtype: torch.float32, torch.float16 or torch.bfloat16 images.
        channels_last: images in torch.channels_last memory format.
        reader_name: the reader DALI counts the epoch by (gpumix pipelines: "Reader").
        last_batch_policy: "partial", "drop" or "fill" (``LastBatch``), DALI's meaning.
        return_clean: yield ``MixedBatch`` (clean batch, partner index, lam,
            labels too) instead of ``(images, targets)``.
        return_params: yield ``MixedBatch`` without the clean batch (index, lam
            and labels, e.g. for a per-pair loss).
        rank: this process's global rank; mix parameters are
            ``mixup.sample(B, (H, W), epoch=e, step=s, rank=rank)``.
        state: a ``state_dict()`` to resume from; ``pipeline`` must have been
            created with ``checkpoint=state["dali"]``.
        num_classes: with ``mixup=None``, check every label is in
            ``[0, num_classes)`` (on the CPU, before the copy to the device),
            so a bad label is a ValueError here and not an error inside the
            loss. With a mixup it must be None or ``mixup.num_classes`` (the
            operator checks the labels then).
        erasing: a ``gpumix.RandomErasing``, or None: each sample is erased
            in the same pass, after normalization and before mixing, with
            ``erasing.sample(B, (H, W), C, epoch=e, step=s, rank=rank)``;
            it works with ``mixup=None`` too.

    Each step yields ``(images, targets)``: images ``dtype`` (B, C, H, W),
    targets float32 (B, K), on the pipeline's device (``cuda:device_id`` or the
    CPU). With ``mixup=None`` it yields ``(images, labels)``, labels int64 (B,).
    Every yielded tensor is freshly allocated: it stays valid, unchanged, until
    the caller drops it. Iterating stops at the end of each epoch and the next
    ``iter()`` starts the next one (DALI's auto-reset). On the GPU the operator
    runs on torch's current stream, ordered after DALI's copy of the batch.
    """

    def __init__(self, pipeline: Pipeline, mixup: Mixup | None, *, mean: Sequence[float] | torch.Tensor,
                 std: Sequence[float] | torch.Tensor, dtype: torch.dtype = torch.float32, channels_last: bool = False,
                 reader_name: str = "Reader", last_batch_policy: LastBatch | str = "partial",
                 return_clean: bool = False, return_params: bool = False, rank: int = 0,
                 state: dict[str, Any] | None = None, num_classes: int | None = None,
                 erasing: RandomErasing | None = None) -> None:
        if mixup is not None and not isinstance(mixup, Mixup):
            raise TypeError(f"mixup must be a gpumix.Mixup or None, got {type(mixup).__name__}")
        if erasing is not None and not isinstance(erasing, RandomErasing):
            raise TypeError(f"erasing must be a gpumix.RandomErasing or None, got {type(erasing).__name__}")
        self._erasing = erasing
        if num_classes is not None:
            num_classes = check_int("num_classes", num_classes, 2)
            if mixup is not None and num_classes != mixup.num_classes:
                raise ValueError(f"num_classes is {num_classes} but mixup.num_classes is {mixup.num_classes}")
        self._num_classes = num_classes
        channels = _channel_count(mean)
        if channels not in (1, 3):
            raise ValueError(f"mean must have 1 or 3 values (one per channel), got {mean!r}")
        self._mean, self._std = check_output(channels, mean, std, dtype, channels_last)
        self._dtype, self._channels_last = dtype, channels_last
        if not isinstance(reader_name, str) or not reader_name:
            raise TypeError(f"reader_name must be a non-empty str, got {reader_name!r}")
        try:
            policy = LastBatch(last_batch_policy)
        except ValueError:
            raise ValueError(f"last_batch_policy must be 'partial', 'drop' or 'fill', got {last_batch_policy!r}") \
                from None
        self._return_clean = check_bool("return_clean", return_clean)
        self._return_params = check_bool("return_params", return_params) or return_clean
        if return_clean and mixup is None:
            raise ValueError("return_clean=True needs mixup: with mixup=None the images are already clean")
        if return_params and mixup is None:
            raise ValueError("return_params=True needs mixup: with mixup=None nothing is mixed")
        self._rank = check_int("rank", rank, 0)
        self._mixup = mixup
        self.last_batch_policy = policy

        _check_pipeline(pipeline)
        try:
            meta = pipeline.reader_meta(reader_name)
        except RuntimeError as error:
            raise ValueError(f"reader_name: the pipeline has no reader named {reader_name!r} ({error})") from None
        if not meta:
            raise ValueError(f"reader_name: the pipeline has no reader named {reader_name!r}")
        self._epoch, self._step = 0, 0
        self._pipeline = pipeline
        # DALI's own first-batch prefetch is off: this iterator prepares the first batch itself
        # (_prepare_first_batch), through DALI's public API, to check it before returning.
        self._dali = DALIGenericIterator(pipeline, list(_OUTPUTS), reader_name=reader_name, auto_reset=True,
                                         last_batch_policy=_DALI_POLICY[policy], prepare_first_batch=False)
        # The checkpoint before any batch: what state_dict() reports until the first batch is yielded
        # (None for a pipeline without checkpointing, whose state_dict() raises DALI's ValueError).
        self._initial_dali_state = _initial_checkpoint(self._dali)
        if state is not None:
            self._epoch, self._step = self._check_state(state, pipeline)
        self._first = self._prepare_first_batch(pipeline)
        # A state taken after an epoch's last batch: the first call has just met (and DALI's
        # auto-reset swallowed) the end of that epoch, which the uninterrupted iterator reports on its
        # next call. Report it on ours too, so both yield the same sequence.
        self._pending_end = state is not None and self._first is None
        self._in_flight: collections.deque[tuple[torch.cuda.Event, torch.Tensor]] = collections.deque()

    def _prepare_first_batch(self, pipeline: Pipeline) -> dict[str, torch.Tensor] | None:
        """Run DALI for the first batch and check it, so a bad pipeline is refused at construction.

        Returns DALI's first output dict, or None when a pipeline restored at an epoch's end has
        met that end (DALI's own prefetch, ``prepare_first_batch=True``, does the same).
        """
        try:
            first = next(self._dali)[0]
        except RuntimeError as error:
            if "uniform" not in str(error).lower():
                raise
            raise ValueError(f"pipeline images must all have one fixed size (add a crop or resize): {error}") \
                from None
        except StopIteration:
            if not pipeline.is_restored_from_checkpoint:
                raise RuntimeError("the pipeline yielded no data: with last_batch_policy 'partial' this happens "
                                   "when the batch size is larger than the shard") from None
            return None
        _check_batch(first["images"], first["labels"], len(self._mean))
        return first

    # --- resume -------------------------------------------------------------------------------
    def _check_state(self, state: object, pipeline: Pipeline) -> tuple[int, int]:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"state must be a dict from MixupIterator.state_dict() (format {STATE_FORMAT!r}), "
                             f"got {type(state).__name__}"
                             + (f" with format {state.get('format')!r}" if isinstance(state, dict) else ""))
        if not pipeline.is_restored_from_checkpoint or self._initial_dali_state != state["dali"]:
            raise ValueError("state: the pipeline was not restored from this state's DALI checkpoint; create it "
                             "with checkpoint=state['dali'] (gpumix builders) or Pipeline(..., checkpoint=...)")
        seed = None if self._mixup is None else self._mixup.seed
        if state["seed"] != seed:
            raise ValueError(f"state was taken with mixup seed {state['seed']!r}, but mixup has seed {seed!r}")
        if state["rank"] != self._rank:
            raise ValueError(f"state was taken at rank {state['rank']}, but rank is {self._rank}")
        erasing_seed = None if self._erasing is None else self._erasing.seed
        if state.get("erasing_seed") != erasing_seed:
            raise ValueError(f"state was taken with erasing seed {state.get('erasing_seed')!r}, but erasing has seed "
                             f"{erasing_seed!r}")
        return check_int("state['epoch']", state["epoch"], 0), check_int("state['step']", state["step"], 0)

    def state_dict(self) -> dict[str, Any]:
        """Plain Python data to resume from: DALI's checkpoint under ``"dali"``, and the epoch/step counters.

        ``epoch`` counts finished epochs; ``step`` counts the batches yielded
        so far in the current one. Pass the dict to a new iterator as
        ``state=`` over a pipeline created with ``checkpoint=state["dali"]``;
        it then yields what this one would have yielded next.
        """
        # While the first batch is prepared but not yet yielded, DALI's state is still the initial one.
        held = self._first is not None and self._initial_dali_state is not None
        dali = self._initial_dali_state if held else self._dali.checkpoints()[0]
        return {"format": STATE_FORMAT, "dali": dali, "epoch": self._epoch,
                "step": self._step, "rank": self._rank,
                "seed": None if self._mixup is None else self._mixup.seed,
                "erasing_seed": None if self._erasing is None else self._erasing.seed}

    # --- iteration ----------------------------------------------------------------------------
    @property
    def erasing(self) -> RandomErasing | None:
        """The ``RandomErasing`` applied to every batch, or None."""
        return self._erasing

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to (0-based)."""
        return self._epoch

    @property
    def step(self) -> int:
        """Batches yielded so far in the current epoch."""
        return self._step

    @property
    def mixup(self) -> Mixup | None:
        """The ``Mixup`` config, or None when the iterator only normalizes."""
        return self._mixup

    @property
    def batch_size(self) -> int:
        """The pipeline's batch size (the last batch of an epoch may be smaller under the PARTIAL policy)."""
        return self._pipeline.max_batch_size

    def __len__(self) -> int:
        """Batches per epoch on this shard, under the last-batch policy (DALI's count).

        With shards of unequal sizes and the PARTIAL policy, a smaller shard
        yields one batch fewer in an epoch whose last batch would hold only
        padding: the count is then an upper bound.
        """
        return len(self._dali)

    def __iter__(self) -> "MixupIterator":
        return self

    def __next__(self) -> tuple[torch.Tensor, ...] | MixedBatch:
        try:
            if self._pending_end:
                self._pending_end = False
                raise StopIteration
            if self._first is not None:
                out, self._first = self._first, None
            else:
                out = next(self._dali)[0]
            while out["images"].shape[0] == 0:
                # Uneven shards: DALI pads every shard to the largest one's batch count, so under the
                # PARTIAL policy a smaller shard's last batch can hold padding only. It has no sample to
                # yield: the epoch is over (DALI's next call ends it).
                out = next(self._dali)[0]
        except StopIteration:
            self._epoch += 1
            self._step = 0
            raise
        images, labels = out["images"], out["labels"]
        _check_batch(images, labels, len(self._mean))
        n = images.shape[0]
        # A fresh int64 copy: DALI's buffer is reused after this step.
        labels = labels.reshape(n).to(torch.int64, copy=True)
        result = self._apply(images, labels)
        self._hold(images)
        self._step += 1
        return result

    def _apply(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...] | MixedBatch:
        erasing = None
        if self._erasing is not None:
            erasing = self._erasing.sample(images.shape[0], (images.shape[1], images.shape[2]), images.shape[3],
                                           epoch=self._epoch, step=self._step, rank=self._rank)
        if self._mixup is None:
            if self._num_classes is not None:  # a fresh CPU copy unless the pipeline put labels on the GPU
                check_label_range(labels, self._num_classes)
            out = normalize(images, mean=self._mean, std=self._std, dtype=self._dtype,
                            channels_last=self._channels_last, erasing=erasing)
            return out, labels.to(out.device, non_blocking=True)
        params = self._mixup.sample(images.shape[0], (images.shape[1], images.shape[2]), epoch=self._epoch,
                                    step=self._step, rank=self._rank)
        # labels stay on the CPU for the operator's range check: no device sync
        outputs = mix_normalize(images, labels, params, mean=self._mean, std=self._std,
                                num_classes=self._mixup.num_classes, label_smoothing=self._mixup.label_smoothing,
                                dtype=self._dtype, channels_last=self._channels_last,
                                return_clean=self._return_clean, erasing=erasing)
        if not self._return_params:
            return outputs
        device = outputs[0].device
        clean = outputs[2] if self._return_clean else None
        return MixedBatch(outputs[0], outputs[1], clean, params.index.to(device, non_blocking=True),
                          params.lam.to(device, non_blocking=True), labels.to(device, non_blocking=True))

    def _hold(self, images: torch.Tensor) -> None:
        """Keep a GPU batch's DALI buffer alive until the kernel reading it has finished."""
        if not images.is_cuda:
            return
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(images.device))
        self._in_flight.append((event, images))
        while len(self._in_flight) > _IN_FLIGHT:
            done, _ = self._in_flight.popleft()
            done.synchronize()  # two steps old: already complete unless the GPU is far behind
