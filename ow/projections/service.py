"""The read service (`ow serve`): one live projector per org, answering queries over NATS.

`ReadService(home, url).run()` follows every org: orgs are NATS accounts, each org's control
token is in `<home>/tenancy.json` (none: the unauthenticated stack and its `default` org),
and the file is read again every `ORGS_TICK_S` for orgs created since. Per org it connects
one `Bus`, folds the org's streams into `<home>/projections/service/<org>.duckdb` (a file of
its own, never the one `ow` commands fold privately) with `Projector.run()` — caught up once,
then pushed every new message — and answers `ow.q.<org>.<query>` for every query of
`ow.projections.queries`, as a `nats.micro` service inside the org's account: NATS decides
who may ask.

An answer reflects at least the positions asked for: `at_least` per stream, or `latest`
(the org's last sequence of each stream the query reads, looked up at the request). The
handler waits for the projector's commits to reach them (woken by each commit, no polling),
up to `READ_WAIT_S`, then answers "behind". A bad request or a failing query answers an
error; the service goes on. A crash loses nothing: the projector resumes from the position
it committed with its rows.

Imports: anyio, msgspec, `ow.core` and the sibling projection modules.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec

from ow.core import bus as bus_mod
from ow.core import defaults, subjects, tenancy
from ow.core.bus import Bus, ServiceFault
from ow.core.errors import BusUnavailableError, NotFoundError, OWError
from ow.core.ids import encode_token
from ow.projections.client import encode_error
from ow.projections.queries import (
    QUERIES,
    Answer,
    Ask,
    QueryError,
    ServiceBehindError,
    params_of,
    run_query,
)
from ow.projections.runner import Projector, stream_filter

__all__ = ["ReadService", "service_path"]

log = logging.getLogger(__name__)

_enc = msgspec.json.Encoder()
_CACHED_ANSWERS = 512  # per org; all dropped when full
_ask_dec = msgspec.json.Decoder(Ask)


def service_path(home: Path, org: str) -> Path:
    """The read service's projection of an org: `<home>/projections/service/<org>.duckdb`."""
    return Path(home) / "projections" / "service" / f"{encode_token(org)}.duckdb"


