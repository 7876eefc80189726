"""The DALI internals gpumix relies on (all in gpumix.pipelines.dali_compat) are still there, and build_graph works."""
import numpy as np
import pytest
from nvidia.dali import Pipeline, fn, types

from gpumix.pipelines import cifar_train, dali_compat, imagenet_train
from gpumix.pipelines._failures import ExplainingPipeline, ExplainingSourcePipeline
from gpumix.pipelines.sharding import SourcePipeline


@pytest.mark.parametrize("name", dali_compat.DALI_INTERNALS)
def test_dali_still_has_the_internals_gpumix_uses(name):
    if name in dali_compat.missing_internals():
        pytest.fail(f"DALI {dali_compat.DALI_VERSION} has no nvidia.dali.pipeline.{name} (a private helper of "
                    "@pipeline_def): gpumix.pipelines.dali_compat.build_graph cannot enable conditionals; update it")


class _Tagged(Pipeline):
    """A Pipeline subclass, as gpumix's are: build_graph must keep its class."""


def _graph(value):
    x = fn.random.uniform(range=(0.0, 1.0), dtype=types.FLOAT)
    if x < 0.5:  # a DALI conditional: needs enable_conditionals
        y = x * 0 + value
    else:
        y = x * 0 - value
    return y, x


def _plain(value):
    return fn.constant(fdata=value)


def test_build_graph_with_conditionals_in_a_subclass():
    pipe = dali_compat.build_graph(_Tagged(batch_size=8, num_threads=1, device_id=None, seed=3), _graph, 2.0,
                                   enable_conditionals=True)
    assert type(pipe) is _Tagged
    pipe.build()
    y, x = (np.array(out.as_tensor()) for out in pipe.run())
    assert np.array_equal(y, np.where(x < 0.5, 2.0, -2.0))


def test_build_graph_without_conditionals_takes_a_single_output():
    pipe = dali_compat.build_graph(_Tagged(batch_size=2, num_threads=1, device_id=None), _plain, 7.0)
    pipe.build()
    (out,) = pipe.run()
    assert np.array(out.as_tensor()).reshape(-1).tolist() == [7.0, 7.0]


def test_build_graph_refuses_a_non_pipeline():
    with pytest.raises(TypeError, match="pipe must be a nvidia.dali Pipeline, got str"):
        dali_compat.build_graph("pipe", _plain, 1.0)


def test_missing_internal_is_named_with_the_dali_version(monkeypatch):
    monkeypatch.setattr(dali_compat, "DALI_INTERNALS", ("_no_such_helper",))
    assert dali_compat.missing_internals() == ["_no_such_helper"]
    with pytest.raises(RuntimeError, match=rf"DALI {dali_compat.DALI_VERSION} has no "
                                           r"nvidia\.dali\.pipeline\._no_such_helper"):
        dali_compat.build_graph(_Tagged(batch_size=1, num_threads=1, device_id=None), _graph, 1.0,
                                enable_conditionals=True)


def test_builders_create_their_pipeline_classes_directly(datasets):
    common = dict(batch_size=2, device="cpu", num_threads=1)
    assert type(cifar_train(datasets["cifar10-binary"], **common)) is SourcePipeline
    assert type(imagenet_train(datasets["imagenet"], crop=16, **common)) is ExplainingPipeline
    shards = imagenet_train(datasets["webdataset"], crop=16, auto_augment="randaugment", **common)
    assert type(shards) is ExplainingSourcePipeline
    shards.build()
    assert shards.reader_meta("Reader")["epoch_size"] > 0
