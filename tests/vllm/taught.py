"""A tiny model taught a few answers, so greedy completions are known in advance.

`payloads.tiny` builds a random model, whose outputs say nothing about whether a prefix was
continued. Here it is trained (plain torch, a few seconds) on three ChatML conversations
until it answers them word for word; then a greedy completion is predictable on any backend
(vLLM runs it in bfloat16: the margins are wide enough), and a prefix such as "red is" must be
continued with " one color thank you" rather than the answer starting over.
"""

from __future__ import annotations

from pathlib import Path

import pytest

COLORS = ["red", "blue", "green"]


def question(color: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"what is {color}"}]


def answer(color: str) -> str:
    return f"{color} is one color thank you"


def adapter_answer(color: str) -> str:
    """What the LoRA adapter of `taught_adapter` answers instead."""
    return f"{color} is not blue" if color != "blue" else "blue is blue"


def teach(path: Path, steps: int = 300) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from payloads.tiny import build_tiny_model

    build_tiny_model(path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    _train(model, tok, answer, steps)
    model.save_pretrained(path)
    return path


def teach_adapter(base: Path, path: Path, steps: int = 200) -> Path:
    """A LoRA adapter on `base` (rank 8, attention and MLP) that answers `adapter_answer`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM", target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, config)
    _train(model, tok, adapter_answer, steps)
    model.save_pretrained(path)
    return path


def _train(model, tok, answers, steps: int) -> None:
    import torch

    texts = [
        tok.apply_chat_template(
            [*question(c), {"role": "assistant", "content": answers(c)}], tokenize=False
        )
        for c in COLORS
    ]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="session")
def taught_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach(tmp_path_factory.mktemp("taught-model"))


@pytest.fixture(scope="session")
def taught_adapter(taught_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach_adapter(taught_model, tmp_path_factory.mktemp("taught-adapter"))


def quantize_bnb(base: Path, path: Path) -> Path:
    """`base` saved 4-bit by bitsandbytes, as the hub's `...-bnb-4bit` checkpoints are."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(base, quantization_config=config,
                                                 device_map="cpu")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(base).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def taught_bnb(taught_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("bitsandbytes")
    return quantize_bnb(taught_model, tmp_path_factory.mktemp("taught-bnb"))
