"""Asking the read service, or, with none answering, a private fold of this process.

`Reader(bus).ask(name, params, latest=True)` sends the query to `ow.q.<org>.<name>` and
returns its `Answer`. When NATS says no service listens ("no responders"), the same query
of `ow.projections.queries` runs on a projector this process owns alone (in memory, or
the file given as `private`), caught up on the streams the query reads: never a file
another process holds, so readers never lock each other. The fallback is announced once
per reader through `notice` (the CLI prints it on stderr, the SDK logs it at info).

Answers come back as plain values, times as aware datetimes, on both paths alike.

Imports: msgspec, anyio, `ow.core`, `queries` (the fold, `runner`, only for a private one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ow.core import defaults, subjects
from ow.core.errors import NoServiceError, NotFoundError, ProjectionError
from ow.projections.queries import (
    QUERIES,
    Answer,
    Ask,
    QueryError,
    ServiceBehindError,
    params_of,
    run_query,
)

if TYPE_CHECKING:  # a served read loads neither the fold nor DuckDB (the private one does)
    from ow.core.bus import Bus
    from ow.projections.runner import Projector

__all__ = [
    "BUSY_NOTICE", "FALLBACK_NOTICE", "Reader", "decode_answer", "encode_error", "raise_error"
]

log = logging.getLogger(__name__)

FALLBACK_NOTICE = (
    "no read service answers for org {org!r} (start one with `ow serve`, or `ow up`); "
    "reading a private fold of the log instead"
)
BUSY_NOTICE = (
    "the read service for org {org!r} did not answer ({why}); reading a private fold of "
    "the log instead (see the `ow serve` log)"
)

#: keys whose values are times: JSON carries them as ISO text, callers get datetimes back
_TIME_KEYS = frozenset({
    "ts", "created_at", "updated_at", "started_at", "finished_at", "last_ping",
    "provisioned_at", "registered_at", "terminated_at", "since",
})

_enc = msgspec.json.Encoder()
_answer_dec = msgspec.json.Decoder(Answer)


class _ErrorBody(msgspec.Struct, kw_only=True):
    kind: str  # not_found | query | behind | failed
    message: str
    what: str = ""
    id: str = ""


def encode_error(exc: Exception) -> tuple[str, bytes]:
    """(code, body) of an error answer (what `raise_error` turns back into the exception)."""
    if isinstance(exc, NotFoundError):
        body = _ErrorBody(kind="not_found", message=str(exc), what=exc.kind, id=exc.id)
        return "404", _enc.encode(body)
    if isinstance(exc, QueryError):
        return "400", _enc.encode(_ErrorBody(kind="query", message=str(exc)))
    if isinstance(exc, ServiceBehindError):
        return "503", _enc.encode(_ErrorBody(kind="behind", message=str(exc)))
    return "500", _enc.encode(_ErrorBody(kind="failed", message=f"the read service: {exc}"))


def raise_error(code: str, text: str, data: bytes) -> None:
    """Raise the `OWError` an error answer stands for."""
    try:
        body = msgspec.json.decode(data, type=_ErrorBody)
    except msgspec.DecodeError:
        body = _ErrorBody(kind="failed", message=f"the read service answered {code}: {text}")
    if body.kind == "not_found":
        err = NotFoundError(body.what, body.id)
        err.args = (body.message,)
        raise err
    cls = {"query": QueryError, "behind": ServiceBehindError}.get(body.kind, ProjectionError)
    raise cls(body.message)


def _times(value: Any) -> Any:
    if isinstance(value, list):
        return [_times(v) for v in value]
    if isinstance(value, dict):
        return {k: (_time(v) if k in _TIME_KEYS else _times(v)) for k, v in value.items()}
    return value


def _time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def decode_answer(data: bytes) -> Answer:
    answer = _answer_dec.decode(data)
    return Answer(result=_times(answer.result), positions=answer.positions)


class Reader:
    """Queries of one org: through the read service, or a private fold if none answers."""

    def __init__(
        self,
        bus: Bus,
        *,
        private: str | Path | None = None,
        notice: Callable[[str], None] | None = None,
        timeout: float = defaults.QUERY_TIMEOUT_S,
        fallback: bool = True,
    ):
        self.bus = bus
        self.fallback = fallback  # False: `NoServiceError` reaches the caller
        self.private = private
        self.notice = notice or log.info
        self.timeout = timeout
        self.served = True  # whether the last answer came from a service
        self._projector: Projector | None = None
        self._noticed = False
        self._lock = anyio.Lock()

    async def ask(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        at_least: dict[str, int] | None = None,
        latest: bool = True,
    ) -> Answer:
        """The answer to query `name`, reflecting at least `at_least` (and, with `latest`,
        every message stored on the query's streams before this call)."""
        raw = {k: v for k, v in (params or {}).items() if v is not None}
        params_of(name, raw)  # a bad parameter fails here, before any request
        ask = Ask(params=raw, at_least=at_least or {}, latest=latest)
        try:
            reply = await self.bus.request(
                subjects.query_subject(self.bus.org, name), _enc.encode(ask), self.timeout
            )
        except NoServiceError:
            if not self.fallback:
                raise
            return await self._private(name, raw)
        self.served = True
        if reply.code:
            raise_error(reply.code, reply.error, reply.data)
        return decode_answer(reply.data)

    async def result(self, name: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return (await self.ask(name, params, **kw)).result

    async def _private(self, name: str, raw: dict[str, Any]) -> Answer:
        self.served = False
        if not self._noticed:
            self._noticed = True
            self.notice(FALLBACK_NOTICE.format(org=self.bus.org))
        async with self._lock:
            if self._projector is None:
                from ow.projections.runner import Projector

                self._projector = Projector(
                    self.bus, self.private, memory=self.private is None
                )
            p = self._projector
            await p.catch_up(streams=QUERIES[name].streams)
            try:
                result = await run_query(p, name, params_of(name, raw), _scratch())
            except Exception as exc:
                code, body = encode_error(exc)
                if code == "500":
                    raise
                raise_error(code, str(exc), body)
            # the same bytes a service would send: both paths answer alike
            positions = {s: p.position(s) for s in QUERIES[name].streams}
            return decode_answer(_enc.encode(Answer(result=result, positions=positions)))

    def close(self) -> None:
        if self._projector is not None:
            self._projector.shutdown()
            self._projector = None

    async def __aenter__(self) -> Reader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _scratch() -> Path:
    from ow.core.config import home_dir

    return home_dir() / "projections" / "exports"
