"""The installed namespace: gpumix.* only, and nothing heavy happens at import time."""
import importlib
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code):
    # From / so that the source tree is not on sys.path: this sees what the install provides.
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("name, folder", [("gpumix.kernels", "kernels"), ("gpumix.pipelines", "pipelines"),
                                          ("gpumix.train", "train")])
def test_folders_are_mapped_into_the_gpumix_namespace(name, folder):
    module = importlib.import_module(name)
    assert os.path.basename(os.path.dirname(module.__file__)) == folder
    assert isinstance(module.__all__, list)


def test_no_top_level_kernels_pipelines_or_train_module():
    found = _run("import importlib.util, json; "
                 "print(json.dumps({n: getattr(importlib.util.find_spec(n), 'origin', None) "
                 "for n in ('kernels', 'pipelines', 'train')}))")
    for name, origin in found.items():
        assert origin is None or not origin.startswith(REPO), f"{name} resolves into the repo: {origin}"


def test_import_loads_neither_numba_nor_cuda():
    state = _run("import sys, json, gpumix, torch; "
                 "print(json.dumps({'numba': 'numba' in sys.modules, 'cuda': torch.cuda.is_initialized(), "
                 "'dali': 'nvidia.dali' in sys.modules, 'api': sorted(gpumix.__all__)}))")
    assert state == {"numba": False, "cuda": False, "dali": False,
                     "api": sorted(["Mixup", "MixMode", "MixParams", "RandomErasing", "ErasingParams", "mix_normalize",
                                    "normalize", "MixupIterator", "MixedBatch", "LastBatch", "__version__"])}


def test_iterator_is_loaded_on_first_use():
    state = _run("import sys, json, gpumix; it = gpumix.MixupIterator; "
                 "print(json.dumps({'dali': 'nvidia.dali' in sys.modules, 'name': it.__name__}))")
    assert state == {"dali": True, "name": "MixupIterator"}
