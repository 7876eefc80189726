"""gpumix.train.config: shipped recipes, precedence defaults < recipe < flags, and validation."""
import dataclasses
import json
import math

import pytest

from gpumix.pipelines import DecoderConfig
from gpumix.train.config import TrainConfig, build_parser, load_recipe, parse_config, recipe_path, shipped_recipes

IMAGENET = dict(dataset="imagenet", arch="resnet50", epochs=90, global_batch_size=1024, momentum=0.9,
                weight_decay=1e-4, nesterov=False, base_lr=0.1, peak_lr=0.4, warmup_epochs=5.0,
                milestones=(30, 60, 80), gamma=0.1, crop=224, loss="pair", label_smoothing=0.0)
CIFAR = dict(arch="preactresnet18", epochs=200, global_batch_size=128, momentum=0.9, weight_decay=1e-4,
             nesterov=False, base_lr=0.1, peak_lr=0.1, warmup_epochs=0.0, milestones=(100, 150), gamma=0.1,
             crop=32, loss="pair", label_smoothing=0.0)
RECIPE_FLAGS = {"--mixup-off-epoch", "--mixup-mode", "--mixup-prob", "--mixup-switch-prob", "--bce-target-thresh",
                "--bce-sum", "--auto-augment", "--randaug-num-ops",
                "--randaug-magnitude", "--optimizer", "--lr-decay", "--min-lr", "--clip-grad", "--model-ema-decay",
                "--reprob", "--remode", "--recount"}  # issue 15's
RECIPES = {
    "imagenet-resnet50-mixup": {**IMAGENET, "mixup_alpha": 0.2},
    "imagenet-resnet50-erm": {**IMAGENET, "mixup_alpha": 0.0},
    "cifar10-preactresnet18-mixup": {**CIFAR, "dataset": "cifar10", "mixup_alpha": 1.0},
    "cifar10-preactresnet18-erm": {**CIFAR, "dataset": "cifar10", "mixup_alpha": 0.0},
    "cifar100-preactresnet18-mixup": {**CIFAR, "dataset": "cifar100", "mixup_alpha": 1.0},
    "cifar100-preactresnet18-erm": {**CIFAR, "dataset": "cifar100", "mixup_alpha": 0.0},
    # issue 15's modern recipe (tests/train/test_modern_recipe.py checks it in full)
    "imagenet-resnet50-rsb-a3": dict(dataset="imagenet", arch="resnet50", epochs=100, global_batch_size=2048,
                                     mixup_alpha=0.1, cutmix_alpha=1.0, loss="bce", crop=160),
}


def test_shipped_recipe_files_exist_and_cite_their_source():
    assert shipped_recipes() == sorted(RECIPES)
    for name in RECIPES:
        with open(recipe_path(name), encoding="utf-8") as f:
            first = f.readline()
            second = f.readline()
        assert first.startswith("# ") and "Source:" in second and "mixup" in second


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_shipped_recipe_is_a_valid_config(name):
    cfg = parse_config(["--recipe", name])
    assert cfg.recipe == name
    for field, value in RECIPES[name].items():
        assert getattr(cfg, field) == value, field
    if "cutmix_alpha" not in RECIPES[name]:
        assert cfg.cutmix_alpha == 0.0 and cfg.cutmix_alpha == TrainConfig().cutmix_alpha


def test_defaults_recipe_and_flag_precedence():
    assert TrainConfig().peak_lr == 0.4 and TrainConfig().crop == 224  # dataclass defaults
    cfg = parse_config(["--recipe", "cifar10-preactresnet18-mixup", "--mixup-alpha", "0.4", "--epochs", "3",
                        "--resume", "--peak-lr", "0.2", "--warmup-epochs", "1.5", "--mixupe-tau", "inf",
                        "--loss", "mixupe", "--amp", "off", "--compile", "--data", "/tmp/d"])
    assert (cfg.mixup_alpha, cfg.epochs, cfg.resume, cfg.peak_lr, cfg.warmup_epochs) == (0.4, 3, True, 0.2, 1.5)
    assert cfg.mixupe_tau == math.inf and cfg.loss == "mixupe" and cfg.amp == "off" and cfg.compile
    assert cfg.global_batch_size == 128 and cfg.milestones == (100, 150)  # from the recipe
    assert cfg.log_every == TrainConfig().log_every and cfg.channels_last  # from the defaults
    assert cfg.data == "/tmp/d" and not cfg.deterministic and not cfg.tensorboard


