"""End to end through a real nats-server and agent: fine-tune the tiny model, then sample
from the trained adapter with an inference job (the cookbook's flow, on a CPU)."""

import json
import uuid

import pytest

from tests.integration.agents import client, running_agents
from tests.payloads import data

pytestmark = [pytest.mark.anyio, pytest.mark.slow]



@pytest.mark.timeout(240)
async def test_fine_tune_then_infer_with_the_adapter(nats, tiny_model, tmp_path):
    import payloads.jobs  # noqa: F401  (registers the built-in job types)

    url, org = nats.url, f"t{uuid.uuid4().hex[:10]}"
    # the operator shares the local base model with sandboxed jobs (the adapter names it)
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path,
                                                      sandbox_ro=str(tiny_model)):
        train = await ow.files.upload(data.conversations(tmp_path / "train.jsonl", n=8),
                                      "conversations")
        job = await ow.fine_tuning.create(
            model=str(tiny_model), training_file=train["id"], max_steps=4, save_steps=2,
            learning_rate=1e-3, r=4, per_device_train_batch_size=4,
            gradient_accumulation_steps=1, warmup_steps=0, max_seq_length=64,
            train_on_responses_only=True,
        )
        assert job.params["validated_params"]["finetuned_model_id"].startswith("ow/")
        done = await ow.jobs.wait(job.id, timeout=180)
        assert set(done.outputs) >= {"model", "adapter_file", "train_loss"}
        events = [e["data"] for e in await ow.events.list(job_id=job.id)]
        assert [e["step"] for e in events if "learning_rate" in e] == [1, 2, 3, 4]

        prompts = await ow.files.upload(data.prompts(tmp_path / "prompts.jsonl"), "conversations")
        inf = await ow.inference.create(model=done.outputs["adapter_file"],
                                        input_file_id=prompts["id"], max_tokens=4, temperature=0,
                                        requires_vram_gb=0)  # an adapter file id: size unknown
        finished = await ow.jobs.wait(inf.id, timeout=120)
        rows = [json.loads(x) for x in
                (await ow.files.content(finished.outputs["file"])).decode().splitlines()]
        assert len(rows) == 2
        assert rows[1]["messages"][-1] == {"role": "assistant", "content": "blue is"}
        assert all("completion" in r for r in rows)
