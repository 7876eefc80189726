"""The trainer's settings: one validated dataclass, YAML recipes, and the command-line flags.

Precedence, lowest first: ``TrainConfig``'s defaults, then the ``--recipe``
file, then the flags given on the command line. Recipes are YAML mappings of
``TrainConfig`` field names; the shipped ones live in ``gpumix/train/recipes/``.
"""
import argparse
import dataclasses
import enum
import math
import numbers
import os
import typing
from importlib import resources
from typing import Any

import yaml

from gpumix.datasets import CIFAR_SIZE, DATASETS
from gpumix.erasing import ERASING_MODES
from gpumix.pipelines.decoder import DecoderConfig
from gpumix.train.losses import LossKind
from gpumix.train.schedule import DECAYS, LRSchedule
from gpumix.validation import check_bool, check_float, check_int, check_text, field_of, tagged

__all__ = ["TrainConfig", "recipe_path", "shipped_recipes", "load_recipe", "build_parser", "parse_config"]

DEVICES = ("auto", "cuda", "cpu")
AMP_MODES = ("bf16", "fp16", "off")
LOSSES = tuple(kind.value for kind in LossKind)
OPTIMIZERS = ("sgd", "adamw")
MIXUP_MODES = ("batch", "pair", "elem")  # gpumix.MixMode's values
# gpumix.pipelines.auto_augment.POLICIES, plus "none" so that a flag can turn a recipe's policy off
AUTO_AUGMENTS = ("randaugment", "trivialaugment", "autoaugment", "none")
IMAGENET_CROP = 224


