"""ow.core: events, ids, subjects, defaults, errors, config, pure folds and the bus.

Imports nothing from the rest of `ow`. Only the `bus` package imports nats.
"""

from ow.core import defaults, events, ids, state, subjects
from ow.core.config import Config, from_env
from ow.core.errors import (
    BusUnavailableError,
    ConfigError,
    ConflictError,
    JobCanceledError,
    JobError,
    JobFailedError,
    NotFoundError,
    OWError,
    Problem,
    ValidationError,
    WaitTimeoutError,
)

__all__ = [
    "BusUnavailableError",
    "Config",
    "ConfigError",
    "ConflictError",
    "JobCanceledError",
    "JobError",
    "JobFailedError",
    "NotFoundError",
    "OWError",
    "Problem",
    "ValidationError",
    "WaitTimeoutError",
    "defaults",
    "events",
    "from_env",
    "ids",
    "state",
    "subjects",
]
