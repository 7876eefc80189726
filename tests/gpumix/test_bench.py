"""gpumix-bench: every section on a tiny dataset, figures that come from the clock, clear --data errors."""
import itertools
import json
import os

import pytest
import torch

from gpumix.bench import data as bench_data
from gpumix.bench import harness, memory, report, torch_data
from gpumix.bench import main as bench
from gpumix.bench import operator as op_bench

# A run that takes seconds: 4-image batches of 32x32 crops, 2 rounds of 0.02 s turns, one thread.
TINY = ["--batch-size", "4", "--seconds", "0.02", "--repeats", "2", "--warmup", "1", "--image-size", "32",
        "--operator-batch-size", "4", "--threads", "1", "--no-progress"]
LOADERS = ["gpumix", "normalize_only", "dali_normalize", "dali_unfused", "torchvision", "timm"]
# ImageNet data adds the training pipeline without antialiasing, for what the antialiased resize costs
IMAGENET_LOADERS = LOADERS[:1] + ["gpumix_aliased"] + LOADERS[1:]
OPERATORS = ["gpumix fused", "gpumix fused + erasing", "unfused torch chain", "timm Mixup (batch)",
             "timm Mixup (elem)", "torchvision v2.MixUp"]


def _has_timm():
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


def _expected(names, timm_names):
    return [n for n in names if _has_timm() or n not in timm_names]


