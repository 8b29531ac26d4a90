"""Issue 16.4: a job nothing here can run says why, where the user looks, within 5 s: the
scheduler's notice (a real scheduler with the local provider, at its default 0.2 s debounce)
through `job.pending_reason`, `ow show`, `job.wait()` and `ow exec`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core.errors import UnschedulableError
from ow.scheduler import Limits, LocalProvider, Scheduler
from ow.sdk import OpenWeights
from tests.integration.conftest import eventually
from tests.integration.test_scheduler import job_state

pytestmark = pytest.mark.anyio

OW = str(Path(sys.executable).parent / "ow")
CPU_STACK = ("needs 24 GB VRAM; the largest worker here has 0 GB; no GPU provider is configured"
             " (this one offers: cpu) — pass requires_vram_gb=0 to run on this CPU")


@asynccontextmanager
async def cpu_stack(url, org, tmp_path):
    """A real scheduler with the local provider (it offers this machine's CPU only)."""
    b = await bus_mod.connect(url, org=org, actor="scheduler")
    s = Scheduler(b, LocalProvider(log_dir=tmp_path), Limits())
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(s.run)
            yield s
            s.shutdown()
    finally:
        await b.close()


def env_of(url, org, tmp_path):
    return {**os.environ, "OW_URL": url, "OW_ORG": org, "OW_HOME": str(tmp_path),
            "COLUMNS": "300"}


async def test_pending_reason_and_ow_show_within_5s(nats_server, bus, tmp_path):
    async with cpu_stack(nats_server.url, bus.org, tmp_path):
        await bus.publish(ev.JobSubmitted(job_id="j24", requires_vram_gb=24, entrypoint="true"))
        o = await anyio.to_thread.run_sync(lambda: OpenWeights(url=nats_server.url, org=bus.org))
        try:
            def reason():
                return o.jobs.retrieve("j24").pending_reason

            got = await eventually(lambda: anyio.to_thread.run_sync(reason), timeout=5)
        finally:
            await anyio.to_thread.run_sync(o.close)
        assert got.startswith(CPU_STACK)
        env = env_of(nats_server.url, bus.org, tmp_path)
        shown = await anyio.run_process([OW, "show", "j24"], env=env, check=False)
        as_json = await anyio.run_process([OW, "show", "j24", "--json"], env=env, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "waiting: needs 24 GB VRAM; the largest worker here has 0 GB" in " ".join(
        shown.stdout.decode().split())
    assert json.loads(as_json.stdout)["pending_reason"].startswith(CPU_STACK)


async def test_no_reason_once_the_job_moved_on(nats_server, bus, tmp_path):
    async with cpu_stack(nats_server.url, bus.org, tmp_path):
        await bus.publish(ev.JobSubmitted(job_id="j24", requires_vram_gb=24, entrypoint="true"))
        o = await anyio.to_thread.run_sync(lambda: OpenWeights(url=nats_server.url, org=bus.org))
        try:
            def reason():
                return o.jobs.retrieve("j24").pending_reason

            await eventually(lambda: anyio.to_thread.run_sync(reason), timeout=5)
            await bus.publish(ev.JobCancelRequested(job_id="j24"))
            await eventually(lambda: _canceled(bus))
            assert await anyio.to_thread.run_sync(reason) is None
        finally:
            await anyio.to_thread.run_sync(o.close)


async def _canceled(bus):
    return (await job_state(bus, "j24")).status == "canceled"


async def test_wait_says_it_once_then_raises_unschedulable(nats_server, bus, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="ow.sdk")
    async with cpu_stack(nats_server.url, bus.org, tmp_path):
        await bus.publish(ev.JobSubmitted(job_id="j24", requires_vram_gb=24, entrypoint="true"))
        o = await anyio.to_thread.run_sync(lambda: OpenWeights(url=nats_server.url, org=bus.org))
        try:
            with pytest.raises(UnschedulableError) as err:
                await anyio.to_thread.run_sync(
                    lambda: o.jobs.wait("j24", timeout=20, unschedulable_after=1.0))
        finally:
            await anyio.to_thread.run_sync(o.close)
    assert err.value.job_id == "j24"
    assert err.value.reason.startswith(CPU_STACK)
    said = [r.getMessage() for r in caplog.records if "is pending" in r.getMessage()]
    assert len(said) == 1
    assert CPU_STACK in said[0]
    assert (await job_state(bus, "j24")).status == "pending"  # it is the user's to cancel


async def test_ow_exec_prints_the_reason_and_ctrl_c_cancels(nats_server, bus, tmp_path):
    env = env_of(nats_server.url, bus.org, tmp_path)
    async with cpu_stack(nats_server.url, bus.org, tmp_path):
        proc = await anyio.open_process(
            [OW, "exec", "--requires-vram-gb", "24", "echo never"], env=env,
        )
        seen = b""
        with anyio.fail_after(15):
            async for chunk in proc.stderr:
                seen += chunk
                if b"waiting:" in seen and b"run on this CPU" in seen:
                    break
        proc.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            async for chunk in proc.stderr:
                seen += chunk
            code = await proc.wait()
    text = " ".join(seen.decode().split())
    assert "waiting: needs 24 GB VRAM; the largest worker here has 0 GB" in text
    job_id = text.split("job ", 1)[1].split()[0]
    assert f"canceled job {job_id}" in text
    assert code == 130
    assert (await job_state(bus, job_id)).status == "canceled"


async def test_api_deploy_fails_fast_with_the_reason_and_cancels(nats_server, bus, tmp_path):
    import payloads.jobs  # noqa: F401  (registers the built-in `api` job type)
    from ow import AsyncOpenWeights

    async with (
        cpu_stack(nats_server.url, bus.org, tmp_path),
        AsyncOpenWeights(url=nats_server.url, org=bus.org, env={}) as c,
    ):
        api = c.api.deploy("Qwen/Qwen3-4B")  # about 12 GB: nothing here has it
        with anyio.fail_after(20), pytest.raises(UnschedulableError) as err:
            async with api:
                raise AssertionError("it must not serve")
    assert err.value.reason.startswith("needs 12 GB VRAM; the largest worker here has 0 GB")
    assert (await job_state(bus, api.job_id)).status == "canceled"  # nothing left behind


async def test_ow_deploy_fails_fast_with_the_reason(nats_server, bus, tmp_path):
    env = env_of(nats_server.url, bus.org, tmp_path)
    async with cpu_stack(nats_server.url, bus.org, tmp_path):
        with anyio.fail_after(30):
            done = await anyio.run_process([OW, "deploy", "Qwen/Qwen3-4B"], env=env, check=False)
    err = " ".join(done.stderr.decode().split())
    assert done.returncode == 1, err
    assert "cannot run here: needs 12 GB VRAM; the largest worker here has 0 GB" in err
    assert "Traceback" not in err
