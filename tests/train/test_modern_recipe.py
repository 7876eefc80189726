"""Issue 15's trainer settings: the RSB A3 recipe, BCE, mixup off-epoch, auto-augment, AdamW and cosine decay."""
import pytest
import torch

from gpumix.pipelines import AutoAugment
from gpumix.train.__main__ import main
from gpumix.train.checkpoint import RUN_IDENTITY_DEFAULTS, load_checkpoint
from gpumix.train.config import TrainConfig, parse_config, recipe_path
from gpumix.train.data import auto_augment_of
from gpumix.train.metrics import read_metrics
from gpumix.train.models import build_model
from gpumix.train.optim import build_optimizer

TINY = ["--arch", "resnet18", "--crop", "16", "--device", "cpu", "--num-threads", "1", "--log-every", "2",
        "--global-batch-size", "16", "--deterministic"]


@pytest.fixture(scope="module")
def imagenet(train_val):
    return train_val(train_per_class=12, val_per_class=3, size=(20, 24))


def test_rsb_a3_recipe_has_the_papers_settings_and_names_its_source():
    cfg = parse_config(["--recipe", "imagenet-resnet50-rsb-a3"])
    expected = dict(arch="resnet50", epochs=100, global_batch_size=2048, optimizer="adamw", base_lr=1e-4,
                    peak_lr=8e-3, warmup_epochs=5.0, lr_decay="cosine", min_lr=1e-6, weight_decay=0.02,
                    mixup_alpha=0.1, cutmix_alpha=1.0, label_smoothing=0.0, loss="bce", bce_target_thresh=0.2,
                    auto_augment="randaugment", randaug_num_ops=2, randaug_magnitude=6, crop=160, val_resize=168)
    for name, value in expected.items():
        assert getattr(cfg, name) == value, name
    text = open(recipe_path("imagenet-resnet50-rsb-a3"), encoding="utf-8").read()
    assert "arXiv:2110.00476" in text and "torch.optim has no LAMB" in text and "mstd0.5" in text


def test_flags_override_and_none_turns_auto_augment_off():
    cfg = parse_config(["--recipe", "imagenet-resnet50-rsb-a3", "--auto-augment", "none", "--mixup-off-epoch", "90",
                        "--bce-sum", "--optimizer", "sgd", "--lr-decay", "step"])
    assert cfg.auto_augment is None and cfg.mixup_off_epoch == 90 and cfg.bce_sum
    assert (cfg.optimizer, cfg.lr_decay) == ("sgd", "step")


