"""`ow.api.deploy` end to end on vLLM: a real nats-server, an in-process agent, the api job
running the serving payload with `PAYLOADS_INFERENCE_BACKEND=vllm` (from the agent's
environment), and chat through the client."""

from __future__ import annotations

import uuid

import pytest

from ow import AsyncOpenWeights
from tests.integration.agents import running_agents
from tests.vllm.taught import answer, question

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.mark.timeout(600)
async def test_deploy_on_vllm(nats, taught_model, tmp_path, vllm_backend):
    import payloads.jobs  # noqa: F401  (registers the built-in job types)

    url, org = nats.url, f"t{uuid.uuid4().hex[:10]}"
    model = str(taught_model)
    home = str(tmp_path / "home")
    async with AsyncOpenWeights(url=url, org=org, home=home, env={}) as ow, running_agents(
        url, org, 1, tmp_path
    ):
        async with ow.api.deploy(model, max_model_len=256) as client:  # an openai.AsyncOpenAI
            reply = await ow.chat.completions.create(
                model=model, messages=question("blue"), max_tokens=12, temperature=0
            )
            assert reply.choices[0].message.content == answer("blue")
            assert reply.choices[0].finish_reason == "stop"
            assert reply.usage.prompt_tokens > 0
            job_id = client.deployment.job_id
        job = await ow.jobs.retrieve(job_id)
        assert job.status == "canceled"
