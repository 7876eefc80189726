"""gpumix.train.metrics: the JSON-lines log and its plot."""
import json
import random

import pytest

from gpumix.train.metrics import METRICS_NAME, MetricsLog, _running_mean, plot_metrics, plot_runs, read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _records(seed):
    rng = random.Random(seed)
    steps = [{"kind": "step", "step": s, "loss": 2.3 - 0.01 * s + rng.random() * 0.1, "lr": 0.1} for s in range(30)]
    epochs = [{"kind": "epoch", "epoch": e, "top1": 10 + 5 * e + rng.random(), "top5": 40 + 4 * e + rng.random()}
              for e in range(3)]
    return steps, epochs


def test_log_appends_one_flushed_line_per_record(tmp_path):
    steps, epochs = _records(0)
    with MetricsLog(tmp_path / "run") as log:
        for record in steps[:10]:
            log.write(record)
        assert read_metrics(log.path) == steps[:10]  # flushed: readable before close
    with MetricsLog(tmp_path / "run") as log:  # a resumed run appends
        for record in steps[10:] + epochs:
            log.write(record)
    path = tmp_path / "run" / METRICS_NAME
    assert read_metrics(path) == steps + epochs
    assert len(path.read_text().splitlines()) == len(steps) + len(epochs)
    with pytest.raises(TypeError, match=r"record must be a dict, got list"):
        MetricsLog(tmp_path / "run").write([1])


def test_a_resumed_log_drops_the_lines_after_its_checkpoint(tmp_path):
    steps, epochs = _records(1)
    with MetricsLog(tmp_path / "run") as log:  # the run that died after step 20, its checkpoint at step 12
        for record in steps[:21] + [{"kind": "note", "text": "no step"}]:
            log.write(record)
    with MetricsLog(tmp_path / "run", keep_through_step=12) as log:
        assert read_metrics(log.path) == steps[:13] + [{"kind": "note", "text": "no step"}]
        for record in steps[13:]:
            log.write(record)
    assert [r.get("step") for r in read_metrics(log.path)] == list(range(13)) + [None] + list(range(13, 30))
    assert not list((tmp_path / "run").glob("*.tmp"))
    with MetricsLog(tmp_path / "run", keep_through_step=0) as log:  # a fresh run in the folder of one that died early
        assert read_metrics(log.path) == [steps[0], {"kind": "note", "text": "no step"}]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_keep_through_step_must_be_a_step(tmp_path, bad):
    with pytest.raises(ValueError, match=r"keep_through_step must be None or an int >= 0, got "):
        MetricsLog(tmp_path / "run", keep_through_step=bad)


def test_plot_writes_a_png(tmp_path):
    steps, epochs = _records(1)
    with MetricsLog(tmp_path) as log:
        for record in steps + epochs + [{"kind": "note", "text": "ignored"}]:
            log.write(record)
    out = plot_metrics(tmp_path / METRICS_NAME, tmp_path / "metrics.png")
    assert out == tmp_path / "metrics.png"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_plot_with_only_step_records(tmp_path):
    steps, _ = _records(2)
    with MetricsLog(tmp_path) as log:
        for record in steps:
            log.write(record)
    assert plot_metrics(tmp_path / METRICS_NAME, tmp_path / "p.png").read_bytes().startswith(PNG_SIGNATURE)


def test_nothing_to_plot_and_bad_lines(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"kind": "note"}\n\n')
    with pytest.raises(ValueError, match=r"empty.jsonl: no records to plot"):
        plot_metrics(empty, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "step", "step": 1, "loss": 2.0}\n{"kind": "st\n')
    with pytest.raises(ValueError, match=r"broken.jsonl: line 2 is not JSON"):
        read_metrics(broken)
    scalar = tmp_path / "scalar.jsonl"
    scalar.write_text("3\n")
    with pytest.raises(ValueError, match=r"scalar.jsonl: line 1 is a int, not a JSON object"):
        read_metrics(scalar)


def test_a_write_the_disk_refuses_names_the_file(tmp_path):
    """The kernel refuses the write (file size limit, as a full disk would): the OSError names metrics.jsonl."""
    import errno
    import resource
    import signal

    log = MetricsLog(tmp_path)
    log.write({"kind": "step", "step": 0, "loss": 1.0})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, ((tmp_path / METRICS_NAME).stat().st_size, hard))  # full now
    try:
        with pytest.raises(OSError, match=rf"writing metrics {tmp_path}/metrics.jsonl: File too large") as info:
            log.write({"kind": "step", "step": 1, "loss": 0.5})
        assert info.value.errno == errno.EFBIG
        with pytest.raises(OSError, match=rf"writing metrics {tmp_path}/metrics.jsonl: File too large"):
            log.close()  # the unwritten rest is still buffered
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert read_metrics(tmp_path / METRICS_NAME)[0] == {"kind": "step", "step": 0, "loss": 1.0}


def test_plot_runs_compares_runs_in_one_png(tmp_path):
    paths = {}
    for seed, label in enumerate(["ERM", "mixup"]):
        steps, epochs = _records(seed)
        with MetricsLog(tmp_path / label) as log:
            for record in steps + epochs:
                log.write(record)
        paths[label] = tmp_path / label / METRICS_NAME
    out = plot_runs(paths, tmp_path / "runs.png", smooth=5, title="two runs")
    data = out.read_bytes()
    assert out == tmp_path / "runs.png" and data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_running_mean_by_hand():
    assert _running_mean([1.0, 2.0, 6.0, 3.0], 2) == [1.5, 4.0, 4.5]
    assert _running_mean([1.0, 2.0, 6.0], 1) == [1.0, 2.0, 6.0]
    assert _running_mean([1.0, 2.0, 6.0], 10) == [3.0]  # a window longer than the run: the one mean


def test_plot_runs_refuses_what_it_cannot_draw(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"kind": "note"}\n')
    with pytest.raises(ValueError, match=r"run 'ERM': .*empty.jsonl has no step or epoch records to plot"):
        plot_runs({"ERM": empty}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"runs must be a non-empty dict of label -> metrics.jsonl path, got \{\}"):
        plot_runs({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"smooth must be an int >= 1, got 0"):
        plot_runs({"ERM": empty}, tmp_path / "x.png", smooth=0)
    assert not (tmp_path / "x.png").exists()


def test_error_summary_best_and_last_epochs(tmp_path):
    from gpumix.train.metrics import error_summary

    path = tmp_path / "metrics.jsonl"
    top1 = [0.5, 0.8, 0.9, 0.7, 0.85, 0.75, 0.8]
    lines = [{"kind": "step", "step": 1, "loss": 1.0}]
    lines += [{"kind": "epoch", "epoch": e + 1, "top1": t} for e, t in enumerate(top1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    s = error_summary(path, last=5)
    assert s["best_epoch"] == 3 and s["best"] == pytest.approx(0.1) and s["epochs"] == 7
    assert s["last_mean"] == pytest.approx((0.1 + 0.3 + 0.15 + 0.25 + 0.2) / 5) and s["last_epochs"] == 5
    assert error_summary(path, last=50)["last_epochs"] == 7
    with pytest.raises(ValueError, match="last must be an int >= 1, got 0"):
        error_summary(path, last=0)
    path.write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(ValueError, match="no epoch records with top1"):
        error_summary(path)
