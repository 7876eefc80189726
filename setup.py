"""Install gpumix: the source folders kernels/, pipelines/ and train/ become gpumix.*."""
from setuptools import setup

setup(
    name="gpumix",
    version="0.1.0",
    description="Fused mixup/CutMix + normalize for DALI-fed ImageNet and CIFAR training, on GPU and CPU",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["gpumix", "gpumix.bench", "gpumix.tools", "gpumix.kernels", "gpumix.pipelines", "gpumix.train"],
    package_dir={
        "gpumix": "gpumix",
        "gpumix.kernels": "kernels",
        "gpumix.pipelines": "pipelines",
        "gpumix.train": "train",
    },
    install_requires=[
        "numpy>=1.24,<3",
        "pillow>=9",
        "tqdm>=4.60",
        "torch>=2.3,<3",
        "torchvision>=0.18,<1",
        "numba>=0.59,<1",
        # the CUDA kernel's compiler; its libNVVM comes with the cuda13/cuda12 extra below
        "numba-cuda>=0.15,<1",
        # the benchmark's bar chart and the trainer's loss/accuracy curves
        "matplotlib>=3.5",
        # the trainer's recipe files
        "pyyaml>=5.4",
    ],
    package_data={"gpumix.train": ["recipes/*.yaml"]},
    extras_require={
        # NVIDIA DALI and libNVVM built for the machine's CUDA major version. pip cannot tell which one a
        # machine needs, and the two DALI builds overwrite each other's files, so exactly one is asked for:
        # cuda13 matches the CUDA 13 torch PyPI serves (the README's commands), cuda12 is for CUDA 12 drivers.
        # libNVVM comes as cuda-toolkit's nvvm part at torch's own CUDA minor (torch 2.14 pins cuda-toolkit
        # 13.0.3): numba-cuda's cu13 extra asks for the newest 13.x, and pip then fell back to a CPU-only torch.
        "cuda13": ["nvidia-dali-cuda130>=2.0,<3", "cuda-toolkit[nvvm]==13.0.*"],
        "cuda12": ["nvidia-dali-cuda120>=1.40,<3", "numba-cuda[cu12]>=0.15,<1"],
        # scikit-learn: the digits tests (gpumix-make-digits) run in CI too instead of skipping;
        # scikit-learn and scikit-image ship the real photographs the pipeline tests crop (tests/conftest.py)
        # timm: tests compare gpumix's random erasing and BCE loss with timm's own implementations
        # ruff and mypy: README's test command lints and type-checks before pytest (configured in pyproject.toml)
        "test": ["pytest>=7", "hypothesis>=6", "scikit-learn>=1.0", "scikit-image>=0.19", "timm>=0.9",
                 "ruff>=0.5", "mypy>=1.10"],
        # scikit-learn ships the 8x8 digits behind gpumix-make-digits (the learning check)
        "digits": ["scikit-learn>=1.0"],
        # the trainer's optional --tensorboard logs
        "tensorboard": ["tensorboard>=2.10"],
        # timm is only a competitor in the benchmark, never a dependency of gpumix itself.
        "bench": ["timm>=0.9"],
    },
    entry_points={
        "console_scripts": [
            "gpumix-demo=gpumix.demo:main",
            "gpumix-bench=gpumix.bench.main:main",
            "gpumix-train=gpumix.train.__main__:main",
            "gpumix-make-digits=gpumix.tools.digits:main",
            "gpumix-make-fashion=gpumix.tools.fashion:main",
            "gpumix-attack=gpumix.train.attack:main",
            "gpumix-bench-operator=gpumix.bench.operator:main",
            "gpumix-bench-pipeline=gpumix.bench.pipeline:main",
            "gpumix-make-dataset=gpumix.tools.make_dataset:main",
            "gpumix-scan=gpumix.tools.scan:main",
            "gpumix-label-fit=gpumix.train.label_fit:main",
            "gpumix-kernel-report=gpumix.tools.kernel_report:main",
            "gpumix-gpu-check=gpumix.bench.gpu_check:main",
        ],
    },
)
