"""ow.scheduler: the cluster manager (`python -m ow.scheduler`, `ow scheduler`, `ow up`).

A pure `plan(view, now, limits)` over the org's cluster view, and the shell (`Scheduler`) that
folds the streams into that view, holds the org's leader lease and carries the plan out
through a provider (`local`, `runpod`, or the `FakeRunPod` stand-in).

Imports `ow.core` only; `runpod` lazily inside its provider.
"""

from ow.scheduler._run import run_scheduler
from ow.scheduler.hardware import GPU_TABLE, Hardware, cheapest
from ow.scheduler.plan import (
    Action,
    DropClaim,
    Limits,
    Notice,
    Provision,
    Requeue,
    Terminate,
    View,
    plan,
    reconcile,
)
from ow.scheduler.providers import (
    FakeRunPod,
    LocalProvider,
    Provider,
    ProviderError,
    RunPodProvider,
    make_provider,
)
from ow.scheduler.service import Scheduler, limits_from
from ow.scheduler.ttl import TTLWatchdog

__all__ = [
    "GPU_TABLE",
    "Action",
    "DropClaim",
    "FakeRunPod",
    "Hardware",
    "Limits",
    "LocalProvider",
    "Notice",
    "Provider",
    "ProviderError",
    "Provision",
    "Requeue",
    "RunPodProvider",
    "Scheduler",
    "TTLWatchdog",
    "Terminate",
    "View",
    "cheapest",
    "limits_from",
    "make_provider",
    "plan",
    "reconcile",
    "run_scheduler",
]
