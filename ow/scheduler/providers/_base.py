"""The provider interface and its errors.

A provider starts and stops machines that run `python -m ow.agent`. It terminates only pods
whose id it recorded (it started them, or the shell replayed their `WorkerProvisioned`):
never list an account's pods and terminate what comes back, because the account may hold
other people's workloads.

Imports: stdlib and `ow.core.errors`, `ow.scheduler.hardware`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol, runtime_checkable

from ow.core.errors import (  # re-exported: their old home
    NoCapacityError,
    PodNotRecordedError,
    ProviderError,
    QuotaError,
)
from ow.scheduler.hardware import Hardware

__all__ = [
    "NoCapacityError",
    "PodNotRecordedError",
    "PodStatus",
    "Provider",
    "ProviderError",
    "QuotaError",
]

PodStatus = Literal["running", "exited", "unknown"]


@runtime_checkable
class Provider(Protocol):
    """Starts and stops worker machines. Every method acts only on pod ids it recorded."""

    name: str

    @property
    def offers(self) -> tuple[Hardware, ...]:
        """The hardware this provider can start (the table `cheapest` chooses from)."""
        ...

    def record(self, pod_id: str, worker_id: str) -> None:
        """Remember a pod started earlier (replayed from `WorkerProvisioned`)."""
        ...

    async def provision(
        self, worker_id: str, hardware: Hardware, image: str, env: Mapping[str, str]
    ) -> tuple[str, float]:
        """Start a machine running the agent as `worker_id`: (pod_id, price per hour)."""
        ...

    async def terminate(self, pod_id: str) -> None:
        """Stop a recorded pod (a pod already gone is fine); `PodNotRecordedError` otherwise."""
        ...

    async def status(self, pod_id: str) -> PodStatus:
        """What the provider says about a recorded pod ("unknown" for an unrecorded id)."""
        ...

    async def aclose(self) -> None:
        """Release what must not outlive the scheduler (local processes); pods stay up."""
        ...
