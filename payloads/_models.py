"""Loading models for training, inference and serving, on a GPU (unsloth) or a CPU (transformers).

A model reference is one of: a local directory holding a full model, a local directory holding a
LoRA adapter (its base is read from `adapter_config.json`), the file id of a packed model or
adapter (fetched and unpacked first), or a hub id (loaded from the hub: never done in tests,
which use the tiny local model). A name in `OW_MODEL_ALIASES` (`ow.core.models`) is replaced
by its local model first, and the run's log says so; so is an adapter's base. unsloth and
vLLM are imported only on a GPU; 4-bit (`load_in_4bit`, bitsandbytes NF4) works on a CPU too,
for LoRA training and inference.

Imports: stdlib; torch, transformers, peft (and unsloth on GPU) inside functions.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payloads._reporter import Reporter, unpack

__all__ = [
    "Loaded", "has_gpu", "load_for_inference", "load_for_training", "resolve", "use_vllm",
    "vllm_fits", "vllm_lora_rank", "vllm_quantizes_4bit",
]

log = logging.getLogger(__name__)


def has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


BACKEND_ENV = "PAYLOADS_INFERENCE_BACKEND"


def use_vllm() -> bool:
    """Whether inference and serving run on vLLM rather than transformers.

    `PAYLOADS_INFERENCE_BACKEND`: `auto` (the default: vLLM on a GPU when it is installed),
    `vllm` (always, e.g. a CPU build of vLLM; an error if it is not installed) or
    `transformers` (never). Not an `OW_` name: the agent keeps those out of a job's environment,
    and this one is meant to reach the job from the worker's.
    """
    import importlib.util

    choice = os.environ.get(BACKEND_ENV, "").strip().lower() or "auto"
    installed = importlib.util.find_spec("vllm") is not None
    if choice == "transformers":
        return False
    if choice == "vllm":
        if not installed:
            raise RuntimeError(f"{BACKEND_ENV}=vllm, but vllm is not installed")
        return True
    if choice != "auto":
        raise ValueError(f"{BACKEND_ENV}={choice!r}: expected vllm, transformers or auto")
    return installed and has_gpu()


@dataclass
class Resolved:
    """Where a model reference points: a base model and, for an adapter, the adapter dir."""

    base: str
    adapter: str | None = None


def aliased(ref: str) -> str:
    """`ref`, or the local model OW_MODEL_ALIASES puts in its place (said in the run's log)."""
    from ow.core.models import ALIASES_ENV, substitute

    target = substitute(ref, os.environ)
    if target is None:
        return ref
    print(f"model {ref} → {target} ({ALIASES_ENV})", flush=True)
    return target


def resolve(ref: str, reporter: Reporter | None = None) -> Resolved:
    """Turn a model reference into a base model (path or hub id) and an optional adapter dir."""
    ref = aliased(ref)
    path = Path(ref).expanduser()
    if not path.exists() and ":file-" in ref:
        if reporter is None:
            raise ValueError(f"model {ref!r} is a file id, but there is no ow client to fetch it")
        path = reporter.fetch(ref, Path(tempfile.mkdtemp(prefix="ow-model-")) / "archive")
    if path.is_file():  # a packed model or adapter (tar or zip)
        path = unpack(path, Path(tempfile.mkdtemp(prefix="ow-model-")))
    if path.is_dir():
        path = _single_subdir(path)
        adapter_cfg = path / "adapter_config.json"
        if adapter_cfg.exists():
            base = json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
            return Resolved(base=aliased(base), adapter=str(path))
        return Resolved(base=str(path))
    return Resolved(base=ref)  # a hub id


def _single_subdir(path: Path) -> Path:
    """An archive that holds one directory (e.g. `final/`) resolves to that directory."""
    if (path / "config.json").exists() or (path / "adapter_config.json").exists():
        return path
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else path


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    backend: str  # "unsloth" or "transformers"


def load_for_training(
    ref: str,
    *,
    max_seq_length: int,
    load_in_4bit: bool,
    lora: dict[str, Any] | None,
    seed: int,
    reporter: Reporter | None = None,
) -> Loaded:
    """The model to train: with LoRA (`lora` settings) or in full; unsloth on a GPU."""
    where = resolve(ref, reporter)
    if where.adapter:
        raise ValueError(
            f"{ref!r} is a LoRA adapter; train on its base model {where.base!r} (or merge it first)"
        )
    if load_in_4bit and lora is None:
        raise ValueError("load_in_4bit trains LoRA adapters only: set is_peft=True (the default)")
    if has_gpu() and _unsloth_available():
        return _load_unsloth(where.base, max_seq_length, load_in_4bit, lora, seed)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(where.base, **_load_kwargs(load_in_4bit))
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    tokenizer = load_tokenizer(where.base)
    if lora is not None:
        model = _with_lora(model, lora)
    return Loaded(model, tokenizer, "transformers")


def _load_kwargs(load_in_4bit: bool) -> dict[str, Any]:
    """`from_pretrained` arguments: bf16 on a GPU, fp32 on a CPU; NF4 weights if 4-bit."""
    import torch

    dtype = torch.bfloat16 if has_gpu() else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if has_gpu():
        kwargs["device_map"] = "auto"
    if load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "load_in_4bit needs bitsandbytes, which is not installed here: "
                "pip install 'ow[train]' (or set load_in_4bit=False)"
            ) from exc
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        kwargs.setdefault("device_map", "cpu")
    return kwargs


