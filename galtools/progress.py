"""Progress bars on stderr: shown only on a terminal and without -q."""

import sys

from galtools.settings import state


class _Silent:
    """A do-nothing stand-in for tqdm."""

    def __init__(self, iterable=None, **_):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def enabled():
    return not state.quiet and sys.stderr.isatty()


def progress(iterable=None, total=None, desc=None, unit="img", **kw):
    """A tqdm bar (or a silent stand-in) over ``iterable`` or counting to ``total``."""
    if not enabled():
        return _Silent(iterable)
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        **kw,
    )


def say(message):
    """A line of chatter on stderr (suppressed by -q)."""
    if not state.quiet:
        print(message, file=sys.stderr)


def detail(message, level=1):
    """A line shown only with -v (level 1) or -vv (level 2)."""
    if state.verbose >= level and not state.quiet:
        print(message, file=sys.stderr)
