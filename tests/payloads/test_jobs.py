"""Built-in job types: registration, params mirroring openweights, entrypoints, VRAM sizing."""

import json
import shlex

import pytest

from ow import ValidationError
from ow.sdk._registry import job_type
from payloads.jobs import FineTuning, Inference, WeightedSFT
from payloads.params import estimate_vram_gb


def test_builtin_types_are_registered():
    for name in ("fine_tuning", "weighted_sft", "inference", "api", "inspect_ai"):
        assert job_type(name) is not None


def test_cookbook_params_validate_and_name_the_finetuned_model():
    job = FineTuning(client=None)
    p = job.validate_params(dict(
        model="unsloth/Llama-3.3-70B-Instruct-bnb-4bit", training_file="conversations:file-abc",
        test_file="conversations:file-def", load_in_4bit=True, max_seq_length=2047, loss="sft",
        epochs=1, learning_rate=1e-4, r=32, save_steps=10, per_device_train_batch_size=1,
        gradient_accumulation_steps=8, merge_before_push=False,
    ))
    assert p.finetuned_model_id == "{org_id}/{model_name}-{job_id}"  # filled in on submit
    assert job.with_job_id(p, "fine_tuning-abc").finetuned_model_id.endswith(
        "/Llama-3.3-70B-Instruct-bnb-4bit-fine_tuning-abc"
    )


def test_entrypoint_passes_the_params_as_json():
    job = WeightedSFT(client=None)
    p = job.validate_params({"model": "m", "training_file": "conversations:file-x"})
    argv = shlex.split(job.get_entrypoint(p))
    assert argv[:4] == ["python", "-m", "payloads.train", "--weighted"]
    assert json.loads(argv[4])["training_file"] == "conversations:file-x"
    assert list(FineTuning.mount.values()) == ["payloads"]


def test_preference_losses_need_preference_files():
    with pytest.raises(ValidationError, match="purpose='preference'"):
        FineTuning(client=None).validate_params(
            {"model": "m", "training_file": "conversations:file-x", "loss": "dpo"}
        )


def test_vram_estimates():
    assert estimate_vram_gb("unsloth/Qwen3-4B") == pytest.approx(12.0)
    assert estimate_vram_gb("unsloth/Llama-3.3-70B-Instruct-bnb-4bit", load_in_4bit=True) > 40
    assert estimate_vram_gb("some/model") is None


@pytest.mark.anyio
async def test_a_model_that_does_not_fit_is_refused_with_the_number():
    with pytest.raises(ValidationError, match=r"needs about 12.0 GB .* requires_vram_gb=8"):
        await Inference(client=None).create(
            model="unsloth/Qwen3-4B", input_file_id="conversations:file-x", requires_vram_gb=8
        )


def test_tiny_local_model_needs_no_gpu(tiny_model):
    assert estimate_vram_gb(str(tiny_model), training=True) == 0.0
