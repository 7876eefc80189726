"""Auto-augment for the DALI train pipelines: RandAugment, TrivialAugment Wide and AutoAugment.

Built on DALI's ``nvidia.dali.auto_aug``. The policy runs inside the pipeline,
on its device (GPU or CPU), on the uint8 HWC images after the crop, resize
and flip, as DALI's own examples place it. Its random choices come from DALI
random operators seeded by the pipeline's seed, so the output is deterministic
per seed and restored exactly by the pipeline's checkpoint. The policies
branch per sample, so a pipeline that uses one is built with
``enable_conditionals=True`` (the builders do it).
"""
import enum
import math
from dataclasses import dataclass
from typing import Any, cast

from nvidia.dali.data_node import DataNode

from gpumix.validation import check_bool, check_float, check_int

__all__ = ["AutoAugmentPolicy", "AutoAugment", "auto_augment_config", "apply_auto_augment"]

# timm's RandAugment magnitude scale: m out of 10 (its _LEVEL_DENOM), so 11 bins 0..10.
TIMM_MAGNITUDE_BINS = 11
# TrivialAugment Wide draws its magnitude from 31 bins (Muller & Hutter 2021; torchvision's default).
TRIVIAL_MAGNITUDE_BINS = 31
# timm shifts by up to 45% of the image side at full magnitude (translate_const = 0.45 * img_size).
MAX_TRANSLATE_REL = 0.45
# Gray padding for the warps (DALI's default; timm pads with the dataset mean, about 124, 116, 104).
FILL_VALUE = 128


class AutoAugmentPolicy(str, enum.Enum):
    """Which auto-augment policy the train pipeline applies."""

    RANDAUGMENT = "randaugment"        # Cubuk et al. 2020: num_ops ops, each at `magnitude`
    TRIVIALAUGMENT = "trivialaugment"  # Muller & Hutter 2021, the wide space: one op, a random magnitude
    AUTOAUGMENT = "autoaugment"        # Cubuk et al. 2019: the ImageNet policy (reduced CIFAR-10 for CIFAR)


POLICIES = tuple(p.value for p in AutoAugmentPolicy)


@dataclass(frozen=True)
class AutoAugment:
    """An auto-augment policy and its knobs; validated on construction, errors name the field.

    - policy: "randaugment", "trivialaugment" or "autoaugment".
    - num_ops: RandAugment's N (timm's ``-n``, default 2); ignored by the other policies.
    - magnitude: RandAugment's M (timm's ``-m``), an integer in ``[0, magnitude_bins - 1]``;
      default 9, DeiT's ``rand-m9``.
    - magnitude_bins: the number of magnitude levels; None means timm's scale
      (11, so M is out of 10) for RandAugment and 31 for TrivialAugment.
    - increasing: RandAugment's ops grow stronger with M (timm's ``inc1``, DALI's
      ``monotonic_mag``); False is the original non-monotonic suite.
    - fill_value: uint8 value padding the warped (rotate, shear, translate) areas.
    - max_translate_rel: the largest shift, as a fraction of the image side.
    """

    policy: AutoAugmentPolicy | str  # a name is turned into its AutoAugmentPolicy
    num_ops: int = 2
    magnitude: int = 9
    magnitude_bins: int | None = None
    increasing: bool = True
    fill_value: int = FILL_VALUE
    max_translate_rel: float = MAX_TRANSLATE_REL

    def __post_init__(self) -> None:
        policy = self.policy.value if isinstance(self.policy, enum.Enum) else self.policy
        if policy not in POLICIES:
            raise ValueError(f"auto_augment must be None or one of {', '.join(map(repr, POLICIES))}, "
                             f"got {self.policy!r}")
        object.__setattr__(self, "policy", AutoAugmentPolicy(policy))
        check_int("num_ops", self.num_ops, 1)
        bins = self.magnitude_bins
        if bins is None:
            bins = TRIVIAL_MAGNITUDE_BINS if self.policy is AutoAugmentPolicy.TRIVIALAUGMENT else TIMM_MAGNITUDE_BINS
        bins = check_int("magnitude_bins", bins, 2)
        object.__setattr__(self, "magnitude_bins", bins)
        check_int("magnitude", self.magnitude, 0)
        if self.magnitude >= bins:
            raise ValueError(f"magnitude must be in [0, magnitude_bins - 1] = [0, {bins - 1}], "
                             f"got {self.magnitude}")
        check_bool("increasing", self.increasing)
        check_int("fill_value", self.fill_value, 0)
        if self.fill_value > 255:
            raise ValueError(f"fill_value must be <= 255 (a uint8), got {self.fill_value}")
        check_float("max_translate_rel", self.max_translate_rel, 0.0, 1.0)
        if math.isclose(self.max_translate_rel, 0.0):
            raise ValueError(f"max_translate_rel must be > 0, got {self.max_translate_rel!r}")


def auto_augment_config(value: AutoAugment | AutoAugmentPolicy | str | None) -> AutoAugment | None:
    """None, an ``AutoAugment``, or a policy name (with the default knobs) as an ``AutoAugment`` or None."""
    if value is None or isinstance(value, AutoAugment):
        return value
    if isinstance(value, (str, AutoAugmentPolicy)):
        return AutoAugment(value)
    raise TypeError(f"auto_augment must be None, a policy name ({', '.join(POLICIES)}) or a "
                    f"gpumix.pipelines.AutoAugment, got {type(value).__name__}")


def apply_auto_augment(images: DataNode, config: AutoAugment, shape: tuple[int, int], *,
                       cifar: bool = False) -> DataNode:
    """Apply ``config`` to a DALI batch of uint8 HWC images of size ``shape`` = (H, W); returns the new batch.

    Call it inside a pipeline built with ``enable_conditionals=True``.
    ``cifar`` picks AutoAugment's reduced CIFAR-10 policy instead of the
    ImageNet one. The input node is not modified (DALI graphs are functional).
    """
    # imported here: DALI's auto_aug pulls in its AutoGraph machinery, which only the pipelines need
    from nvidia.dali.auto_aug import auto_augment, rand_augment, trivial_augment

    warp: dict[str, Any] = dict(shape=tuple(shape), fill_value=config.fill_value,
                                max_translate_rel=config.max_translate_rel)
    bins = cast(int, config.magnitude_bins)  # never None after __post_init__
    if config.policy is AutoAugmentPolicy.RANDAUGMENT:
        return rand_augment.rand_augment(images, n=config.num_ops, m=config.magnitude,
                                         num_magnitude_bins=bins,
                                         monotonic_mag=config.increasing, **warp)
    if config.policy is AutoAugmentPolicy.TRIVIALAUGMENT:
        return trivial_augment.trivial_augment_wide(images, num_magnitude_bins=bins, **warp)
    return auto_augment.auto_augment(images, policy_name="reduced_cifar10" if cifar else "image_net", **warp)