def _literal(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if not isinstance(value, str) or value not in allowed:
        raise tagged(ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}"), name)
    return value


def _optional_int(name: str, value: object, minimum: int) -> int | None:
    return None if value is None else check_int(name, value, minimum)


def _setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None, metavar: str | None = None) -> Any:
    """A TrainConfig field with its default and its meaning: the --flag's help text and allowed values."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar})


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; validated on construction, errors name the field and the value.

    ``crop`` defaults to 224 for ImageNet and 32 for CIFAR (which allows only
    32); ``val_resize`` (ImageNet only) defaults, in the pipeline, to
    ``crop * 256 / 224``. ``checkpoint_every`` (steps) None writes checkpoints
    only at epoch ends and at the stop. ``amp`` applies on the GPU only.
    ``num_classes`` None is inferred from the data; ``dist_timeout`` (seconds)
    bounds how long a collective waits for a dead or stuck rank.
    """

    recipe: str | None = _setting(None, "a shipped recipe name or a .yaml path; flags override its settings")
    data: str | None = _setting(
        None, "dataset root: ImageNet class folders, file list or .tar shards; CIFAR's extracted folder")
    dataset: str = _setting("imagenet", "what --data holds", choices=DATASETS)
    arch: str = _setting("resnet50", "model: any torchvision classification model name, or preactresnet18")
    epochs: int = _setting(90, "training epochs (the schedule's length)")
    global_batch_size: int = _setting(1024, "images per optimizer step, summed over all ranks")
    max_steps: int | None = _setting(None, "stop after this many optimizer steps (for smoke tests)")
    output: str = _setting("runs/gpumix", "folder for the checkpoint, metrics, run record and curves")
    resume: bool = _setting(False, "continue from OUTPUT/checkpoint.pt")
    device: str = _setting("auto", "where to train (auto: the GPU when there is one)", choices=DEVICES)
    seed: int = _setting(0, "seed of the weights, the data order and the mixing")
    mixup_alpha: float = _setting(0.2, "mixup's Beta(alpha, alpha) (0: no mixup)")
    cutmix_alpha: float = _setting(0.0, "CutMix's Beta(alpha, alpha) (0: no CutMix)")
    label_smoothing: float = _setting(0.0, "label smoothing, in [0, 1)")
    loss: str = _setting("pair", "soft-target CE, per-pair CE, MixupE or timm's BCE", choices=LOSSES)
    # The official MixupE README's --mixupe_version 3 run (--mixup_eta 0.001 --threshold 1.0).
    mixupe_eta: float = _setting(0.001, "MixupE's eta (the official code's --mixup_eta)")
    mixupe_tau: float = _setting(1.0, "MixupE's threshold tau (inf allowed)")
    # issue 15: timm's --mixup-off-epoch, --bce-loss/--bce-target-thresh/--bce-sum, --aa, --opt adamw, --sched cosine
    mixup_off_epoch: int | None = _setting(
        None, "from this epoch on nothing is mixed: clean images, (smoothed) one-hot targets "
              "(timm's --mixup-off-epoch)")
    mixup_mode: str = _setting("batch", "one lam per batch, per pair or per sample (timm's --mixup-mode)",
                               choices=MIXUP_MODES)
    mixup_prob: float = _setting(1.0, "chance that a batch (pair, sample) is mixed at all (timm's --mixup-prob)")
    mixup_switch_prob: float = _setting(
        0.5, "chance of CutMix rather than mixup when both are on (timm's --mixup-switch-prob)")
    bce_target_thresh: float | None = _setting(
        None, "with --loss bce: targets above it become 1, the rest 0 (timm's --bce-target-thresh)")
    bce_sum: bool = _setting(False, "with --loss bce: sum over classes, mean over the batch (timm's --bce-sum)")
    auto_augment: str | None = _setting(
        None, "auto-augment in the DALI train pipeline, after the crop and flip ('none' turns a recipe's off)",
        choices=AUTO_AUGMENTS)
    randaug_num_ops: int = _setting(2, "RandAugment's number of ops per image (timm's rand-n)")
    randaug_magnitude: int = _setting(9, "RandAugment's magnitude, 0-10 as in timm (rand-m9)")
    optimizer: str = _setting(
        "sgd", "sgd (momentum, nesterov) or adamw (torch's; betas 0.9/0.999, no weight decay on 1-D weights "
               "and biases, as timm)", choices=OPTIMIZERS)
    lr_decay: str = _setting(
        "step", "after the warmup: step (milestones, gamma) or cosine to --min-lr at the last epoch", choices=DECAYS)
    min_lr: float = _setting(0.0, "the cosine decay's final learning rate")
    clip_grad: float | None = _setting(
        None, "clip the global gradient norm to this value (timm's --clip-grad, DeiT III's 1.0)")
    model_ema_decay: float | None = _setting(
        None, "keep an exponential moving average of the weights with this decay and evaluate it too "
              "(timm's --model-ema --model-ema-decay; DeiT's 0.99996)")
    # timm's --reprob/--remode/--recount: random erasing in the fused pass (gpumix.RandomErasing)
    reprob: float = _setting(
        0.0, "random erasing's chance per sample, in the fused pass before mixing (timm's --reprob; DeiT's 0.25)")
    remode: str = _setting(
        "const", "what erasing writes, in normalized units: const (0), rand (N(0,1) per box and channel) or pixel "
                 "(N(0,1) per element) (timm's --remode)", choices=ERASING_MODES)
    recount: int = _setting(1, "erasing boxes per erased sample, at most (timm's --recount)")
    base_lr: float = _setting(0.1, "learning rate at the start of the warmup")
    peak_lr: float = _setting(0.4, "learning rate at the end of the warmup")
    warmup_epochs: float = _setting(5.0, "epochs of linear warmup from base_lr to peak_lr")
    milestones: tuple[int, ...] = _setting(
        (30, 60, 80), "epochs at which the learning rate is multiplied by gamma", metavar="EPOCH")
    gamma: float = _setting(0.1, "the step decay's factor at each milestone")
    momentum: float = _setting(0.9, "SGD's momentum")
    weight_decay: float = _setting(1e-4, "weight decay")
    nesterov: bool = _setting(False, "Nesterov momentum (SGD)")
    crop: int | None = _setting(None, "training crop (default: 224 for ImageNet, 32 for CIFAR)")
    val_resize: int | None = _setting(
        None, "ImageNet validation: resize the shorter side to this before the center crop (default: crop * 256 / 224)")
    num_threads: int = _setting(
        4, "DALI threads per rank (CPU decoding and augmentation; the GPU decoder's host threads)")
    reader_workers: int = _setting(0, "processes that read WebDataset shards per rank (0: the training process)")
    # the GPU decoder's knobs (gpumix.pipelines.DecoderConfig, which says where each default comes from)
    hw_decoder_load: float = _setting(
        DecoderConfig.hw_decoder_load, "share of JPEGs for the GPU's hardware JPEG decoder (A100/H100), 0-1")
    device_memory_padding: int = _setting(
        DecoderConfig.device_memory_padding, "bytes nvJPEG pads each GPU buffer with; one buffer per DALI thread")
    host_memory_padding: int = _setting(
        DecoderConfig.host_memory_padding,
        "bytes nvJPEG pads each pinned host buffer with; two buffers per DALI thread")
    preallocate_width_hint: int = _setting(
        DecoderConfig.preallocate_width_hint,
        "image width the hardware JPEG decoder preallocates for (0: grow on demand)")
    preallocate_height_hint: int = _setting(
        DecoderConfig.preallocate_height_hint,
        "image height the hardware JPEG decoder preallocates for (0: grow on demand)")
    checkpoint_every: int | None = _setting(
        None, "also checkpoint every N steps (default: at epoch ends and at the stop only)")
    amp: str = _setting("bf16", "autocast dtype on the GPU", choices=AMP_MODES)
    compile: bool = _setting(False, "torch.compile the model")
    channels_last: bool = _setting(True, "channels_last batches and weights")
    tensorboard: bool = _setting(False, "also log to OUTPUT/tensorboard (needs the tensorboard package)")
    log_every: int = _setting(10, "log (and sync with the host) every N steps")
    deterministic: bool = _setting(False, "torch's deterministic algorithms (bit-exact resumes on the CPU)")
    num_classes: int | None = _setting(
        None, "classes (default: CIFAR's, the class folders or the file list's labels; 1000 for shards)")
    dist_timeout: float = _setting(
        300.0, "seconds a collective may wait for the other ranks before the run stops with an error")

    def __post_init__(self) -> None:
        self.recipe = check_text("recipe", self.recipe, optional=True)
        self.data = check_text("data", self.data, optional=True)
        self.dataset = _literal("dataset", self.dataset, DATASETS)
        self.arch = check_text("arch", self.arch, optional=False)
        self.epochs = check_int("epochs", self.epochs, 1)
        self.global_batch_size = check_int("global_batch_size", self.global_batch_size, 1)
        self.max_steps = _optional_int("max_steps", self.max_steps, 1)
        self.output = check_text("output", self.output, optional=False)
        self.resume = check_bool("resume", self.resume)
        self.device = _literal("device", self.device, DEVICES)
        self.seed = check_int("seed", self.seed, 0)
        self.mixup_alpha = check_float("mixup_alpha", self.mixup_alpha, 0.0, math.inf)
        self.cutmix_alpha = check_float("cutmix_alpha", self.cutmix_alpha, 0.0, math.inf)
        self.label_smoothing = check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        self.loss = _literal("loss", self.loss, LOSSES)
        self.mixupe_eta = check_float("mixupe_eta", self.mixupe_eta, 0.0, math.inf)
        tau = self.mixupe_tau
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or math.isnan(tau):
            raise tagged(ValueError(f"mixupe_tau must be a float (finite or inf), got {tau!r}"), "mixupe_tau")
        self.mixupe_tau = float(tau)
        self.mixup_off_epoch = _optional_int("mixup_off_epoch", self.mixup_off_epoch, 0)
        self.mixup_mode = _literal("mixup_mode", self.mixup_mode, MIXUP_MODES)
        self.mixup_prob = check_float("mixup_prob", self.mixup_prob, 0.0, 1.0)
        self.mixup_switch_prob = check_float("mixup_switch_prob", self.mixup_switch_prob, 0.0, 1.0)
        if self.bce_target_thresh is not None:
            self.bce_target_thresh = check_float("bce_target_thresh", self.bce_target_thresh, 0.0, 1.0,
                                                 high_open=True)
        self.bce_sum = check_bool("bce_sum", self.bce_sum)
        if self.auto_augment is not None:
            self.auto_augment = _literal("auto_augment", self.auto_augment, AUTO_AUGMENTS)
            self.auto_augment = None if self.auto_augment == "none" else self.auto_augment
        self.randaug_num_ops = check_int("randaug_num_ops", self.randaug_num_ops, 1)
        self.randaug_magnitude = check_int("randaug_magnitude", self.randaug_magnitude, 0)
        if self.randaug_magnitude > 10:
            raise tagged(ValueError(f"randaug_magnitude must be in [0, 10] (timm's scale), "
                                    f"got {self.randaug_magnitude}"), "randaug_magnitude")
        self.optimizer = _literal("optimizer", self.optimizer, OPTIMIZERS)
        self.lr_decay = _literal("lr_decay", self.lr_decay, DECAYS)
        self.min_lr = check_float("min_lr", self.min_lr, 0.0, math.inf)
        self.reprob = check_float("reprob", self.reprob, 0.0, 1.0)
        self.remode = _literal("remode", self.remode, ERASING_MODES)
        self.recount = check_int("recount", self.recount, 1)
        if self.model_ema_decay is not None:
            self.model_ema_decay = check_float("model_ema_decay", self.model_ema_decay, 0.0, 1.0, high_open=True)
        if self.clip_grad is not None:
            self.clip_grad = check_float("clip_grad", self.clip_grad, 0.0, math.inf)
            if self.clip_grad <= 0:
                raise tagged(ValueError(f"clip_grad must be > 0 (or None for no clipping), "
                                        f"got {self.clip_grad!r}"), "clip_grad")
        schedule = LRSchedule(base_lr=self.base_lr, peak_lr=self.peak_lr, warmup_epochs=self.warmup_epochs,
                              milestones=self.milestones, gamma=self.gamma, steps_per_epoch=1,
                              **self.schedule_decay())
        self.base_lr, self.peak_lr, self.warmup_epochs = schedule.base_lr, schedule.peak_lr, schedule.warmup_epochs
        self.milestones, self.gamma = schedule.milestones, schedule.gamma
        self.momentum = check_float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        self.weight_decay = check_float("weight_decay", self.weight_decay, 0.0, math.inf)
        self.nesterov = check_bool("nesterov", self.nesterov)
        self.crop = _optional_int("crop", self.crop, 1)
        self.val_resize = _optional_int("val_resize", self.val_resize, 1)
        self.num_threads = check_int("num_threads", self.num_threads, 1)
        self.reader_workers = check_int("reader_workers", self.reader_workers, 0)
        decoder = self.decoder  # validates the GPU decoder's fields, naming the bad one
        for field in dataclasses.fields(decoder):
            setattr(self, field.name, getattr(decoder, field.name))
        self.checkpoint_every = _optional_int("checkpoint_every", self.checkpoint_every, 1)
        self.amp = _literal("amp", self.amp, AMP_MODES)
        self.compile = check_bool("compile", self.compile)
        self.channels_last = check_bool("channels_last", self.channels_last)
        self.tensorboard = check_bool("tensorboard", self.tensorboard)
        self.log_every = check_int("log_every", self.log_every, 1)
        self.deterministic = check_bool("deterministic", self.deterministic)
        self.num_classes = _optional_int("num_classes", self.num_classes, 2)
        self.dist_timeout = check_float("dist_timeout", self.dist_timeout, 0.0, math.inf)
        if self.dist_timeout <= 0:
            raise tagged(ValueError(f"dist_timeout must be > 0 seconds, got {self.dist_timeout!r}"), "dist_timeout")
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.dataset == "imagenet":
            self.crop = IMAGENET_CROP if self.crop is None else self.crop
            if self.val_resize is not None and self.val_resize < self.crop:
                raise tagged(ValueError(f"val_resize must be >= crop ({self.crop}), got {self.val_resize}"),
                             "val_resize")
        else:
            self.crop = CIFAR_SIZE if self.crop is None else self.crop
            if self.crop != CIFAR_SIZE:
                raise tagged(ValueError(f"crop must be {CIFAR_SIZE} for {self.dataset} (its images are 32x32), "
                                        f"got {self.crop}"), "crop")
            if self.val_resize is not None:
                raise tagged(ValueError(f"val_resize must be None for {self.dataset} (CIFAR is not resized), "
                                        f"got {self.val_resize}"), "val_resize")
        if self.loss == LossKind.MIXUPE.value and self.mixup_alpha == 0:
            raise tagged(ValueError("mixup_alpha must be > 0 with loss 'mixupe' (MixupE regularizes mixup), got 0.0"),
                         "mixup_alpha")
        mixing = self.mixup_alpha > 0 or self.cutmix_alpha > 0
        if self.mixup_off_epoch is not None and not mixing:
            raise tagged(ValueError(f"mixup_off_epoch needs mixup or CutMix on (mixup_alpha or cutmix_alpha > 0), "
                                    f"got {self.mixup_off_epoch}"), "mixup_off_epoch")
        for name in ("bce_target_thresh", "bce_sum"):
            if getattr(self, name) not in (None, False) and self.loss != LossKind.BCE.value:
                raise tagged(ValueError(f"{name} applies to loss 'bce' only, got {getattr(self, name)!r} with loss "
                                        f"{self.loss!r}"), name)
        if self.nesterov and self.momentum == 0:
            raise tagged(ValueError("nesterov=True needs momentum > 0, got momentum=0.0"), "nesterov")

    @property
    def decoder(self) -> DecoderConfig:
        """The GPU decoder's settings as a ``gpumix.pipelines.DecoderConfig``."""
        return DecoderConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(DecoderConfig)})

    def schedule_decay(self) -> dict[str, Any]:
        """``LRSchedule``'s decay keywords for this run: the decay kind, its end epoch and its floor."""
        return dict(decay=self.lr_decay, total_epochs=self.epochs, min_lr=self.min_lr)

    def to_dict(self) -> dict[str, Any]:
        """A dict of plain str/int/float/bool/None/list values: JSON- and weights_only-safe."""
        values = dataclasses.asdict(self)
        values["milestones"] = list(self.milestones)
        return values


