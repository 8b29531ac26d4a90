"""`import ow` stays light: heavy or optional libraries load only where they are used."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

HEAVY = {"duckdb", "boto3", "botocore", "runpod", "torch", "vllm", "transformers", "rich",
         "typer"}
MODULES = [m for m in ("ow", "ow.core", "ow.sdk") if importlib.util.find_spec(m)]


def loaded_after_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


@pytest.mark.parametrize("module", MODULES)
def test_import_loads_no_heavy_library(module):
    assert loaded_after_import(module) & HEAVY == set()
