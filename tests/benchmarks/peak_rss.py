"""Run galprep ARGS… in this process and print its peak memory: ``PEAK self_kb child_kb code``.

Used by the benchmarks: ``python tests/benchmarks/peak_rss.py resize … -o out.h5``.  Reads
VmHWM, not ru_maxrss: Linux carries the launching process's own peak over the fork+exec that
starts this one.  child_kb is the largest worker process (RUSAGE_CHILDREN).
"""

import resource
import sys

from galtools.cli import main

if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
    with open("/proc/self/status") as fh:
        self_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("PEAK", self_kb, child_kb, code)
