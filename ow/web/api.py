"""The JSON API under the dashboard: each handler parses, asks (`ow.web.queries`, the SDK,
the streams) and renders JSON. `/api/openapi.json` documents every route from these
docstrings (first line: summary; the rest: description).

Errors (mapped in `ow.web.app`): 401 without a valid token (with how to get one), 403 for a
token of another org or a read token asking to cancel, 404 naming the unknown id, 400 naming
the malformed parameter.

Imports: stdlib, starlette, `ow.core`, `ow.projections` and `ow.web`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ow.core import subjects
from ow.core.ids import encode_token
from ow.projections import stream_filter
from ow.web import present, queries, sse
from ow.web.context import choice_param, int_param, web_of
from ow.web.errors import AuthError

__all__ = ["ROUTES"]


def _json(data: Any, status: int = 200) -> Response:
    """JSON by msgspec (datetimes as RFC 3339; a 10k-point run is one fast encode)."""
    return Response(_enc.encode(data), status_code=status, media_type="application/json")


_enc = msgspec.json.Encoder()


async def me(request: Request) -> Response:
    """The viewer: orgs and scopes of the tokens logged in.

    `open` is true on an unauthenticated local stack (admin of `default`)."""
    viewer = await web_of(request).viewer(request)
    return _json({"orgs": viewer.orgs, "open": viewer.open})


async def _projector(request: Request) -> tuple[Any, str, str]:
    web = web_of(request)
    org, scope = await web.org(request)
    return await web.projector_for(org), org, scope


async def jobs(request: Request) -> Response:
    """Jobs of an org, newest first.

    Query: `status` (pending, in_progress, completed, failed, canceled), `type`, `q` (job id
    prefix), `limit` (1-500, 50), `offset`, `at_least` (an OW_EVENTS sequence to wait for)."""
    status = choice_param(request, "status", present.JOB_STATUSES)
    limit = int_param(request, "limit", 50, 1, 500)
    offset = int_param(request, "offset", 0, 0, 10**9)
    seq = int_param(request, "at_least", 0, 0, 2**63)
    p, org, scope = await _projector(request)
    await queries.at_least(p, subjects.EVENTS_STREAM, seq or 0)
    out = await queries.jobs(p, status, request.query_params.get("type") or None,
                             request.query_params.get("q", "").strip(), limit or 50, offset or 0)
    for j in out["jobs"]:
        j["actions"] = present.actions(scope, j["status"])
    return _json({**out, "org": org, "scope": scope})


async def job(request: Request) -> Response:
    """One job: params, runs (generations), events with evidence, outputs, artifacts.

    `actions` lists what the viewer may do (cancel or restart: submit and admin scopes).
    Query: `at_least` (an OW_EVENTS sequence to wait for). 404 for an unknown id."""
    seq = int_param(request, "at_least", 0, 0, 2**63)
    p, org, scope = await _projector(request)
    await queries.at_least(p, subjects.EVENTS_STREAM, seq or 0)
    detail = await queries.job(p, request.path_params["job_id"])
    detail["actions"] = present.actions(scope, detail["status"])
    return _json({**detail, "org": org, "scope": scope})


async def _control(request: Request, verb: str) -> Response:
    web = web_of(request)
    org, scope = await web.org(request)
    if scope not in present.CONTROL_SCOPES:
        raise AuthError(403, f"a {scope} token cannot {verb} jobs: log in with a submit or "
                             f"admin token (`ow token create --org {org} --scope submit`)")
    job_id = request.path_params["job_id"]
    await queries.job(await web.projector_for(org), job_id)  # 404 before anything is written
    client = await web.client(org)
    result = await (client.jobs.cancel if verb == "cancel" else client.jobs.restart)(job_id)
    return _json({"job_id": job_id, "status": result.status, "requested": verb})


async def cancel(request: Request) -> Response:
    """Cancel a job (POST; submit or admin scope): a running job is killed."""
    return await _control(request, "cancel")


async def restart(request: Request) -> Response:
    """Run a finished job again (POST; submit or admin scope): a new generation."""
    return await _control(request, "restart")


async def run(request: Request) -> Response:
    """One run, with its plot points up to `position` (the OW_METRICS sequence reflected).

    Each point is `{step, values: {series: number}}`; `shown` names the series drawn at
    first. Follow with `/metrics/stream?after=<position>`. 404 for an unknown run id."""
    p, org, _scope = await _projector(request)
    info = await queries.run(p, request.path_params["run_id"])
    pts = await queries.metric_points(p, info["run_id"])
    names = sorted({k for pt in pts["points"] for k in pt["values"]})
    return _json({**info, **pts, "series": names, "shown": present.shown_series(names),
                  "org": org})


async def metrics_stream(request: Request) -> sse.EventStream:
    """SSE: a run's plot points live (`id:` = OW_METRICS sequence; resume with Last-Event-ID)."""
    web = web_of(request)
    after = sse.start_after(request)
    org, _ = await web.org(request)
    info = await queries.run(await web.projector_for(org), request.path_params["run_id"])
    items = sse.metrics(await web.bus_for(org), org, info["run_id"], after)
    return sse.respond(items, web.closing)


