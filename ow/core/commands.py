"""The job commands as pure decisions, and the one compare-and-set loop that carries them out.

Each decision looks at a job's folded state and the last sequence of its subject and says what
to write: `Publish(event, expected_seq)` (fenced on that sequence, so a concurrent writer makes
it a `ConflictError`), `Reset(event, expected_seq)` (the same, after the job's claim is
released), `Existing(state)` (nothing to write) or `Missing(job_id)`. The shells (the SDK's
`jobs` resource, the agent) carry them out inside `cas`, which reads, decides and acts again
when the act loses a race, `defaults.CAS_ATTEMPTS` times at most.

Rules: `submit` publishes a new spec, resets a failed or canceled job, and otherwise returns the
job as it is. A subject holding only undecodable events (state None, last_seq > 0) is not a job:
the spec is published fenced on that last sequence, so a poison event never burns a job id
(issue 15). `restart` resets a terminal job; `cancel` asks once for a job still running;
`start_run` publishes the agent's `RunStarted` while the job is still pending at the claimed
generation, else `Missing` (the claim is given back).

Imports: stdlib, msgspec and `ow.core` (events, state, errors, defaults); no I/O of its own
(`cas` awaits the reads and acts it is given).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from ow.core import defaults
from ow.core import events as ev
from ow.core.errors import ConflictError
from ow.core.state import TERMINAL, JobState

__all__ = [
    "Decision",
    "Existing",
    "Missing",
    "Publish",
    "Reset",
    "cancel",
    "cas",
    "restart",
    "start_run",
    "submit",
]

log = logging.getLogger(__name__)


class Publish(msgspec.Struct, frozen=True):
    """Publish `event` if the job's subject is still at `expected_seq` (0: empty)."""

    event: ev.Event
    expected_seq: int


class Reset(msgspec.Struct, frozen=True):
    """Release the job's claim, then publish the `JobReset` fenced on `expected_seq`."""

    event: ev.JobReset
    expected_seq: int


class Existing(msgspec.Struct, frozen=True):
    """Nothing to write: the job already is what was asked."""

    state: JobState


class Missing(msgspec.Struct, frozen=True):
    """No job to act on (none with this id, or no longer the one the caller read)."""

    job_id: str


Decision = Publish | Reset | Existing | Missing


def submit(state: JobState | None, last_seq: int, spec: ev.JobSubmitted) -> Decision:
    if state is None:  # nothing readable on the subject: last_seq > 0 means poison only
        return Publish(spec, last_seq)
    if state.status in ("failed", "canceled"):
        return Reset(ev.JobReset(job_id=spec.job_id, reason="resubmitted"), last_seq)
    return Existing(state)


def restart(state: JobState | None, last_seq: int, job_id: str) -> Decision:
    if state is None:
        return Missing(job_id)
    if state.status not in TERMINAL:
        return Existing(state)
    return Reset(ev.JobReset(job_id=job_id, reason="restart"), last_seq)


def cancel(state: JobState | None, last_seq: int, job_id: str) -> Decision:
    if state is None:
        return Missing(job_id)
    if state.status in TERMINAL or state.cancel_requested:
        return Existing(state)
    return Publish(ev.JobCancelRequested(job_id=job_id), last_seq)


def start_run(state: JobState | None, last_seq: int, started: ev.RunStarted) -> Decision:
    if state is None or state.status != "pending" or state.gen != started.gen:
        return Missing(started.job_id)
    return Publish(started, last_seq)


S = TypeVar("S")
R = TypeVar("R")


async def cas(
    read: Callable[[], Awaitable[tuple[S, int]]],
    decide: Callable[[S, int], Decision],
    act: Callable[[Decision, S], Awaitable[R]],
    *,
    key: str,
    first: tuple[S, int] | None = None,
    attempts: int = defaults.CAS_ATTEMPTS,
) -> R:
    """Read -> decide -> act until `act` does not raise `ConflictError` (someone else wrote
    first: read again). `act` gets the decision and the state it was made on; `first` is a
    read already made. After `attempts` lost races, a
    `ConflictError` on `key` says so."""
    for _ in range(attempts):
        state, last = first if first is not None else await read()
        first = None
        try:
            return await act(decide(state, last), state)
        except ConflictError as exc:
            log.debug("lost a race on %s (%s): reading again", key, exc)
    raise ConflictError(
        key, None, f"(lost {attempts} races in a row: it keeps changing; try again)"
    )
