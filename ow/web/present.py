"""What the dashboard shows, decided once in Python (never in a template or in JavaScript):
the plot points of a metric record, the one-line summary and evidence of an event, the
actions a scope may take on a job, heartbeat ages and costs.

Pure functions: `now` is passed in. Imports: stdlib and `ow.core` only.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from ow.core.state import TERMINAL

__all__ = [
    "CONTROL_SCOPES",
    "DEFAULT_SERIES",
    "JOB_STATUSES",
    "actions",
    "age_s",
    "cost_usd",
    "event_row",
    "point",
    "shown_series",
]

JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "canceled")
CONTROL_SCOPES = frozenset({"submit", "admin"})
#: the series a run page shows before the user picks others
DEFAULT_SERIES = ("loss",)
#: record keys that label a record rather than measure something
_LABELS = ("dataset", "tag")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def point(data: dict[str, Any]) -> dict[str, Any] | None:
    """One `ow.run.log(...)` record as a plot point: `{"step": x, "values": {series: y}}`.

    Every numeric key is a series, by `step`. A record that carries labels (the log-prob
    callback's `{"type": "logp", "dataset": d, "tag": t, "logp": ...}`) puts its numbers in
    series of their own, `logp/d/t`, so each tag is a separate line. A record without an
    integer step or without a number has no point (it still shows in the latest values)."""
    step = data.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    labels = [str(data[k]) for k in _LABELS if isinstance(data.get(k), str | int)]
    suffix = "".join(f"/{label}" for label in labels)
    values = {
        f"{k}{suffix}": float(v)
        for k, v in data.items()
        if k != "step" and k not in _LABELS and _number(v)
    }
    return {"step": step, "values": values} if values else None


def shown_series(names: list[str]) -> list[str]:
    """The series shown at first: loss if the run has it, else the first one."""
    shown = [n for n in names if n in DEFAULT_SERIES]
    return shown or names[:1]


def actions(scope: str | None, status: str) -> list[str]:
    """What the viewer may do to a job: only submit and admin scopes may cancel or restart."""
    if scope not in CONTROL_SCOPES:
        return []
    return ["restart"] if status in TERMINAL else ["cancel"]


def age_s(then: datetime | None, now: datetime) -> float | None:
    """Seconds since `then` (a heartbeat), rounded to a tenth."""
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 1)


def cost_usd(price_per_hour: float | None, seconds: float | None) -> float:
    """Dollars for `seconds` at an hourly price (0 when either is unknown)."""
    if not price_per_hour or not seconds or seconds < 0:
        return 0.0
    return round(price_per_hour * seconds / 3600.0, 4)


#: the fields of an event that say why it happened, shown under its line
_WHY = ("reason", "error", "rule", "message", "status", "exit_code")
_ENVELOPE = ("event_id", "v", "org", "ts", "actor", "type")


def event_row(seq: int, body: dict[str, Any] | str) -> dict[str, Any]:
    """An event for the timeline: seq, time, type, actor, the ids it names, why it
    happened, and the evidence a decision carried (JobRequeued, WorkerTerminated,
    SchedulerNoticed)."""
    data = json.loads(body) if isinstance(body, str) else dict(body)
    ids = {k: v for k, v in data.items() if k.endswith("_id") and k != "event_id" and v}
    why = {k: data[k] for k in _WHY if data.get(k) not in (None, "", {})}
    return {
        "seq": seq,
        "ts": str(data.get("ts") or ""),
        "type": data.get("type", ""),
        "actor": data.get("actor", ""),
        "ids": ids,
        "why": why,
        "evidence": data.get("evidence") or {},
        "fields": {k: v for k, v in data.items()
                   if k not in _ENVELOPE and k not in ids and k not in why and k != "evidence"},
    }
