"""GPU paths (unsloth training, 4-bit QLoRA, vLLM inference) on the tiny model; skipped on CPU."""

import importlib.util

import pytest

from payloads._reporter import LocalReporter
from payloads.infer import run_inference
from payloads.params import InferenceParams, TrainingParams
from payloads.train import run_training
from tests.payloads import data


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _cuda(), reason="needs a GPU"),
]


@pytest.mark.parametrize("load_in_4bit", [False, True])
def test_unsloth_sft(tiny_model, tmp_path, load_in_4bit):
    if importlib.util.find_spec("unsloth") is None:
        pytest.skip("unsloth is not installed")
    train = data.conversations(tmp_path / "train.jsonl", n=8)
    out = run_training(
        TrainingParams(model=str(tiny_model), training_file=str(train), max_steps=2, r=8,
                       load_in_4bit=load_in_4bit, per_device_train_batch_size=4,
                       gradient_accumulation_steps=1, warmup_steps=0, save_steps=0,
                       max_seq_length=64),
        LocalReporter(tmp_path / "out"), tmp_path / "work",
    )
    assert out["adapter_file"]


def test_vllm_inference(tiny_model, tmp_path):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed")
    prompts = data.prompts(tmp_path / "prompts.jsonl")
    out = run_inference(
        InferenceParams(model=str(tiny_model), input_file_id=str(prompts), max_tokens=4),
        LocalReporter(tmp_path / "out"), tmp_path / "work",
    )
    assert out["file"]
