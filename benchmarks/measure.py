"""Run a script as __main__ and print its peak resident memory on exit: `python benchmarks/measure.py train.py ...`.

The last stderr line is `PEAK_RSS_KB=<kilobytes>` (the main process; DataLoader workers share most pages).
"""

import atexit
import os
import resource
import runpy
import sys


def _report() -> None:
    print(f"PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    script, sys.argv = sys.argv[1], sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python script.py` would
    atexit.register(_report)
    runpy.run_path(script, run_name="__main__")
