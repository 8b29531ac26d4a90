"""Crafted histories for projection, audit and CLI tests (published straight through the bus)."""

from __future__ import annotations

from ow.core import codec, subjects
from ow.core import events as ev


async def publish_metrics(
    bus, run_id: str, job_id: str, records: list[dict], *, arrays: bool = False
) -> int:
    """Publish several MetricLogged as one message: a `MetricBatch` (as `ow.run.log` sends
    them), or with `arrays` a JSON array of full events (as it sent them before)."""
    events = [bus.stamp(ev.MetricLogged(run_id=run_id, job_id=job_id, data=d)) for d in records]
    body = (b"[" + b",".join(map(codec.encode, events)) + b"]" if arrays
            else codec.encode_metrics(events, events[0].event_id))
    ack = await bus.publish_raw(subjects.metric_subject(bus.org, run_id), body)
    return ack.seq


async def completed_job(bus, job_id: str = "j1", run_id: str = "r1", worker: str = "w1") -> None:
    """A job that ran once and completed, with a worker, a file and some metrics."""
    await bus.publish(ev.WorkerRegistered(worker_id=worker, hardware="cpu", vram_gb=0))
    await bus.publish(ev.FileUploaded(file_id=f"custom_job_file:file-{job_id}", purpose="custom",
                                      filename="x.py", size_bytes=3))
    await bus.publish(ev.JobSubmitted(job_id=job_id, job_type="custom",
                                      model="m", params={"a": 1}))
    await bus.publish(ev.RunStarted(run_id=run_id, job_id=job_id, gen=0, worker_id=worker,
                                    claim_rev=1))
    await publish_metrics(bus, run_id, job_id, [
        {"step": 1, "loss": 2.0, "lr": 0.1, "tag": "a", "ok": True},
        {"step": 2, "loss": 1.0},
    ])
    await bus.publish(ev.MetricLogged(run_id=run_id, job_id=job_id, data={"step": 3, "loss": 0.5}))
    await bus.publish(ev.RunFinished(run_id=run_id, job_id=job_id, status="completed",
                                     exit_code=0, outputs={"x": 1}))
    await bus.publish(ev.WorkerPinged(worker_id=worker, run_id=run_id))


async def pending_job(bus, job_id: str = "j2") -> None:
    await bus.publish(ev.JobSubmitted(job_id=job_id, job_type="fine-tuning",
                                      model="m2"))
