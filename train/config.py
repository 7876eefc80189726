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
from importlib import resources

import yaml

from gpumix.validation import check_bool, check_float, check_int
from gpumix.erasing import ERASING_MODES
from gpumix.pipelines.decoder import DecoderConfig
from gpumix.train.losses import LossKind
from gpumix.train.schedule import DECAYS, LRSchedule

__all__ = ["TrainConfig", "recipe_path", "shipped_recipes", "load_recipe", "build_parser", "parse_config"]

DATASETS = ("imagenet", "cifar10", "cifar100")
DEVICES = ("auto", "cuda", "cpu")
AMP_MODES = ("bf16", "fp16", "off")
LOSSES = tuple(kind.value for kind in LossKind)
OPTIMIZERS = ("sgd", "adamw")
MIXUP_MODES = ("batch", "pair", "elem")  # gpumix.MixMode's values
# gpumix.pipelines.auto_augment.POLICIES, plus "none" so that a flag can turn a recipe's policy off
AUTO_AUGMENTS = ("randaugment", "trivialaugment", "autoaugment", "none")
IMAGENET_CROP = 224
CIFAR_SIZE = 32  # the CIFAR pipelines always crop 32x32


def _literal(name, value, allowed):
    if isinstance(value, enum.Enum):
        value = value.value
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_text(name: str, value: object, optional: bool = False) -> str | None:
    """``value`` as a non-empty str (a path-like is converted), or None when ``optional`` and None; TypeError
    naming ``name`` otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string{' or None' if optional else ''}, got {value!r}")
    return value


def _optional_int(name, value, minimum):
    return None if value is None else check_int(name, value, minimum)


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

    recipe: str | None = None
    data: str | None = None
    dataset: str = "imagenet"
    arch: str = "resnet50"
    epochs: int = 90
    global_batch_size: int = 1024
    max_steps: int | None = None
    output: str = "runs/gpumix"
    resume: bool = False
    device: str = "auto"
    seed: int = 0
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 0.0
    label_smoothing: float = 0.0
    loss: str = "pair"
    # The official MixupE README's --mixupe_version 3 run (--mixup_eta 0.001 --threshold 1.0).
    mixupe_eta: float = 0.001
    mixupe_tau: float = 1.0
    # issue 15: timm's --mixup-off-epoch, --bce-loss/--bce-target-thresh/--bce-sum, --aa, --opt adamw, --sched cosine
    mixup_off_epoch: int | None = None
    mixup_mode: str = "batch"
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    bce_target_thresh: float | None = None
    bce_sum: bool = False
    auto_augment: str | None = None
    randaug_num_ops: int = 2
    randaug_magnitude: int = 9
    optimizer: str = "sgd"
    lr_decay: str = "step"
    min_lr: float = 0.0
    clip_grad: float | None = None
    model_ema_decay: float | None = None
    # timm's --reprob/--remode/--recount: random erasing in the fused pass (gpumix.RandomErasing)
    reprob: float = 0.0
    remode: str = "const"
    recount: int = 1
    base_lr: float = 0.1
    peak_lr: float = 0.4
    warmup_epochs: float = 5.0
    milestones: tuple = (30, 60, 80)
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    crop: int | None = None
    val_resize: int | None = None
    num_threads: int = 4
    reader_workers: int = 0
    # the GPU decoder's knobs (gpumix.pipelines.DecoderConfig, which says where each default comes from)
    hw_decoder_load: float = DecoderConfig.hw_decoder_load
    device_memory_padding: int = DecoderConfig.device_memory_padding
    host_memory_padding: int = DecoderConfig.host_memory_padding
    preallocate_width_hint: int = DecoderConfig.preallocate_width_hint
    preallocate_height_hint: int = DecoderConfig.preallocate_height_hint
    checkpoint_every: int | None = None
    amp: str = "bf16"
    compile: bool = False
    channels_last: bool = True
    tensorboard: bool = False
    log_every: int = 10
    deterministic: bool = False
    num_classes: int | None = None
    dist_timeout: float = 300.0

    def __post_init__(self):
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
            raise ValueError(f"mixupe_tau must be a float (finite or inf), got {tau!r}")
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
            raise ValueError(f"randaug_magnitude must be in [0, 10] (timm's scale), got {self.randaug_magnitude}")
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
                raise ValueError(f"clip_grad must be > 0 (or None for no clipping), got {self.clip_grad!r}")
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
            raise ValueError(f"dist_timeout must be > 0 seconds, got {self.dist_timeout!r}")
        self._check_combinations()

    def _check_combinations(self):
        if self.dataset == "imagenet":
            self.crop = IMAGENET_CROP if self.crop is None else self.crop
            if self.val_resize is not None and self.val_resize < self.crop:
                raise ValueError(f"val_resize must be >= crop ({self.crop}), got {self.val_resize}")
        else:
            self.crop = CIFAR_SIZE if self.crop is None else self.crop
            if self.crop != CIFAR_SIZE:
                raise ValueError(f"crop must be {CIFAR_SIZE} for {self.dataset} (its images are 32x32), "
                                 f"got {self.crop}")
            if self.val_resize is not None:
                raise ValueError(f"val_resize must be None for {self.dataset} (CIFAR is not resized), "
                                 f"got {self.val_resize}")
        if self.loss == LossKind.MIXUPE.value and self.mixup_alpha == 0:
            raise ValueError("mixup_alpha must be > 0 with loss 'mixupe' (MixupE regularizes mixup), got 0.0")
        mixing = self.mixup_alpha > 0 or self.cutmix_alpha > 0
        if self.mixup_off_epoch is not None and not mixing:
            raise ValueError(f"mixup_off_epoch needs mixup or CutMix on (mixup_alpha or cutmix_alpha > 0), "
                             f"got {self.mixup_off_epoch}")
        for name in ("bce_target_thresh", "bce_sum"):
            if getattr(self, name) not in (None, False) and self.loss != LossKind.BCE.value:
                raise ValueError(f"{name} applies to loss 'bce' only, got {getattr(self, name)!r} with loss "
                                 f"{self.loss!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")

    @property
    def decoder(self):
        """The GPU decoder's settings as a ``gpumix.pipelines.DecoderConfig``."""
        return DecoderConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(DecoderConfig)})

    def schedule_decay(self):
        """``LRSchedule``'s decay keywords for this run: the decay kind, its end epoch and its floor."""
        return dict(decay=self.lr_decay, total_epochs=self.epochs, min_lr=self.min_lr)

    def to_dict(self):
        """A dict of plain str/int/float/bool/None/list values: JSON- and weights_only-safe."""
        values = dataclasses.asdict(self)
        values["milestones"] = list(self.milestones)
        return values


