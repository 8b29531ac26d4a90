"""Log-prob evaluation payload: per-row and per-tag mean log-probs, plain and tagged files."""

import json
import math
from pathlib import Path

import pytest

from payloads._reporter import LocalReporter
from payloads.logprobs import run_logprobs
from payloads.params import LogprobParams
from tests.payloads import data

pytestmark = pytest.mark.slow


def test_logprobs_per_row_and_per_tag(tiny_model, tmp_path):
    reporter = LocalReporter(tmp_path / "r")
    src = data.weighted(tmp_path / "w.jsonl", n=3)
    out = run_logprobs(
        LogprobParams(model=str(tiny_model), input_file_id=str(src)), reporter, tmp_path / "w"
    )
    rows = [json.loads(x) for x in Path(out["file"]).read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert set(row["logp_by_tag"]) == {"all", "minimize", "maximize"}
        assert all(v < 0 and math.isfinite(v) for v in row["logp_by_tag"].values())
    tags = {r["tag"]: r for r in reporter.logs if "tag" in r}
    assert set(tags) == {"all", "minimize", "maximize"}
    assert tags["all"]["tokens"] == tags["minimize"]["tokens"] + tags["maximize"]["tokens"]
    assert reporter.logs[-1] == {"file": out["file"], "logp": tags["all"]["logp"]}


def test_plain_conversations_measure_the_assistant_turns(tiny_model, tmp_path):
    reporter = LocalReporter(tmp_path / "r")
    src = data.conversations(tmp_path / "c.jsonl", n=2)
    out = run_logprobs(
        LogprobParams(model=str(tiny_model), input_file_id=str(src)), reporter, tmp_path / "w"
    )
    rows = [json.loads(x) for x in Path(out["file"]).read_text().splitlines()]
    assert [set(r["logp_by_tag"]) for r in rows] == [{"all"}, {"all"}]
    assert out["logp"] < 0