# The flags the README and earlier releases document: they keep working.
DOCUMENTED_FLAGS = {
    "--recipe", "--data", "--dataset", "--arch", "--epochs", "--global-batch-size", "--max-steps", "--output",
    "--resume", "--device", "--seed", "--mixup-alpha", "--cutmix-alpha", "--label-smoothing", "--loss",
    "--mixupe-eta", "--mixupe-tau", "--checkpoint-every", "--base-lr", "--peak-lr", "--warmup-epochs",
    "--weight-decay", "--amp", "--compile", "--num-threads", "--log-every", "--tensorboard", "--deterministic",
    "--crop", "--num-classes", "--dist-timeout", "--milestones", "--gamma", "--momentum", "--nesterov",
    "--val-resize", "--hw-decoder-load", "--device-memory-padding", "--host-memory-padding",
    "--preallocate-width-hint", "--preallocate-height-hint", "--reader-workers"}


def test_every_field_has_a_flag_and_booleans_have_a_no_flag():
    parser = build_parser()
    assert vars(parser.parse_args([])) == {}
    flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    fields = dataclasses.fields(TrainConfig)
    expected = {"--" + f.name.replace("_", "-") for f in fields}
    booleans = {"--no-" + f.name.replace("_", "-") for f in fields if isinstance(f.default, bool)}
    assert booleans >= {"--no-channels-last", "--no-resume", "--no-nesterov", "--no-bce-sum"}
    assert flags == expected | booleans
    assert DOCUMENTED_FLAGS | RECIPE_FLAGS <= flags
    assert all(f.metadata["help"] for f in fields)
    assert parse_config([]) == TrainConfig()


def test_channels_last_and_every_boolean_can_be_set_and_unset(tmp_path):
    assert parse_config(["--no-channels-last"]).channels_last is False
    assert TrainConfig().channels_last is True
    recipe = tmp_path / "on.yaml"
    recipe.write_text("nesterov: true\nchannels_last: false\ncompile: true\nloss: bce\nbce_sum: true\n")
    on = parse_config(["--recipe", str(recipe)])
    assert on.nesterov and on.compile and on.bce_sum and not on.channels_last
    off = parse_config(["--recipe", str(recipe), "--no-nesterov", "--no-compile", "--no-bce-sum", "--channels-last"])
    assert not off.nesterov and not off.compile and not off.bce_sum and off.channels_last
    assert parse_config(["--recipe", str(recipe), "--seed", "4"]).nesterov  # a flag not given leaves the recipe's


