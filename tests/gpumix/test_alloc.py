"""The huge-page output pool: a mapping is reused only once no tensor or view uses it."""
import gc

import torch

from gpumix._alloc import empty_output

CPU = torch.device("cpu")
SHAPE = (4, 3, 256, 256)  # 3 MiB of fp32: above the 2 MiB threshold


def test_freed_output_is_reused_and_live_views_are_not():
    first = empty_output(SHAPE, torch.float32, CPU, False)
    first.fill_(1.0)
    address = first.data_ptr()
    view = first[1:2]  # a view keeps the mapping in use
    del first
    gc.collect()
    second = empty_output(SHAPE, torch.float32, CPU, False)
    assert second.data_ptr() != address
    second.fill_(2.0)
    assert (view == 1.0).all()
    del view
    gc.collect()
    third = empty_output(SHAPE, torch.float32, CPU, False)
    assert third.data_ptr() == address


def test_layouts_and_dtypes():
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        nchw = empty_output(SHAPE, dtype, CPU, False)
        nhwc = empty_output(SHAPE, dtype, CPU, True)
        assert nchw.shape == nhwc.shape == SHAPE and nchw.dtype == nhwc.dtype == dtype
        assert nchw.is_contiguous() and nhwc.is_contiguous(memory_format=torch.channels_last)


def test_small_outputs_use_torch_empty():
    small = empty_output((1, 3, 8, 8), torch.float32, CPU, True)
    assert small.is_contiguous(memory_format=torch.channels_last)
