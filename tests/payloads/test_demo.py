"""`make demo`, README's first command, as a test: `examples/demo.py` runs end to end on a
fresh home (sandboxed jobs, as a newcomer's machine gives them) and leaves its stack up,
which the test then stops. It broke once unseen: its tiny model sat in the ow home, which a
sandboxed job never sees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the demo trains: pip install -e '.[train]'")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)  # it trains and serves a model: over 60 s on a cold, slow machine
def test_the_demo_runs_end_to_end_and_leaves_its_stack_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    env["TMPDIR"] = str(tmp_path)
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=360)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "result: 14.0" in proc.stdout
        assert re.search(r"adapter: result:file-\w+", proc.stdout)
        assert "deployment canceled on exit" in proc.stdout
        assert re.search(r"OW_HOME=(\S+) ow down", proc.stdout), proc.stdout[-2000:]
    finally:  # the demo's home is under TMPDIR: stopped even when the demo did not finish
        for home in tmp_path.glob("ow-demo-*/up.json"):
            subprocess.run([sys.executable, "-m", "ow.cli", "down"], cwd=ROOT, timeout=120,
                           env={**env, "OW_HOME": str(home.parent)}, capture_output=True)
