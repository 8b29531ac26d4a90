"""Pure agent decisions: which jobs this worker can serve, how long to wait before claiming.

Imports: stdlib and `ow.core` only. No I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ow.core import defaults, hardware
from ow.core import events as ev

__all__ = ["Hardware", "can_serve", "claim_delay", "nak_delay", "outcome"]


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


def outcome(exit_code: int | None, canceled: bool, timed_out: bool) -> str:
    """The run status from how its process ended."""
    if canceled or timed_out:
        return "canceled"
    return "completed" if exit_code == 0 else "failed"
