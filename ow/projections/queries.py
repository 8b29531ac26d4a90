"""The one table of read queries: name -> (view function, parameters, streams it reflects).

The read service answers each name on `ow.q.<org>.<name>`; a process with no service runs
the same function on a private fold (`ow.projections.client`). Parameters are a msgspec
Struct per query: a malformed or unknown one is a `QueryError` naming it. Answers are
msgspec JSON (`Answer`: the result and the stream positions it reflects).

Imports: msgspec, `ow.core` and the sibling projection modules (duckdb lazily).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from ow.core import subjects
from ow.core.errors import QueryError, ServiceBehindError
from ow.core.ids import uuid7
from ow.projections import views

if TYPE_CHECKING:  # a client validates parameters without loading the fold
    from ow.projections.runner import Projector

__all__ = [
    "QUERIES", "Answer", "Ask", "Query", "QueryError", "ServiceBehindError", "audit_report",
    "export", "params_of", "run_query",
]

EV, MX, HB = subjects.EVENTS_STREAM, subjects.METRICS_STREAM, subjects.HEARTBEATS_STREAM


class Ask(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request: the query's parameters; positions the answer must reflect at least
    (`at_least`: stream -> sequence), or `latest`: the streams' last sequences now."""

    params: dict[str, Any] = {}
    at_least: dict[str, int] = {}
    latest: bool = False


class Answer(msgspec.Struct, kw_only=True):
    result: Any
    positions: dict[str, int]


Count = Annotated[int, msgspec.Meta(ge=0)]


class _P(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class ListJobs(_P):
    status: str | None = None
    type: str | None = None
    prefix: str | None = None
    offset: Count = 0
    limit: Count = 100


class JobStates(_P):
    status: str | None = None
    type: str | None = None
    prefix: str | None = None
    offset: Count = 0
    limit: Count | None = None


class FindJobs(_P):
    params: dict[str, Any] = {}


class JobId(_P):
    job_id: str
    last_events: Count = 10


class RunRef(_P):
    job_or_run: str


class Workers(_P):
    include_terminated: bool = False


class WorkerId(_P):
    worker_id: str


class Metrics(_P):
    run_id: str
    key: str = "loss"


class Events(_P):
    after: Count = 0
    type: str | None = None
    aggregate: str | None = None
    aggregate_id: str | None = None
    limit: Count = 100


class Limit(_P):
    limit: Count = 100


class NoParams(_P):
    pass


@dataclass(frozen=True)
class Query:
    fn: Callable[..., Awaitable[Any]]
    params: type[_P]
    streams: tuple[str, ...]  # what the answer depends on ("latest" waits for these)
    scratch: bool = False  # takes `scratch=<dir>`: writes a file there
    #: its answer depends only on the projection (not the clock or a file): one answer
    #: serves every equal request until a stream position moves
    cached: bool = True


async def export(p: Projector, *, scratch: Path) -> dict[str, Any]:
    """A consistent copy of the projection as a DuckDB file in `scratch` (its path)."""
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f"{p.bus.org}-{uuid7()}.duckdb"
    await p.snapshot(out)
    return {"path": str(out), "positions": p.positions()}


async def audit_report(p: Projector, *, scratch: Path) -> dict[str, Any]:
    """`ow audit` over this projection: a snapshot of it checked against a fresh replay of
    the log up to the snapshot's positions (the checks of `ow.projections.audit`)."""
    from ow.projections import audit

    snap = Path((await export(p, scratch=scratch))["path"])
    try:
        report = await audit.audit_file(p.bus, snap)
    finally:
        for f in (snap, snap.with_name(snap.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f)
    return msgspec.to_builtins(report)


QUERIES: dict[str, Query] = {
    "list_jobs": Query(views.list_jobs, ListJobs, (EV,)),
    "job_states": Query(views.job_states, JobStates, (EV,)),
    "find_jobs": Query(views.find_jobs, FindJobs, (EV,)),
    "job_detail": Query(views.job_detail, JobId, (EV,)),
    "resolve_run": Query(views.resolve_run, RunRef, (EV,)),
    "list_workers": Query(views.list_workers, Workers, (EV, HB)),
    "worker": Query(views.worker, WorkerId, (EV,)),
    "metrics_summary": Query(views.metrics_summary, Metrics, (MX,)),
    "metric_series": Query(views.metric_series, Metrics, (MX,)),
    "events_page": Query(views.events_page, Events, (EV,)),
    "anomalies": Query(views.anomalies, Limit, (EV, MX, HB)),
    "costs": Query(views.costs, NoParams, (EV,), cached=False),  # up to now()
    "export": Query(export, NoParams, (EV, MX, HB), scratch=True, cached=False),
    "audit": Query(audit_report, NoParams, (EV, MX, HB), scratch=True, cached=False),
}


def params_of(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The validated parameters of a query, or `QueryError` naming what is wrong."""
    if name not in QUERIES:
        raise QueryError(f"no query {name!r}; the queries are: {', '.join(sorted(QUERIES))}")
    try:
        parsed = msgspec.convert(raw, QUERIES[name].params)
    except msgspec.ValidationError as exc:
        raise QueryError(f"bad parameter for query {name!r}: {exc}") from exc
    return msgspec.structs.asdict(parsed)


async def run_query(p: Projector, name: str, params: dict[str, Any], scratch: Path) -> Any:
    """Run query `name` with validated `params` on a caught-up projector."""
    q = QUERIES[name]
    if q.scratch:
        return await q.fn(p, **params, scratch=scratch)
    return await q.fn(p, **params)
