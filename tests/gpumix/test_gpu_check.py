"""gpumix-gpu-check's logic on the CPU: the same steps as on a GPU, with the CPU twin and the simulator."""
import json

import pytest

from gpumix.bench import gpu_check


def test_every_step_runs_and_lands_in_one_json(datasets, tmp_path, capsys):
    out = tmp_path / "check.json"
    code = gpu_check.main(["--device", "cpu", "--json", str(out), "--batch-sizes", "2", "--image-size", "8",
                           "--repeats", "1", "--seconds", "0.3", "--e2e-batch-size", "4", "--threads", "1",
                           "--data", datasets["imagenet"],
                           "--pytest-args", "-k", "select_chooses or grid_steps or packed_rounding"])
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["tests"]["returncode"] == 0 and not report["tests"]["real_cuda"]
    assert report["tests"]["passed"] >= 4 and report["tests"].get("failed", 0) == 0
    assert [(r["dtype"], r["channels_last"]) for r in report["bandwidth"]] == [
        (d, c) for d, c in gpu_check.LAYOUTS]
    assert all(r["fraction_of_copy"] > 0 and r["batch_size"] == 2 for r in report["bandwidth"])
    assert report["host"]["batch_size"] == 256
    e2e = report["e2e"]
    assert e2e["mixup"]["images_per_s"] > 0 and e2e["normalize_only"]["images"] > 0
    assert "end to end (bf16 channels_last, B=4)" in capsys.readouterr().out


def test_cuda_without_a_gpu_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(gpu_check, "gpu_problem", lambda: "no GPU in this test")
    with pytest.raises(SystemExit, match="--device cuda: no GPU in this test"):
        gpu_check.main(["--device", "cuda", "--skip", "tests"])


def test_real_cuda_tests_get_the_switch_and_dali_tests_only_with_dali():
    argv, env = gpu_check.pytest_command("cuda", dali=False)
    assert env["GPUMIX_TEST_REAL_CUDA"] == "1" and "tests/kernels" in argv and not any("gpu.py" in a for a in argv)
    argv, env = gpu_check.pytest_command("cpu", dali=True)
    assert "GPUMIX_TEST_REAL_CUDA" not in env and "tests/pipelines/test_gpu_pipelines.py" in argv


def test_bad_flags_name_themselves(capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--seconds", "0", "--skip", "tests"])
    assert "argument --seconds: must be > 0, got 0" in capsys.readouterr().err
