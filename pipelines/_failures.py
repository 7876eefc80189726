"""Name the file behind a decoding failure that DALI reports without one.

DALI names the sample for some corrupt JPEGs ("Failed to decode sample #11 :
path") but not for others ("nvImageCodec failure: '#3'"), and either way the
pipeline is dead afterwards. ``ExplainingPipeline.run`` catches the failure,
replays the reader alone (no decoding) up to the failed batches, decodes their
encoded bytes with Pillow to find the culprits, and raises an error that names
them. This costs nothing until a run fails.
"""
import numpy as np
from nvidia.dali import Pipeline, pipeline_def

from gpumix._imagecheck import why_undecodable

__all__ = ["ExplainingPipeline", "make_explaining"]


@pipeline_def
def _reader_only(read):
    return read()


class ExplainingPipeline(Pipeline):
    """A DALI Pipeline whose ``run`` names the files behind a decoding failure."""

    def run(self, *args, **kwargs):
        try:
            outputs = super().run(*args, **kwargs)
        except RuntimeError as error:
            explained = self._explain(error)
            if explained is None:
                raise
            raise explained from error
        self._gpumix_runs += 1
        return outputs

    def _explain(self, error):
        """A RuntimeError naming the undecodable samples of the failed batches, or None."""
        read, lookahead = self._gpumix_replay
        twin = _reader_only(read, batch_size=self.max_batch_size, num_threads=1, device_id=None)
        twin.build()
        bad = []
        # The failure is in one of the batches DALI was preparing: the next one or those prefetched.
        for i in range(self._gpumix_runs + lookahead):
            encoded, _ = twin.run()
            if i < self._gpumix_runs:
                continue
            for k in range(len(encoded)):
                why = why_undecodable(np.array(encoded[k]).tobytes())
                if why is not None:
                    bad.append(f"{encoded[k].source_info()} ({why})")
        if not bad:
            return None
        return RuntimeError(f"DALI could not decode {'; '.join(dict.fromkeys(bad))}. The pipeline is no longer "
                            "valid: rebuild it, and clean the dataset first with gpumix-scan.")


def make_explaining(pipe, read, lookahead):
    """Turn a freshly created Pipeline into an ExplainingPipeline.

    ``read()`` builds the same reader (encoded images, labels) in a new graph;
    ``lookahead`` is how many batches DALI may be preparing at a failure.
    """
    pipe.__class__ = ExplainingPipeline
    pipe._gpumix_runs = 0
    pipe._gpumix_replay = (read, lookahead)
    return pipe
