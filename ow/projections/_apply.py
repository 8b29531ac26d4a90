"""Applying one batch of one stream to the DuckDB tables, in one transaction.

`Folder.apply(stream, msgs)` hands the batch to its stream's fold — control events
(`_control.py`: job and worker events folded with `ow.core.state`), metrics (`_metrics.py`:
records exploded into long rows) or heartbeats (`_heartbeats.py`) — and records the stream
position it reached in the same transaction: a crash either applies the whole batch with
its position or nothing of it. Each of those modules declares its tables (`_tables.Table`)
next to the code that builds their rows.

Rows are loaded through Arrow tables (never `executemany`).

Imports: `ow.core` and the projection's private modules (which load duckdb and pyarrow lazily).
"""

from __future__ import annotations

import contextlib
from typing import Any

from ow.core.bus import Msg
from ow.core.state import JobState, WorkerState
from ow.projections._control import ControlFold
from ow.projections._heartbeats import HeartbeatsFold
from ow.projections._metric_columns import long_columns as _long_columns
from ow.projections._metrics import MetricsFold

__all__ = ["Folder"]


class Folder(ControlFold, MetricsFold, HeartbeatsFold):
    """Folds batches into one DuckDB connection; holds the folded states in memory."""

    def __init__(self, con: Any, *, fresh: bool = False):
        self.con = con
        self.fresh = fresh  # every state is in memory (a rebuild): never read rows back
        self._written: dict[str, set[str]] = {}  # while fresh: ids each table has rows of
        self.jobs: dict[str, JobState] = {}
        self.workers: dict[str, WorkerState] = {}

    def position(self, stream: str) -> int:
        row = self.con.execute("SELECT seq FROM positions WHERE stream = ?", [stream]).fetchall()
        return int(row[0][0]) if row else 0

    def apply(self, stream: str, msgs: list[Msg]) -> None:
        """Apply one batch and record `msgs[-1].seq` as the stream's position, atomically."""
        self.write(stream, msgs, self.prepare(stream, msgs))

    def prepare(self, stream: str, msgs: list[Msg]) -> Any:
        """The part of applying a batch that needs no database, for `write`: metrics read
        into columns. `Projector` runs it for the next batch while this one is written."""
        return _long_columns(msgs) if stream == "OW_METRICS" and msgs else None

    def write(self, stream: str, msgs: list[Msg], prepared: Any) -> None:
        """`apply` with what `prepare` returned for the same batch."""
        if not msgs:
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            if stream == "OW_METRICS":
                self._metrics(stream, msgs, prepared)
            elif stream == "OW_HEARTBEATS":
                self._pings(msgs)
            else:
                self._control(stream, msgs)
            self.con.execute(
                "UPDATE positions SET seq = ? WHERE stream = ?", [msgs[-1].seq, stream]
            )
            self.con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                self.con.execute("ROLLBACK")
            self.jobs.clear()  # the cache may hold states the rollback just undid
            self.workers.clear()
            self.fresh = False
            self._written.clear()
            raise
