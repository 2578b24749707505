"""Runtime settings of the library, without the command line.

:data:`state` holds the per-invocation settings (quiet, verbose, debug, the running tool) read by
:mod:`galtools.progress` and the error handler; the click layer (:mod:`galtools.options`) sets
them from -q/-v/--debug, and a notebook may set them directly (``galtools.settings.state.quiet =
True``).  :class:`Shard` names the part of a job an array task does.
"""

import numbers
import os
import re
from dataclasses import dataclass, field


@dataclass
class State:
    """Per-invocation settings: quiet (no bars or chatter), verbose level, debug, tool name."""

    quiet: bool = False
    verbose: int = 0
    debug: bool = field(default_factory=lambda: bool(os.environ.get("GALPREP_DEBUG")))
    tool: str = ""


state = State()


def default_jobs():
    """The number of worker processes when none is asked for: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def n_jobs(value):
    """The number of worker processes for a ``jobs`` value (None or 0 = all cores)."""
    return value or default_jobs()


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if not all(isinstance(v, numbers.Integral) for v in (self.index, self.count)):
            raise TypeError(
                f"shard index and count must be integers, got {self.index!r}, {self.count!r}"
            )
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= index < count")

    def __str__(self):
        return f"{self.index}/{self.count}"

    def bounds(self, n):
        """[start, stop) of this shard's contiguous part of n items."""
        start = n * self.index // self.count
        stop = n * (self.index + 1) // self.count
        return start, stop

    def select(self, items):
        """This shard's contiguous part of a sequence."""
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def output_path(self, path):
        """``out.h5`` → ``out.shard003-of-008.h5`` when sharded, else unchanged."""
        if self.count == 1 or path == "-":
            return path
        root, ext = os.path.splitext(path)
        return f"{root}.shard{self.index:03d}-of-{self.count:03d}{ext}"


def parse_shard(text):
    """'K/N' (0-based K) → Shard; raise ValueError when malformed."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"shard must look like K/N, got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard {text!r}: need 0 <= K < N")
    return Shard(k, n)


def shard_from_env(env=None):
    """The shard given by SLURM array variables, or None; ValueError when they do not make one."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        lo = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        if "SLURM_ARRAY_TASK_COUNT" in env:
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            count = int(env.get("SLURM_ARRAY_TASK_MAX", task)) - lo + 1
        return Shard(task - lo, count)
    except ValueError as exc:
        raise ValueError(f"SLURM array variables do not give a shard ({exc})") from None