def test_recipe_from_a_path_and_to_dict(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("dataset: cifar100\narch: resnet18\nmilestones: [2, 4]\nwarmup_epochs: 1\nmixupe_tau: .inf\n")
    cfg = parse_config(["--recipe", str(path), "--seed", "3"])
    assert (cfg.dataset, cfg.arch, cfg.milestones, cfg.seed, cfg.crop) == ("cifar100", "resnet18", (2, 4), 3, 32)
    values = cfg.to_dict()
    assert values["milestones"] == [2, 4] and values["recipe"] == str(path)
    assert json.loads(json.dumps(values)) == values
    assert TrainConfig(**values) == cfg


def test_unknown_recipe_name_and_unknown_key(tmp_path):
    with pytest.raises(ValueError, match=r"unknown recipe 'imagenet-resnet51'; shipped recipes: "
                                         r"cifar10-preactresnet18-erm, .*imagenet-resnet50-mixup"):
        load_recipe("imagenet-resnet51")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"recipe .*bad.yaml: unknown key 'learning_rate'"):
        load_recipe(str(bad))
    listed = tmp_path / "list.yaml"
    listed.write_text("- epochs\n")
    with pytest.raises(ValueError, match=r"recipe .*list.yaml: must be a mapping of settings, got list"):
        load_recipe(str(listed))
    with pytest.raises(FileNotFoundError, match=r"recipe: .*missing.yaml is not a file"):
        load_recipe(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("changes, error, message", [
    ({"epochs": 0}, ValueError, r"epochs must be >= 1, got 0"),
    ({"epochs": 2.5}, TypeError, r"epochs must be an int, got 2.5"),
    ({"dataset": "mnist"}, ValueError, r"dataset must be one of 'imagenet', 'cifar10', 'cifar100', got 'mnist'"),
    ({"device": "tpu"}, ValueError, r"device must be one of 'auto', 'cuda', 'cpu', got 'tpu'"),
    ({"amp": "fp8"}, ValueError, r"amp must be one of 'bf16', 'fp16', 'off', got 'fp8'"),
    ({"loss": "mse"}, ValueError, r"loss must be one of 'soft', 'pair', 'mixupe', 'bce', got 'mse'"),
    ({"mixup_alpha": -0.5}, ValueError, r"mixup_alpha must be >= 0.0, got -0.5"),
    ({"label_smoothing": 1.0}, ValueError, r"label_smoothing must be in \[0.0, 1.0\), got 1.0"),
    ({"mixupe_tau": math.nan}, ValueError, r"mixupe_tau must be a float \(finite or inf\), got nan"),
    ({"max_steps": 0}, ValueError, r"max_steps must be >= 1, got 0"),
    ({"resume": "yes"}, TypeError, r"resume must be a bool, got 'yes'"),
    ({"milestones": [60, 30]}, ValueError, r"milestones must be strictly increasing, got \[60, 30\]"),
    ({"warmup_epochs": 0}, ValueError, r"base_lr must equal peak_lr when warmup_epochs is 0"),
    ({"momentum": 1.0}, ValueError, r"momentum must be in \[0.0, 1.0\), got 1.0"),
    ({"dataset": "cifar10", "crop": 224}, ValueError, r"crop must be 32 for cifar10 \(its images are 32x32\), got 224"),
    ({"val_resize": 200}, ValueError, r"val_resize must be >= crop \(224\), got 200"),
    ({"loss": "mixupe", "mixup_alpha": 0.0}, ValueError, r"mixup_alpha must be > 0 with loss 'mixupe'"),
    ({"nesterov": True, "momentum": 0.0}, ValueError, r"nesterov=True needs momentum > 0, got momentum=0.0"),
    ({"output": ""}, TypeError, r"output must be a non-empty string, got ''"),
    ({"checkpoint_every": -5}, ValueError, r"checkpoint_every must be >= 1, got -5"),
    ({"num_classes": 1}, ValueError, r"num_classes must be >= 2, got 1"),
    ({"dist_timeout": 0.0}, ValueError, r"dist_timeout must be > 0 seconds, got 0.0"),
    ({"reader_workers": -1}, ValueError, r"reader_workers must be >= 0, got -1"),
    ({"hw_decoder_load": 1.5}, ValueError, r"hw_decoder_load must be a float in \[0, 1\], got 1.5"),
    ({"device_memory_padding": -1}, ValueError, r"device_memory_padding must be an int >= 0, got -1"),
    ({"preallocate_width_hint": 2.5}, ValueError, r"preallocate_width_hint must be an int >= 0, got 2.5"),
])
def test_invalid_fields(changes, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(**changes)


def test_flag_values_are_checked_too(capsys, tmp_path):
    with pytest.raises(SystemExit):
        parse_config(["--global-batch-size", "0"])
    assert "argument --global-batch-size: global_batch_size must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(["--amp", "fp32"])
    assert "invalid choice: 'fp32'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 0\n")
    with pytest.raises(SystemExit):
        parse_config(["--recipe", str(bad)])
    assert f"argument --recipe: {bad}: epochs must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(["--recipe", "imagenet-resnet51"])
    assert "argument --recipe: unknown recipe 'imagenet-resnet51'" in capsys.readouterr().err


def test_decoder_flags_reach_the_pipelines_config(capsys):
    cfg = parse_config(["--hw-decoder-load", "0.9", "--num-threads", "6", "--device-memory-padding", "0",
                        "--host-memory-padding", "1048576", "--preallocate-width-hint", "640",
                        "--preallocate-height-hint", "480", "--reader-workers", "2"])
    assert cfg.num_threads == 6 and cfg.reader_workers == 2
    assert cfg.decoder == DecoderConfig(hw_decoder_load=0.9, device_memory_padding=0, host_memory_padding=1 << 20,
                                        preallocate_width_hint=640, preallocate_height_hint=480)
    assert TrainConfig().decoder == DecoderConfig()  # one set of defaults
    with pytest.raises(SystemExit):
        parse_config(["--host-memory-padding", "-8"])
    assert "argument --host-memory-padding: host_memory_padding must be an int >= 0, got -8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--hw-decoder-load", "--num-threads", "--preallocate-width-hint", "--host-memory-padding",
                 "--reader-workers"):
        assert flag in text
