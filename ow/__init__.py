"""ow: fine-tune, serve and evaluate open-weight LLMs and run custom GPU jobs, event-sourced.

    from ow import OpenWeights, AsyncOpenWeights, Jobs, register

The names load on first use (PEP 562): `import ow.cli` or `import ow.core` does not pay
for the SDK, and `from ow import OpenWeights` works as ever.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ow.core.errors import (
        JobCanceledError,
        JobFailedError,
        NotFoundError,
        OWError,
        ValidationError,
        WaitTimeoutError,
    )
    from ow.sdk import AsyncOpenWeights, Job, Jobs, OpenWeights, Run, register

__all__ = [
    "AsyncOpenWeights",
    "Job",
    "JobCanceledError",
    "JobFailedError",
    "Jobs",
    "NotFoundError",
    "OWError",
    "OpenWeights",
    "Run",
    "ValidationError",
    "WaitTimeoutError",
    "register",
]

_ERRORS = frozenset({"JobCanceledError", "JobFailedError", "NotFoundError", "OWError",
                     "ValidationError", "WaitTimeoutError"})


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'ow' has no attribute {name!r}")
    module = importlib.import_module("ow.core.errors" if name in _ERRORS else "ow.sdk")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
