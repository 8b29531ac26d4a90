"""Pure agent decisions: which jobs this worker can serve, how long to wait before claiming,
and what to do with a dispatched job event (`offer`: take it, give it back, or drop it).

Imports: stdlib and `ow.core` only. No I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ow.core import defaults, hardware
from ow.core import events as ev
from ow.core.state import JobState

__all__ = [
    "Decision", "Drop", "GiveBack", "Hardware", "Take", "can_serve", "claim_delay", "nak_delay",
    "offer", "outcome",
]


@dataclass(frozen=True)
class Hardware:
    """What a worker offers: its hardware label (`1x A100`, `cpu`), GPUs, total VRAM, image."""

    name: str = "cpu"
    gpus: tuple[str, ...] = ()
    vram_gb: float = 0.0
    image: str = defaults.DEFAULT_IMAGE  # "*" serves jobs of any image (a local machine)
    cached_models: tuple[str, ...] = field(default=())


def can_serve(hw: Hardware, job: ev.JobSubmitted) -> tuple[bool, str]:
    """Whether this worker may run the job, and if not, why (`ow.core.hardware.mismatch`)."""
    why = hardware.mismatch(
        hardware.Offer(hardware=hw.name, vram_gb=hw.vram_gb, image=hw.image),
        hardware.Need(requires_vram_gb=job.requires_vram_gb,
                      allowed_hardware=tuple(job.allowed_hardware), image=job.image),
    )
    return not why, why


def claim_delay(job: ev.JobSubmitted, hw: Hardware, rng: random.Random) -> float:
    """A worker with the job's model cached claims at once; others yield a short jittered delay."""
    if not job.model or job.model in hw.cached_models:
        return 0.0
    return rng.uniform(0.05, defaults.CLAIM_DELAY_MAX_S)


def nak_delay(num_delivered: int) -> float:
    """Back-off before a job this worker cannot serve is offered again (to anyone)."""
    return min(30.0, defaults.DISPATCH_NAK_DELAY_S * max(1, num_delivered))


@dataclass(frozen=True)
class Take:
    """Claim the job now."""


@dataclass(frozen=True)
class GiveBack:
    """Hand the job event back to the dispatcher, to be offered again after `delay_s`."""

    delay_s: float
    why: str


@dataclass(frozen=True)
class Drop:
    """Acknowledge the job event: the job needs no runner (any more)."""

    why: str


Decision = Take | GiveBack | Drop


def offer(
    state: JobState | None, hw: Hardware, delivered: int, *, claim_delay_s: float = 0.0,
    claim_lost: bool = False,
) -> Decision:
    """What to do with a dispatched job event, given the job's state (None: not a job event
    that asks for a runner), how often it was delivered, and this worker's `claim_delay`.

    `claim_lost`: this worker just lost the claim race (or its claim was refused), and
    `state` is the job re-read since.
    """
    if state is None or state.status != "pending":
        return Drop(f"job is {state.status if state else 'not dispatchable'}")
    if claim_lost:
        return GiveBack(nak_delay(delivered), "another worker holds the claim")
    ok, why = can_serve(hw, state.spec)
    if not ok:
        return GiveBack(nak_delay(delivered), why)
    if claim_delay_s and delivered == 1:
        return GiveBack(claim_delay_s, "yielding to a worker with the model cached")
    return Take()


def outcome(exit_code: int | None, canceled: bool, timed_out: bool) -> str:
    """The run status from how its process ended."""
    if canceled or timed_out:
        return "canceled"
    return "completed" if exit_code == 0 else "failed"
