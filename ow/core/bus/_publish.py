"""Publishing: the envelope stamp, one event (deduplicated, optionally a CAS on its subject),
a pipelined batch, and raw bytes (metric batches, log chunks).

Publishing sets `Nats-Msg-Id = event_id`, so a retried publish is stored once.

Imports: stdlib, msgspec, nats (through the base) and `ow.core`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ow.core import codec, subjects
from ow.core import events as ev
from ow.core.bus._base import BusBase
from ow.core.bus._errors import mapped
from ow.core.ids import uuid7

__all__ = ["PublishMixin"]


class PublishMixin(BusBase):
    """`stamp`, `publish`, `publish_batch`, `publish_raw`."""

    def stamp(self, event: ev.Event) -> ev.Event:
        """Fill in the envelope: event id, time, org and actor where they are empty."""
        return msgspec.structs.replace(
            event,
            event_id=event.event_id or uuid7(),
            ts=event.ts or ev.now(),
            org=event.org or self.org,
            actor=event.actor or self.actor,
            sender=self.sender if type(event).__name__ in subjects.BOUND_EVENTS else "",
        )

    async def publish(self, event: ev.Event, *, expected_seq: int | None = None) -> int:
        """Publish one event (deduplicated by its id) and return its stream sequence.

        With `expected_seq`, the write succeeds only if the event's subject is still at that
        sequence (0: the subject must be empty); otherwise `ConflictError`.
        """
        event = self.stamp(event)
        subject = subjects.subject_of(event)
        headers = {"Nats-Msg-Id": event.event_id}
        if expected_seq is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected_seq)
            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = subjects.aggregate_of(subject)
        ack = await self.retrying(
            "publish", subject, self.js.publish, subject, codec.encode(event), headers=headers
        )
        return ack.seq

    async def publish_batch(self, events: list[ev.Event]) -> list[int]:
        """Publish many events pipelined (publish_async) and wait for every ack."""
        futures = []
        with mapped("publish"):
            for event in events:
                event = self.stamp(event)
                futures.append(
                    await self.js.publish_async(
                        subjects.subject_of(event), codec.encode(event),
                        headers={"Nats-Msg-Id": event.event_id},
                    )
                )
            return [(await f).seq for f in futures]

    async def publish_raw(
        self, subject: str, data: bytes, msg_id: str = "", wait: bool = True
    ) -> Any:
        """Publish bytes (a metrics batch, a log chunk); returns the ack or its future."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        with mapped("publish", subject):
            if wait:
                return await self.js.publish(subject, data, headers=headers)
            return await self.js.publish_async(subject, data, headers=headers)
