"""A tiny random chat model built locally in seconds, for tests and the CPU demo.

No hub access: the tokenizer is a byte-level BPE trained here on a small made-up corpus, the
model is a randomly initialised Qwen2 (hidden 128, 2 heads of size 64 — the head size vLLM's
CPU backend needs — 2 layers), and the chat template is ChatML. `build_tiny_model(path)`
writes a directory that `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer` load.

Imports: stdlib, plus tokenizers, transformers and torch inside the builder.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "build_tiny_model", "corpus"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set text = message['content'] %}"
    "{% else %}{% set text = message['content'] | map(attribute='text') | join('') %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + text + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_TEXT = (
    "the a model learns to answer questions about cats dogs numbers colors red blue green "
    "one two three four five yes no hello world please thank you what is why how when where "
    "train loss weight token step adapter lora inference server chat user assistant system "
    "response prefix continue open weights fine tune evaluate job run event file"
)
_WORDS = _TEXT.split()


def corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """Made-up sentences covering the words the tests' datasets use."""
    rng = random.Random(seed)
    lines = [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))) for _ in range(n_lines)
    ]
    lines += [" ".join(_WORDS), "0 1 2 3 4 5 6 7 8 9 + - = ? ! . , : ; ' \" < > { } [ ]"]
    return lines


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def build_tiny_model(
    path: str | Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    vocab_size: int = 512,
    seed: int = 0,
) -> Path:
    """Write a random tiny Qwen2 chat model + tokenizer to `path` and return it."""
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(vocab_size),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    (path / "tiny.json").write_text(json.dumps({"built_by": "payloads.tiny", "seed": seed}))
    return path


if __name__ == "__main__":
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))
