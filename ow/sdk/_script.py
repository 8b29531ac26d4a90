"""A script run: `ow.run` used outside a job makes the script its own job, as openweights does.

openweights' `Run()` without a run id inserts a `script` job (`sjob-<hash>`, the command line
as its script) and an in-progress run of it. Here the same is three writes, in the order that
keeps every other component out: the claim first (`kv.create`, so no agent can take the job),
then `JobSubmitted` (type `script`, params `{"script": argv}`), then `RunStarted` by this
process, fenced on the job's subject. Records logged then count for that run. `end` marks the
claim done and publishes `RunFinished` (completed, exit 0), when the client closes (the sync
client closes at exit); a script that dies before leaves the run in progress, as upstream.

A script run's worker never registers, so the scheduler's lost-worker rules never requeue it.

Imports: stdlib and `ow.core`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ow.core import claims
from ow.core import events as ev
from ow.core.errors import ConflictError
from ow.core.ids import new_id, uuid7

if TYPE_CHECKING:
    from ow.core.bus import Bus

__all__ = ["ScriptRun", "end", "start"]


@dataclass(frozen=True)
class ScriptRun:
    job_id: str
    run_id: str
    claim: claims.Claim
    claim_rev: int


def _job_id() -> str:
    """openweights' form: `sjob-` and 12 hex digits (new for every script run)."""
    return "sjob-" + hashlib.sha256(uuid7().encode()).hexdigest()[:12]


async def start(bus: Bus, argv: list[str] | None = None) -> ScriptRun:
    """Create the script job and its run, claimed by this process."""
    job_id, run_id = _job_id(), new_id("run")
    worker_id = f"script-{socket.gethostname()}-{os.getpid()}"
    claim = claims.Claim(gen=0, worker_id=worker_id, run_id=run_id)
    rev = await claims.take(bus, job_id, claim)
    if rev is None:  # a fresh random id: only a collision of 48 random bits gets here
        raise ConflictError(job_id, None, "(a script job of that id is already claimed)")
    command = " ".join(sys.argv if argv is None else argv)
    seq = await bus.publish(
        ev.JobSubmitted(job_id=job_id, job_type="script", params={"script": command},
                        entrypoint=command),
        expected_seq=0,
    )
    await bus.publish(
        ev.RunStarted(run_id=run_id, job_id=job_id, gen=0, worker_id=worker_id, claim_rev=rev),
        expected_seq=seq,
    )
    return ScriptRun(job_id=job_id, run_id=run_id, claim=claim, claim_rev=rev)


async def end(bus: Bus, run: ScriptRun) -> None:
    """Finish the run as completed (nothing if its claim was taken away meanwhile)."""
    if await claims.finish(bus, run.job_id, run.claim, run.claim_rev) is None:
        return
    await bus.publish(ev.RunFinished(run_id=run.run_id, job_id=run.job_id, status="completed",
                                     exit_code=0))
