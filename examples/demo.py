"""`make demo`: start the embedded server, publish a job's life as events, fold and print it."""

from __future__ import annotations

import tempfile

import anyio

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core import subjects
from ow.core.server import NatsServer
from ow.core.state import fold


async def main() -> None:
    with NatsServer(tempfile.mkdtemp(prefix="ow-demo-")) as server:
        print(f"embedded nats-server listening on {server.url}")
        bus = await bus_mod.connect(server.url, org="demo", actor="demo")
        await bus.provision()
        job = "addition-demo"
        for e in [
            ev.JobSubmitted(job_id=job, job_type="addition", params={"a": 5, "b": 9}),
            ev.RunStarted(job_id=job, run_id="run-1", gen=0, worker_id="worker-1"),
            ev.RunFinished(job_id=job, run_id="run-1", status="completed", exit_code=0,
                           outputs={"result": 14.0}),
        ]:
            await bus.publish(e)
        history, _ = await bus.history(subjects.job_subject("demo", job))
        state = None
        for d in history:
            state = fold(state, d.event)
            print(f"seq={d.seq:<3} {type(d.event).__name__:<12} -> status={state.status}")
        print(f"outputs: {state.outputs}")
        await bus.close()


if __name__ == "__main__":
    anyio.run(main)
