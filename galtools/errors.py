"""Errors a user can act on: printed as one line, no traceback."""


class GalError(Exception):
    """A problem with the user's input or environment (exit code 1)."""

    exit_code = 1


class InputError(GalError):
    """A problem with one input file; the message names the file."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class PluginError(GalError):
    """A plugin that could not be loaded."""
