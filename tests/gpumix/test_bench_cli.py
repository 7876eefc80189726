"""The bench's flags come from its config dataclasses, errors map to flags by field, files are written atomically,
and every bench module states its job (the layering itself: tests/test_architecture.py)."""
import argparse
import dataclasses
import json
import os

import pytest
import torch

from gpumix.bench import fields, report
from gpumix.bench import main as bench
from gpumix.bench import operator as op_bench
from gpumix.bench.config import BenchConfig
from gpumix.bench.operator import OperatorConfig
from gpumix.validation import field_of

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("cls, prog", [(BenchConfig, "gpumix-bench"), (OperatorConfig, "gpumix-bench-operator")])
def test_one_flag_per_field_with_its_documented_meaning_and_default(cls, prog):
    p = argparse.ArgumentParser(prog=prog)
    flags = fields.add_flags(p, cls)
    assert list(flags) == [f.name for f in dataclasses.fields(cls)]
    actions = {a.dest: a for a in p._actions if a.dest != "help"}
    for f in dataclasses.fields(cls):
        assert flags[f.name] == "--" + f.name.replace("_", "-")
        assert actions[f.name].help.startswith(f.metadata["help"]) and actions[f.name].default == f.default
    # the defaults parse back into the dataclass's own defaults
    assert fields.from_args(p, cls, flags, p.parse_args([])) == cls()


def test_booleans_take_both_spellings():
    config, _ = bench.parse_args(["--no-progress", "--seconds", "0.5"])
    assert config.progress is False and config.seconds == 0.5 and config.repeats == 7
    assert bench.parse_args(["--progress"])[0].progress is True
    assert op_bench.parse_args(["--channels-last"])[0].channels_last is True
    assert op_bench.parse_args(["--no-channels-last"])[0].channels_last is False


def test_a_failed_check_is_tagged_with_its_field():
    with pytest.raises(ValueError, match=r"^warmup must be >= 0, got -1$") as info:
        BenchConfig(warmup=-1)
    assert field_of(info.value) == "warmup"
    with pytest.raises(TypeError, match=r"^alpha must be a float, got 'x'$") as info:
        OperatorConfig(alpha="x")
    assert field_of(info.value) == "alpha"


def test_the_flag_comes_from_the_tag_not_from_the_message(capsys):
    p = argparse.ArgumentParser(prog="x")
    flags = fields.add_flags(p, OperatorConfig)
    # a message that starts with another field's name: the tag decides the flag
    with pytest.raises(SystemExit) as info:
        fields.report_field_error(p, flags, fields.field_error(ValueError, "seed", "size: 3 is odd"))
    assert info.value.code == 2 and "error: --seed: size: 3 is odd" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fields.report_field_error(p, flags, ValueError("batch_size: untagged"), default_field="size")
    assert "error: --size: batch_size: untagged" in capsys.readouterr().err


def test_an_option_without_its_meaning_is_refused():
    with pytest.raises(ValueError, match="help must say what the field means"):
        fields.option(1)


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "error: --batch-size: batch_size must be >= 1, got 0"),
    (["--dtype", "fp8"], "error: argument --dtype: invalid choice: 'fp8'"),
    (["--alpha", "-1"], "error: --alpha: alpha must be >= 0.0, got -1.0"),
    (["--erasing-pairs", "0"], "error: --erasing-pairs: erasing_pairs must be >= 1, got 0"),
])
def test_operator_bad_values_exit_2_naming_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        op_bench.parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_json_reports_are_written_atomically(tmp_path):
    path = tmp_path / "r.json"
    report.write_json(path, {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    with pytest.raises(TypeError):  # not JSON: the old report stays whole, no temporary file is left
        report.write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": [1, 2]} and os.listdir(tmp_path) == ["r.json"]
    report.write_json(path, {"a": object()}, default=lambda o: "obj")
    assert json.loads(path.read_text()) == {"a": "obj"}


def test_a_failing_plot_leaves_the_old_file(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from gpumix.bench.plot import plot_report

    row = {"name": "gpumix", "images_per_s": 10.0, "min_images_per_s": 9.0, "max_images_per_s": 11.0, "gpumix_is": 1.0}
    rep = {"loaders": {"results": [row], "batch_size": 4, "threads": 1, "rounds": 2},
           "operator": {"results": [row], "settings": {"batch_size": 4, "size": 8, "dtype": "fp32", "repeats": 2}},
           "run": {"date": "2026-01-01", "git": None, "device": "cpu",
                   "machine": {"processor": "x", "cpu_count": 1}},
           "data": {"kind": "imagenet", "embedded_default": False}}
    path = tmp_path / "p.png"
    plot_report(rep, path)
    good = path.read_bytes()
    assert good[:8] == b"\x89PNG\r\n\x1a\n"

    def broken(self, f, **kwargs):
        f.write(b"half a png")
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        plot_report(rep, path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["p.png"]


def _sources(*folders):
    for folder in folders:
        for base, _, files in os.walk(os.path.join(ROOT, folder)):
            yield from (os.path.join(base, f) for f in files if f.endswith(".py"))


def test_every_bench_module_says_its_job_and_exports():
    import importlib

    for path in _sources(os.path.join("gpumix", "bench")):
        name = "gpumix.bench." + os.path.basename(path)[:-3]
        if name.endswith("__init__"):
            continue
        module = importlib.import_module(name)
        assert module.__doc__ and module.__doc__.strip(), name
        assert isinstance(module.__all__, list) and all(hasattr(module, n) for n in module.__all__), name


def test_the_unfused_chain_matches_the_float64_reference():
    import gpumix
    from gpumix.kernels.reference import mix_normalize_reference, unfused_chain

    g = torch.Generator().manual_seed(3)
    batch = torch.randint(0, 256, (6, 12, 10, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 5, (6,), generator=g)
    mean, std = (120.0, 110.0, 100.0), (60.0, 55.0, 50.0)
    params = gpumix.Mixup(num_classes=5, alpha=0.8, cutmix_alpha=1.0, mode=gpumix.MixMode.ELEM, seed=1).sample(
        6, (12, 10), epoch=0, step=0)
    assert params.boxes is not None and bool(((params.boxes[:, 2] > params.boxes[:, 0])).any())
    images, targets = unfused_chain(batch, labels, params, mean=mean, std=std, num_classes=5, label_smoothing=0.1,
                                    dtype=torch.bfloat16, channels_last=True)
    ref_images, ref_targets, _ = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes,
                                                         mean, std, 5, 0.1)
    assert images.dtype == torch.bfloat16 and images.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(images.double(), ref_images, atol=0.02, rtol=0.01)
    assert torch.allclose(targets.double(), ref_targets, atol=1e-6)
