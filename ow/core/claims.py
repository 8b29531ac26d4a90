"""Claims: exactly one runner per job generation (DESIGN §3).

The claim on a job lives in KV `ow_claims` under `<org>.<job_id>`. An agent wins it with
`kv.create`; every later write about that run is a CAS on the claim's revision (the fencing
token). Requeue and reset delete the claim with CAS, then publish the event that makes the job
pending again; a crash between the two is repaired by the scheduler's reconciler.

Imports: msgspec and `ow.core` (bus, events, subjects).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from ow.core import events as ev
from ow.core import subjects

if TYPE_CHECKING:  # annotations only: `import ow` does not load nats
    from ow.core.bus import Bus, KvEntry

__all__ = ["Claim", "current", "finish", "release", "take"]

log = logging.getLogger(__name__)


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    gen: int
    worker_id: str
    run_id: str
    done: bool = False  # the run published its result; the claim stays until a reset


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Claim)


async def current(bus: Bus, job_id: str) -> tuple[Claim, int] | None:
    """The claim on a job and its revision, or None."""
    entry: KvEntry | None = await bus.kv_get(
        subjects.CLAIMS_BUCKET, subjects.claim_key(bus.org, job_id)
    )
    if entry is None:
        return None
    try:
        return _dec.decode(entry.value), entry.revision
    except msgspec.DecodeError:
        log.warning("undecodable claim on job_id=%s", job_id)
        return None


async def take(bus: Bus, job_id: str, claim: Claim) -> int | None:
    """Try to claim a job: the claim revision if won, None if someone else holds it."""
    return await bus.kv_create(
        subjects.CLAIMS_BUCKET, subjects.claim_key(bus.org, job_id), _enc.encode(claim)
    )


async def finish(bus: Bus, job_id: str, claim: Claim, rev: int) -> int | None:
    """Mark the claim done with CAS: the new revision, or None if it was taken away."""
    done = msgspec.structs.replace(claim, done=True)
    return await bus.kv_update(
        subjects.CLAIMS_BUCKET, subjects.claim_key(bus.org, job_id), _enc.encode(done), rev
    )


async def release(
    bus: Bus,
    job_id: str,
    run_id: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    rev: int | None = None,
    worker_gone: bool = False,
) -> bool:
    """Requeue a run: delete its claim with CAS, then publish `JobRequeued` (`worker_gone`:
    the run's worker is terminated, and the job fold never takes a run from it again).

    Returns False (and publishes nothing) if the claim is not held by `run_id` any more,
    or moved past `rev` when given.
    """
    found = await current(bus, job_id)
    if found is None or found[0].run_id != run_id or found[0].done:
        return False
    claim, found_rev = found
    if rev is not None and rev != found_rev:
        return False
    key = subjects.claim_key(bus.org, job_id)
    if not await bus.kv_delete(subjects.CLAIMS_BUCKET, key, last=found_rev):
        return False
    await bus.publish(
        ev.JobRequeued(job_id=job_id, run_id=run_id, reason=reason, evidence=evidence or {},
                       worker_gone=worker_gone)
    )
    return True
