"""Shared setup of the trainer tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_determinism():
    # --deterministic switches a process-wide torch flag; keep it from leaking into other tests.
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="session")
def train_val(tmp_path_factory):
    """Makes tiny datasets with gpumix-make-dataset: ``make(kind, train_per_class=, val_per_class=, size=, seed=1,
    classes=4, root=None)`` writes ROOT/train (seed) and ROOT/val (seed + 1) and returns str(ROOT); ROOT is a fresh
    temporary folder unless given."""
    from gpumix.synthetic import make_dataset

    def make(kind="imagenet", *, train_per_class, val_per_class, size, seed=1, classes=4, root=None):
        root = tmp_path_factory.mktemp(kind) if root is None else root
        make_dataset(kind, root / "train", classes=classes, images_per_class=train_per_class, seed=seed, size=size)
        make_dataset(kind, root / "val", classes=classes, images_per_class=val_per_class, seed=seed + 1, size=size)
        return str(root)

    return make


@pytest.fixture
def mixed_batch():
    """Returns ``make(seed, n, k, scale)``: float64 logits (n, k) scaled by ``scale``, int64 labels (n,), a partner
    permutation (n,) and float64 lam (n,) in [0, 1), drawn in that order from a generator seeded ``seed``."""

    def make(seed, n, k, scale):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(n, k, generator=g, dtype=torch.float64) * scale
        labels = torch.randint(0, k, (n,), generator=g)
        partner = torch.randperm(n, generator=g)
        lam = torch.rand(n, generator=g, dtype=torch.float64)
        return logits, labels, partner, lam

    return make
