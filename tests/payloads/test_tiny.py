"""The tiny model builds quickly and loads offline as a chat model."""

import time

from payloads.tiny import build_tiny_model


def test_tiny_model_builds_and_chats(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.monotonic()
    path = build_tiny_model(tmp_path / "m")
    assert time.monotonic() - start < 10
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.hidden_size // model.config.num_attention_heads == 64
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hello world"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 4 or tok.eos_token_id in out[0].tolist()