def orgs_of(home: Path, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """{org: control token} of every org the service follows ("" on an open stack, whose
    orgs are the default one and any named in `extra`)."""
    state = tenancy.load(home)
    if not state.enabled:
        return {org: "" for org in (defaults.DEFAULT_ORG, *extra)}
    return {org: tenancy.control_token(state, org) for org in state.orgs}


@dataclass
class _Flight:
    done: anyio.Event = field(default_factory=anyio.Event)
    value: int = 0
    error: BaseException | None = None


class LastSeqs:
    """The org's last sequence on each stream, looked up once for many requests: a request
    joins the lookup that will start next (never one already under way, which might miss
    what the request's caller wrote), so 50 concurrent readers cost about one lookup per
    round trip instead of 50. It also keeps the org's recent answers (`answers`)."""

    def __init__(self, p: Projector):
        self.p = p
        #: encoded answers by (query, params, positions of the streams it reads): the
        #: tables it reads are fixed at those positions, so an equal request gets the same
        #: bytes
        self.answers: dict[tuple[str, bytes, tuple[int, ...]], bytes] = {}
        self._next: dict[str, _Flight] = {}
        self._locks: dict[str, anyio.Lock] = {}

    async def get(self, stream: str) -> int:
        flight = self._next.get(stream)
        if flight is not None:  # not started yet: its lookup begins after we arrived
            await flight.done.wait()
        else:
            flight = self._next[stream] = _Flight()
            try:
                async with self._locks.setdefault(stream, anyio.Lock()):
                    del self._next[stream]  # who comes now waits for the next lookup
                    flight.value = await self._lookup(stream)
            except BaseException as exc:
                flight.error = exc
                raise
            finally:
                self._next.pop(stream, None) if self._next.get(stream) is flight else None
                flight.done.set()
        if flight.error is not None:
            raise BusUnavailableError(
                f"looking up the last sequence of {stream} failed: {flight.error}")
        return flight.value

    async def _lookup(self, stream: str) -> int:
        """The org's last sequence on `stream`. Nothing stored past what the projector has
        folded (the stream's own last sequence, one cheap request) means none of the org's
        either; only otherwise the last message under the org's filter, which costs the
        server a walk of every subject (45 ms at 100k jobs: most of a served `ow ls`)."""
        last = await self.p.bus.stream_last_seq(stream)
        if last <= self.p.position(stream):
            return last
        return await self.p.bus.last_seq(stream, stream_filter(stream, self.p.bus.org))

    async def of(self, streams: tuple[str, ...]) -> dict[str, int]:
        out: dict[str, int] = {}

        async def one(s: str) -> None:
            out[s] = await self.get(s)

        async with anyio.create_task_group() as tg:
            for s in streams:
                tg.start_soon(one, s)
        return out


@dataclass
class _Org:
    name: str
    ready: anyio.Event = field(default_factory=anyio.Event)
    bus: Bus | None = None
    projector: Projector | None = None


class ReadService:
    """Follows every org's streams and answers their queries until cancelled."""

    def __init__(
        self,
        home: str | Path,
        url: str = defaults.DEFAULT_URL,
        *,
        read_wait_s: float = defaults.READ_WAIT_S,
        orgs_tick_s: float = defaults.ORGS_TICK_S,
        orgs: tuple[str, ...] = (),
    ):
        self.home = Path(home).expanduser()
        self.extra_orgs = tuple(orgs)  # followed too on an open stack (no tenancy.json)
        self.url = url
        self.read_wait_s = read_wait_s
        self.orgs_tick_s = orgs_tick_s
        self.orgs: dict[str, _Org] = {}
        self._changed = anyio.Event()  # set when an org is added

    # --- what the web dashboard and tests use -----------------------------------------

    async def projector_for(self, org: str) -> Projector:
        """The live, following projector of `org` (waits until it has caught up)."""
        return (await self._ready(org)).projector  # type: ignore[return-value]

    async def bus_for(self, org: str) -> Bus:
        """A connected bus of `org` with the operator's (control) credentials."""
        return (await self._ready(org)).bus  # type: ignore[return-value]

    async def _ready(self, org: str) -> _Org:
        while org not in self.orgs:
            if org not in orgs_of(self.home, self.extra_orgs):
                raise NotFoundError("org", org, f"`ow org create {org}` adds it")
            changed = self._changed
            await changed.wait()
        entry = self.orgs[org]
        await entry.ready.wait()
        return entry

    # --- running ----------------------------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve every org; report started once the orgs known now answer queries."""
        async with anyio.create_task_group() as tg:
            first = self._add_new(tg)
            for entry in first:
                await entry.ready.wait()
            task_status.started()
            while True:
                await anyio.sleep(self.orgs_tick_s)  # tenancy.json has no change feed
                self._add_new(tg)

    def _add_new(self, tg: Any) -> list[_Org]:
        try:
            known = orgs_of(self.home, self.extra_orgs)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("cannot read the orgs in %s (%s); trying again", self.home, exc)
            return []
        added = []
        for org, token in known.items():
            if org not in self.orgs:
                self.orgs[org] = entry = _Org(org)
                added.append(entry)
                tg.start_soon(self._keep_serving, entry, token)
        if added:
            changed, self._changed = self._changed, anyio.Event()
            changed.set()
        return added

    async def _keep_serving(self, entry: _Org, token: str) -> None:
        """Serve one org; after a failure (server restart, account not loaded yet), again."""
        delay = 0.25
        while True:
            try:
                await self._serve(entry, token)
            except Exception as exc:  # one org's failure never stops the others
                log.warning("read service for org %s stopped (%s: %s); restarting",
                            entry.name, type(exc).__name__, exc, exc_info=not isinstance(
                                exc, OWError | OSError))
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _serve(self, entry: _Org, token: str) -> None:
        org = entry.name
        bus = await bus_mod.connect(self.url, org=org, token=token, actor="read-service",
                                    name=f"ow-read-{org}")
        try:
            await bus.provision()
            async with Projector(bus, service_path(self.home, org)) as p:
                endpoints = {q: subjects.query_subject(org, q) for q in QUERIES}

                last = LastSeqs(p)

                async def handle(name: str, data: bytes) -> bytes:
                    return await self.answer(p, name, data, last)

                async with anyio.create_task_group() as tg:
                    await tg.start(p.run)
                    await tg.start(bus.serve, subjects.READ_SERVICE, endpoints, handle)
                    entry.bus, entry.projector = bus, p
                    entry.ready.set()
                    log.info("read service: org %s at %s", org, p.positions())
        finally:
            if entry.ready.is_set():  # who asks now waits for the next start
                entry.ready = anyio.Event()
            entry.bus = entry.projector = None
            with anyio.CancelScope(shield=True):
                await bus.close()

    async def answer(
        self, p: Projector, name: str, data: bytes, last: LastSeqs | None = None
    ) -> bytes:
        """One request: parse, wait for the positions asked, run the query, encode."""
        try:
            try:
                ask = _ask_dec.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise QueryError(f"malformed request to query {name!r}: {exc}") from exc
            params = params_of(name, ask.params)
            last = last or LastSeqs(p)
            await self._wait(p, name, ask, last)
            positions = {s: p.position(s) for s in QUERIES[name].streams}  # what it reflects
            # the positions of the streams the query reads: metrics streaming in do not
            # invalidate a job list
            key = (name, _enc.encode(params), tuple(positions.values()))
            if QUERIES[name].cached and key in last.answers:
                return last.answers[key]
            result = await run_query(p, name, params, self.home / "projections" / "exports")
            data = _enc.encode(Answer(result=result, positions=positions))
            if QUERIES[name].cached:
                if len(last.answers) >= _CACHED_ANSWERS:
                    last.answers.clear()
                last.answers[key] = data
            return data
        except OWError as exc:
            code, body = encode_error(exc)
            if code == "500":
                log.warning("query %s failed: %s", name, exc)
            raise ServiceFault(code, str(exc), body) from exc

    async def _wait(self, p: Projector, name: str, ask: Ask, last: LastSeqs) -> None:
        target = dict(ask.at_least)
        with anyio.move_on_after(self.read_wait_s) as scope:
            if ask.latest:
                for s, seq in (await last.of(QUERIES[name].streams)).items():
                    target[s] = max(seq, target.get(s, 0))
            await p.wait_for(target)
        if scope.cancelled_caught:
            have = p.positions()
            raise ServiceBehindError(
                f"the read service is behind: it has folded {have}, the request needs "
                f"{target}; it is catching up — ask again, or see the `ow serve` log"
            )


@contextlib.asynccontextmanager
async def running(home: str | Path, url: str, **kw: Any) -> Any:
    """A `ReadService` running in a task group for the duration of the block (tests)."""
    svc = ReadService(home, url, **kw)
    async with anyio.create_task_group() as tg:
        await tg.start(svc.run)
        yield svc
        tg.cancel_scope.cancel()
