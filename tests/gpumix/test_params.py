"""MixParams: validated on construction, with errors that name the field and the value."""
import pytest
import torch

from gpumix import MixParams


def _params(n=4, **overrides):
    fields = dict(lam=torch.full((n,), 0.5), index=torch.arange(n).flip(0), boxes=None)
    fields.update(overrides)
    return MixParams(**fields)


def test_valid_params_and_identity():
    p = _params(boxes=torch.tensor([[0, 0, 2, 3], [1, 1, 1, 1], [0, 0, 0, 0], [5, 6, 7, 9]], dtype=torch.int32))
    assert p.batch_size == 4 and p.box_extent == (7, 9)
    ident = MixParams.identity(3)
    assert torch.equal(ident.index, torch.arange(3)) and torch.equal(ident.lam, torch.ones(3))


def test_lam_must_be_a_tensor():
    with pytest.raises(TypeError, match=r"lam must be a torch.Tensor of dtype torch.float32, got list"):
        _params(lam=[0.5] * 4)


def test_lam_dtype():
    with pytest.raises(TypeError, match=r"lam must have dtype torch.float32, got torch.float64"):
        _params(lam=torch.full((4,), 0.5, dtype=torch.float64))


def test_lam_rank():
    with pytest.raises(ValueError, match=r"lam must have shape \(B,\) with B >= 1, got \(2, 2\)"):
        _params(lam=torch.full((2, 2), 0.5))


@pytest.mark.parametrize("bad", [1.5, -0.25, float("nan")])
def test_lam_outside_unit_interval(bad):
    lam = torch.full((4,), 0.5)
    lam[2] = bad
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\], got lam\[2\] = "):
        _params(lam=lam)


def test_index_dtype():
    with pytest.raises(TypeError, match=r"index must have dtype torch.int64, got torch.int32"):
        _params(index=torch.arange(4, dtype=torch.int32))


def test_index_shape():
    with pytest.raises(ValueError, match=r"index must have shape \(4,\), got \(3,\)"):
        _params(index=torch.arange(3))


def test_index_out_of_range():
    with pytest.raises(ValueError, match=r"index must be a permutation of range\(4\), got index\[1\] = 4"):
        _params(index=torch.tensor([0, 4, 1, 2]))


def test_index_not_a_permutation():
    with pytest.raises(ValueError, match=r"index must be a permutation of range\(4\), got value 1 2 times"):
        _params(index=torch.tensor([0, 1, 1, 2]))


def test_boxes_dtype():
    with pytest.raises(TypeError, match=r"boxes must have dtype torch.int32, got torch.int64"):
        _params(boxes=torch.zeros((4, 4), dtype=torch.int64))


def test_boxes_shape():
    with pytest.raises(ValueError, match=r"boxes must have shape \(4, 4\), got \(4, 2\)"):
        _params(boxes=torch.zeros((4, 2), dtype=torch.int32))


@pytest.mark.parametrize("row", [[-1, 0, 2, 2], [3, 0, 2, 2], [0, 3, 2, 2]])
def test_boxes_not_ordered(row):
    boxes = torch.zeros((4, 4), dtype=torch.int32)
    boxes[3] = torch.tensor(row)
    with pytest.raises(ValueError, match=r"boxes must be half-open .* got boxes\[3\] = "):
        _params(boxes=boxes)


def test_to_moves_every_tensor_and_keeps_the_extent():
    p = _params(boxes=torch.tensor([[0, 0, 2, 3]] * 4, dtype=torch.int32))
    assert p.to("cpu") is p
    moved = p.to("meta")  # a second device that every machine has
    assert {t.device.type for t in (moved.lam, moved.index, moved.boxes)} == {"meta"}
    assert moved.box_extent == (2, 3) and moved.device.type == "meta"
