"""Parameter models of the built-in jobs, shared by the client (`payloads.jobs`) and the payloads.

They mirror openweights' configs so the cookbook's calls validate unchanged. A training file
or dataset may be a file id (`conversations:file-…`, `preference:file-…`) or, for local runs
and tests, a path. A model is a hub id, a local directory (full model or LoRA adapter) or
the file id of a packed adapter (a training job's `adapter_file` output).

Imports: stdlib and pydantic.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ApiParams",
    "InferenceParams",
    "InspectAiParams",
    "MMLUProParams",
    "SamplingCallbackSpec",
    "TrainingParams",
    "WeightedSFTParams",
    "estimate_vram_gb",
    "fill_finetuned_model_id",
    "hf_org",
]

#: the purposes of preference data; openweights' current cookbook spells it "preferences"
PREFERENCE_PURPOSES = ("preference", "preferences")
DEFAULT_MODEL_ID_TEMPLATE = "{org_id}/{model_name}-{job_id}"


DEFAULT_TARGET_MODULES = [
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
]


class SamplingCallbackSpec(BaseModel):
    """Sample completions for a prompts file every `eval_steps` steps during training."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    eval_steps: int | Literal["log"] = 10  # "log": at every logging step
    batch_size: int = 8
    tag: str = "samples"
    temperature: float = 0.0
    max_tokens: int = 600
    top_p: float = 1.0


class TrainingParams(BaseModel):
    """`ow.fine_tuning.create(...)`: SFT, DPO or ORPO with LoRA (or full fine-tuning).

    Names and defaults are openweights' (tests/compat/upstream_params.py pins them).
    `finetuned_model_id` is a template: `{org_id}` (HF_ORG, else HF_USER, else "ow"),
    `{model_name}`, `{job_id}`, any string param and `model_naming_extra_parameters` are
    filled in when the job is created.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    training_file: str
    test_file: str | None = None
    chat_template: str = "default"  # "default": the tokenizer's own; else a Jinja template
    loss: Literal["sft", "dpo", "orpo"] = "sft"
    finetuned_model_id: str = DEFAULT_MODEL_ID_TEMPLATE
    model_naming_extra_parameters: dict[str, str] | None = None
    job_id_suffix: str | None = None  # part of the params: a new suffix is a new job
    max_seq_length: int = 2048
    load_in_4bit: bool = False
    is_peft: bool = True
    target_modules: list[str] | None = Field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = Field(0.0, ge=0.0, le=1.0)
    lora_bias: Literal["all", "none"] = "none"
    use_rslora: bool = True
    merge_before_push: bool = True
    push_to_private: bool = True
    epochs: int = 1
    max_steps: int | None = None
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 8
    warmup_steps: int = 5
    learning_rate: float = Field(1e-4, gt=0)
    logging_steps: int = 1
    optim: str = "adamw_8bit"
    weight_decay: float = 0.01
    lr_scheduler_type: str = "linear"
    seed: int = 3407
    beta: float = 0.1
    save_steps: int = 5000
    output_dir: str = "./tmp"  # checkpoints, relative to the job's working directory
    train_on_responses_only: bool = True
    packing: bool = True  # a request: the transformers (CPU) backend trains unpacked
    eval_batch_size: int = 8
    eval_every_n_steps: int | Literal["log"] = 5000  # logp_callback_datasets cadence
    test_file_eval_steps: int | float | None = None
    test_file_eval_strategy: Literal["no", "steps", "epoch"] | None = "epoch"
    logp_callback_datasets: dict[str, str] = Field(default_factory=dict)
    sampling_callbacks: list[SamplingCallbackSpec] | None = None
    resume_from_checkpoint: str | None = None
    meta: dict[str, Any] | None = None

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> Any:
        """openweights takes a string too ("1e-4"): a number written as text."""
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                raise ValueError(
                    f"learning_rate {v!r} is not a number; write it as 1e-4 or '1e-4'"
                ) from None
        return v

    @field_validator("output_dir")
    @classmethod
    def _relative(cls, v: str) -> str:
        if Path(v).is_absolute() or ".." in Path(v).parts:
            raise ValueError(
                f"output_dir {v!r} must be relative to the job's working directory "
                "(e.g. './tmp'); checkpoints are uploaded from there"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainingParams:
        purpose = _purpose(self.training_file)
        if self.loss in ("dpo", "orpo") and purpose not in (None, *PREFERENCE_PURPOSES):
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
        if self.logp_callback_datasets and (self.load_in_4bit or "4bit" in self.model):
            raise ValueError(
                "log-prob tracking (logp_callback_datasets) does not work on 4-bit models, "
                "as in openweights: train the unquantized model or drop the callback"
            )
        return self


class WeightedSFTParams(TrainingParams):
    """`ow.weighted_sft.create(...)`: SFT with per-block token weights (negative ones too).

    openweights' own defaults for this job differ from fine-tuning's in three places (kept).
    """

    loss: Literal["sft"] = "sft"
    ft_id_suffix: str | None = None  # appended to the filled finetuned_model_id as "-<suffix>"
    optim: str = "adamw_torch"
    eval_every_n_steps: int | Literal["log"] = "log"


class InferenceParams(BaseModel):
    """`ow.inference.create(...)`: batch completions for a conversations file."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    input_file_id: str
    chat_template: str = "default"
    job_id_suffix: str | None = None
    use_batch: bool = True  # openweights: OpenAI's batch API for OpenAI models; no effect here
    max_tokens: int = 600
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = Field(default_factory=list)
    prefill: str = ""  # text the assistant's answer starts with (kept out of `completion`)
    min_tokens: int = 1
    max_model_len: int = 8196
    logprobs: int | None = Field(None, ge=0, le=20)  # top-k log-probs of each generated token
    n_completions_per_prompt: int = 1
    quantization: str | None = None  # vLLM's; "bitsandbytes" is load_in_4bit everywhere
    load_format: str | None = None  # vLLM's
    seed: int | None = None
    load_in_4bit: bool = False

    @model_validator(mode="after")
    def _four_bit(self) -> InferenceParams:
        if "bitsandbytes" in (self.quantization, self.load_format):
            self.load_in_4bit = True
        if self.load_in_4bit or "4bit" in self.model:
            self.quantization = self.quantization or "bitsandbytes"
            self.load_format = self.load_format or "bitsandbytes"
        return self


