"""Every parameter of openweights' built-in jobs is accepted by ow with openweights' default
and meaning, or refused with a message naming the ow equivalent (tests/compat/upstream_params.py
is the list, one test per row)."""

import pytest

import payloads.jobs  # noqa: F401  (registers the built-in job types)
from ow.sdk._registry import job_type
from payloads.params import SamplingCallbackSpec
from tests.compat.upstream_params import JOBS, REQUIRED, SAMPLING_CALLBACK

#: a value other than the default, where flipping the default's type does not give a valid one
SAMPLES = {
    "test_file": "conversations:file-test", "chat_template": "{{ messages }}",
    "finetuned_model_id": "me/{model_name}-v2", "job_id_suffix": "b", "ft_id_suffix": "v2",
    "model_naming_extra_parameters": {"tag": "x"}, "target_modules": ["q_proj"],
    "lora_bias": "all", "max_steps": 7, "optim": "adamw", "lr_scheduler_type": "cosine",
    "output_dir": "checkpoints", "logp_callback_datasets": {"train": "conversations:file-abc"},
    "sampling_callbacks": [{"dataset": "conversations:file-abc"}], "meta": {"who": "me"},
    "eval_every_n_steps": 3, "test_file_eval_steps": 10, "test_file_eval_strategy": "steps",
    "loss": "sft", "stop": ["\n"], "prefill": "Sure,", "logprobs": 3,
    "quantization": "awq", "load_format": "safetensors", "kv_cache_dtype": "fp8",
    "lora_adapters": ["org/adapter"], "options": "--limit 2", "eval_steps": "log",
    "use_batch": False, "tag": "mine", "selected_subjects": "math", "save_dir": "out",
    "global_record_file": "record.csv", "gpu_util": "0.8",
}


def _sample(name, default):
    if name in SAMPLES:
        return SAMPLES[name]
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default + 0.5 if default < 0.5 else default * 2
    raise AssertionError(f"add a sample value for {name!r} to SAMPLES")


def _rows():
    for job, spec in JOBS.items():
        for name, default in spec["params"].items():
            yield pytest.param(job, name, default, id=f"{job}.{name}")


@pytest.mark.parametrize(("job", "name", "default"), list(_rows()))
def test_each_upstream_param_is_accepted_with_its_default(job, name, default):
    spec = JOBS[job]
    creator = job_type(spec["ow"])(client=None)
    plain = creator.validate_params(dict(spec["needs"]))
    if default is REQUIRED:
        return  # given in `needs`: accepted
    assert getattr(plain, name) == default, f"{job}.{name}: ow's default differs from upstream"
    value = _sample(name, default)
    given = creator.validate_params({**spec["needs"], name: value})
    got = getattr(given, name)
    if name == "sampling_callbacks":
        got = [c.model_dump(include={"dataset"}) for c in got]
    assert got == value, f"{job}.{name}={value!r} was not kept"


@pytest.mark.parametrize(("name", "default"), SAMPLING_CALLBACK["params"].items())
def test_each_sampling_callback_param_is_accepted(name, default):
    plain = SamplingCallbackSpec(**SAMPLING_CALLBACK["needs"])
    if default is REQUIRED:
        return
    assert getattr(plain, name) == default
    value = _sample(name, default)
    assert getattr(SamplingCallbackSpec(**SAMPLING_CALLBACK["needs"], **{name: value}),
                   name) == value
