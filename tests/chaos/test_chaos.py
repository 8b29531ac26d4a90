"""The chaos suite: a seeded random schedule of faults against a real `ow up` while short
jobs run; afterwards nothing is lost, nothing is done twice, `ow audit` is clean.

The seed is printed; `CHAOS_SEED=<seed>` replays a schedule. `bench/bench_chaos.py` runs
a longer one (1000 jobs, 10 minutes) and prints its table.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.chaos.harness import run_chaos, table

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


async def test_faults_lose_nothing_and_do_nothing_twice(tmp_path):
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 32))
    print(f"chaos seed: {seed} (replay with CHAOS_SEED={seed})")
    run, jobs, figures = await run_chaos(
        tmp_path / "home", seed=seed, jobs=100, duration=60.0, settle_s=150.0,
        env={"OW_LOST_AFTER_S": "15"},
    )
    print(table(run, jobs, figures, 60.0))
    assert len(jobs) == 100
