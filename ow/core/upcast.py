"""Upcasters: turn stored events of older schema versions into the current one.

Each `upcast_<type>_v<n>_v<n+1>(raw: dict) -> dict` works on the raw dict; they chain until
the event reaches `CURRENT[type]`, then `msgspec.convert` types it. Events already current
never come here (the typed fast path in `events.decode`).

Imports: stdlib, msgspec and `ow.core.events`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["CURRENT", "UPCASTERS", "upcast", "upcast_decode"]

Raw = dict[str, Any]

#: current schema version per event type; absent means 1
CURRENT: dict[str, int] = {}

#: (type, from_version) -> function producing version from_version + 1
UPCASTERS: dict[tuple[str, int], Callable[[Raw], Raw]] = {}


def upcast_jobsubmitted_v0_v1(raw: Raw) -> Raw:
    """v0 (pre-release) named the job type `kind` and had no image: rename and default."""
    raw = dict(raw)
    raw["job_type"] = raw.pop("kind", "custom")
    raw.setdefault("image", "")
    return raw


UPCASTERS[("JobSubmitted", 0)] = upcast_jobsubmitted_v0_v1


def upcast(raw: Raw) -> Raw:
    """Apply upcasters in order until the raw event is at its type's current version."""
    kind = raw.get("type", "")
    target = CURRENT.get(kind, 1)
    v = int(raw.get("v", 1))
    while v < target:
        step = UPCASTERS.get((kind, v))
        if step is None:
            raise msgspec.ValidationError(f"no upcaster for {kind} v{v}")
        raw = step(raw)
        v += 1
        raw["v"] = v
    return raw


def upcast_decode(data: bytes) -> Any:
    """Decode bytes of any stored version into the current typed event."""
    from ow.core.events import AnyEvent

    raw = msgspec.json.decode(data)
    if not isinstance(raw, dict):
        raise msgspec.ValidationError("an event must be a JSON object")
    return msgspec.convert(upcast(raw), AnyEvent)
