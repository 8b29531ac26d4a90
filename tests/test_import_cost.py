"""`import ow` stays light: heavy or optional libraries load only where they are used.

nats loads on the first connect, not at import, and then without the aiohttp it pulls in
for its websocket transport (~165 ms; tests/integration/test_bus_websocket.py): every CLI
call and script pays the import. `import ow` loads its names on first use, so the time is
printed for `from ow import OpenWeights` (what a script does), not asserted (targets live in
bench/bench_import.py). What a served `ow ls` loads: tests/integration/test_read_service_cli.py.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys

import pytest

HEAVY = {"duckdb", "boto3", "botocore", "runpod", "torch", "vllm", "transformers", "rich",
         "typer", "nats", "aiohttp"}
MODULES = [m for m in ("ow", "ow.core", "ow.sdk", "ow.cli") if importlib.util.find_spec(m)]


def loaded_after_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


@pytest.mark.parametrize("module", MODULES)
def test_import_loads_no_heavy_library(module):
    assert loaded_after_import(module) & HEAVY == set()


def test_import_time_is_printed():
    code = ("import time; t = time.perf_counter(); from ow import OpenWeights; "
            "print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) * 1000 for _ in range(3)]
    print(f"\nfrom ow import OpenWeights: median {statistics.median(times):.0f} ms of "
          f"{len(times)} (target 150 ms)")
    assert all(t > 0 for t in times)
