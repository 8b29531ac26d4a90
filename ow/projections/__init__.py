"""ow.projections: DuckDB read models folded from the log; catch-up, rebuild, replay, audit.

Imports `ow.core` only (duckdb and pyarrow lazily, inside the code that needs them). The
names below load on first use (PEP 562): a client of the read service
(`ow.projections.client`) validates and asks without loading the fold.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ow.projections._db import TABLES, ProjectionError, ProjectionLockedError
    from ow.projections.runner import Projector, default_path, rebuild, replay, stream_filter

__all__ = [
    "TABLES",
    "ProjectionError",
    "ProjectionLockedError",
    "Projector",
    "default_path",
    "rebuild",
    "replay",
    "stream_filter",
]

_FROM_DB = frozenset({"TABLES", "ProjectionError", "ProjectionLockedError"})


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'ow.projections' has no attribute {name!r}")
    module = "ow.projections._db" if name in _FROM_DB else "ow.projections.runner"
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