@pytest.mark.parametrize("changes, error, message", [
    ({"mixup_off_epoch": -1}, ValueError, r"mixup_off_epoch must be >= 0, got -1"),
    ({"mixup_off_epoch": 3, "mixup_alpha": 0.0}, ValueError, r"mixup_off_epoch needs mixup or CutMix on"),
    ({"loss": "bce", "bce_target_thresh": 1.0}, ValueError, r"bce_target_thresh must be in \[0.0, 1.0\), got 1.0"),
    ({"bce_target_thresh": 0.2}, ValueError, r"bce_target_thresh applies to loss 'bce' only, got 0.2 with loss "
                                             r"'pair'"),
    ({"bce_sum": True}, ValueError, r"bce_sum applies to loss 'bce' only, got True with loss 'pair'"),
    ({"mixup_mode": "pairs"}, ValueError, r"mixup_mode must be one of 'batch', 'pair', 'elem', got 'pairs'"),
    ({"mixup_prob": 1.5}, ValueError, r"mixup_prob must be in \[0.0, 1.0\], got 1.5"),
    ({"mixup_switch_prob": -0.1}, ValueError, r"mixup_switch_prob must be in \[0.0, 1.0\], got -0.1"),
    ({"bce_sum": "yes"}, TypeError, r"bce_sum must be a bool, got 'yes'"),
    ({"auto_augment": "rand-m9"}, ValueError, r"auto_augment must be one of 'randaugment', 'trivialaugment', "
                                              r"'autoaugment', 'none', got 'rand-m9'"),
    ({"randaug_num_ops": 0}, ValueError, r"randaug_num_ops must be >= 1, got 0"),
    ({"randaug_magnitude": 11}, ValueError, r"randaug_magnitude must be in \[0, 10\] \(timm's scale\), got 11"),
    ({"optimizer": "lamb"}, ValueError, r"optimizer must be one of 'sgd', 'adamw', got 'lamb'"),
    ({"lr_decay": "linear"}, ValueError, r"lr_decay must be one of 'step', 'cosine', got 'linear'"),
    ({"lr_decay": "cosine", "epochs": 5}, ValueError, r"total_epochs must be > warmup_epochs \(5.0\)"),
    ({"clip_grad": 0.0}, ValueError, r"clip_grad must be > 0 \(or None for no clipping\), got 0.0"),
    ({"clip_grad": float("inf")}, ValueError, r"clip_grad must be >= 0.0, got inf"),
    ({"model_ema_decay": 1.0}, ValueError, r"model_ema_decay must be in \[0.0, 1.0\), got 1.0"),
    ({"min_lr": 1.0}, ValueError, r"min_lr must be in \[0.0, 0.4\], got 1.0"),
    ({"reprob": 1.5}, ValueError, r"reprob must be in \[0.0, 1.0\], got 1.5"),
    ({"remode": "noise"}, ValueError, "remode must be one of 'const', 'rand', 'pixel', got 'noise'"),
    ({"recount": 0}, ValueError, "recount must be >= 1, got 0"),
])
def test_invalid_fields_are_refused_by_name(changes, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(**changes)


def test_mixup_flags_reach_the_train_iterators_mixup(imagenet):
    from gpumix.train.data import build_loaders
    cfg = parse_config(["--data", imagenet, "--mixup-mode", "elem", "--mixup-prob", "0.8", "--mixup-switch-prob",
                        "0.3", "--cutmix-alpha", "1.0", "--mixup-off-epoch", "7", "--global-batch-size", "8",
                        "--crop", "16", "--device", "cpu", "--num-threads", "1"])
    train, _ = build_loaders(cfg, device=torch.device("cpu"), rank=0, world_size=1, num_classes=4)
    mix = train.mixup
    assert (mix.mode.value, mix.prob, mix.switch_prob, mix.off_epoch, mix.cutmix_alpha) == ("elem", 0.8, 0.3, 7, 1.0)


def test_auto_augment_of_maps_the_randaugment_knobs():
    assert auto_augment_of(TrainConfig()) is None
    got = auto_augment_of(TrainConfig(auto_augment="randaugment", randaug_num_ops=3, randaug_magnitude=6))
    assert got == AutoAugment("randaugment", num_ops=3, magnitude=6)


def test_adamw_leaves_1d_weights_and_biases_undecayed():
    model = build_model("resnet18", 4)
    opt = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.02), 1e-3)
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.02 and plain["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_identity_defaults_are_the_config_defaults():
    defaults = TrainConfig().to_dict()
    assert all(defaults[name] == value for name, value in RUN_IDENTITY_DEFAULTS.items())


RSB_LIKE = ["--loss", "bce", "--bce-target-thresh", "0.2", "--mixup-alpha", "0.1", "--cutmix-alpha", "1.0",
     "--mixup-off-epoch", "1", "--auto-augment", "randaugment", "--randaug-magnitude", "6", "--optimizer", "adamw",
     "--lr-decay", "cosine", "--base-lr", "1e-4", "--peak-lr", "1e-3", "--warmup-epochs", "1", "--weight-decay",
     "0.02", "--min-lr", "1e-6", "--clip-grad", "1.0",
            "--model-ema-decay", "0.9"]


def test_resumed_rsb_like_run_ends_with_the_same_weights(imagenet, tmp_path):
    extra = RSB_LIKE
    common = ["--data", imagenet, "--epochs", "2", "--output"]
    args = TINY + extra
    assert main(common + [str(tmp_path / "whole")] + args) == 0
    assert main(common + [str(tmp_path / "split")] + args + ["--max-steps", "4"]) == 0
    assert main(common + [str(tmp_path / "split")] + args + ["--resume"]) == 0
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    split = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["model"]
    for name in whole:
        assert torch.equal(whole[name], split[name]), name
    whole_ema = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["ema"]
    split_ema = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["ema"]
    assert whole_ema.keys() == split_ema.keys() and int(whole_ema["n_averaged"]) == 6
    for name in whole_ema:
        assert torch.equal(whole_ema[name], split_ema[name]), name
    epochs = [r for r in read_metrics(tmp_path / "whole" / "metrics.jsonl") if r["kind"] == "epoch"]
    assert all(0 <= r["top1_ema"] <= r["top5_ema"] <= 1 for r in epochs) and len(epochs) == 2
    steps = [r for r in read_metrics(tmp_path / "whole" / "metrics.jsonl") if r["kind"] == "step"]
    assert len(steps) == 6 and all(r["loss"] > 0 for r in steps)
    lrs = [r["lr"] for r in steps]
    assert lrs[0] == pytest.approx(1e-4) and max(lrs) == pytest.approx(1e-3) and lrs[-1] < max(lrs)


def test_bce_without_mixup_with_trivialaugment_trains(imagenet, tmp_path):
    out = tmp_path / "erm"
    assert main(["--data", imagenet, "--epochs", "1", "--output", str(out), "--loss", "bce", "--mixup-alpha", "0",
                 "--label-smoothing", "0.1", "--auto-augment", "trivialaugment", "--warmup-epochs", "0",
                 "--base-lr", "0.05", "--peak-lr", "0.05"] + TINY) == 0
    steps = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "step"]
    # BCE over 4 classes starts near 4 * log(2) / 4 = 0.69 per entry
    assert len(steps) == 3 and all(0.1 < r["loss"] < 5 for r in steps)


