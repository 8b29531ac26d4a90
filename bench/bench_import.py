"""Start-up cost: `from ow import OpenWeights` (every script pays it) and `ow --help`.

Rows: the median and worst of N fresh interpreters, for the import alone (timed inside the
interpreter, so the interpreter's own start is not counted), the same as a whole `python -c`
process, and `ow --help` end to end. The target of `import ow` is 150 ms (issue 14).
Run: `.venv/bin/python bench/bench_import.py` (BENCH_RUNS sets N, default 10).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("BENCH_RUNS", "10"))
#: what a script does; `import ow` alone loads nothing until a name is used (PEP 562)
TIMED_IMPORT = ("import time; t = time.perf_counter(); from ow import OpenWeights; "
                "print(time.perf_counter() - t)")


def _inside() -> list[float]:
    out = [subprocess.run([sys.executable, "-c", TIMED_IMPORT], capture_output=True, text=True,
                          check=True).stdout for _ in range(RUNS)]
    return [float(s) * 1000 for s in out]


def _whole(argv: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    rows = [
        ("from ow import OpenWeights (in)", _inside()),
        ("python -c 'from ow import …'", _whole([sys.executable, "-c",
                                                 "from ow import OpenWeights"])),
        ("python -c 'pass' (baseline)", _whole([sys.executable, "-c", "pass"])),
        ("ow --help", _whole([sys.executable, "-c", "from ow.cli import main; main(['--help'])"])),
    ]
    print(f"start-up cost, {RUNS} fresh interpreters each (ms)")
    print(f"{'what':<30} {'median':>8} {'max':>8}")
    for name, times in rows:
        print(f"{name:<30} {statistics.median(times):>8.0f} {max(times):>8.0f}")


if __name__ == "__main__":
    main()
