"""OW_MODEL_ALIASES in the payloads: a hub id loads the tiny local model, and the log says so."""

import json
from pathlib import Path

import pytest

from payloads._models import load_for_inference, resolve
from payloads._reporter import LocalReporter
from payloads.infer import run_inference
from payloads.params import InferenceParams
from tests.payloads import data

pytestmark = pytest.mark.slow

HUB_ID = "unsloth/Qwen3-4B"  # not in any cache here: only the alias makes it loadable


def test_resolve_substitutes_and_says_so(tiny_model, monkeypatch, capsys):
    monkeypatch.setenv("OW_MODEL_ALIASES", f"other/x=/nowhere,{HUB_ID}={tiny_model}")
    assert resolve(HUB_ID).base == str(tiny_model)
    assert resolve("other/y").base == "other/y"
    out = capsys.readouterr().out
    assert f"model {HUB_ID} → {tiny_model} (OW_MODEL_ALIASES)" in out
    assert "other/y" not in out


def test_without_the_alias_the_hub_id_is_not_found(tiny_model, monkeypatch, tmp_path):
    monkeypatch.delenv("OW_MODEL_ALIASES", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="cached files"):
        load_for_inference(HUB_ID)


def test_an_inference_job_on_a_hub_id_runs_on_the_aliased_model(tiny_model, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.setenv("OW_MODEL_ALIASES", f"{HUB_ID}={tiny_model}")
    prompts = data.prompts(tmp_path / "prompts.jsonl")
    p = InferenceParams(model=HUB_ID, input_file_id=str(prompts), max_tokens=3,
                        temperature=0, min_tokens=3)
    out = run_inference(p, LocalReporter(tmp_path / "out"), tmp_path / "work")
    rows = [json.loads(line) for line in Path(out["file"]).read_text().splitlines()]
    assert len(rows) == len(Path(prompts).read_text().splitlines())
    assert all(r["completion"] for r in rows)
    assert f"model {HUB_ID} → {tiny_model}" in capsys.readouterr().out