def shipped_recipes() -> list[str]:
    """Sorted names of the recipes shipped inside the package (file names without ``.yaml``)."""
    folder = resources.files("gpumix.train") / "recipes"
    return sorted(p.name[:-len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_path(name: str | os.PathLike) -> str:
    """The YAML file of a shipped recipe ``name``, or ``name`` itself when it is a path to a .yaml file."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise TypeError(f"recipe must be a recipe name or a path, got {name!r}")
    if name.endswith((".yaml", ".yml")) or os.sep in name or (os.altsep and os.altsep in name):
        if not os.path.isfile(name):
            raise FileNotFoundError(f"recipe: {name} is not a file")
        return name
    path = resources.files("gpumix.train") / "recipes" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown recipe {name!r}; shipped recipes: {', '.join(shipped_recipes())} "
                         f"(or give a path to a .yaml file)")
    return str(path)


def load_recipe(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The settings of a recipe (a shipped name or a .yaml path) as a dict of TrainConfig field names."""
    path = recipe_path(name_or_path)
    with open(path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"recipe {path}: not valid YAML: {e}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"recipe {path}: must be a mapping of settings, got {type(values).__name__}")
    allowed = {f.name for f in dataclasses.fields(TrainConfig)} - {"recipe"}
    for key in values:
        if key not in allowed:
            raise ValueError(f"recipe {path}: unknown key {key!r} (keys are TrainConfig fields: "
                             f"{', '.join(sorted(allowed))})")
    return values


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_type(field: dataclasses.Field) -> tuple[type, bool]:
    """The element type of a TrainConfig field (int, float, str or bool) and whether it is a tuple of them."""
    kind = typing.get_type_hints(TrainConfig)[field.name]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is tuple:
        return args[0], True
    if args:  # X | None
        kind = args[0]
    if kind not in (int, float, str, bool):
        raise TypeError(f"TrainConfig.{field.name}: no flag for a field of type {kind!r}")
    return kind, False


def build_parser() -> argparse.ArgumentParser:
    """The trainer's argparse parser: one flag per TrainConfig field, ``--no-x`` too for booleans.

    Flags not given are absent from the namespace (no defaults), so that the
    recipe's value or the field's default stands.
    """
    parser = argparse.ArgumentParser(prog="python -m gpumix.train", argument_default=argparse.SUPPRESS,
                                     description="Train an image classifier with gpumix's fused mixup + normalize.")
    for field in dataclasses.fields(TrainConfig):
        kind, many = _flag_type(field)
        text = field.metadata["help"]
        if "default:" not in text:
            default = field.default
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            text = f"{text} (default: {shown})"
        if kind is bool:
            parser.add_argument(_flag(field.name), action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(_flag(field.name), type=kind, nargs="+" if many else None, help=text,
                                choices=field.metadata["choices"], metavar=field.metadata["metavar"])
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """A TrainConfig from command-line arguments (``sys.argv[1:]`` when None): defaults < recipe < flags.

    A bad recipe or a value the config refuses ends the program through
    ``parser.error`` (exit status 2), naming the flag or the recipe.
    """
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    if "recipe" in given:
        try:
            values = load_recipe(given["recipe"])
        except (ValueError, TypeError, OSError) as e:
            parser.error(f"argument --recipe: {e}")
    values.update(given)
    try:
        return TrainConfig(**values)
    except (ValueError, TypeError) as e:
        field = field_of(e) or ""  # the setting the error is about, as the checks tag it
        if field in given:
            parser.error(f"argument {_flag(field)}: {e}")
        if field in values:
            parser.error(f"argument --recipe: {given['recipe']}: {e}")
        parser.error(str(e))
