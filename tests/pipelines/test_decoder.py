"""The GPU decoder's knobs (issue 14, part 4): one validated config, accepted by both ImageNet builders.

What the knobs do to GPU memory and speed can only be measured on a GPU
(``gpumix-bench --device gpu``); the GPU run below skips without CUDA.
"""
import numpy as np
import pytest
import torch

from gpumix.pipelines import DecoderConfig, imagenet_train, imagenet_val


def test_defaults_and_the_arguments_dali_gets():
    assert DecoderConfig().mixed_arguments() == {
        "hw_decoder_load": 0.65, "device_memory_padding": 16 << 20, "host_memory_padding": 8 << 20,
        "preallocate_width_hint": 5980, "preallocate_height_hint": 6430}


@pytest.mark.parametrize("field, value, message", [
    ("hw_decoder_load", -0.1, r"hw_decoder_load must be a float in \[0, 1\], got -0.1"),
    ("hw_decoder_load", "all", r"hw_decoder_load must be a float in \[0, 1\], got 'all'"),
    ("device_memory_padding", 1.5, r"device_memory_padding must be an int >= 0, got 1.5"),
    ("host_memory_padding", -1, r"host_memory_padding must be an int >= 0, got -1"),
    ("preallocate_width_hint", True, r"preallocate_width_hint must be an int >= 0, got True"),
    ("preallocate_height_hint", -2, r"preallocate_height_hint must be an int >= 0, got -2"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        DecoderConfig(**{field: value})


@pytest.mark.parametrize("builder", [imagenet_train, imagenet_val])
def test_builders_take_a_decoder_config_and_refuse_anything_else(photos, builder):
    config = DecoderConfig(hw_decoder_load=0.0, device_memory_padding=0, preallocate_width_hint=0)
    pipe = builder(photos["folder"], batch_size=2, crop=16, device="cpu", num_threads=1, decoder=config)
    pipe.build()
    assert len(pipe.run()[0]) == 2  # the CPU decoder ignores the GPU knobs
    with pytest.raises(TypeError, match=r"decoder must be a gpumix.pipelines.DecoderConfig or None, got dict"):
        builder(photos["folder"], batch_size=2, device="cpu", decoder={"hw_decoder_load": 0.5})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("load", [0.0, 1.0])
def test_gpu_decoder_runs_with_other_knobs(photos, load):
    config = DecoderConfig(hw_decoder_load=load, device_memory_padding=0, host_memory_padding=0,
                           preallocate_width_hint=0, preallocate_height_hint=0)
    pipe = imagenet_train(photos["folder"], batch_size=4, crop=32, device="gpu", decoder=config)
    pipe.build()
    images, _ = pipe.run()
    assert np.array(images.as_cpu()[0]).shape == (32, 32, 3)