def shipped_recipes():
    """Sorted names of the recipes shipped inside the package (file names without ``.yaml``)."""
    folder = resources.files("gpumix.train") / "recipes"
    return sorted(p.name[:-len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_path(name):
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


def load_recipe(name_or_path):
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


_FLAGS = (  # (field, type or action, choices)
    ("recipe", str, None), ("data", str, None), ("dataset", str, DATASETS), ("arch", str, None),
    ("epochs", int, None), ("global_batch_size", int, None), ("max_steps", int, None), ("output", str, None),
    ("resume", "store_true", None), ("device", str, DEVICES), ("seed", int, None), ("mixup_alpha", float, None),
    ("cutmix_alpha", float, None), ("label_smoothing", float, None), ("loss", str, LOSSES),
    ("mixupe_eta", float, None), ("mixupe_tau", float, None), ("checkpoint_every", int, None),
    ("base_lr", float, None), ("peak_lr", float, None), ("warmup_epochs", float, None),
    ("weight_decay", float, None), ("amp", str, AMP_MODES), ("compile", "store_true", None),
    ("num_threads", int, None), ("log_every", int, None), ("tensorboard", "store_true", None),
    ("deterministic", "store_true", None), ("crop", int, None), ("num_classes", int, None),
    ("dist_timeout", float, None), ("milestones", "ints", None), ("gamma", float, None), ("momentum", float, None),
    ("nesterov", "store_true", None), ("val_resize", int, None), ("hw_decoder_load", float, None),
    ("device_memory_padding", int, None), ("host_memory_padding", int, None), ("preallocate_width_hint", int, None),
    ("preallocate_height_hint", int, None), ("reader_workers", int, None),
)
_HELP = {
    "recipe": "a shipped recipe name or a .yaml path; flags override its settings",
    "data": "dataset root: ImageNet class folders, file list or .tar shards; CIFAR's extracted folder",
    "max_steps": "stop after this many optimizer steps (for smoke tests)",
    "resume": "continue from OUTPUT/checkpoint.pt",
    "num_threads": "DALI threads per rank (CPU decoding and augmentation; the GPU decoder's host threads)",
    "reader_workers": "processes that read WebDataset shards per rank (0: the training process)",
    "hw_decoder_load": "share of JPEGs for the GPU's hardware JPEG decoder (A100/H100), 0-1",
    "device_memory_padding": "bytes nvJPEG pads each GPU buffer with; one buffer per DALI thread",
    "host_memory_padding": "bytes nvJPEG pads each pinned host buffer with; two buffers per DALI thread",
    "preallocate_width_hint": "image width the hardware JPEG decoder preallocates for (0: grow on demand)",
    "preallocate_height_hint": "image height the hardware JPEG decoder preallocates for (0: grow on demand)",
    "checkpoint_every": "also checkpoint every N steps (default: at epoch ends and at the stop only)",
    "amp": "autocast dtype on the GPU",
    "crop": "training crop (default: 224 for ImageNet, 32 for CIFAR)",
    "num_classes": "classes (default: CIFAR's, the class folders or the file list's labels; 1000 for shards)",
    "milestones": "epochs at which the learning rate is multiplied by gamma",
    "dist_timeout": "seconds a collective may wait for the other ranks before the run stops with an error",
}
# The flags of issue 15's modern recipes, kept apart so that other flag additions merge cleanly.
_RECIPE_FLAGS = (
    ("mixup_off_epoch", int, None), ("mixup_mode", str, MIXUP_MODES), ("mixup_prob", float, None),
    ("mixup_switch_prob", float, None), ("bce_target_thresh", float, None), ("bce_sum", "store_true", None),
    ("auto_augment", str, AUTO_AUGMENTS), ("randaug_num_ops", int, None), ("randaug_magnitude", int, None),
    ("optimizer", str, OPTIMIZERS), ("lr_decay", str, DECAYS), ("min_lr", float, None),
    ("clip_grad", float, None), ("model_ema_decay", float, None),
    ("reprob", float, None), ("remode", str, ERASING_MODES), ("recount", int, None),
)
_RECIPE_HELP = {
    "mixup_off_epoch": "from this epoch on nothing is mixed: clean images, (smoothed) one-hot targets "
                       "(timm's --mixup-off-epoch)",
    "mixup_mode": "one lam per batch, per pair or per sample (timm's --mixup-mode)",
    "mixup_prob": "chance that a batch (pair, sample) is mixed at all (timm's --mixup-prob)",
    "mixup_switch_prob": "chance of CutMix rather than mixup when both are on (timm's --mixup-switch-prob)",
    "bce_target_thresh": "with --loss bce: targets above it become 1, the rest 0 (timm's --bce-target-thresh)",
    "bce_sum": "with --loss bce: sum over classes, mean over the batch (timm's --bce-sum)",
    "auto_augment": "auto-augment in the DALI train pipeline, after the crop and flip ('none' turns a recipe's off)",
    "randaug_num_ops": "RandAugment's number of ops per image (timm's rand-n)",
    "randaug_magnitude": "RandAugment's magnitude, 0-10 as in timm (rand-m9)",
    "optimizer": "sgd (momentum, nesterov) or adamw (torch's; betas 0.9/0.999, no weight decay on 1-D weights "
                 "and biases, as timm)",
    "lr_decay": "after the warmup: step (milestones, gamma) or cosine to --min-lr at the last epoch",
    "min_lr": "the cosine decay's final learning rate",
    "model_ema_decay": "keep an exponential moving average of the weights with this decay and evaluate it "
                       "too (timm's --model-ema --model-ema-decay; DeiT's 0.99996)",
    "clip_grad": "clip the global gradient norm to this value (timm's --clip-grad, DeiT III's 1.0)",
    "reprob": "random erasing's chance per sample, in the fused pass before mixing (timm's --reprob; DeiT's 0.25)",
    "remode": "what erasing writes, in normalized units: const (0), rand (N(0,1) per box and channel) or pixel "
              "(N(0,1) per element) (timm's --remode)",
    "recount": "erasing boxes per erased sample, at most (timm's --recount)",
}


def build_parser():
    """The trainer's argparse parser; flags not given are absent from the namespace (no defaults)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    parser = argparse.ArgumentParser(prog="python -m gpumix.train", argument_default=argparse.SUPPRESS,
                                     description="Train an image classifier with gpumix's fused mixup + normalize.")
    for name, kind, choices in _FLAGS + _RECIPE_FLAGS:
        flag = "--" + name.replace("_", "-")
        text = _HELP.get(name, _RECIPE_HELP.get(name, ""))
        if name != "crop":
            text = f"{text} (default: {defaults[name]})".strip()
        if kind == "store_true":
            parser.add_argument(flag, action="store_true", help=text)
        elif kind == "ints":
            parser.add_argument(flag, type=int, nargs="+", metavar="EPOCH", help=text)
        else:
            parser.add_argument(flag, type=kind, choices=choices, help=text)
    return parser


def parse_config(argv=None):
    """A TrainConfig from command-line arguments (``sys.argv[1:]`` when None): defaults < recipe < flags."""
    given = vars(build_parser().parse_args(argv))
    values = load_recipe(given["recipe"]) if "recipe" in given else {}
    values.update(given)
    return TrainConfig(**values)
