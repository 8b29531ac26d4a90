"""Parameter models of the built-in jobs, shared by the client (`payloads.jobs`) and the payloads.

They mirror openweights' configs so the cookbook's calls validate unchanged. A training file
or dataset may be a file id (`conversations:file-…`, `preference:file-…`) or, for local runs
and tests, a path. A model is a hub id, a local directory (full model or LoRA adapter) or
the file id of a packed adapter (a training job's `adapter_file` output).

Imports: stdlib and pydantic.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ApiParams",
    "InferenceParams",
    "InspectAiParams",
    "SamplingCallbackSpec",
    "TrainingParams",
    "WeightedSFTParams",
    "estimate_vram_gb",
]

DEFAULT_TARGET_MODULES = [
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
]


class SamplingCallbackSpec(BaseModel):
    """Sample completions for a prompts file every `eval_steps` steps during training."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    eval_steps: int = 10
    tag: str = "samples"
    temperature: float = 0.0
    max_tokens: int = 600
    top_p: float = 1.0


class TrainingParams(BaseModel):
    """`ow.fine_tuning.create(...)`: SFT, DPO or ORPO with LoRA (or full fine-tuning)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    training_file: str
    test_file: str | None = None
    loss: Literal["sft", "dpo", "orpo"] = "sft"
    finetuned_model_id: str | None = None
    max_seq_length: int = 2048
    load_in_4bit: bool = False
    is_peft: bool = True
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_bias: Literal["all", "none"] = "none"
    use_rslora: bool = True
    merge_before_push: bool = True
    push_to_private: bool = True
    epochs: int = 1
    max_steps: int | None = None
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 8
    warmup_steps: int = 5
    learning_rate: float = 1e-4
    logging_steps: int = 1
    optim: str = "adamw_8bit"
    weight_decay: float = 0.01
    lr_scheduler_type: str = "linear"
    seed: int = 3407
    beta: float = 0.1
    save_steps: int = 5000
    train_on_responses_only: bool = False
    eval_batch_size: int = 8
    eval_every_n_steps: int | None = None
    logp_callback_datasets: dict[str, str] = Field(default_factory=dict)
    sampling_callbacks: list[SamplingCallbackSpec] = Field(default_factory=list)
    resume_from_checkpoint: str | None = None
    meta: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> TrainingParams:
        purpose = _purpose(self.training_file)
        if self.loss in ("dpo", "orpo") and purpose not in (None, "preference"):
            raise ValueError(
                f"loss={self.loss!r} trains on preference data; training_file "
                f"{self.training_file!r} was uploaded with purpose {purpose!r} — upload it with "
                "purpose='preference' ({prompt, chosen, rejected} rows)"
            )
        if self.loss == "sft" and purpose not in (None, "conversations"):
            raise ValueError(
                f"loss='sft' trains on conversations; training_file {self.training_file!r} has "
                f"purpose {purpose!r}"
            )
        if self.finetuned_model_id is None:
            self.finetuned_model_id = default_finetuned_model_id(self)
        return self


class WeightedSFTParams(TrainingParams):
    """`ow.weighted_sft.create(...)`: SFT with per-block token weights (negative ones too)."""

    loss: Literal["sft"] = "sft"


class InferenceParams(BaseModel):
    """`ow.inference.create(...)`: batch completions for a conversations file."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    input_file_id: str
    max_tokens: int = 600
    temperature: float = 1.0
    top_p: float = 1.0
    min_tokens: int = 1
    stop: list[str] = Field(default_factory=list)
    max_model_len: int = 2048
    n_completions_per_prompt: int = 1
    seed: int | None = None
    load_in_4bit: bool = False


class LogprobParams(BaseModel):
    """`ow.logprob_eval.create(...)`: mean log-probs of a conversations file's assistant turns."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    input_file_id: str
    max_seq_length: int = 2048
    load_in_4bit: bool = False


class ApiParams(BaseModel):
    """`ow.api.deploy(model)`: an OpenAI-compatible server for a model (and LoRA adapters)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    lora_adapters: list[str] = Field(default_factory=list)
    max_model_len: int = 2048
    max_num_seqs: int = 32
    host: str = "0.0.0.0"
    port: int = 8000
    api_key: str | None = None


class InspectAiParams(BaseModel):
    """`ow.inspect_ai.create(...)`: run an Inspect-AI eval against a model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    eval_name: str
    options: str = ""


def _purpose(ref: str) -> str | None:
    """The purpose prefix of a file id (`preference:file-…` -> "preference"), else None."""
    if ":file-" in ref:
        return ref.split(":file-", 1)[0]
    return None


def default_finetuned_model_id(params: TrainingParams) -> str:
    """`<HF_ORG>/<model name>-ft-<hash of the params>`: the same params name the same model."""
    dumped = params.model_dump(mode="json", exclude={"finetuned_model_id"})
    digest = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:10]
    name = Path(params.model.rstrip("/")).name
    org = os.environ.get("HF_ORG") or os.environ.get("HF_USER") or "ow"
    return f"{org}/{name}-ft-{digest}"


_SIZE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])")


def estimate_vram_gb(
    model: str, *, load_in_4bit: bool = False, training: bool = False
) -> float | None:
    """A rough VRAM need for a model: from its weights on disk, or the size in its name.

    None when neither tells (a file id, an unnamed hub repo): the caller keeps its default.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.glob("*.safetensors"))
        size += sum(p.stat().st_size for p in path.glob("*.bin"))
        weights_gb = size / 1e9
    elif _purpose(model) is not None:  # a file id (a packed adapter): its name says nothing
        return None
    else:
        found = _SIZE.findall(model.split("/")[-1].replace("-", " ").replace("_", " "))
        if not found:
            return None
        weights_gb = float(found[-1]) * (0.6 if load_in_4bit or "4bit" in model else 2.0)
    factor = 1.5 if training else 1.25
    return round(weights_gb * factor + (2.0 if weights_gb > 0.1 else 0.0), 1)
