"""openweights' call-time arguments: the `create(...)` keywords beside params, the client's
keywords and environment, and what a submitted job records (a real nats-server)."""

import uuid

import pytest

import payloads.jobs  # noqa: F401  (registers the built-in job types)
from ow import AsyncOpenWeights, OpenWeights
from ow.core.config import from_env
from ow.core.errors import ConfigError

pytestmark = pytest.mark.anyio


def _client(nats, tmp_path, **kwargs):
    org = f"t{uuid.uuid4().hex[:10]}"
    return AsyncOpenWeights(url=nats.url, org=org, home=str(tmp_path), env={}, **kwargs)


async def test_finetuned_model_id_template_is_filled_with_the_job_id(nats, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("HF_ORG", "my-hub-org")
    async with _client(nats, tmp_path) as ow:
        job = await ow.fine_tuning.create(model="org/Qwen3-4B", training_file="data.jsonl",
                                          max_steps=1)
        assert job.params["validated_params"]["finetuned_model_id"] == \
            f"my-hub-org/Qwen3-4B-{job.id}"
        assert f"my-hub-org/Qwen3-4B-{job.id}" in job.entrypoint  # what the payload is given
        again = await ow.fine_tuning.create(model="org/Qwen3-4B", training_file="data.jsonl",
                                            max_steps=1)
        assert again.id == job.id  # the filled name does not change the content id
        named = await ow.fine_tuning.create(
            model="org/Qwen3-4B", training_file="data.jsonl",
            finetuned_model_id="{org_id}/{model_name}-{tag}-{lr}",
            model_naming_extra_parameters={"tag": "v2", "lr": "1e-4"},
        )
        assert named.params["validated_params"]["finetuned_model_id"] == \
            "my-hub-org/Qwen3-4B-v2-1e-4"


async def test_a_bad_finetuned_model_id_is_refused_before_anything_is_published(nats,
                                                                              tmp_path):
    async with _client(nats, tmp_path) as ow:
        with pytest.raises(Exception, match="unknown field") as info:
            await ow.fine_tuning.create(model="org/m", training_file="d.jsonl",
                                        finetuned_model_id="me/{nope}")
        assert "model_naming_extra_parameters" in str(info.value)
        assert await ow.jobs.list() == []


async def test_create_keywords_docker_image_and_guessed_vram(nats, tmp_path):
    async with _client(nats, tmp_path) as ow:
        job = await ow.inference.create(
            model="org/Model-0.5B", input_file_id="conversations:file-abc",
            docker_image="me/my-vllm:1", requires_vram_gb="guess",
            allowed_hardware=["1x H100"],
        )
        assert job.image == job["docker_image"] == "me/my-vllm:1"
        assert job.allowed_hardware == ["1x H100"]
        assert job.requires_vram_gb > 0  # estimated, as openweights' "guess"
        plain = await ow.inference.create(model="org/Model-0.5B",
                                          input_file_id="conversations:file-abc")
        assert plain.image != "me/my-vllm:1"  # the job type keeps its own image


async def test_preferences_purpose_of_the_current_cookbook_trains_dpo(nats, tmp_path):
    async with _client(nats, tmp_path) as ow:
        job = await ow.fine_tuning.create(model="org/m", loss="dpo",
                                          training_file="preferences:file-abc123")
        assert job.params["validated_params"]["loss"] == "dpo"


def test_openweights_api_key_is_the_token_unless_ow_token_is_set():
    assert from_env({"OPENWEIGHTS_API_KEY": "ow_abc"}).token == "ow_abc"
    assert from_env({"OPENWEIGHTS_API_KEY": "ow_abc", "OW_TOKEN": "ow_x"}).token == "ow_x"


def test_client_keywords_of_openweights(tmp_path):
    ow = AsyncOpenWeights(auth_token="ow_tok", organization_id="acme", env={},
                          deploy_kwargs={"max_model_len": 1024}, home=str(tmp_path))
    assert (ow.config.token, ow.config.org) == ("ow_tok", "acme")
    assert ow.deploy_kwargs == {"max_model_len": 1024}
    assert ow.async_chat is ow.chat


@pytest.mark.parametrize(("name", "hint"), [("supabase_url", "OW_URL"),
                                            ("supabase_key", "OW_TOKEN"),
                                            ("organisation", "unknown argument")])
def test_supabase_and_unknown_keywords_are_refused_with_the_ow_setting(name, hint):
    with pytest.raises(ConfigError, match=hint):
        AsyncOpenWeights(env={}, **{name: "x"})


def test_use_async_makes_chat_awaitable(nats, tmp_path):
    with OpenWeights(url=nats.url, org="acme", env={}, home=str(tmp_path),
                     use_async=True) as ow:
        import inspect

        assert inspect.iscoroutinefunction(ow.chat.completions.create)
        assert inspect.iscoroutinefunction(ow.async_chat.completions.create)
