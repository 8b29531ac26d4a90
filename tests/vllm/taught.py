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


def teach(path: Path, steps: int = 300) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from payloads.tiny import build_tiny_model

    build_tiny_model(path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    texts = [
        tok.apply_chat_template(
            [*question(c), {"role": "assistant", "content": answer(c)}], tokenize=False
        )
        for c in COLORS
    ]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def taught_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teach(tmp_path_factory.mktemp("taught-model"))
