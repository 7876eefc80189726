"""gpumix-bench --auto-augment: the gpumix variants with DALI auto_aug policies and their cost per image."""
import itertools
import json

import pytest

from gpumix.bench import harness
from gpumix.bench import main as bench

TINY = ["--batch-size", "4", "--seconds", str(1 / 32), "--repeats", "2", "--warmup", "1", "--image-size", "32",
        "--operator-batch-size", "4", "--threads", "1", "--no-progress"]


def test_policies_become_variants_after_gpumix_and_their_cost_is_reported(datasets, tmp_path, monkeypatch, capsys):
    ticks = itertools.count(0, 1 / 64)  # every figure is then 256 images/s: the added cost must be exactly 0
    monkeypatch.setattr(harness, "_clock", lambda: next(ticks))
    out = tmp_path / "r.json"
    assert bench.main(["--data", datasets["imagenet"], *TINY, "--auto-augment", "randaugment", "trivialaugment",
                       "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    keys = [r["key"] for r in report["loaders"]["results"]]
    # the policies right after gpumix, then (ImageNet data) the aliased-resize variant
    assert keys[:5] == ["gpumix", "gpumix_randaugment", "gpumix_trivialaugment", "gpumix_aliased", "normalize_only"]
    costs = report["loaders"]["auto_augment_cost"]
    assert [c["policy"] for c in costs] == ["randaugment", "trivialaugment"]
    for c in costs:
        assert c["ms_per_image"] == c["base_ms_per_image"] == pytest.approx(1000 / 256) and c["added_ms"] == 0
    assert report["run"]["settings"]["auto_augment"] == ["randaugment", "trivialaugment"]
    assert "randaugment costs 3.91 ms per image against 3.91 without: +0.00 ms" in capsys.readouterr().out


def test_cost_is_paired_by_round():
    rows = [{"key": "gpumix", "images_per_s": 500.0, "per_round_images_per_s": [500.0, 400.0, 500.0]},
            {"key": "gpumix_autoaugment", "images_per_s": 250.0, "per_round_images_per_s": [250.0, 250.0, 200.0]},
            {"key": "normalize_only", "images_per_s": 510.0, "per_round_images_per_s": [510.0, 510.0, 510.0]}]
    (cost,) = harness.auto_augment_cost(rows, threads=2)
    assert cost["policy"] == "autoaugment" and cost["ms_per_image"] == 4.0 and cost["base_ms_per_image"] == 2.0
    assert cost["per_round_added_ms"] == pytest.approx([2.0, 1.5, 3.0])
    assert cost["added_ms"] == pytest.approx(2.0) and cost["added_core_ms"] == pytest.approx(4.0)
    assert (cost["added_ms_min"], cost["added_ms_max"]) == pytest.approx((1.5, 3.0))


@pytest.mark.parametrize("flags, message", [
    (["--auto-augment", "rand"], "--auto-augment: auto_augment must be distinct names among randaugment, "
                                 "trivialaugment, autoaugment, got ['rand']"),
    (["--auto-augment", "autoaugment", "autoaugment"], "--auto-augment: auto_augment must be distinct names"),
])
def test_bad_policy_exits_2_naming_the_flag(datasets, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--data", datasets["imagenet"], *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
