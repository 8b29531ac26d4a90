"""`make demo`: `ow up` in the background, the cookbook's addition job end to end, then `ow down`.

Everything runs on this machine: an embedded nats-server, a scheduler with the local provider
and one local agent (in a temporary ow home on a free port, so a running `ow up` is left alone).
The job's events and its output are shown live as they happen.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent


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


async def main() -> None:
    from ow import AsyncOpenWeights
    from ow.cli.up import down, start_detached
    from ow.core.server import free_port

    home = tempfile.mkdtemp(prefix="ow-demo-")
    os.environ["OW_HOME"] = home
    url = start_detached(free_port(), home)
    os.environ["OW_URL"] = url
    print(f"ow up: NATS at {url}, scheduler (local provider) and one local agent")
    try:
        load_cookbook_job()
        async with AsyncOpenWeights(url=url) as ow:
            await addition(ow)
    finally:
        down(home)
        print("\now down: everything stopped")


if __name__ == "__main__":
    sys.exit(anyio.run(main))
