"""gpumix-kernel-report: the static model's arithmetic, its SASS reading, and the targets where ptxas exists."""
import json
import os
import subprocess
import sys

import pytest

from gpumix.kernels.mix_normalize_cuda import Variant
from gpumix.tools import kernel_report as kr

# A made-up disassembly: a sample loop (0x0040-0x00d0) around a pixel loop (0x0060-0x00b0) holding the stores,
# and a target loop (0x0100-0x0110) with one store of its own.
SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   S2R R0, SR_TID.X ;
        /*0040*/                   LDG.E R2, desc[UR4][R4.64] ;
        /*0050*/                   IMAD R3, R2, 0x3, RZ ;
        /*0060*/                   LDG.E R5, desc[UR4][R6.64] ;
        /*0070*/                   FADD R5, R5, -8388608 ;
        /*0080*/                   STG.E.128 desc[UR4][R8.64], R12 ;
        /*0090*/                   STG.E.128 desc[UR4][R10.64], R12 ;
        /*00a0*/                   ISETP.GE.AND P0, PT, R3, R4, PT ;
        /*00b0*/              @!P0 BRA 0x60 ;
        /*00c0*/                   IADD3 R2, R2, 0x1, RZ ;
        /*00d0*/               @P1 BRA 0x40 ;
        /*00e0*/                   EXIT ;
        /*0100*/                   STG.E desc[UR4][R8.64], R3 ;
        /*0110*/               @P2 BRA 0x100 ;
"""


def test_hot_path_is_the_innermost_loop_with_the_stores():
    assert kr.loops(kr.parse_sass(SASS)) == [(0x60, 0xB0), (0x40, 0xD0), (0x100, 0x110)]
    loop, setup = kr.hot_path(SASS)
    assert loop == 6  # 0x60..0xb0
    assert setup == 4  # 0x40, 0x50, 0xc0, 0xd0


def test_hot_path_needs_a_loop():
    with pytest.raises(ValueError, match="no loop found in the SASS"):
        kr.hot_path("        /*0000*/                   EXIT ;\n")


def test_estimate_is_the_larger_of_memory_and_issue_time():
    model = kr.DeviceModel("toy", sms=2, issue_per_clock=10, clock_hz=1e9, copy_bytes_per_s=1e9, sources={})
    assert model.instructions_per_s == 2e10
    memory, issue, fraction = kr.estimate(sass_per_pixel=40, pixels=1000, nbytes=2000, model=model)
    assert (memory, issue, fraction) == pytest.approx((2e-6, 2e-6, 1.0))
    memory, issue, fraction = kr.estimate(sass_per_pixel=80, pixels=1000, nbytes=2000, model=model)
    assert issue == pytest.approx(4e-6) and fraction == pytest.approx(0.5)


def test_bytes_count_both_images_the_outputs_and_the_targets():
    pixels = 2 * 8 * 8
    assert kr.variant_bytes(Variant(), 2, 8, 10) == pixels * 3 * (2 + 4) + 2 * 10 * 4
    assert kr.variant_bytes(Variant("bfloat16", clean=True), 2, 8, 10) == pixels * 3 * (2 + 2 * 2) + 80
    assert kr.variant_bytes(Variant(channels=1), 2, 8, 10) == pixels * (2 + 4) + 80


def test_every_device_model_number_has_a_source():
    for model in kr.DEVICE_MODELS.values():
        assert set(model.sources) == {"sms", "issue_per_clock", "clock_hz", "copy_bytes_per_s"}


@pytest.mark.parametrize("args, message", [
    (["--arch", "sm_75"], "--arch: no device model for 'sm_75'"),
    (["--image-size", "30"], "--image-size must be a multiple of 4"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
])
def test_bad_flags_exit_2_naming_the_flag(capsys, args, message):
    with pytest.raises(SystemExit) as e:
        kr.parse_args(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def _toolchain_or_skip(tmp_path, env):
    try:
        kr.find_toolchain()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    probe = subprocess.run([sys.executable, "-c", "from numba.cuda.cudadrv.nvvm import NVVM; NVVM()"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"libNVVM (CUDA toolkit) not found: {probe.stderr.strip().splitlines()[-1:]}")


def test_every_variant_meets_its_target_on_paper(tmp_path):
    """The issue's targets for B=1024 at 224x224 on an H200, from real numba PTX, ptxas and SASS."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    _toolchain_or_skip(tmp_path, env)
    # From tmp_path: the checkout's gpumix/ folder must not shadow the installed package.
    run = subprocess.run([sys.executable, "-m", "gpumix.tools.kernel_report", "--json", "report.json",
                          "--ptx-dir", "ptx"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {r["name"]: r for r in report["variants"]}
    assert len(rows) == 24
    for name, row in rows.items():
        assert (tmp_path / "ptx" / f"{name}.ptx").read_text().count(".entry") == 1
        assert row["spill_bytes"] == 0, name
        target = 0.85 if name in ("f32_nchw_c3", "bf16_nhwc_c3") else 0.60
        assert row["estimated_fraction_of_copy"] >= target, (name, row)
        # the estimate is the model applied to the row's own numbers
        model = kr.DeviceModel(**{k: report["device_model"][k] for k in
                                  ("name", "sms", "issue_per_clock", "clock_hz", "copy_bytes_per_s", "sources")})
        _, _, fraction = kr.estimate(row["sass_per_pixel"], 1024 * 224 * 224, row["bytes"], model)
        assert fraction == pytest.approx(row["estimated_fraction_of_copy"], abs=1e-3)
    assert rows["bf16_nhwc_c3"]["dtype"] == "bfloat16" and rows["bf16_nhwc_c3"]["channels_last"]
    assert report["device_model"]["sources"]["copy_bytes_per_s"].startswith("4.3 TB/s")
