"""The cookbook's example scripts, unchanged, against a test `ow up` on the tiny model.

Each script runs as `python <file>` in a copy of its folder (relative data paths as the
examples expect), with OW_URL/OW_ORG/OW_HOME pointing at a real `ow up` in a temporary home.
Hub ids (`unsloth/Qwen3-4B`, `unsloth/llama-3-8b-Instruct`) resolve offline to the tiny
model through transformers' hub loading, from a Hugging Face cache in a temporary HF_HOME.
The examples poll with `time.sleep(5)`, so each takes 5-20 s. Examples that only submit are
followed by a wait on their job. Nothing is downloaded.
"""

from __future__ import annotations

import pytest

from tests.payloads.cookbook import EXAMPLES, failure, hub_cache, job_id, ow_up, run_example

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

COOKBOOK = EXAMPLES / "cookbook"
HUB_IDS = ["unsloth/Qwen3-4B", "unsloth/llama-3-8b-Instruct"]


@pytest.fixture(scope="module")
def env(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("cookbook")
    hf_home = hub_cache(tiny_model, root / "hf", HUB_IDS)
    with ow_up(root, hf_home) as environment:
        yield environment


@pytest.fixture(scope="module")
def ow(env):
    from ow import OpenWeights

    with OpenWeights(env=env) as client:
        yield client


def test_custom_job(env, tmp_path):
    proc = run_example(EXAMPLES / "custom_job/client_side.py", env, tmp_path)
    assert proc.returncode == 0, failure(proc)
    assert "Job completed successfully: {'result': 14.0}" in proc.stdout


def test_cpu_quickstart(env, tmp_path):
    proc = run_example(COOKBOOK / "cpu_quickstart.py", env, tmp_path)
    assert proc.returncode == 0, failure(proc)
    assert "adapter_file" in proc.stdout, failure(proc)
    assert proc.stdout.count(" -> ") >= 3, failure(proc)  # three samples (the text is random)


@pytest.mark.parametrize(
    "script",
    ["sft/lora_qwen3_4b.py", "preference_learning/llama3_dpo.py",
     "preference_learning/llama3_orpo.py"],
)
def test_examples_that_submit_a_fine_tune(env, ow, tmp_path, script):
    proc = run_example(COOKBOOK / script, env, tmp_path)
    assert proc.returncode == 0, failure(proc)
    assert "The model will be pushed to: ow/" in proc.stdout
    done = ow.jobs.wait(job_id(proc.stdout), timeout=120)
    assert done.status == "completed", done
    assert {"adapter_file", "train_loss"} <= set(done.outputs)


@pytest.mark.parametrize(
    ("script", "outputs"),
    [("sft/logprob_tracking.py", "outputs/logp_tracking"),
     ("sft/token_level_weighted_sft.py", "outputs/weighted_sft")],
)
def test_examples_that_train_then_plot(env, tmp_path, script, outputs):
    pytest.importorskip("matplotlib", reason="the example plots (the `dev` extra has it)")
    pytest.importorskip("pandas", reason="the example uses pandas (the `dev` extra has it)")
    proc = run_example(COOKBOOK / script, env, tmp_path)
    assert proc.returncode == 0, failure(proc)
    assert (tmp_path / "sft" / outputs / "loss.png").exists()


def test_sampling_callback_runs_until_the_examples_own_bug(env, ow, tmp_path):
    """The job trains (2 steps: too few for a sample every 10), then the script's
    `plot_metrics` reads `data["tag"]` of every event (the loss events have none; it would
    also read `ow.files.content("file_id")`, a literal). The upstream file says sampling
    callbacks are broken. If the example is fixed, assert success here instead."""
    pytest.importorskip("matplotlib", reason="the example plots (the `dev` extra has it)")
    proc = run_example(COOKBOOK / "sft/sampling_callback.py", env, tmp_path)
    assert proc.returncode == 1, failure(proc)
    assert "in plot_metrics" in proc.stderr, failure(proc)
    assert "KeyError: 'tag'" in proc.stderr, failure(proc)
    (job,) = ow.jobs.list(type="fine_tuning", limit=1)
    assert job.status == "completed"
    assert job.params["validated_params"]["sampling_callbacks"][0]["eval_steps"] == 10


def test_run_inference(env, tmp_path):
    proc = run_example(COOKBOOK / "inference/run_inference.py", env, tmp_path)
    assert proc.returncode == 0, failure(proc)
    assert "What color is the sky on a clear day?" in proc.stdout


def test_api_deployment_context_manager(env, tmp_path):
    proc = run_example(COOKBOOK / "api-deployment/context_manager_api.py", env, tmp_path)
    assert proc.returncode == 0, failure(proc)
    assert "'role': 'assistant'" in proc.stdout


def test_qlora_70b_submits_a_job_only_a_gpu_can_take(env, ow, tmp_path):
    """The script only submits; its job (4-bit, `allowed_hardware=["1x H200"]`) needs
    bitsandbytes on a GPU, so no worker here claims it: check what was submitted, cancel."""
    proc = run_example(COOKBOOK / "sft/qlora_llama3_70b.py", env, tmp_path)
    assert proc.returncode == 0, failure(proc)
    job = ow.jobs.retrieve(job_id(proc.stdout))
    try:
        assert job.status == "pending"
        assert job.params["validated_params"]["load_in_4bit"] is True
        assert job.allowed_hardware == ["1x H200"]
    finally:
        ow.jobs.cancel(job.id)


@pytest.mark.skip(reason="needs gradio and fire, and launches a blocking web UI")
def test_gradio_ui():
    """api-deployment/gradio_ui.py."""


@pytest.mark.skip(
    reason="needs inspect-ai on the worker and a network eval set (inspect_evals/gpqa_diamond)"
)
def test_inspect_eval():
    """inspect_eval.py."""
