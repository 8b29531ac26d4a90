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
        async with ow.api.deploy(model) as api:
            assert api.base_url.startswith("http://127.0.0.1:")
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
        with pytest.raises(Exception, match="no deployment serves"):
            await ow.chat.completions.create(model=model, messages=messages)

