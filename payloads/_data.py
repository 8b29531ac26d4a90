"""Datasets: JSONL reading and turning a conversation into token ids with per-token weights.

A conversation renders through the tokenizer's chat template once; each message's text (a
string, or the concatenation of its content blocks) is located in the rendering, and every
token takes the weight of the block its first character falls in. The end-of-turn tokens
after a message (`<|im_end|>`…) take the weight of its last block, so every trained
assistant turn also learns to stop. With `train_on_responses_only`, as in openweights, an
assistant turn is trained only if the template renders what precedes it the same when the
conversation ends with it: on Qwen3-style templates that is the final turn only. One
function serves plain SFT (`train_on_responses_only`), token-weighted SFT
(block weights, negative ones too) and log-prob tracking (block tags).

Imports: stdlib only (the tokenizer is passed in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Encoded",
    "encode_conversation",
    "flat_messages",
    "read_jsonl",
    "to_preference_row",
]


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (blank lines skipped); a bad line names its file and number."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
    return rows


def blocks_of(content: Any) -> list[dict[str, Any]]:
    """A message's content as blocks `{"text", "weight"?, "tag"?}` (a string is one block)."""
    if isinstance(content, str):
        return [{"text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict) and b.get("type", "text") == "text"]
    raise ValueError(f"message content must be a string or a list of blocks, got {content!r}")


def text_of(content: Any) -> str:
    return "".join(b.get("text", "") for b in blocks_of(content))


def flat_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages with block content joined into plain strings (what chat templates expect)."""
    return [{"role": m["role"], "content": text_of(m["content"])} for m in messages]


def to_preference_row(row: dict[str, Any]) -> dict[str, Any]:
    """A preference row with every message's content flattened (trl's conversational format)."""
    return {k: flat_messages(row[k]) for k in ("prompt", "chosen", "rejected")}


@dataclass
class Encoded:
    """Token ids of one conversation with a weight and an optional tag per token."""

    input_ids: list[int]
    weights: list[float]
    tags: list[str | None] = field(default_factory=list)

    def truncate(self, max_len: int | None) -> Encoded:
        if max_len is None or len(self.input_ids) <= max_len:
            return self
        return Encoded(self.input_ids[:max_len], self.weights[:max_len], self.tags[:max_len])

    @property
    def labels(self) -> list[int]:
        """Causal-LM labels: the token where its weight is positive, else -100 (ignored)."""
        return [t if w > 0 else -100 for t, w in zip(self.input_ids, self.weights, strict=True)]


@dataclass
class _Span:
    start: int
    end: int
    weight: float
    tag: str | None


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def _block_weight(block: dict[str, Any], role: str, mode: str, responses_only: bool,
                  stable: bool) -> float:
    if mode == "weighted" and "weight" in block:
        return float(block["weight"])
    if mode == "sft" and not responses_only:
        return 1.0
    return 1.0 if role == "assistant" and stable else 0.0


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _turn(tokenizer: Any, flat: list[dict[str, str]], i: int, full: str, start: int
          ) -> tuple[int, bool]:
    """Where message i's turn ends in `full` (its content, then the template's end-of-turn
    text: what follows the content both here and when the conversation stops after it), and
    whether the text before it renders the same when the conversation stops after it.

    That second answer is openweights' rule for `train_on_responses_only`: an assistant turn
    whose prefix changes (Qwen3's templates rewrite earlier turns and add a `<think>`
    scaffold to the last) is not trained, so on such templates only the final turn is."""
    text = flat[i]["content"]
    end = start + len(text)
    alone = _render(tokenizer, flat[: i + 1])
    at = alone.rfind(text) if text else -1
    if at < 0:
        return end, False
    stable = alone[:at] == full[:start]
    tail = alone[at + len(text):]
    ending = tail[: _common_prefix(tail, full[end:])].rstrip()
    return end + len(ending), stable


def _spans(
    tokenizer: Any, messages: list[dict[str, Any]], full: str, mode: str, responses_only: bool
) -> list[_Span]:
    """Character spans of every content block in the rendered conversation."""
    flat = flat_messages(messages)
    spans: list[_Span] = []
    cursor = 0
    for i, msg in enumerate(messages):
        text = flat[i]["content"]
        start = full.find(text, cursor) if text else cursor
        if start < 0:
            raise ValueError(
                f"message {i} ({msg['role']}) does not appear verbatim in the chat template's "
                "rendering; this template rewrites content and cannot be used for weighted training"
            )
        turn_end, stable = _turn(tokenizer, flat, i, full, start)
        offset = start
        blocks = blocks_of(msg["content"])
        for j, block in enumerate(blocks):
            end = offset + len(block.get("text", ""))
            if j == len(blocks) - 1:
                end = max(end, turn_end)
            weight = _block_weight(block, msg["role"], mode, responses_only, stable)
            spans.append(_Span(offset, end, weight, block.get("tag")))
            offset = offset + len(block.get("text", ""))
        cursor = start + len(text)
    return spans


def encode_conversation(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    mode: str = "sft",
    train_on_responses_only: bool = False,
    max_len: int | None = None,
) -> Encoded:
    """Tokenize one conversation with per-token weights.

    mode "sft": weight 1 on every token, or with `train_on_responses_only` on assistant turns
    only. mode "weighted": each block's own `weight` (default 1 in assistant turns, 0 elsewhere).
    Template tokens outside any message (role headers) get weight 0 except in plain full SFT.
    """
    full = _render(tokenizer, flat_messages(messages))
    spans = _spans(tokenizer, messages, full, mode, train_on_responses_only)
    default = 1.0 if (mode == "sft" and not train_on_responses_only) else 0.0
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    weights: list[float] = []
    tags: list[str | None] = []
    k = 0
    for s, _e in enc["offset_mapping"]:
        while k < len(spans) and spans[k].end <= s:
            k += 1
        inside = k < len(spans) and spans[k].start <= s < spans[k].end
        weights.append(spans[k].weight if inside else default)
        tags.append(spans[k].tag if inside else None)
    return Encoded(list(enc["input_ids"]), weights, tags).truncate(max_len)
