"""Upcasters: turn stored events of older schema versions into the current one.

Each `upcast_<type>_v<n>_v<n+1>(raw: dict) -> dict` works on the raw dict; they chain until
the event reaches `CURRENT[type]`, then `codec.decode` types it with `msgspec.convert`. Events
already current never come here (the codec's typed fast path).

Imports: stdlib and msgspec only (the raw dicts need no event class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["CURRENT", "UPCASTERS", "upcast"]

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
