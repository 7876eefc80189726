"""The record every run keeps beside its results: settings, versions, seed, git hash, machine."""
import datetime
import os
import platform
import subprocess
from importlib import metadata
from typing import Any

__all__ = ["run_record"]

_PACKAGES = ("gpumix", "torch", "torchvision", "numpy", "numba", "numba-cuda", "nvidia-dali-cuda130",
             "nvidia-dali-cuda120", "timm")


def _git_hash() -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run_record(settings: dict[str, Any], device_name: str | None) -> dict[str, Any]:
    """A JSON-ready dict: ``settings`` (dict) plus date, machine, device, versions and git hash."""
    return {
        "settings": settings,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
        "device": device_name,
        "versions": {name: _version(name) for name in _PACKAGES},
        "git": _git_hash(),
    }
