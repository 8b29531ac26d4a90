"""The heartbeats stream (OW_HEARTBEATS): its table, and keeping the newest ping per worker.

Heartbeats are advisory and bounded: order-free (the newest `ts` wins, so no fold is
needed), and one that does not decode is skipped, not recorded as history.

Imports: msgspec, `ow.core` and the projection's private modules.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ow.core import events as ev
from ow.core.bus import Msg
from ow.projections._tables import Table, Writer

__all__ = ["PINGS", "HeartbeatsFold"]

PINGS = Table("pings", (
    ("worker_id", "VARCHAR"), ("ts", "TIMESTAMPTZ"), ("run_id", "VARCHAR"), ("seq", "BIGINT"),
), order="worker_id", key="worker_id")

_ping_dec = msgspec.json.Decoder(ev.WorkerPinged)

#: the rows in `PINGS` column order (it inserts by position)
_UPSERT = ("INSERT INTO pings SELECT * FROM _rows ON CONFLICT (worker_id) DO UPDATE "
           "SET ts = excluded.ts, run_id = excluded.run_id, seq = excluded.seq "
           "WHERE excluded.ts >= pings.ts")


class HeartbeatsFold(Writer):
    """Folding heartbeat batches."""

    def _pings(self, msgs: list[Msg]) -> None:
        """Heartbeats keep the newest ping per worker (order-free, so no fold is needed)."""
        latest: dict[str, tuple[datetime, str, int]] = {}
        for m in msgs:
            try:
                p = _ping_dec.decode(m.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # heartbeats are advisory and bounded; a bad one is not history
            if p.ts and (p.worker_id not in latest or p.ts >= latest[p.worker_id][0]):
                latest[p.worker_id] = (p.ts, p.run_id, m.seq)
        rows = PINGS.arrow({
            "worker_id": list(latest),
            "ts": [v[0] for v in latest.values()],
            "run_id": [v[1] for v in latest.values()],
            "seq": [v[2] for v in latest.values()],
        })
        if rows.num_rows:
            self._on_rows(rows, _UPSERT)
