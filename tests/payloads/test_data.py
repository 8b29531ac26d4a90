"""Conversation encoding: which tokens are trained, with which weight and tag."""

import pytest

from payloads._data import encode_conversation, read_jsonl

MESSAGES = [
    {"role": "user", "content": [{"type": "text", "text": "hello cats", "weight": 0}]},
    {"role": "assistant", "content": [
        {"type": "text", "text": "no dogs", "weight": -1, "tag": "min"},
        {"type": "text", "text": " yes cats", "weight": 1, "tag": "max"},
    ]},
]


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _pieces(tok, enc):
    rows = zip(enc.input_ids, enc.weights, enc.tags, strict=True)
    return [(tok.decode([i]), w, t) for i, w, t in rows]


def test_full_sft_trains_every_token(tok):
    enc = encode_conversation(tok, MESSAGES, mode="sft")
    assert set(enc.weights) == {1.0}
    assert -100 not in enc.labels


def test_responses_only_trains_the_assistant_turn_and_its_end(tok):
    enc = encode_conversation(tok, MESSAGES, mode="sft", train_on_responses_only=True)
    trained = "".join(p for p, w, _ in _pieces(tok, enc) if w)
    assert trained == "no dogs yes cats<|im_end|>"


def test_weighted_mode_keeps_block_weights_and_tags(tok):
    enc = encode_conversation(tok, MESSAGES, mode="weighted")
    pieces = _pieces(tok, enc)
    assert {(p, w, t) for p, w, t in pieces if t == "min"} == {("no", -1.0, "min"),
                                                                (" dogs", -1.0, "min")}
    assert [p for p, w, _ in pieces if w > 0] == [" yes", " cats", "<|im_end|>"]
    assert all(w == 0 for p, w, _ in pieces if p in ("hello", " cats") and _ is None)


def test_truncation_and_bad_json(tok, tmp_path):
    enc = encode_conversation(tok, MESSAGES, max_len=5)
    assert len(enc.input_ids) == len(enc.weights) == len(enc.tags) == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_jsonl(bad)
