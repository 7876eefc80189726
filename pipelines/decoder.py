"""The settings of DALI's mixed (GPU) image decoder in gpumix's ImageNet pipelines: one validated config.

They apply only when a pipeline decodes on the GPU (``device="gpu"``); the
CPU decoder ignores them. Where each default comes from:

- ``hw_decoder_load`` 0.65: the share of each batch's baseline JPEGs sent to
  the hardware JPEG decoder of A100/H100-class GPUs. DALI's own default, and
  the value of NVIDIA's DALI ResNet-50 examples; DALI's documentation says the
  best value depends on the thread count and must be found by measurement.
- ``device_memory_padding`` 16 MiB and ``host_memory_padding`` 8 MiB: DALI's
  own defaults. nvJPEG adds the padding to each of its buffer allocations, and
  DALI preallocates one device buffer and two pinned host buffers of that size
  per decoder thread. gpumix used NVIDIA's older example values (211 MB and
  140 MB) before: with 4 threads about 0.84 GB of GPU memory and 1.1 GB of
  pinned host memory per rank, far more than ImageNet's typical decoded image
  (500x375x3, 0.56 MB) needs; with the defaults, 64 MiB of each. An image
  larger than a buffer holds makes nvJPEG grow that buffer.
- ``preallocate_width_hint`` 5980 and ``preallocate_height_hint`` 6430: the
  hardware decoder's memory pool is preallocated for images of this size,
  the values of NVIDIA's current DALI ResNet-50 example, whose comment gives
  them as the biggest image of the (ImageNet) data set, "to avoid
  reallocations in runtime". Only the hardware decoder (A100, H100 and later)
  uses them; 0 lets its pool grow on demand.

How much GPU memory each setting holds on a given GPU is measured by
``gpumix-bench --device gpu`` (its "GPU MB" column).
"""
import dataclasses
import numbers
from typing import Any

from gpumix.validation import tagged

__all__ = ["DecoderConfig"]

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """The mixed decoder's knobs (see the module's docstring for each default); errors name the field."""

    hw_decoder_load: float = 0.65
    device_memory_padding: int = 16 * MIB
    host_memory_padding: int = 8 * MIB
    preallocate_width_hint: int = 5980
    preallocate_height_hint: int = 6430

    def __post_init__(self) -> None:
        load = self.hw_decoder_load
        if isinstance(load, bool) or not isinstance(load, numbers.Real) or not 0.0 <= float(load) <= 1.0:
            raise tagged(ValueError(f"hw_decoder_load must be a float in [0, 1], got {load!r}"), "hw_decoder_load")
        object.__setattr__(self, "hw_decoder_load", float(load))
        for name in ("device_memory_padding", "host_memory_padding", "preallocate_width_hint",
                     "preallocate_height_hint"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise tagged(ValueError(f"{name} must be an int >= 0, got {value!r}"), name)
            object.__setattr__(self, name, int(value))

    def mixed_arguments(self) -> dict[str, Any]:
        """The keyword arguments of DALI's ``fn.decoders.image*`` with ``device="mixed"``."""
        return dataclasses.asdict(self)
