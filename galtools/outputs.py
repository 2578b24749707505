"""Several output files that appear together, or not at all."""

from galtools.atomic import AtomicPath, check_output, disk_full_error, is_disk_full


class Outputs:
    """Temporary paths for a command's outputs, committed together at the end.

    ``add(path)`` checks the output (exists? an input?) and returns a temporary path to write;
    leaving the ``with`` block normally renames every file into place, an exception removes
    them all.
    """

    def __init__(self, overwrite=False, inputs=()):
        self.overwrite = overwrite
        self.inputs = list(inputs)
        self._atomic = []

    def check(self, *paths):
        """Fail early (before any work) when an output cannot be written."""
        for path in paths:
            if path is not None:
                check_output(path, self.overwrite, self.inputs)

    def add(self, path, suffix=None):
        atomic = AtomicPath(path, self.overwrite, self.inputs, suffix)
        self._atomic.append(atomic)
        return atomic.tmp

    def commit(self):
        pending = list(self._atomic)
        try:
            while pending:
                pending[0].commit()
                pending.pop(0)
        finally:
            for atomic in pending:
                atomic.abort()
            self._atomic = []

    def abort(self):
        for atomic in self._atomic:
            atomic.abort()
        self._atomic = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
            return False
        paths = [a.path for a in self._atomic]
        self.abort()
        if paths and is_disk_full(exc):
            raise disk_full_error(paths[-1]) from exc
        return False
