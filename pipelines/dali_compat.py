"""The one place where gpumix touches DALI internals: building a graph with conditionals in a Pipeline subclass.

gpumix's pipelines are ``Pipeline`` subclasses (``sharding.SourcePipeline``
answers ``reader_meta`` for an external source, ``_failures.ExplainingPipeline``
names the files behind a failure), created directly and given their graph
through DALI's public graph API (``with pipe: ... pipe.set_outputs(...)``).
That API covers everything except ``if`` statements in the graph (the
auto-augment policies branch per sample): DALI enables them only inside
``@pipeline_def``, which always creates a plain ``Pipeline``. ``build_graph``
does what ``@pipeline_def(enable_conditionals=True)`` does once it has a
pipeline, by calling the three private helpers of ``nvidia.dali.pipeline``
that the decorator itself calls (DALI 2.4; present since conditionals came):

- ``_preprocess_pipe_func(func, True)``: AutoGraph's conversion of the graph
  function (it reads the function's source, so graph functions must live in
  source files), turning its ``if`` statements into DALI's conditionals;
- ``_preprocess_pipe_object(pipe, True, args, kwargs)``: switches
  conditionals on in the pipeline (its condition stack);
- ``_generate_graph(pipe, func, args, kwargs)``: ``with pipe:`` and
  ``set_outputs`` as in the public API, but called from where DALI's
  operator-origin tracing expects a converted graph to start (entered from
  any other frame, the tracing fails an internal assertion).

Nothing else in gpumix reads DALI's private names. ``missing_internals()``
lists those this DALI release lacks; tests/pipelines/test_dali_compat.py
fails, naming the DALI version and the attribute, when a release removes one.
"""
from collections.abc import Callable
from typing import Any

import nvidia.dali
import nvidia.dali.pipeline as dali_pipeline
from nvidia.dali import Pipeline

__all__ = ["DALI_INTERNALS", "DALI_VERSION", "build_graph", "missing_internals"]

DALI_VERSION: str = nvidia.dali.__version__
# The private names of nvidia.dali.pipeline that build_graph calls (only with enable_conditionals=True).
DALI_INTERNALS: tuple[str, ...] = ("_preprocess_pipe_func", "_preprocess_pipe_object", "_generate_graph")


def missing_internals() -> list[str]:
    """The names of ``DALI_INTERNALS`` that the installed DALI lacks (or no longer has as functions)."""
    return [name for name in DALI_INTERNALS if not callable(getattr(dali_pipeline, name, None))]


def build_graph(pipe: Pipeline, graph: Callable[..., Any], *args: Any, enable_conditionals: bool = False,
                **kwargs: Any) -> Pipeline:
    """Give the unbuilt ``pipe`` the graph ``graph(*args, **kwargs)`` returns (a DataNode or a tuple of them).

    ``pipe`` is modified (its outputs are set) and returned. With
    ``enable_conditionals``, ``if`` statements on DataNodes in ``graph`` and
    the functions it calls are DALI conditionals, as under
    ``@pipeline_def(enable_conditionals=True)``; this needs DALI's private
    helpers (see the module's docstring) and raises a RuntimeError naming the
    DALI version and the missing helper if this release lacks one.
    """
    if not isinstance(pipe, Pipeline):
        raise TypeError(f"pipe must be a nvidia.dali Pipeline, got {type(pipe).__name__}")
    if enable_conditionals:
        missing = missing_internals()
        if missing:
            raise RuntimeError(f"DALI {DALI_VERSION} has no nvidia.dali.pipeline.{missing[0]}, which gpumix "
                               "needs to build a pipeline with conditionals (auto-augment): use a DALI release "
                               "gpumix supports, or update gpumix.pipelines.dali_compat")
        converted = dali_pipeline._preprocess_pipe_func(graph, True)
        dali_pipeline._preprocess_pipe_object(pipe, True, args, kwargs)
        dali_pipeline._generate_graph(pipe, converted, args, kwargs)
        return pipe
    with pipe:
        outputs = graph(*args, **kwargs)
        pipe.set_outputs(*(outputs if isinstance(outputs, tuple) else (outputs,)))
    return pipe
