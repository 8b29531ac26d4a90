"""`ow.api.deploy` + `ow.chat.completions.create` end to end on the tiny model (CPU server)."""

import uuid

import pytest

from ow import AsyncOpenWeights
from ow.core import events as ev
from ow.core import subjects
from tests.integration.agents import running_agents

pytestmark = [pytest.mark.anyio, pytest.mark.slow]



@pytest.mark.timeout(180)
async def test_deploy_chat_cache_and_cancel_on_exit(nats, tiny_model, tmp_path):
    import payloads.jobs  # noqa: F401  (registers the built-in job types)

    url, org = nats.url, f"t{uuid.uuid4().hex[:10]}"
    model = str(tiny_model)
    messages = [{"role": "user", "content": "is 9.11 > 9.9?"}]
    home = str(tmp_path / "home")
    async with AsyncOpenWeights(url=url, org=org, home=home, env={}) as ow, running_agents(
        url, org, 1, tmp_path
    ):
        async with ow.api.deploy(model) as client:
            api = client.deployment
            assert api.base_url.startswith("http://127.0.0.1:")
            assert str(client.base_url).startswith(api.base_url)  # an openai.AsyncOpenAI
            first = await ow.chat.completions.create(
                model=model, messages=messages, max_tokens=6, seed=3
            )
            assert first.choices[0].message.role == "assistant"
            again = await ow.chat.completions.create(
                model=model, messages=messages, max_tokens=6, seed=3
            )
            assert again == first  # served from the on-disk cache
            assert len(list((tmp_path / "home" / "cache" / "chat").rglob("*.json"))) == 1
            job_id = api.job_id
        job = await ow.jobs.retrieve(job_id)
        assert job.status == "canceled"
        bus = await ow.bus()
        history, _ = await bus.history(subjects.job_subject(org, job_id))
        assert any(isinstance(d.event, ev.JobTimeoutExtended) for d in history)
        assert model not in ow.deployments  # a later request deploys it again



def _random_adapter(base, path):
    """A LoRA adapter on `base` whose (random, not zero) update changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(path)
    return str(path)


@pytest.mark.timeout(180)
async def test_multi_deploy_serves_adapters_beside_their_base(nats, tiny_model, tmp_path):
    import payloads.jobs  # noqa: F401

    url, org = nats.url, f"t{uuid.uuid4().hex[:10]}"
    model = str(tiny_model)
    adapter = _random_adapter(tiny_model, tmp_path / "adapter")
    messages = [{"role": "user", "content": "hello"}]
    home = str(tmp_path / "home")
    async with AsyncOpenWeights(url=url, org=org, home=home, env={}) as ow, running_agents(
        url, org, 1, tmp_path, sandbox_ro=f"{model}:{adapter}"  # local dirs the jobs may read
    ):
        apis = ow.api.multi_deploy([model, adapter])
        assert apis[model] is apis[adapter]  # one server for the base and its adapter
        async with apis[adapter] as client:
            api = client.deployment
            assert set(api.models) == {model, adapter}
            said = {}
            for m in (model, adapter):
                reply = await ow.chat.completions.create(
                    model=m, messages=messages, max_tokens=8, temperature=0
                )
                said[m] = reply.choices[0].message.content
            assert said[model] != said[adapter]  # the adapter is applied, by name
            jobs = await ow.jobs.list()
            assert [j.id for j in jobs if j.type == "api"] == [api.job_id]