class LogprobParams(BaseModel):
    """`ow.logprob_eval.create(...)`: mean log-probs of a conversations file's assistant turns."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    input_file_id: str = Field(validation_alias=AliasChoices("input_file_id", "dataset"))
    batch_size: int = 8
    chat_template: str = "default"
    max_seq_length: int = 2048
    load_in_4bit: bool = False


class ApiParams(BaseModel):
    """`ow.api.deploy(model)`: an OpenAI-compatible server for a model (and LoRA adapters)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    lora_adapters: list[str] = Field(default_factory=list)
    max_lora_rank: int = 16
    max_loras: int = -1  # -1: as many as lora_adapters
    max_model_len: int = 2048
    max_num_seqs: int = 16
    quantization: str | None = None  # vLLM's --quantization
    kv_cache_dtype: str | None = None  # vLLM's --kv-cache-dtype
    host: str | None = None  # None: 127.0.0.1 (0.0.0.0 on a RunPod pod, for its proxy)
    port: int = 8000
    api_key: str | None = None

    @model_validator(mode="after")
    def _loras(self) -> ApiParams:
        self.max_loras = len(self.lora_adapters) if self.max_loras == -1 else max(1, self.max_loras)
        return self


class InspectAiParams(BaseModel):
    """`ow.inspect_ai.create(...)`: run an Inspect-AI eval against a model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    eval_name: str
    max_model_len: int = 8192
    options: str = " "


class MMLUProParams(BaseModel):
    """`ow.mmlu_pro.create(model=...)`: chain-of-thought MMLU-Pro (openweights' params)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    ntrain: int = Field(5, ge=0)
    selected_subjects: str = "all"
    save_dir: str = "uploads"
    global_record_file: str = "eval_record_collection.csv"
    gpu_util: str = "0.9"  # vLLM's gpu_memory_utilization (as openweights spells it)
    dataset: str = "TIGER-Lab/MMLU-Pro"  # or a local dir with validation/test .jsonl
    max_tokens: int = 2048
    max_model_len: int = 4096

    @field_validator("save_dir")
    @classmethod
    def _inside(cls, v: str) -> str:
        if Path(v).is_absolute() or ".." in Path(v).parts:
            raise ValueError(f"save_dir {v!r} must be relative (e.g. 'uploads', which is "
                             "uploaded with the job)")
        return v


def _purpose(ref: str) -> str | None:
    """The purpose prefix of a file id (`preference:file-…` -> "preference"), else None."""
    if ":file-" in ref:
        return ref.split(":file-", 1)[0]
    return None


def fill_finetuned_model_id(params: TrainingParams, job_id: str) -> str:
    """`finetuned_model_id` with its template filled in (openweights' names and fields)."""
    dumped = params.model_dump(mode="json")
    fields = {k: v for k, v in dumped.items() if isinstance(v, str)}
    fields.update(params.model_naming_extra_parameters or {})
    fields.update(
        job_id=job_id, model_name=Path(params.model.rstrip("/")).name, org_id=hf_org(),
    )
    try:
        filled = params.finetuned_model_id.format(**fields)
        suffix = getattr(params, "ft_id_suffix", None)
        filled += f"-{suffix}" if suffix else ""
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"finetuned_model_id {params.finetuned_model_id!r} names an unknown field ({exc}); "
            "use {org_id}, {model_name}, {job_id}, a string param or a key of "
            "model_naming_extra_parameters"
        ) from None
    if filled.count("/") != 1 or filled.split("/")[0] in ("", "datasets", "models", "unsloth"):
        raise ValueError(
            f"finetuned_model_id {filled!r} must be '<hub org or user>/<name>'; set HF_ORG "
            "(or HF_USER) or pass finetuned_model_id"
        )
    return filled


def hf_org() -> str:
    """The hub namespace models are pushed to: HF_ORG, else HF_USER, else "ow"."""
    return os.environ.get("HF_ORG") or os.environ.get("HF_USER") or "ow"


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
