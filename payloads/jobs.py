"""The built-in job types: `ow.fine_tuning`, `ow.weighted_sft`, `ow.inference`, `ow.api`,
`ow.inspect_ai`, `ow.logprob_eval` (also `ow.logprob`), `ow.mmlu_pro`.

Each is an ordinary registered job: it mounts this `payloads` package into the job's working
directory and runs one of its modules with the validated params as JSON. `create` also sizes
the job: the VRAM a model needs is estimated (weights on disk, or the size in its name), a
smaller explicit `requires_vram_gb` is refused with the number, and without one the estimate
is used (a tiny local model needs 0 GB, so a CPU worker takes it).

Imports: stdlib, `ow` (public API), pydantic params; no ML library.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

from ow import ValidationError
from ow.sdk import Jobs, register
from payloads.params import (
    ApiParams,
    InferenceParams,
    InspectAiParams,
    LogprobParams,
    MMLUProParams,
    TrainingParams,
    WeightedSFTParams,
    estimate_vram_gb,
    fill_finetuned_model_id,
)

__all__ = [
    "Api", "FineTuning", "Inference", "InspectAi", "LogprobEval", "MMLUPro", "WeightedSFT",
]

PAYLOADS_DIR = Path(__file__).resolve().parent


def _command(module: str, validated: Any, *flags: str) -> str:
    params = json.dumps(validated.model_dump(mode="json"), sort_keys=True)
    return " ".join(["python", "-m", module, *flags, shlex.quote(params)])


def _named(validated: TrainingParams, job_id: str) -> TrainingParams:
    """The params with `finetuned_model_id`'s template filled in (a bad one is refused)."""
    try:
        filled = fill_finetuned_model_id(validated, job_id)
    except ValueError as exc:
        raise ValidationError(f"bad params for fine-tuning: {exc}") from None
    if filled == validated.finetuned_model_id:
        return validated
    return validated.model_copy(update={"finetuned_model_id": filled})


class _ModelJob(Jobs):
    """A job whose `model` param decides how much VRAM it needs."""

    mount = {str(PAYLOADS_DIR): "payloads"}
    training = False

    async def create(self, **params: Any):
        requested = params.pop("requires_vram_gb", None)
        if requested == "guess":  # openweights' spelling of "estimate it"
            requested = None
        allowed_hardware = params.pop("allowed_hardware", None)
        image = params.pop("docker_image", None)
        validated = self.validate_params(params)
        if isinstance(validated, TrainingParams):
            _named(validated, "job-id")  # a bad finetuned_model_id fails before any upload
        if image:  # this job runs in another image; the job type keeps its own
            self = copy.copy(self)  # noqa: PLW0642 - a per-call view of the creator
            self.base_image = image
        need = estimate_vram_gb(
            validated.model, load_in_4bit=getattr(validated, "load_in_4bit", False),
            training=self.training,
        )
        if requested is not None and need is not None and float(requested) < need:
            raise ValidationError(
                f"{validated.model} needs about {need} GB of VRAM for {self.job_type}, "
                f"but requires_vram_gb={requested}; raise requires_vram_gb"
                + (" or set load_in_4bit=True" if hasattr(validated, "load_in_4bit") else "")
            )
        vram = float(requested) if requested is not None else need
        return await self.submit(
            validated, requires_vram_gb=vram, allowed_hardware=allowed_hardware,
            model=validated.model,
        )


@register("fine_tuning")
class FineTuning(_ModelJob):
    """SFT / DPO / ORPO with LoRA: `ow.fine_tuning.create(model=..., training_file=...)`."""

    params = TrainingParams
    training = True

    def get_entrypoint(self, validated_params: TrainingParams) -> str:
        return _command("payloads.train", validated_params)

    def with_job_id(self, validated_params: TrainingParams, job_id: str) -> TrainingParams:
        return _named(validated_params, job_id)


@register("weighted_sft")
class WeightedSFT(_ModelJob):
    """SFT with per-block token weights: `ow.weighted_sft.create(...)`."""

    params = WeightedSFTParams
    training = True

    def get_entrypoint(self, validated_params: WeightedSFTParams) -> str:
        return _command("payloads.train", validated_params, "--weighted")

    def with_job_id(self, validated_params: WeightedSFTParams, job_id: str) -> WeightedSFTParams:
        return _named(validated_params, job_id)


@register("inference")
class Inference(_ModelJob):
    """Batch completions: `ow.inference.create(model=..., input_file_id=...)`; outputs["file"]."""

    params = InferenceParams

    def get_entrypoint(self, validated_params: InferenceParams) -> str:
        return _command("payloads.infer", validated_params)


@register("api")
class Api(_ModelJob):
    """An OpenAI-compatible server; it logs {"status": "ready", "base_url", "models"}."""

    params = ApiParams
    timeout_s = 900.0  # a 15-minute lease, renewed by its TemporaryApi while the client lives

    def get_entrypoint(self, validated_params: ApiParams) -> str:
        return _command("payloads.serve", validated_params)


@register("inspect_ai")
class InspectAi(_ModelJob):
    """An Inspect-AI eval: `ow.inspect_ai.create(model=..., eval_name=..., options=...)`."""

    params = InspectAiParams

    def get_entrypoint(self, validated_params: InspectAiParams) -> str:
        return _command("payloads.inspect_eval", validated_params)


@register("logprob_eval")
class LogprobEval(_ModelJob):
    """Log-prob evaluation: `ow.logprob_eval.create(model=..., input_file_id=...)`."""

    params = LogprobParams

    def get_entrypoint(self, validated_params: LogprobParams) -> str:
        return _command("payloads.logprobs", validated_params)


@register("logprob")
class LogProb(LogprobEval):
    """openweights' name of `logprob_eval`: `ow.logprob.create(model=..., dataset=...)`."""


@register("mmlu_pro")
class MMLUPro(_ModelJob):
    """MMLU-Pro: `ow.mmlu_pro.create(model=...)`; results under `uploads/`, `accuracy` logged.

    openweights' `requires_vram_gb` param is this job's `requires_vram_gb` (estimated when
    not given, as every built-in job's)."""

    params = MMLUProParams

    def get_entrypoint(self, validated_params: MMLUProParams) -> str:
        return _command("payloads.mmlu_pro", validated_params)
