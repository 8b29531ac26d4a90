"""The codec: event bytes on the log <-> typed events, the one way every reader decodes.

A stored message is one of: a single event (its `v` current: the typed fast path; older: the
raw dict goes through the upcaster chain of `upcast.py`, then `msgspec.convert`), a
`MetricBatch` (one run's metric records under one envelope, expanded into `MetricLogged`s), or
a JSON array of events (metrics as written before `MetricBatch`). `decode_message` reads any of
them; `decode` and `decode_each` are its one-event and many-events fast paths; `decode_or_skip`
is what a long-running reader calls: a bad message is logged and skipped, never raised.

A bound event's publisher identity (`Event.sender`) comes from its subject, where the
server put it (`bind`, which `decode_or_skip` applies): never from the payload.

Imports: stdlib, msgspec, `ow.core.events` (the catalogue), `ow.core.upcast` and
`ow.core.senders` (where a subject carries its publisher).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import msgspec

from ow.core.events import AnyEvent, Event, MetricBatch, MetricLogged, MetricRecord
from ow.core.senders import sender_of_subject
from ow.core.upcast import CURRENT, upcast

__all__ = [
    "METRIC_BATCH_PREFIX",
    "bind",
    "decode",
    "decode_each",
    "decode_message",
    "decode_or_skip",
    "encode",
    "encode_metrics",
    "is_metric_batch",
]

log = logging.getLogger(__name__)

#: how every message `encode_metrics` writes starts
METRIC_BATCH_PREFIX = b'{"type":"MetricBatch"'

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)
_many_decoder = msgspec.json.Decoder(list[AnyEvent])
_batch_decoder = msgspec.json.Decoder(MetricBatch)
_US = timedelta(microseconds=1)


class _Tag(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.json.Decoder(_Tag)


def encode(event: Event) -> bytes:
    """Encode one event as JSON bytes (the wire and storage format)."""
    return _encoder.encode(event)


def encode_metrics(records: list[MetricLogged], event_id: str) -> bytes:
    """One run's records as a `MetricBatch` message (`event_id` its id and Nats-Msg-Id).
    Every record must share the first's run, job, org and actor."""
    first = records[0]
    t0 = first.ts
    for r in records:
        if (r.run_id, r.job_id, r.org, r.actor) != (first.run_id, first.job_id, first.org,
                                                   first.actor):
            raise ValueError("a metrics batch holds the records of one run")
        if (r.ts is None) != (t0 is None):
            raise ValueError("a metrics batch needs a time on every record or on none")
    return _encoder.encode(MetricBatch(
        event_id=event_id, org=first.org, ts=t0, actor=first.actor, run_id=first.run_id,
        job_id=first.job_id,
        records=[MetricRecord(0 if t0 is None else (r.ts - t0) // _US, r.data)  # type: ignore[operator]
                 for r in records],
    ))


def _current(event: Event) -> bool:
    return event.v == CURRENT.get(type(event).__name__, 1)


def _upcast_decode(data: bytes) -> Any:
    """Decode bytes of any stored version into the current typed event (the slow path)."""
    raw = msgspec.json.decode(data)
    if not isinstance(raw, dict):
        raise msgspec.ValidationError("an event must be a JSON object")
    return msgspec.convert(upcast(raw), AnyEvent)


def decode(data: bytes) -> Event:
    """Decode one stored event, upcasting older schema versions (raises msgspec errors)."""
    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError:
        return _upcast_decode(data)
    return event if _current(event) else _upcast_decode(data)  # older (or unknown) version


def decode_each(datas: list[bytes]) -> list[Event] | None:
    """Decode many stored events at once (one parse instead of one call each), or None if
    any of them is not a current-version event: then `decode` them one by one."""
    try:
        events = _many_decoder.decode(b"[" + b",".join(datas) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    # one value per message: a message holding two would need another holding none,
    # which is not JSON
    if len(events) != len(datas) or any(e.v != CURRENT.get(type(e).__name__, 1) for e in events):
        return None
    return events


def is_metric_batch(data: bytes) -> bool:
    """Whether a stored message is a `MetricBatch` (valid or not)."""
    if data.startswith(METRIC_BATCH_PREFIX):
        return True
    try:
        return _tag_decoder.decode(data).type == "MetricBatch"
    except msgspec.MsgspecError:
        return False


def decode_message(data: bytes) -> list[Event]:
    """The events of one stored message: a single event, a `MetricBatch` expanded into its
    records, or a JSON array of events (raises msgspec errors)."""
    if data[:1] == b"[":  # a metrics message as written before `MetricBatch`
        return list(_many_decoder.decode(data))
    if not data.startswith(METRIC_BATCH_PREFIX):
        try:
            return [decode(data)]
        except msgspec.ValidationError:
            if not is_metric_batch(data):
                raise
    batch = _batch_decoder.decode(data)
    if batch.v != 1:
        raise msgspec.ValidationError(f"MetricBatch v{batch.v} is newer than this ow knows")
    return batch.expand()  # type: ignore[return-value]


def bind(event: Event, subject: str) -> Event:
    """`event` with its `sender` read from the subject it was stored under (whatever the
    payload said: the server checked the subject against the publisher's credential)."""
    sender = sender_of_subject(subject, type(event).__name__)
    if event.sender == sender:
        return event
    return msgspec.structs.replace(event, sender=sender)


def decode_or_skip(data: bytes, seq: int, subject: str) -> list[Event]:
    """`decode_message` for a reader that must go on: an undecodable message is logged (its
    sequence, subject and the reason) and read as no events. Each is `bind`-ed to its
    subject."""
    try:
        return [bind(e, subject) for e in decode_message(data)]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("skipping undecodable message seq=%s subject=%s: %s", seq, subject, exc)
        return []
