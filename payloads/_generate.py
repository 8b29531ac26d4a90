"""Chat generation with transformers (CPU path of inference, serving and sampling callbacks).

A conversation that ends with an assistant message is a prefix: the prompt is the rest of the
conversation with the generation prompt, followed by that message's text, and the completion
continues it. Prompts are batched with left padding.

Imports: stdlib; torch inside functions (the model and tokenizer are passed in).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from payloads._data import flat_messages

__all__ = ["Sampling", "generate", "generation_kwargs", "render_prompt", "stream", "top_logprobs"]


@dataclass
class Sampling:
    max_tokens: int = 600
    temperature: float = 1.0
    top_p: float = 1.0
    min_tokens: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    prefill: str = ""  # the answer starts with this (not part of the completion)
    logprobs: int | None = None  # top-k log-probs of every generated token


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], prefill: str = "") -> str:
    """The text the model continues: the generation prompt and `prefill`, or the open
    assistant prefix (which takes the place of `prefill`, as in openweights)."""
    flat = flat_messages(messages)
    if flat and flat[-1]["role"] == "assistant":
        head = tokenizer.apply_chat_template(
            flat[:-1], tokenize=False, add_generation_prompt=True
        )
        return head + flat[-1]["content"]
    head = tokenizer.apply_chat_template(flat, tokenize=False, add_generation_prompt=True)
    return head + prefill


def top_logprobs(tokenizer: Any, logits: Any, chosen: int, k: int) -> list[dict[str, Any]]:
    """One position's top-k log-probs (and the chosen token's, if outside them), ranked:
    `{"logprob_key", "decoded_token", "logprob", "rank"}` as openweights writes them."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    ids = torch.topk(logp, k).indices.tolist() if k else []
    if chosen not in ids:
        ids.append(chosen)
    return [
        {"logprob_key": t, "decoded_token": tokenizer.decode([t]),
         "logprob": float(logp[t]), "rank": int((logp > logp[t]).sum()) + 1}
        for t in ids
    ]


def _trim(text: str, stop: list[str]) -> tuple[str, str]:
    """Cut at the first stop string: (text, finish_reason)."""
    cuts = [text.find(s) for s in stop if s and s in text]
    if cuts:
        return text[: min(cuts)], "stop"
    return text, ""


def generation_kwargs(tokenizer: Any, sampling: Sampling) -> dict[str, Any]:
    """`model.generate` arguments for these sampling settings."""
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
    return kwargs


def stream(model: Any, tokenizer: Any, conversation: list[dict[str, Any]],
           sampling: Sampling) -> Iterator[tuple[str, dict[str, Any]]]:
    """One completion as it is generated: `(text piece, {})` per decoded piece, then
    `("", {"finish_reason", "tokens", "prompt_tokens"})`. Stop strings end it early."""
    import threading

    import torch
    from transformers import TextIteratorStreamer

    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    device = next(model.parameters()).device
    prompt = render_prompt(tokenizer, conversation, sampling.prefill)
    enc = tokenizer([prompt], return_tensors="pt", add_special_tokens=False).to(device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    done: dict[str, Any] = {}

    def run() -> None:
        with torch.no_grad():
            done["ids"] = model.generate(**enc, streamer=streamer,
                                         **generation_kwargs(tokenizer, sampling))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    text, sent, reason = "", 0, ""
    for piece in streamer:
        text += piece
        cut, reason = _trim(text, sampling.stop)
        # hold back what could be the start of a stop string
        hold = max((len(s) - 1 for s in sampling.stop if s), default=0) if not reason else 0
        upto = len(cut) if reason else max(sent, len(cut) - hold)
        if upto > sent:
            yield cut[sent:upto], {}
            sent = upto
        if reason:
            break
    if reason:  # stopped early: let generation finish (it cannot be interrupted midway)
        for _ in streamer:
            pass
    worker.join()
    if not reason and sent < len(text):
        yield text[sent:], {}
    new = done["ids"][0, enc["input_ids"].shape[1]:].tolist()
    ended = tokenizer.eos_token_id in new
    tokens = new[: new.index(tokenizer.eos_token_id)] if ended else new
    yield "", {"finish_reason": reason or ("stop" if ended else "length"),
               "tokens": len(tokens), "prompt_tokens": int(enc["input_ids"].shape[1])}


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
        prompts = [render_prompt(tokenizer, c, sampling.prefill)
                   for c in conversations[i : i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        kwargs = generation_kwargs(tokenizer, sampling)
        if sampling.logprobs is not None:
            kwargs.update(return_dict_in_generate=True, output_logits=True)
        with torch.no_grad():
            result = model.generate(**enc, **kwargs)
        ids = result.sequences if sampling.logprobs is not None else result
        new = ids[:, enc["input_ids"].shape[1] :]
        for b, row in enumerate(new.tolist()):
            ended = tokenizer.eos_token_id in row
            if ended:
                row = row[: row.index(tokenizer.eos_token_id)]
            tokens = [t for t in row if t != tokenizer.pad_token_id]
            text, reason = _trim(tokenizer.decode(tokens, skip_special_tokens=True), sampling.stop)
            reason = reason or ("stop" if ended else "length")
            item: dict[str, Any] = {"completion": text, "finish_reason": reason,
                                    "tokens": len(tokens), "token_ids": tokens,
                                    "prompt_tokens": int(enc["attention_mask"][b].sum())}
            if sampling.logprobs is not None:
                item["logprobs"] = [
                    top_logprobs(tokenizer, result.logits[pos][b], tok, sampling.logprobs)
                    for pos, tok in enumerate(row) if tok != tokenizer.pad_token_id
                ]
            out.append(item)
    return out
