"""The read service on a stack with org accounts: one service follows every org (and orgs
created later), each org's tokens ask only their own org's endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core import subjects
from ow.core import tenancy as tn
from ow.core.errors import NoServiceError, OWError
from ow.projections.client import Reader
from ow.projections.service import running
from tests.integration.conftest import eventually
from tests.integration.test_tenancy import ORGS, admin_bus, tenants  # noqa: F401 - fixture

pytestmark = pytest.mark.anyio


async def test_each_orgs_tokens_read_their_org_through_one_service(tenants):  # noqa: F811
    t = tenants
    async with running(t.home, t.url, orgs_tick_s=0.05) as svc:
        assert set(svc.orgs) == {"default", *ORGS}  # the default org is an account too
        for org in ORGS:
            admin = await admin_bus(t, org)
            await admin.publish(ev.JobSubmitted(job_id=f"job-{org}", job_type="ft", model="m"))
            await admin.close()
        for org in ORGS:
            for scope in tn.SCOPES:
                b = await bus_mod.connect(t.url, org=org, token=t.tokens[(org, scope)])
                jobs = await Reader(b, fallback=False).result("list_jobs")
                assert [j["job_id"] for j in jobs] == [f"job-{org}"], (org, scope)
                await b.close()
        reader_a = await bus_mod.connect(t.url, org="orga", token=t.tokens[("orga", "read")])
        with pytest.raises(OWError) as caught:  # not orgb's answer: denied, or nobody there
            await reader_a.request(subjects.query_subject("orgb", "list_jobs"), b"{}", 1.0)
        assert "job-orgb" not in str(caught.value)
        await reader_a.close()


async def test_an_org_created_later_is_followed(tenants):  # noqa: F811
    t = tenants
    async with running(t.home, t.url, orgs_tick_s=0.05) as svc:
        t.change(tn.create_org, "orgc", datetime.now(UTC))
        admin = await admin_bus(t, "orgc")
        await admin.publish(ev.JobSubmitted(job_id="job-c", job_type="ft", model="m"))

        async def listed() -> list[str] | None:
            try:
                jobs = await Reader(admin, fallback=False).result("list_jobs")
            except NoServiceError:
                return None
            return [j["job_id"] for j in jobs]

        assert await eventually(listed, timeout=20) == ["job-c"]
        assert (await svc.projector_for("orgc")).bus.org == "orgc"
        await admin.close()
