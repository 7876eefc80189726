"""Shared setup of the trainer tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_determinism():
    # --deterministic switches a process-wide torch flag; keep it from leaking into other tests.
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)
