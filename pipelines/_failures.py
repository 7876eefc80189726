"""Name the file behind a reading or decoding failure that DALI reports without one.

DALI names the sample for some corrupt JPEGs ("Failed to decode sample #11 :
path") but not for others ("nvImageCodec failure: '#3'"), and either way the
pipeline is dead afterwards. ``ExplainingPipeline`` catches the failure
wherever a batch is consumed (``run``, and ``outputs``/``share_outputs``, which
DALI's iterators call), replays the reader alone (no decoding) up to the
failed batches, decodes their encoded bytes with Pillow to find the culprits,
and raises a ``DatasetFileError`` that names them. A file the reader itself
cannot read is reported by the path DALI names: as missing when it does not
exist, as empty when it has no bytes, else as unreadable with DALI's reason.
This costs nothing until a run fails.

The replay starts from the reader's first batch, so in a pipeline restored
from a checkpoint it may find nothing; DALI's own error is raised then.
"""
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from nvidia.dali import Pipeline, pipeline_def
from nvidia.dali.data_node import DataNode

from gpumix.imagecheck import why_undecodable
from gpumix.pipelines.sharding import SourcePipeline

__all__ = ["DatasetFileError", "ExplainingPipeline", "ExplainingSourcePipeline"]

_ADVICE = "The pipeline is no longer valid: rebuild it, and clean the dataset first with gpumix-scan."


class DatasetFileError(RuntimeError):
    """DALI could not read or decode files of the dataset; the message names them."""


@pipeline_def
def _reader_only(read):
    return read()


def _describe_by_position(iteration: int, index: int) -> str:
    return f"sample {index} of batch {iteration}"


def _dali_reason(error):
    """The lines of a DALI error after its operator traceback ("encountered:"), without its boilerplate."""
    text = str(error).rpartition("encountered:")[2]
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(("C++ context", "Current pipeline object"))]
    return " ".join(lines) if lines else str(error).strip()


def _unreadable(reason):
    """What is wrong with the file that DALI's reading ``reason`` names: a phrase naming its path."""
    for token in reason.replace("'", " ").replace('"', " ").split():
        if not os.path.isabs(token):
            continue
        token = os.path.normpath(token)  # DALI joins the list's folder and a relative ../ path as they are
        if not os.path.exists(token):
            return f"missing file {token} (it does not exist)"
        if os.path.isfile(token) and os.path.getsize(token) == 0:
            return f"empty file {token}"
    return f"an unreadable file: {reason}"


class ExplainingPipeline(Pipeline):
    """A DALI Pipeline whose consumed batches raise a ``DatasetFileError`` naming the files behind a failure.

    ``read()`` builds the same reader (encoded images, labels) in a new graph;
    ``lookahead`` is how many batches DALI may be preparing at a failure;
    ``describe(iteration, index)`` names a sample that carries no DALI source
    info (an external source's). The other keywords are ``Pipeline``'s. Give
    it its graph with ``dali_compat.build_graph`` (or DALI's ``with pipe:``
    and ``set_outputs``).
    """

    def __init__(self, *, read: Callable[[], tuple[DataNode, DataNode]], lookahead: int,
                 describe: Callable[[int, int], str] | None = None, **pipeline_kwargs: Any) -> None:
        super().__init__(**pipeline_kwargs)
        self._gpumix_runs = 0
        self._gpumix_replay = (read, lookahead)
        self._gpumix_describe = describe or _describe_by_position

    def schedule_run(self) -> None:
        """DALI's ``schedule_run``; a failure raises a DatasetFileError naming the bad files when it can."""
        try:
            return super().schedule_run()
        except RuntimeError as error:
            self._raise_explained(error)

    def outputs(self, cuda_stream: Any = None) -> Any:
        """DALI's ``outputs``; a failure raises a DatasetFileError naming the bad files when it can."""
        return self._consume(super().outputs, cuda_stream)

    def share_outputs(self, cuda_stream: Any = None) -> Any:
        """DALI's ``share_outputs``; a failure raises a DatasetFileError naming the bad files when it can."""
        return self._consume(super().share_outputs, cuda_stream)

    # ``run`` is DALI's: ``schedule_run`` then ``outputs``, both explained here.

    def _consume(self, fetch, cuda_stream):
        try:
            outputs = fetch(cuda_stream)
        except RuntimeError as error:
            self._raise_explained(error)
        self._gpumix_runs += 1
        return outputs

    def _raise_explained(self, error):
        if isinstance(error, DatasetFileError):
            raise error
        explained = self._explain(error)
        if explained is None:
            raise error
        raise explained from error

    def _explain(self, error):
        """A DatasetFileError naming the unreadable or undecodable samples of the failed batches, or None."""
        read, lookahead = self._gpumix_replay
        twin = _reader_only(read, batch_size=self.max_batch_size, num_threads=1, device_id=None)
        bad = []
        try:
            twin.build()
            # The failure is in one of the batches DALI was preparing: the next one or those prefetched.
            for i in range(self._gpumix_runs + lookahead):
                encoded, _ = twin.run()
                if i < self._gpumix_runs:
                    continue
                for k in range(len(encoded)):
                    why = why_undecodable(np.array(encoded[k]).tobytes())
                    if why is not None:
                        bad.append(f"{encoded[k].source_info() or self._gpumix_describe(i, k)} ({why})")
        except RuntimeError as replay_error:
            # The reader itself failed (a missing or empty file, which DALI cannot map): DALI names the file.
            return DatasetFileError(f"DALI could not read a file of the dataset: "
                                    f"{_unreadable(_dali_reason(replay_error))}. {_ADVICE}")
        if not bad:
            return None
        return DatasetFileError(f"DALI could not decode {'; '.join(dict.fromkeys(bad))}. {_ADVICE}")


class ExplainingSourcePipeline(ExplainingPipeline, SourcePipeline):
    """An ExplainingPipeline fed by a ``sharding.ShardedSource``: ``reader_meta=source.meta()`` makes it answer
    ``reader_meta`` for the source (``SourcePipeline``); the other keywords as ``ExplainingPipeline``'s."""