def _with_lora(model: Any, lora: dict[str, Any]) -> Any:
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in lora["target_modules"] if t in present]
    if not targets:
        raise ValueError(
            f"none of target_modules={lora['target_modules']} exist in this model; "
            f"its linear layers include {sorted(present)[:20]}"
        )
    config = LoraConfig(
        r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
        bias=lora["bias"], use_rslora=lora["use_rslora"], target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _unsloth_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("unsloth") is not None


def _load_unsloth(
    base: str, max_seq_length: int, load_in_4bit: bool, lora: dict[str, Any] | None, seed: int
) -> Loaded:  # pragma: no cover - GPU only
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=base, max_seq_length=max_seq_length, load_in_4bit=load_in_4bit, dtype=None
    )
    if lora is not None:
        model = FastLanguageModel.get_peft_model(
            model, r=lora["r"], target_modules=lora["target_modules"],
            lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"], bias=lora["bias"],
            use_gradient_checkpointing="unsloth", random_state=seed,
            use_rslora=lora["use_rslora"], loftq_config=None,
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Loaded(model, tokenizer, "unsloth")


def load_for_inference(ref: str, reporter: Reporter | None = None, load_in_4bit: bool = False):
    """(model in eval mode, tokenizer) for transformers generation; an adapter is applied."""
    from transformers import AutoModelForCausalLM

    where = resolve(ref, reporter)
    model = AutoModelForCausalLM.from_pretrained(where.base, **_load_kwargs(load_in_4bit))
    tok_source = where.adapter if where.adapter and _has_tokenizer(where.adapter) else where.base
    tokenizer = load_tokenizer(tok_source)
    if where.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, where.adapter)
    model.eval()
    return model, tokenizer


def vllm_quantizes_4bit() -> bool:
    """Whether the installed vLLM still offers bitsandbytes quantization (later vLLMs dropped
    it: `load_in_4bit` then runs on transformers)."""
    try:
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    except ImportError:
        return False
    return "bitsandbytes" in QUANTIZATION_METHODS


def vllm_fits(ref: str, load_in_4bit: bool) -> bool:
    """Whether vLLM can run `ref` as asked: 4-bit (asked for, or a bitsandbytes checkpoint
    such as `unsloth/...-bnb-4bit`) needs a vLLM that still quantizes with bitsandbytes."""
    if vllm_quantizes_4bit():
        return True
    return not load_in_4bit and not _bnb_checkpoint(ref)


def _bnb_checkpoint(ref: str) -> bool:
    """Whether `ref` (or an adapter's base) was saved quantized by bitsandbytes."""
    if ":file-" in ref:
        return False  # a packed model: only its archive knows (and vLLM will say)
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(resolve(ref).base)
        quant = getattr(config, "quantization_config", None) or {}
    except Exception:  # noqa: BLE001 - unreadable here: vLLM will say what is wrong
        return False
    if not isinstance(quant, dict):
        quant = quant.to_dict()
    return quant.get("quant_method") == "bitsandbytes"


_VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # what vLLM's max_lora_rank takes


def vllm_lora_rank(adapters: list[str]) -> int:
    """The `max_lora_rank` vLLM needs for these adapter directories: their largest `r`,
    rounded up to a rank vLLM accepts (it refuses an adapter above its maximum)."""
    r = max((json.loads((Path(a) / "adapter_config.json").read_text()).get("r", 8)
             for a in adapters), default=8)
    return next((x for x in _VLLM_LORA_RANKS if x >= r), r)


def _has_tokenizer(path: str) -> bool:
    return (Path(path) / "tokenizer_config.json").exists()
