"""Chat generation with transformers (CPU path of inference, serving and sampling callbacks).

A conversation that ends with an assistant message is a prefix: the prompt is the rest of the
conversation with the generation prompt, followed by that message's text, and the completion
continues it. Prompts are batched with left padding.

Imports: stdlib; torch inside functions (the model and tokenizer are passed in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from payloads._data import flat_messages

__all__ = ["Sampling", "generate", "render_prompt"]


@dataclass
class Sampling:
    max_tokens: int = 600
    temperature: float = 1.0
    top_p: float = 1.0
    min_tokens: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The text the model continues: generation prompt, or the open assistant prefix."""
    flat = flat_messages(messages)
    if flat and flat[-1]["role"] == "assistant":
        head = tokenizer.apply_chat_template(
            flat[:-1], tokenize=False, add_generation_prompt=True
        )
        return head + flat[-1]["content"]
    return tokenizer.apply_chat_template(flat, tokenize=False, add_generation_prompt=True)


def _trim(text: str, stop: list[str]) -> tuple[str, str]:
    """Cut at the first stop string: (text, finish_reason)."""
    cuts = [text.find(s) for s in stop if s and s in text]
    if cuts:
        return text[: min(cuts)], "stop"
    return text, ""


def generate(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, Any]]],
    sampling: Sampling,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """One completion per conversation: `{"completion", "finish_reason", "tokens"}`."""
    import torch

    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[dict[str, Any]] = []
    for i in range(0, len(conversations), batch_size):
        prompts = [render_prompt(tokenizer, c) for c in conversations[i : i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "min_new_tokens": min(sampling.min_tokens, sampling.max_tokens),
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            ids = model.generate(**enc, **kwargs)
        new = ids[:, enc["input_ids"].shape[1] :]
        for row in new.tolist():
            ended = tokenizer.eos_token_id in row
            if ended:
                row = row[: row.index(tokenizer.eos_token_id)]
            tokens = [t for t in row if t != tokenizer.pad_token_id]
            text, reason = _trim(tokenizer.decode(tokens, skip_special_tokens=True), sampling.stop)
            reason = reason or ("stop" if ended else "length")
            out.append({"completion": text, "finish_reason": reason, "tokens": len(tokens)})
    return out
