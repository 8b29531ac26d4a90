"""ow: fine-tune, serve and evaluate open-weight LLMs and run custom GPU jobs, event-sourced.

    from ow import OpenWeights, AsyncOpenWeights, Jobs, register
"""

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
