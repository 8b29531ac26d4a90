"""A synthetic history published straight to a real nats-server, for the read benches.

`publish_history(bus, jobs, metric_messages)`: each job is 4 control events (submitted,
started, artifact, finished), published in batches of 10k; then `metric_messages` messages
of `PER_MSG` records (`KEYS` values each: loss, lr, tokens), as `ow.run.log` sends them
(`MetricBatch`; with `arrays=True`, JSON arrays of full events, the form before it). Message
m goes to run `m % jobs`, its steps following that run's previous message, so every run's
steps rise. Publishes are pipelined (1000 in flight) and all acknowledged on return.

Used by bench_projection.py and bench_reads.py. Imports `ow.core` only.
"""

from __future__ import annotations

from datetime import timedelta

from ow.core import codec, subjects
from ow.core import events as ev
from ow.core.ids import uuid7

__all__ = ["KEYS", "PER_MSG", "publish_history"]

PER_MSG = 100  # records per metrics message
KEYS = 3  # metric values per record (loss, lr, tokens)
_IN_FLIGHT = 1000


async def publish_history(bus, jobs: int, metric_messages: int, arrays: bool = False) -> int:
    """Publish the history; returns the number of events (control events + records)."""
    await _control(bus, jobs)
    futures = []
    for m in range(metric_messages):
        futures.append(await bus.publish_raw(
            subjects.metric_subject(bus.org, f"run-{m % max(1, jobs):06d}"),
            _metrics_body(bus, m, jobs, arrays), wait=False))
        if len(futures) >= _IN_FLIGHT:
            for f in futures:
                await f
            futures = []
    for f in futures:
        await f
    return jobs * 4 + metric_messages * PER_MSG


async def _control(bus, jobs: int) -> None:
    t = ev.now()
    batch: list[ev.Event] = []
    for i in range(jobs):
        jid, rid = f"job-{i:06d}", f"run-{i:06d}"
        batch += [
            ev.JobSubmitted(job_id=jid, job_type="custom" if i % 3 else "fine-tuning",
                            model="m", params={"i": i}, ts=t),
            ev.RunStarted(run_id=rid, job_id=jid, gen=0, worker_id=f"w{i % 8}", ts=t),
            ev.ArtifactUploaded(run_id=rid, job_id=jid, file_id=f"f{i}", path="out.txt", ts=t),
            ev.RunFinished(run_id=rid, job_id=jid, status="completed", exit_code=0, ts=t),
        ]
        if len(batch) >= 10_000:
            await bus.publish_batch(batch)
            batch = []
    await bus.publish_batch(batch)


def _metrics_body(bus, m: int, jobs: int, arrays: bool) -> bytes:
    i = m % max(1, jobs)
    step0 = (m // max(1, jobs)) * PER_MSG
    t = ev.now()
    records = [bus.stamp(ev.MetricLogged(
        run_id=f"run-{i:06d}", job_id=f"job-{i:06d}", ts=t + timedelta(microseconds=s * 37),
        data={"step": step0 + s, "loss": 1.0 / (step0 + s + 1), "lr": 1e-4,
              "tokens": (step0 + s) * 512}))
        for s in range(PER_MSG)]
    if arrays:
        return b"[" + b",".join(map(codec.encode, records)) + b"]"
    return codec.encode_metrics(records, uuid7())
