"""`make demo`: `ow up` in the background, then the main jobs end to end; the stack stays up
so the demo's jobs stay visible on the dashboard (its address is printed; `ow down` stops it).

1. the cookbook's custom addition job (a=5, b=9), its events and output shown live;
2. an SFT LoRA run on a tiny model built here (random weights, a locally trained tokenizer:
   nothing is downloaded), its loss streamed live from the run's metrics;
3. batch inference with the fine-tuned adapter;
4. `with ow.api.deploy(model):` and a chat completion against it.

Everything runs on this machine's CPU: an embedded nats-server, a scheduler with the local
provider and one local agent (in a temporary ow home on a free port, so a running `ow up` is
left alone).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
COOKBOOK = HERE / "cookbook"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub


def load_cookbook_job() -> None:
    """Import the cookbook client (registers `addition`); its own module client stays idle."""
    path = HERE / "custom_job" / "client_side.py"
    spec = importlib.util.spec_from_file_location("client_side", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ow.close()


async def watch(ow, job_id: str) -> None:
    """Print the job's events and its run's output as they arrive, until the job ends."""
    from ow.core import subjects
    from ow.core.state import TERMINAL, apply

    bus = await ow.bus()
    state = None
    async with anyio.create_task_group() as tg:
        async for event in ow.events.subscribe(job_id=job_id):
            state, _ = apply(state, event)
            print(f"  event  {type(event).__name__:<14} status={state.status}")
            if type(event).__name__ == "RunStarted":
                tg.start_soon(tail_logs, bus, subjects.log_subject(bus.org, event.run_id))
            if state.status in TERMINAL:
                break
        await anyio.sleep(0.2)  # let the last log chunk print
        tg.cancel_scope.cancel()


async def tail_logs(bus, subject: str) -> None:
    from ow.core import subjects

    async for _seq, _subj, data in bus.subscribe(
        subject, stream=subjects.LOGS_STREAM, start_seq=1, raw=True
    ):
        for line in filter(None, data.decode(errors="replace").splitlines()):
            print(f"  log    {line}")


async def addition(ow) -> None:
    print("\n== custom job: the cookbook's addition (a=5, b=9) ==")
    job = await ow.addition.create(a=5, b=9)
    print(f"submitted {job.id}")
    await watch(ow, job.id)
    job = await ow.jobs.retrieve(job.id)
    print(f"result: {job.outputs['result']}  (job {job.status})")
    for event in await ow.events.list(job_id=job.id):
        print(f"  logged {event['data']}")


async def fine_tune(ow, model: str) -> str:
    print("\n== fine-tuning: SFT with LoRA on the tiny model (loss streamed live) ==")
    train = await ow.files.upload(str(COOKBOOK / "sft/data/train.jsonl"), "conversations")
    job = await ow.fine_tuning.create(
        model=model, training_file=train["id"], loss="sft", epochs=1, max_steps=8,
        learning_rate=1e-3, r=8, save_steps=4, per_device_train_batch_size=4,
        gradient_accumulation_steps=1, max_seq_length=128, train_on_responses_only=True,
    )
    print(f"submitted {job.id}")
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream_loss, ow, job.id, tg.cancel_scope)
        done = await ow.jobs.wait(job.id, timeout=600)
        tg.cancel_scope.cancel()
    loss = done.outputs["train_loss"]
    print(f"adapter: {done.outputs['adapter_file']}  (mean train loss {loss:.3f})")
    return done.outputs["adapter_file"]


async def stream_loss(ow, job_id: str, scope) -> None:
    from ow.core import subjects

    bus = await ow.bus()
    async for event in bus.subscribe(subjects.job_subject(bus.org, job_id), start_seq=1):
        if type(event.event).__name__ == "RunStarted":
            async for record in ow.metrics.subscribe(event.event.run_id):
                data = record["data"]
                if "loss" in data:
                    bar = "#" * max(1, int(data["loss"] * 6))
                    print(f"  step {data['step']:>2}  loss {data['loss']:.3f}  {bar}")


async def infer(ow, adapter: str) -> None:
    print("\n== batch inference with the fine-tuned adapter ==")
    prompts = await ow.files.upload(str(COOKBOOK / "inference/prompts.jsonl"), "conversations")
    job = await ow.inference.create(
        model=adapter, input_file_id=prompts["id"], max_tokens=12, temperature=0,
        requires_vram_gb=0,
    )
    done = await ow.jobs.wait(job.id, timeout=300)
    rows = (await ow.files.content(done.outputs["file"])).decode().splitlines()
    for line in rows[:3]:
        row = json.loads(line)
        print(f"  {row['messages'][-1]['content']!r} -> {row['completion']!r}")


async def deploy(ow, model: str) -> None:
    print("\n== ow.api.deploy: an OpenAI-compatible server as a job ==")
    async with ow.api.deploy(model) as api:
        print(f"serving at {api.base_url}")
        completion = await ow.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "is 9.11 > 9.9?"}],
            max_tokens=12, seed=1,
        )
        print(f"  chat: {completion.choices[0].message.content!r}")
    print("deployment canceled on exit")


async def main() -> None:
    from ow import AsyncOpenWeights
    from ow.cli.serve import dashboard_url
    from ow.cli.up import down, start_detached
    from ow.core.server import free_port

    home = tempfile.mkdtemp(prefix="ow-demo-")
    os.environ["OW_HOME"] = home
    # the tiny model lives beside the home, not in it (a sandboxed job never sees the ow
    # home), and the operator shares it with the jobs: the fine-tune's and, through the
    # adapter's config, the inference's and the deployment's
    model_dir = Path(tempfile.mkdtemp(prefix="ow-demo-model-")) / "tiny-model"
    os.environ["OW_SANDBOX_RO"] = str(model_dir.parent)
    url = start_detached(free_port(), home)
    os.environ["OW_URL"] = url
    print(f"ow up: NATS at {url}, scheduler (local provider), one local agent, read service")
    dashboard = await anyio.to_thread.run_sync(dashboard_url, Path(home))
    if dashboard:
        print(f"dashboard: {dashboard}  (watch the jobs below appear there, live)")
    ok = False
    try:
        load_cookbook_job()
        import payloads.jobs  # noqa: F401 - the built-in job types (fine_tuning, inference, api)
        from payloads.tiny import build_tiny_model

        model = str(await anyio.to_thread.run_sync(build_tiny_model, model_dir))
        async with AsyncOpenWeights(url=url) as ow:
            await addition(ow)
            adapter = await fine_tune(ow, model)
            await infer(ow, adapter)
            await deploy(ow, model)
        ok = True
    finally:
        if ok and dashboard:
            print(f"\nthe demo's stack stays up: its jobs are on the dashboard at {dashboard}\n"
                  f"stop it with: OW_HOME={home} ow down")
        else:
            down(home)
            print("\now down: everything stopped")


if __name__ == "__main__":
    sys.exit(anyio.run(main))