def test_tiny_run_reports_every_section(datasets, tmp_path, capsys):
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    assert bench.main(["--data", datasets["imagenet"], *TINY, "--json", str(out), "--plot", str(png)]) == 0
    report = json.loads(out.read_text())
    assert set(report) == {"run", "data", "loaders", "operator"}
    assert report["run"]["settings"]["batch_size"] == 4 and report["run"]["date"] and report["run"]["versions"]
    assert report["data"] == {"kind": "imagenet", "description": f"ImageNet-style class-folder root "
                              f"{datasets['imagenet']}", "num_classes": 1000, "image_size": 32,
                              "embedded_default": False}
    rows = report["loaders"]["results"]
    assert [r["key"] for r in rows] == _expected(IMAGENET_LOADERS, {"timm"})
    for r in rows:
        assert r["name"] and 0 < r["min_images_per_s"] <= r["images_per_s"] <= r["max_images_per_s"]
        assert len(r["per_round_images_per_s"]) == 2 and r["timed_images"] >= 8 and r["timed_seconds"] > 0
        assert r["host_memory_added_bytes"] is not None and r["cuda_peak_added_bytes"] is None
        assert r["gpu_memory_added_bytes"] is None  # no CUDA here
    assert rows[0]["gpumix_is"] == 1.0
    overhead = report["loaders"]["mixup_overhead"]
    assert overhead["of"] == "gpumix" and overhead["over"] == "normalize_only" and len(overhead["per_round"]) == 2
    antialias = report["loaders"]["antialias_overhead"]
    assert antialias["of"] == "gpumix" and antialias["over"] == "gpumix_aliased" and len(antialias["per_round"]) == 2
    ops = report["operator"]["results"]
    assert [r["name"] for r in ops] == _expected(OPERATORS, {"timm Mixup (batch)", "timm Mixup (elem)"})
    assert all(r["images_per_s"] > 0 for r in ops)
    bandwidth, host = report["operator"]["bandwidth"], report["operator"]["host"]
    assert bandwidth["fraction_of_copy"] > 0 and bandwidth["bytes"] == 4 * 32 * 32 * 3 * (2 + 4) + 4 * 1000 * 4
    assert host["host_us"] == pytest.approx(host["sample_us"] + host["call_us"] - host["kernel_us"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "gpumix is" in printed and "mixup costs" in printed and "gpumix fused" in printed
    assert "antialiasing the training resize costs" in printed


def test_figures_come_from_the_clock(datasets, tmp_path, monkeypatch):
    # Every clock read advances 1/64 s: a turn of 1/32 s is then exactly two 4-image batches, and an
    # operator call exactly 1/64 s, so every figure must be 8 / (1/32) = 4 / (1/64) = 256 images/s.
    ticks = itertools.count(0, 1 / 64)
    monkeypatch.setattr(harness, "_clock", lambda: next(ticks))  # the loaders' turns and the operator's calls
    out = tmp_path / "r.json"
    args = [a if a != "0.02" else str(1 / 32) for a in TINY]
    assert bench.main(["--data", datasets["cifar10-binary"], *args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["data"]["kind"] == "cifar10" and report["data"]["num_classes"] == 10
    rows = report["loaders"]["results"] + report["operator"]["results"]
    assert len(rows) == len(_expected(LOADERS, {"timm"})) + len(_expected(OPERATORS, {"timm Mixup (batch)",
                                                                                      "timm Mixup (elem)"}))
    for r in rows:
        assert r["images_per_s"] == r["min_images_per_s"] == r["max_images_per_s"] == 256, r["name"]
    assert report["loaders"]["mixup_overhead"]["median"] == 0
    erasing = report["operator"]["erasing"]
    assert erasing["median"] == erasing["ci_low"] == erasing["ci_high"] == 0 and erasing["pairs"] == 401


def _bad_data(case, tmp_path, datasets):
    """Make the --data path of one bad case and return it."""
    if case == "missing":
        return str(tmp_path / "missing")
    if case in ("empty", "flat"):
        (tmp_path / case).mkdir()
        if case == "flat":
            (tmp_path / case / "a.jpg").write_bytes(b"x")
        return str(tmp_path / case)
    if case == "tar":
        (tmp_path / "a.tar").write_bytes(b"")
        return str(tmp_path / "a.tar")
    if case in ("empty_list", "no_labels"):
        (tmp_path / "l.txt").write_text("" if case == "empty_list" else "hello\n")
        return str(tmp_path / "l.txt")
    return datasets[case]


@pytest.mark.parametrize("case, flags, message", [
    ("missing", [], "--data: {t}/missing does not exist"),
    ("empty", [], "--data: the folder {t}/empty is empty"),
    ("flat", [], "--data: the folder {t}/flat has no class subfolders"),
    ("tar", [], "--data: WebDataset shard {t}/a.tar has no index {t}/a.idx"),
    ("empty_list", [], "--data: the file list {t}/l.txt is empty"),
    ("no_labels", [], "--data: {t}/l.txt:1: expected '<path> <label>', got 'hello'"),
    ("cifar10-binary", ["--num-classes", "5"], "--num-classes: {d} is cifar10, with 10 classes"),
    ("imagenet", ["--seconds", "0"], "--seconds: seconds must be > 0, got 0.0"),
    ("imagenet", ["--json", "/no/such/folder/r.json"], "--json: the folder /no/such/folder does not exist"),
])
def test_bad_arguments_exit_2_naming_the_flag_and_path(datasets, tmp_path, capsys, case, flags, message):
    data = _bad_data(case, tmp_path, datasets)
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--data", data, *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message.format(t=tmp_path, d=data) in err and "Traceback" not in err


def test_the_flat_folder_error_says_it_is_not_cifar_either(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"nor is it a CIFAR folder \(CIFAR files or a cifar-10-batches-bin"):
        bench_data.resolve_data([tmp_path])


@pytest.mark.parametrize("key, kind, source, classes", [
    ("imagenet", "imagenet", "folder", 1000), ("file_list", "imagenet", "file_list", 1000),
    ("webdataset", "imagenet", "webdataset", 1000), ("cifar10-python", "cifar10", None, 10),
    ("cifar100-binary", "cifar100", None, 100)])
def test_data_kinds_are_recognised(datasets, key, kind, source, classes):
    data = datasets[key]
    spec = bench_data.resolve_data(data if isinstance(data, list) else [data])
    assert (spec.kind, spec.source and spec.source.kind, spec.num_classes) == (kind, source, classes)
    assert spec.image_size == (224 if kind == "imagenet" else 32)


def test_a_folder_of_shards_is_webdataset(datasets):
    shards = datasets["webdataset"]
    spec = bench_data.resolve_data([os.path.dirname(shards[0])])
    assert spec.source.kind == "webdataset" and list(spec.data) == shards


def test_torch_datasets_serve_the_same_samples_as_dali_reads(datasets):
    by_kind = {}
    for key in ("imagenet", "file_list", "webdataset"):
        data = datasets[key]
        ds = torch_data.torch_dataset(bench_data.resolve_data(data if isinstance(data, list) else [data]))
        samples = [ds[i] for i in range(len(ds))]
        assert all(img.mode == "RGB" and 30 <= img.size[1] <= 50 and 42 <= img.size[0] <= 70 for img, _ in samples)
        by_kind[key] = sorted(label for _, label in samples)
    assert by_kind["imagenet"] == by_kind["file_list"] == by_kind["webdataset"] == sorted([0, 1, 2] * 5)
    cifar = torch_data.torch_dataset(bench_data.resolve_data([datasets["cifar10-binary"]]))
    assert len(cifar) == 32 and cifar[0][0].size == (32, 32)
    repeated = torch_data.Repeated(cifar, 100)
    assert len(repeated) == 100 and repeated[33][1] == cifar[1][1]


def test_default_data_is_made_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_data, "DEFAULT_CLASSES", 2)
    monkeypatch.setattr(bench_data, "DEFAULT_PER_CLASS", 1)
    root = bench_data.default_data(str(tmp_path))
    assert sorted(os.listdir(root)) == ["class_0000", "class_0001"]
    stamp = os.stat(root).st_mtime_ns
    assert bench_data.default_data(str(tmp_path)) == root and os.stat(root).st_mtime_ns == stamp


def test_operator_cli_still_runs_and_names_bad_flags(tmp_path, capsys):
    out = tmp_path / "op.json"
    assert op_bench.main(["--batch-size", "4", "--size", "16", "--repeats", "1", "--warmup", "0",
                          "--erasing-pairs", "7", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["erasing"]["pairs"] == len(report["erasing"]["per_pair"]) == 7
    assert report["erasing"]["ci_low"] <= report["erasing"]["median"] <= report["erasing"]["ci_high"]
    assert "95% interval" in capsys.readouterr().out
    assert {"run", "results", "bandwidth", "host", "max_abs_diff_vs_unfused"} <= set(report)
    assert report["bandwidth"]["copy_GBps"] > 0 and report["host"]["batch_size"] == 4
    assert report["results"][0]["name"] == "gpumix fused" and report["results"][0]["images_per_s"] > 0
    with pytest.raises(SystemExit) as exit_info:
        op_bench.parse_args(["--repeats", "0"])
    assert exit_info.value.code == 2 and "--repeats: repeats must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("n", [6, 7, 37, 100, 401])
def test_the_median_interval_is_the_sign_tests(n):
    stats = pytest.importorskip("scipy.stats")
    values = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64).tolist()
    expected = stats.quantile_test(values, q=0, p=0.5).confidence_interval(0.95)
    assert harness.median_interval(values, 0.95) == (expected.low, expected.high)


def test_the_median_interval_needs_enough_values_for_its_level():
    # five values hold the median between their extremes with probability 1 - 2 / 2**5 = 0.9375
    assert harness.median_interval([3.0, 1.0, 5.0, 2.0, 4.0], 0.95) == (None, None)
    assert harness.median_interval([3.0, 1.0, 5.0, 2.0, 4.0], 0.9) == (1.0, 5.0)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 1.5"):
        harness.median_interval([1.0], 1.5)


def test_paired_calls_alternate_and_report_the_median_ratio(monkeypatch):
    now, calls = [0.0], []

    def call(name, seconds):
        def fn():
            calls.append(name)
            now[0] += seconds
        return fn

    monkeypatch.setattr(harness, "_clock", lambda: now[0])
    r = harness.paired_calls(torch.device("cpu"), call("base", 2.0), call("other", 2.5), 9, warmup=1)
    assert calls == ["base", "other"] + ["base", "other", "other", "base"] * 4 + ["base", "other"]
    assert r["pairs"] == len(r["per_pair"]) == 9 and r["ci_level"] == 0.95
    assert r["median"] == r["ci_low"] == r["ci_high"] == r["q1"] == r["q3"] == 0.25
    assert (r["base_median_s"], r["other_median_s"]) == (2.0, 2.5)


def test_pipeline_cli_still_runs(datasets, tmp_path, capsys):
    from gpumix.bench import pipeline

    out = tmp_path / "p.json"
    assert pipeline.main(["--data", datasets["imagenet"], "--batch-size", "5", "--batches", "1", "--warmup", "1",
                          "--repeats", "1", "--json", str(out)]) == 0
    assert all(r["images_per_s"] > 0 for r in json.loads(out.read_text())["results"])


def test_kernel_bandwidth_counts_the_kernels_bytes_and_the_copy_moves_as_many():
    from gpumix.bench import kernel_timing
    r = kernel_timing.kernel_bandwidth("cpu", batch_size=2, size=8, dtype=torch.bfloat16, channels_last=True,
                                       num_classes=10, repeats=2, warmup=1)
    assert r["bytes"] == 2 * 8 * 8 * 3 * (2 + 2) + 2 * 10 * 4
    assert r["fraction_of_copy"] == pytest.approx(r["kernel_GBps"] / r["copy_GBps"])
    assert r["kernel_GBps"] == pytest.approx(r["bytes"] / r["kernel_s"] / 1e9)
    with pytest.raises(ValueError, match="dtype must be one of"):
        kernel_timing.kernel_bandwidth("cpu", dtype=torch.int8)


def test_gpu_memory_is_the_devices_used_memory_added_and_shown_beside_host_memory(monkeypatch):
    """Without a GPU: cudaMemGetInfo replaced by a fake device whose used memory grows by 300 MiB."""
    free = iter([(8 << 30), (8 << 30) - (300 << 20)])
    monkeypatch.setattr(memory.torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(memory.torch.cuda, "mem_get_info", lambda: (next(free), 16 << 30))
    with memory.GpuMemory(True) as mem:
        pass
    assert mem.added == 300 << 20
    with memory.GpuMemory(False) as off:
        pass
    assert off.added is None
    row = {"name": "gpumix", "images_per_s": 10.0, "min_images_per_s": 9.0, "max_images_per_s": 11.0,
           "host_memory_added_bytes": 100 << 20, "gpu_memory_added_bytes": 300 << 20, "gpumix_is": 1.0}
    table = report.format_loader_table({"loaders": {"results": [row], "skipped": [], "mixup_overhead": None}})
    header, line = table.splitlines()[:2]
    assert "MB added  GPU MB" in header and line.split()[-3:] == ["100", "300", "1.00x"]
    assert "GPU MB: the same for the device's memory (cudaMemGetInfo)" in table


def test_resize_and_reader_benchmarks_run_on_tiny_data(photos, capsys):
    from gpumix.bench import reader, resize

    assert resize.main(["--data", photos["folder"], "--batch-size", "4", "--threads", "1", "--rounds", "2",
                        "--batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "antialiased resize (default)" in out and "antialiased / aliased resize time, paired rounds" in out
    assert reader.main([*photos["webdataset"], "--batch-size", "4", "--threads", "1", "--rounds", "2",
                        "--batches", "2"]) == 0
    out = capsys.readouterr().out
    assert "DALI readers.webdataset + python_function label" in out and "gpumix WebDatasetSource" in out
    rates = reader.measure_readers(photos["webdataset"], batch_size=4, threads=1, rounds=2, batches=1)
    assert all(len(r) == 2 and min(r) > 0 for r in rates.values())


def test_resize_and_reader_benchmarks_refuse_bad_counts(photos, capsys):
    from gpumix.bench import reader, resize

    with pytest.raises(SystemExit):
        resize.main(["--rounds", "0"])
    assert "argument --rounds: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reader.main([*photos["webdataset"], "--batch-size", "0"])
    assert "argument --batch-size: must be >= 1, got 0" in capsys.readouterr().err


def test_decoder_sweep_grid_and_its_checks(photos, capsys):
    import torch

    from gpumix.bench import decoder

    grid = decoder.settings_grid([0.0, 1.0], [2, 4])
    assert [g[1].get("hw_decoder_load") for g in grid] == [0.0, 0.0, 1.0, 1.0, None]
    assert grid[-1][1] == decoder.OLD_PADDINGS and grid[-1][2] == 4
    with pytest.raises(SystemExit):
        decoder.main(["--data", photos["folder"], "--loads", "1.5"])
    assert "argument --loads: must be >= 0 and <= 1, got 1.5" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert decoder.main(["--data", photos["folder"]]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_decoder_sweep_runs_on_a_gpu(photos, tmp_path, capsys):
    from gpumix.bench import decoder

    out = tmp_path / "d.json"
    assert decoder.main(["--data", photos["folder"], "--loads", "0", "1", "--threads", "1", "--batch-size", "4",
                         "--batches", "2", "--rounds", "1", "--warmup", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 3 and all(r["images_per_s"] > 0 and r["gpu_memory_added_bytes"] >= 0 for r in rows)
