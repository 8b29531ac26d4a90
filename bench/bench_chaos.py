"""Chaos, longer: a seeded schedule of faults against a real `ow up` while many short jobs run.

    .venv/bin/python bench/bench_chaos.py [--jobs 1000] [--minutes 10] [--seed N]

Prints the table: faults injected by kind, jobs by outcome, duplicate and lost events,
generations with two results, and the time from each fault to the next finished run
(p50/p99). The same harness runs a short schedule in `make test` (tests/chaos/).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.harness import run_chaos, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"chaos seed: {seed}")
    duration = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="ow-chaos-") as home:
        started = time.monotonic()
        try:
            run, jobs, figures = anyio.run(lambda: run_chaos(
                Path(home), seed=seed, jobs=args.jobs, duration=duration, settle_s=600.0,
                env={"OW_LOST_AFTER_S": "15"},
            ))
        except BaseException:
            _print_logs(Path(home) / "logs")  # the home goes with the temporary directory
            raise
        print(table(run, jobs, figures, time.monotonic() - started))


def _print_logs(logs: Path, lines: int = 40) -> None:
    """The end of each `ow up` child's log, to see why a run failed."""
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log.name} (last {len(tail)} lines)", *tail, sep="\n", file=sys.stderr)


if __name__ == "__main__":
    main()
