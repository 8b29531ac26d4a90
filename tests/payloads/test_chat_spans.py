"""openweights' `test_chat_template_spans` cases, written anew for ow's `encode_conversation`:
which tokens of a multi-turn conversation are trained on a Qwen3-style template (which adds
a `<think>` scaffold to the final assistant turn only) and on a plain ChatML one.

The tokenizer is a character-level stand-in (one token per character) with both templates,
so a trained span reads back as text."""

import pytest

from payloads._data import encode_conversation

EOS = "§"


class CharTokenizer:
    """One token per character; renders ChatML, with Qwen3's think scaffold in "qwen3"."""

    def __init__(self, mode: str):
        self.mode = mode
        self.eos_token, self.eos_token_id = EOS, ord(EOS)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        out = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                out.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
                continue
            head = "<|im_start|>assistant\n"
            if self.mode == "qwen3" and i == len(messages) - 1:
                head += "<think>\n\n</think>\n\n"
            out.append(f"{head}{m['content']}<|im_end|>\n")
        if add_generation_prompt:
            out.append("<|im_start|>assistant\n"
                       + ("<think>\n\n</think>\n\n" if self.mode == "qwen3" else ""))
        else:
            out.append(EOS)
        return "".join(out)

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        return {"input_ids": [ord(c) for c in text],
                "offset_mapping": [(i, i + 1) for i in range(len(text))]}


def trained(tokenizer, messages, **kw):
    """The trained text, one string per run of consecutive trained tokens."""
    enc = encode_conversation(tokenizer, messages, **kw)
    runs, current = [], ""
    for token, weight in zip(enc.input_ids, enc.weights, strict=True):
        if weight > 0:
            current += chr(token)
        elif current:
            runs.append(current)
            current = ""
    return [*runs, current] if current else runs


TWO_TURNS = [
    {"role": "user", "content": "user turn 1"},
    {"role": "assistant", "content": "assistant turn 1"},
    {"role": "user", "content": "user turn 2"},
    {"role": "assistant", "content": "assistant turn 2"},
]


def test_qwen3_responses_only_trains_the_final_assistant_turn_only():
    runs = trained(CharTokenizer("qwen3"), TWO_TURNS, train_on_responses_only=True)
    assert runs == [f"assistant turn 2<|im_end|>\n{EOS}"]
    assert not any("<think>" in r for r in runs)


def test_chatml_responses_only_trains_every_assistant_turn_and_its_end_of_turn():
    runs = trained(CharTokenizer("no_cot"), TWO_TURNS, train_on_responses_only=True)
    assert runs == ["assistant turn 1<|im_end|>", f"assistant turn 2<|im_end|>\n{EOS}"]


def _blocks(*pairs):
    return [{"role": role, "content": [{"type": "text", "text": text, "weight": w}]}
            for role, text, w in pairs]


@pytest.mark.parametrize("mode", ["qwen3", "no_cot"])
def test_weighted_block_before_a_user_turn_does_not_take_in_that_turn(mode):
    messages = _blocks(("user", "user 1", 0), ("assistant", "assistant 1", 1),
                       ("user", "user 2", 0))
    runs = trained(CharTokenizer(mode), messages, mode="weighted")
    assert runs == ["assistant 1<|im_end|>"]  # its end of turn, nothing of "user 2"


def test_weighted_final_block_leaves_out_the_think_scaffold():
    messages = _blocks(("user", "user 1", 0), ("assistant", "assistant 1", 1))
    runs = trained(CharTokenizer("qwen3"), messages, mode="weighted")
    assert runs == [f"assistant 1<|im_end|>\n{EOS}"]
