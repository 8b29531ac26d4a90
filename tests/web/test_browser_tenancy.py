"""Tokens in a real browser: the login form, a read token sees no cancel button and the API
refuses its cancel (403), a token of org A sees nothing of org B, the org switch lists the
orgs the session's tokens cover."""

from __future__ import annotations

import pytest

from tests.integration.test_tenancy import admin_bus

from .conftest import browser_page, running_dashboard, screenshot

pytestmark = pytest.mark.anyio


async def login(page, url: str, token: str) -> None:
    await page.goto(f"{url}/login")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_selector("main h1")


async def post_status(page, path: str) -> int:
    return await page.evaluate("(u) => fetch(u, {method: 'POST'}).then(r => r.status)", path)


async def submit(t, org: str, tag: str):
    from ow import AsyncOpenWeights

    c = AsyncOpenWeights(url=t.url, org=org, token=t.control(org), env={})
    job = await c.shell.create(command="true", tag=tag)
    await c.close()
    return job


async def test_a_read_token_sees_no_cancel_button_and_the_api_refuses_it(tenants, tmp_path):
    t = tenants
    b = await admin_bus(t, "orgb")
    job = await submit(t, "orgb", "read-only")
    async with running_dashboard({"orgb": b}, t.home) as d, browser_page(tmp_path) as page:
        await page.goto(f"{d.url}/o/orgb/jobs/{job.id}")
        assert page.url.startswith(f"{d.url}/login")  # not logged in: the form, with a hint
        assert "ow token create" in await page.inner_text("main")
        await page.fill("input[name=token]", "ow_nottoken_" + "x" * 20)
        await page.click("button[type=submit]")
        assert "malformed" in await page.inner_text(".error")
        await login(page, d.url, t.tokens[("orgb", "read")])
        await page.goto(f"{d.url}/o/orgb/jobs/{job.id}")
        await page.wait_for_selector("#timeline >> text=JobSubmitted")
        assert await page.locator("#cancel-button").count() == 0
        assert await post_status(page, f"/api/orgs/orgb/jobs/{job.id}/cancel") == 403
        await screenshot(page, tmp_path, "job-read-token")
        await login(page, d.url, t.tokens[("orgb", "submit")])  # the same page, submit scope
        await page.goto(f"{d.url}/o/orgb/jobs/{job.id}")
        await page.wait_for_selector("#cancel-button")
        await page.click("#cancel-button")
        await page.wait_for_selector("h1 >> text=canceled")
    await b.close()


async def test_a_token_of_org_a_cannot_see_org_b(tenants, tmp_path):
    t = tenants
    a, b = await admin_bus(t, "orga"), await admin_bus(t, "orgb")
    mine, theirs = await submit(t, "orga", "mine"), await submit(t, "orgb", "theirs")
    async with running_dashboard({"orga": a, "orgb": b}, t.home) as d, browser_page(
        tmp_path
    ) as page:
        await login(page, d.url, t.tokens[("orga", "read")])
        await page.wait_for_selector(f"#jobs >> text={mine.id}")
        assert await page.locator("#org option").all_inner_texts() == ["orga (read)"]
        for path in ("/o/orgb/jobs", f"/o/orgb/jobs/{theirs.id}"):
            response = await page.goto(f"{d.url}{path}")
            assert response.status == 403
            text = await page.content()
            assert theirs.id not in text
            assert "theirs" not in text
        await screenshot(page, tmp_path, "other-org-403")
        status = await page.evaluate("fetch('/api/orgs/orgb/jobs').then(r => r.status)")
        assert status == 403
        await login(page, d.url, t.tokens[("orgb", "read")])  # a second org in the session
        await page.goto(f"{d.url}/o/orga/jobs")
        await page.wait_for_selector(f"#jobs >> text={mine.id}")
        assert await page.locator("#org option").all_inner_texts() == [
            "orga (read)", "orgb (read)"]
        await page.select_option("#org", "orgb")
        await page.wait_for_selector(f"#jobs >> text={theirs.id}")
        assert f"{d.url}/o/orgb/jobs" in page.url
    await a.close()
    await b.close()
