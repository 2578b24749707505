"""The built-in ``run`` extractor: ``--features run:PATH`` = penultimate layer of a galtools run.

Domain features (e.g. of a classifier trained on real galaxies), fast on CPU.  The run gets the
images as stored (protocol ``raw``), or resized if the protocol says so.  It takes
``batch_size`` (``--features-batch-size``) but no ``device``: Keras runs it where its backend
puts it (a GPU when the backend sees one).
"""

import hashlib
import os

import numpy as np

from galtools.errors import GalError


class RunExtractor:
    name = "run"
    input = "raw"
    default_protocol = "raw"
    dim = None  # the length of the run's "features" layer: known from the features

    def __init__(self, path, batch_size=None):
        if not path:
            raise GalError("the run extractor needs a run directory: --features run:PATH")
        from galtools.runs import load_run

        self.path = path
        self.batch_size = int(batch_size or 256)
        self.run = load_run(path)

    def features(self, images):
        out = np.asarray(self.run.features(images, batch_size=self.batch_size), np.float32)
        if out.ndim != 2 or len(out) != len(images):
            raise GalError(
                f"{self.path}: run features have shape {out.shape}, expected ({len(images)}, D)"
            )
        return out

    def describe(self):
        """Name, run path, and a digest of the run's files (the cache key)."""
        digest = hashlib.sha256()
        if os.path.isdir(self.path):
            for name in sorted(os.listdir(self.path)):
                full = os.path.join(self.path, name)
                if os.path.isfile(full):
                    digest.update(name.encode())
                    with open(full, "rb") as fh:
                        for block in iter(lambda fh=fh: fh.read(2**20), b""):
                            digest.update(block)
        what = self.run.describe() if hasattr(self.run, "describe") else "run"
        return {
            "name": "run",
            "run": os.path.abspath(self.path),
            "model": str(what),
            "run_sha256": digest.hexdigest(),
        }


def run_extractor(arg, batch_size=None):
    """``galtools.features`` entry ``run``."""
    return RunExtractor(arg, batch_size=batch_size)
