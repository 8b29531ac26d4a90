"""Inference payload: completions, prefix continuation, adapters, the output file."""

import json
from pathlib import Path

import pytest

from payloads._generate import render_prompt
from payloads._reporter import LocalReporter
from payloads.infer import run_inference
from payloads.params import InferenceParams, TrainingParams
from payloads.train import run_training
from tests.payloads import data

pytestmark = pytest.mark.slow


def _read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_prefix_is_continued_not_restarted(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = render_prompt(tok, [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "blue is"}])
    assert prompt.endswith("<|im_start|>assistant\nblue is")


def test_inference_writes_completions_and_logs_the_file(tiny_model, tmp_path):
    prompts = data.prompts(tmp_path / "prompts.jsonl")
    rep = LocalReporter(tmp_path / "out")
    p = InferenceParams(model=str(tiny_model), input_file_id=str(prompts), max_tokens=5,
                        temperature=0, min_tokens=5)
    out = run_inference(p, rep, tmp_path / "work")
    assert rep.logs[-1] == out == {"file": out["file"]}
    rows = _read(out["file"])
    assert [r["messages"] for r in rows] == [r["messages"] for r in _read(prompts)]
    assert all(isinstance(r["completion"], str) and r["completion"] for r in rows)
    assert {r["finish_reason"] for r in rows} == {"length"}


def test_inference_with_a_trained_adapter_and_several_samples(tiny_model, tmp_path):
    train = data.conversations(tmp_path / "train.jsonl", n=8)
    trained = run_training(
        TrainingParams(model=str(tiny_model), training_file=str(train), max_steps=1, r=4,
                       per_device_train_batch_size=4, gradient_accumulation_steps=1,
                       warmup_steps=0, save_steps=0, max_seq_length=64),
        LocalReporter(tmp_path / "t"), tmp_path / "tw",
    )
    prompts = data.prompts(tmp_path / "prompts.jsonl")
    for model in (trained["adapter_file"], str(tmp_path / "tw" / "final")):
        p = InferenceParams(model=model, input_file_id=str(prompts), max_tokens=3,
                            temperature=1.0, seed=0, n_completions_per_prompt=2)
        out = run_inference(p, LocalReporter(tmp_path / "i"), tmp_path / "iw")
        assert len(_read(out["file"])) == 4


def test_stop_strings_cut_the_completion():
    from payloads._generate import _trim

    assert _trim("red is blue. more", ["."]) == ("red is blue", "stop")
    assert _trim("red", ["."]) == ("red", "")


@pytest.mark.parametrize(("ranks", "want"), [([], 8), ([4], 8), ([32], 32), ([8, 100], 128),
                                             ([512], 512)])
def test_vllm_lora_rank_fits_the_largest_adapter(tmp_path, ranks, want):
    import json

    from payloads._models import vllm_lora_rank

    dirs = []
    for i, r in enumerate(ranks):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "adapter_config.json").write_text(json.dumps({"r": r}))
        dirs.append(str(tmp_path / str(i)))
    assert vllm_lora_rank(dirs) == want
