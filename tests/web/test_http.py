"""The JSON API over HTTP (httpx against the live server): answers, and the bad-input lines
of issue 14: 401 with a hint, 403 for another org's data or a read token's cancel, 404 naming
the id, 400 naming the malformed parameter (never a traceback)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.agents import (
    ShellJob,  # noqa: F401 - registers `shell`
    client,
)
from tests.integration.conftest import eventually
from tests.integration.test_tenancy import admin_bus

from .conftest import running_dashboard

pytestmark = pytest.mark.anyio


async def test_jobs_job_and_openapi_on_the_open_local_stack(bus, home):
    c = client(bus.url, "default")
    job = await c.shell.create(command="true", tag="http")
    async with running_dashboard({"default": bus}, home) as d, httpx.AsyncClient(
        base_url=d.url
    ) as http:
        r = await eventually(lambda: _listed(http, job.id))
        assert r["jobs"][0]["status"] == "pending"
        assert r["jobs"][0]["actions"] == ["cancel"]  # the open stack is admin of default
        one = (await http.get(f"/api/orgs/default/jobs/{job.id}")).json()
        assert one["params"]["validated_params"]["command"] == "true"
        assert [e["type"] for e in one["events"]] == ["JobSubmitted"]
        prefix = (await http.get("/api/orgs/default/jobs", params={"q": job.id[:8]})).json()
        assert [j["job_id"] for j in prefix["jobs"]] == [job.id]
        none = (await http.get("/api/orgs/default/jobs", params={"q": "zzz"})).json()
        assert none["jobs"] == []
        assert none["total"] == 0
        doc = (await http.get("/api/openapi.json")).json()
        assert "/api/orgs/{org}/jobs/{job_id}/cancel" in doc["paths"]
        assert doc["paths"]["/api/orgs/{org}/jobs"]["get"]["summary"].startswith("Jobs")
    await c.close()


async def _listed(http: httpx.AsyncClient, job_id: str):
    body = (await http.get("/api/orgs/default/jobs")).json()
    return body if any(j["job_id"] == job_id for j in body["jobs"]) else None


@pytest.mark.parametrize(("path", "params", "named"), [
    ("/api/orgs/default/jobs", {"limit": "abc"}, "limit"),
    ("/api/orgs/default/jobs", {"limit": "0"}, "limit"),
    ("/api/orgs/default/jobs", {"status": "done"}, "status"),
    ("/api/orgs/default/jobs", {"offset": "-1"}, "offset"),
    ("/api/orgs/default/jobs", {"at_least": "x"}, "at_least"),
    ("/api/orgs/default/events", {"before": "1e3"}, "before"),
    ("/api/orgs/default/events/stream", {"after": "seven"}, "after"),
    ("/api/orgs/default/events/stream", {"aggregate": "pods"}, "aggregate"),
])
async def test_a_malformed_query_parameter_is_a_400_naming_it(bus, home, path, params, named):
    async with running_dashboard({"default": bus}, home) as d, httpx.AsyncClient(
        base_url=d.url
    ) as http:
        r = await http.get(path, params=params)
        assert r.status_code == 400, r.text
        assert named in r.json()["error"]
        assert "Traceback" not in r.text


async def test_unknown_ids_are_404s_naming_the_id(bus, home):
    async with running_dashboard({"default": bus}, home) as d, httpx.AsyncClient(
        base_url=d.url
    ) as http:
        for path, the_id in [("/api/orgs/default/jobs/shell-nope123", "shell-nope123"),
                             ("/api/orgs/default/runs/run-nope456", "run-nope456"),
                             ("/api/orgs/default/runs/run-nope456/metrics/stream",
                              "run-nope456"),
                             ("/api/orgs/default/files/custom:file-nope789", "file-nope789")]:
            r = await http.get(path)
            assert r.status_code == 404, (path, r.text)
            assert the_id in r.json()["error"]
        r = await http.post("/api/orgs/default/jobs/shell-nope123/cancel")
        assert r.status_code == 404
        assert "shell-nope123" in r.json()["error"]
        page = await http.get("/o/default/nowhere")
        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]


async def test_tokens_401_with_a_hint_403_for_another_org_and_for_a_read_cancel(tenants):
    t = tenants
    a, b = await admin_bus(t, "orga"), await admin_bus(t, "orgb")
    secret_job = await client_for(t, "orgb").shell.create(command="true", tag="orgb-secret")
    async with running_dashboard({"orga": a, "orgb": b}, t.home) as d, httpx.AsyncClient(
        base_url=d.url
    ) as http:
        r = await http.get("/api/orgs/orga/jobs")
        assert r.status_code == 401
        assert "ow token create" in r.json()["error"]
        r = await http.get("/api/orgs/orga/jobs", headers=_bearer("ow_notatoken"))
        assert r.status_code == 401
        assert "malformed" in r.json()["error"]
        forged = t.tokens[("orga", "read")][:-4] + "AAAA"
        r = await http.get("/api/orgs/orga/jobs", headers=_bearer(forged))
        assert r.status_code == 401
        assert "ow token create" in r.json()["error"]
        read_a = _bearer(t.tokens[("orga", "read")])
        assert (await http.get("/api/orgs/orga/jobs", headers=read_a)).status_code == 200
        for path in ("/api/orgs/orgb/jobs", f"/api/orgs/orgb/jobs/{secret_job.id}",
                     "/api/orgs/orgb/events", "/api/orgs/orgb/events/stream"):
            r = await http.get(path, headers=read_a)
            assert r.status_code == 403, path
            assert secret_job.id not in r.text
            assert "orgb-secret" not in r.text
        r = await http.post(f"/api/orgs/orgb/jobs/{secret_job.id}/cancel", headers=read_a)
        assert r.status_code == 403
        read_b = _bearer(t.tokens[("orgb", "read")])
        r = await http.post(f"/api/orgs/orgb/jobs/{secret_job.id}/cancel", headers=read_b)
        assert r.status_code == 403
        assert "submit" in r.json()["error"]
        listed = (await http.get(f"/api/orgs/orgb/jobs/{secret_job.id}", headers=read_b)).json()
        assert listed["status"] == "pending"
        assert listed["actions"] == []
        submit_b = _bearer(t.tokens[("orgb", "submit")])
        r = await http.post(f"/api/orgs/orgb/jobs/{secret_job.id}/cancel", headers=submit_b)
        assert r.status_code == 200
        assert r.json()["status"] == "canceled"
    await a.close()
    await b.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_for(t, org: str):
    from ow import AsyncOpenWeights

    return AsyncOpenWeights(url=t.url, org=org, token=t.control(org), env={})


async def first_frame(http: httpx.AsyncClient, path: str, **kw) -> dict[str, str]:
    """The first SSE message of a stream (its id, event and data lines)."""
    frame: dict[str, str] = {}
    async with http.stream("GET", path, **kw) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if not line and "id" in frame:
                return frame
            key, _, value = line.partition(": ")
            if key in ("id", "event", "data"):
                frame[key] = value
    return frame


async def test_streams_resume_after_last_event_id_else_after(bus, home, tmp_path):
    import json

    from ow.core.subjects import metric_subject

    from .conftest import run_client, running_job

    async with running_dashboard({"default": bus}, home) as d, running_job(
        bus.url, d, tmp_path, "resume"
    ) as (job, run_id, _c), httpx.AsyncClient(base_url=d.url, timeout=10) as http:
        me = run_client(bus.url, job.id, run_id)
        for step in range(3):  # one message each: three stream sequences
            await me.run.log({"step": step, "loss": float(step)})
            await me.run.flush()
        await bus.publish_raw(metric_subject("default", run_id), b"{not json")
        await me.run.log({"step": 3, "loss": 3.0})
        await me.run.flush()
        await me.close()
        path = f"/api/orgs/default/runs/{run_id}/metrics/stream"
        first = await first_frame(http, path)
        seq = int(first["id"])
        assert json.loads(first["data"])["points"][0]["step"] == 0
        frame = await first_frame(http, path, params={"after": seq})
        assert json.loads(frame["data"])["points"][0]["step"] == 1
        # the browser's reconnect: Last-Event-ID wins over the page's first `after`
        frame = await first_frame(http, path, params={"after": seq},
                                  headers={"Last-Event-ID": str(int(frame["id"]))})
        assert json.loads(frame["data"])["points"][0]["step"] == 2
        # a malformed message is skipped (logged); the stream goes on past it
        frame = await first_frame(http, path, params={"after": frame["id"]})
        assert json.loads(frame["data"])["points"][0]["step"] == 3
        r = await http.get(path, headers={"Last-Event-ID": "x1"})
        assert r.status_code == 400
        assert "Last-Event-ID" in r.json()["error"]


async def test_login_keeps_the_token_in_an_httponly_strict_cookie(tenants):
    t = tenants
    a = await admin_bus(t, "orga")
    async with running_dashboard({"orga": a}, t.home) as d, httpx.AsyncClient(
        base_url=d.url
    ) as http:
        r = await http.get("/o/orga/jobs")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")
        token = t.tokens[("orga", "read")]
        r = await http.post("/login", data={"token": token, "next": "//evil.example/x"})
        assert r.status_code == 303
        assert r.headers["location"] == "/o/orga/jobs"  # never a redirect off the site
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert (await http.get("/api/orgs/orga/jobs")).status_code == 200
        assert (await http.get("/api/me")).json()["orgs"] == {"orga": "read"}
        r = await http.post("/login", data={"token": token[:-3] + "xyz"})
        assert r.status_code == 401
        assert token[-10:] not in r.text  # the secret is never echoed
        await http.post("/logout")
        assert (await http.get("/api/orgs/orga/jobs")).status_code == 401
    await a.close()


async def test_an_unexpected_error_is_a_500_without_a_traceback(home):
    from ow.web import create_app

    async def broken(org: str):
        raise RuntimeError("secret internals /etc/passwd")

    app = create_app(projector_for=broken, bus_for=broken, home=home)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://web") as http:
        r = await http.get("/api/orgs/default/jobs")
        assert r.status_code == 500
        assert r.json()["error"] == "internal error: see the read service's log"
        assert "secret internals" not in r.text
        assert "Traceback" not in r.text