def test_resume_refuses_a_changed_issue15_setting(imagenet, tmp_path, capsys):
    args = ["--data", imagenet, "--epochs", "1", "--output", str(tmp_path / "r"), "--max-steps", "1"] + TINY
    assert main(args + ["--auto-augment", "randaugment"]) == 0
    assert main(args + ["--resume", "--auto-augment", "trivialaugment"]) == 1
    assert "auto_augment is 'trivialaugment' but the checkpoint's run used 'randaugment'" in capsys.readouterr().err


def test_clip_grad_bounds_the_first_sgd_step(imagenet, tmp_path):
    # SGD's first step with momentum and no weight decay moves the weights by lr * the (clipped) gradient
    out = tmp_path / "clip"
    args = ["--data", imagenet, "--epochs", "1", "--output", str(out), "--max-steps", "1", "--weight-decay", "0",
            "--warmup-epochs", "0", "--base-lr", "0.5", "--peak-lr", "0.5", "--clip-grad", "1e-3"] + TINY
    assert main(args) == 0
    torch.manual_seed(0)  # the trainer seeds torch with --seed before it builds the model
    initial = build_model("resnet18", 4).state_dict()
    after = load_checkpoint(out / "checkpoint.pt")["model"]
    names = [n for n, _ in build_model("resnet18", 4).named_parameters()]
    moved = torch.sqrt(sum(((after[n] - initial[n]).double() ** 2).sum() for n in names))
    assert 0 < moved <= 0.5 * 1e-3 * (1 + 1e-5)


def test_model_ema_is_the_moving_average_of_the_weights(imagenet, tmp_path):
    # torch's AveragedModel: the first update copies the weights, the next is d * ema + (1 - d) * weights
    args = ["--data", imagenet, "--epochs", "1", "--model-ema-decay", "0.75", "--warmup-epochs", "0", "--base-lr",
            "0.05", "--peak-lr", "0.05"] + TINY
    assert main(args + ["--output", str(tmp_path / "one"), "--max-steps", "1"]) == 0
    assert main(args + ["--output", str(tmp_path / "two"), "--max-steps", "2"]) == 0
    one = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    two = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    for name, w1 in one["model"].items():
        if not w1.is_floating_point():
            continue
        assert torch.equal(one["ema"][f"module.{name}"], w1), name
        expected = 0.75 * w1.double() + 0.25 * two["model"][name].double()
        torch.testing.assert_close(two["ema"][f"module.{name}"].double(), expected, rtol=1e-6, atol=1e-7)
    assert not torch.equal(one["model"]["fc.weight"], two["model"]["fc.weight"])


def test_erasing_flags_reach_the_train_iterator(imagenet):
    from gpumix.train.data import build_loaders
    cfg = parse_config(["--data", imagenet, "--reprob", "0.25", "--remode", "pixel", "--recount", "2", "--seed", "3",
                        "--global-batch-size", "8", "--crop", "16", "--device", "cpu", "--num-threads", "1"])
    train, val = build_loaders(cfg, device=torch.device("cpu"), rank=0, world_size=1, num_classes=4)
    erasing = train.erasing
    assert (erasing.prob, erasing.mode, erasing.max_count, erasing.seed) == (0.25, "pixel", 2, 3)
    assert val.erasing is None  # validation is never erased
    assert parse_config([]).reprob == 0.0 and RUN_IDENTITY_DEFAULTS["reprob"] == 0.0