async def log_stream(request: Request) -> sse.EventStream:
    """SSE: a run's output live, from the first chunk kept (`id:` = OW_LOGS sequence)."""
    web = web_of(request)
    after = sse.start_after(request)
    org, _ = await web.org(request)
    info = await queries.run(await web.projector_for(org), request.path_params["run_id"])
    return sse.respond(sse.logs(await web.bus_for(org), org, info["run_id"], after), web.closing)


async def events(request: Request) -> Response:
    """The org's last events (`limit` 1-1000, 100; `before` a sequence), and `position`."""
    limit = int_param(request, "limit", 100, 1, 1000)
    before = int_param(request, "before", None, 1, 2**63)
    p, org, _ = await _projector(request)
    return _json({**await queries.events(p, limit or 100, before), "org": org})


async def events_stream(request: Request) -> sse.EventStream:
    """SSE: the org's events live; `aggregate` (job, worker, file) or `job_id` narrows them.

    With `job_id`: the job's events and the scheduler's notices about it."""
    web = web_of(request)
    after = sse.start_after(request)
    aggregate = choice_param(request, "aggregate", ("job", "worker", "file"))
    org, _ = await web.org(request)
    job_id = request.query_params.get("job_id")
    # a job's own events and the scheduler's notices about it (`scheduler.<job_id>`)
    filt = (subjects.aggregate_subject(org, "*", job_id) if job_id
            else subjects.events_filter(org, aggregate))
    return sse.respond(sse.events(await web.bus_for(org), filt, after), web.closing)


async def workers(request: Request) -> Response:
    """Workers: hardware, status, heartbeat age, current run, hourly price, cost so far.

    `position` and `pings_position`: the OW_EVENTS and OW_HEARTBEATS sequences reflected."""
    p, org, _ = await _projector(request)
    pos = await queries.position(p, subjects.EVENTS_STREAM)  # before: the streams go on from
    pings = await queries.position(p, subjects.HEARTBEATS_STREAM)
    rows = await queries.workers(p, datetime.now(UTC))
    return _json({"workers": rows, "position": pos, "pings_position": pings, "org": org})


async def pings_stream(request: Request) -> sse.EventStream:
    """SSE: workers' heartbeats live (`id:` = OW_HEARTBEATS sequence)."""
    web = web_of(request)
    after = sse.start_after(request)
    org, _ = await web.org(request)
    filt = stream_filter(subjects.HEARTBEATS_STREAM, org)
    return sse.respond(sse.pings(await web.bus_for(org), filt, after), web.closing)


async def anomalies(request: Request) -> Response:
    """Events the fold rejected (what `ow audit` reports), newest first (`limit` 1-1000)."""
    limit = int_param(request, "limit", 200, 1, 1000)
    p, org, _ = await _projector(request)
    return _json({"anomalies": await queries.anomalies(p, limit or 200), "org": org})


async def costs(request: Request) -> Response:
    """The cost ledger: dollars per job (runs x their worker's price) and for the org."""
    p, org, _ = await _projector(request)
    return _json({**await queries.costs(p, datetime.now(UTC)), "org": org})


async def file(request: Request) -> Response:
    """A file's bytes (an artifact or a run's log), as a download. 404 for an unknown id."""
    web = web_of(request)
    org, _ = await web.org(request)
    file_id = request.path_params["file_id"]
    client = await web.client(org)
    meta = await client.files.retrieve(file_id)
    data = await client.files.content(file_id)
    name = encode_token(meta.filename or file_id.replace(":", "_"))
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def ROUTES() -> list[Any]:  # noqa: N802 - a table, built when the app is
    from starlette.routing import Route

    o = "/api/orgs/{org}"
    return [
        Route("/api/me", me),
        Route(f"{o}/jobs", jobs),
        Route(f"{o}/jobs/{{job_id}}", job),
        Route(f"{o}/jobs/{{job_id}}/cancel", cancel, methods=["POST"]),
        Route(f"{o}/jobs/{{job_id}}/restart", restart, methods=["POST"]),
        Route(f"{o}/runs/{{run_id}}", run),
        Route(f"{o}/runs/{{run_id}}/metrics/stream", metrics_stream),
        Route(f"{o}/runs/{{run_id}}/log/stream", log_stream),
        Route(f"{o}/events", events),
        Route(f"{o}/events/stream", events_stream),
        Route(f"{o}/workers", workers),
        Route(f"{o}/workers/pings/stream", pings_stream),
        Route(f"{o}/anomalies", anomalies),
        Route(f"{o}/costs", costs),
        Route(f"{o}/files/{{file_id:path}}", file),
    ]
