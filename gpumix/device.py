"""Can this machine run gpumix's GPU path, and if not, what is missing.

``gpu_problem()`` names the first missing piece (torch's CUDA, a visible GPU,
a driver new enough for the installed DALI build); ``resolve_device`` turns
'auto' into 'gpu' or 'cpu' (saying once why it fell back to the CPU) and
makes an explicit 'gpu' fail with that reason instead of deep inside DALI or
numba. Nothing here runs at import time.
"""
import functools
import importlib.metadata
import warnings

__all__ = ["gpu_problem", "resolve_device", "dali_cuda_major", "driver_cuda_major", "GPUUnavailableError", "DEVICES"]

DEVICES = ("auto", "gpu", "cpu")


class GPUUnavailableError(RuntimeError):
    """device='gpu' was asked for on a machine that cannot run it; the message says what is missing."""


def dali_cuda_major() -> int | None:
    """The CUDA major version of the installed DALI build (13 for nvidia-dali-cuda130), or None without DALI."""
    for major, name in ((13, "nvidia-dali-cuda130"), (12, "nvidia-dali-cuda120"), (11, "nvidia-dali-cuda110")):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return major
    return None


def driver_cuda_major() -> int | None:
    """The newest CUDA major version the installed driver supports (cuda-python's binding), or None."""
    try:
        from cuda.bindings import driver
    except ImportError:
        return None
    err, version = driver.cuDriverGetVersion()
    return version // 1000 if int(err) == 0 else None


@functools.lru_cache(maxsize=1)
def gpu_problem() -> str | None:
    """None when gpumix's GPU path can run here, else a sentence saying what is missing (cached)."""
    import torch
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU: no NVIDIA GPU is "
                "visible, or its driver is missing or too old")
    dali = dali_cuda_major()
    driver = driver_cuda_major()
    if dali is not None and driver is not None and driver < dali:
        return (f"the installed DALI is built for CUDA {dali}, but the NVIDIA driver supports CUDA {driver} at "
                f"most: install gpumix[cuda{driver}] or a newer driver")
    return None


_said: set[str] = set()  # the fallback reasons already warned about


def resolve_device(device: str, name: str = "device") -> str:
    """'gpu' or 'cpu' for ``device`` in ('auto', 'gpu', 'cpu').

    'auto' is 'gpu' when ``gpu_problem()`` finds nothing missing, else 'cpu',
    with a RuntimeWarning (once per process) saying why. 'gpu' raises
    ``GPUUnavailableError`` naming what is missing.
    """
    if device not in DEVICES:
        raise ValueError(f"{name} must be 'auto', 'gpu' or 'cpu', got {device!r}")
    if device == "cpu":
        return "cpu"
    problem = gpu_problem()
    if problem is None:
        return "gpu"
    if device == "gpu":
        raise GPUUnavailableError(f"{name}='gpu' cannot run on this machine: {problem}")
    if problem not in _said:
        _said.add(problem)
        warnings.warn(f"gpumix: {name}='auto' runs on the CPU: {problem}", RuntimeWarning, stacklevel=2)
    return "cpu"
