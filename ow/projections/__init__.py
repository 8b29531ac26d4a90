"""ow.projections: DuckDB read models folded from the log; catch-up, rebuild, replay, audit.

Imports `ow.core` only (duckdb and pyarrow lazily, inside the code that needs them).
"""

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
