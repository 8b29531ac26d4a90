"""The SDK against a real nats-server: idempotent submit, reset, errors, run.log, subscriptions."""

from __future__ import annotations

import functools
import logging

import anyio
import pytest
from pydantic import BaseModel

from ow import AsyncOpenWeights, Jobs, OpenWeights, register
from ow.core import defaults, subjects
from ow.core import events as ev
from ow.core.bus import ServiceFault
from ow.core.errors import ConfigError, NotFoundError, ServiceBehindError, ValidationError
from ow.core.server import NatsServer
from ow.projections.client import encode_error

from .agents import client

pytestmark = pytest.mark.anyio


class EchoParams(BaseModel):
    text: str
    n: int = 1


@register("echo")
class EchoJob(Jobs):
    params = EchoParams
    requires_vram_gb = 0

    def get_entrypoint(self, p: EchoParams) -> str:
        return f"echo {p.text}"


async def _submissions(bus, job_id: str) -> int:
    history, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return sum(isinstance(d.event, ev.JobSubmitted) for d in history)


async def test_16_concurrent_submitters_store_one_job(nats_server, org):
    clients = [client(nats_server.url, org) for _ in range(16)]
    ids: list[str] = []

    async def submit(c: AsyncOpenWeights) -> None:
        ids.append((await c.echo.create(text="same")).id)

    async with anyio.create_task_group() as tg:
        for c in clients:
            tg.start_soon(submit, c)
    assert len(set(ids)) == 1
    assert await _submissions(await clients[0].bus(), ids[0]) == 1
    for c in clients:
        await c.close()


async def test_resubmitting_a_canceled_job_resets_it(nats_server, org):
    async with client(nats_server.url, org) as ow:
        job = await ow.echo.create(text="x")
        assert (await ow.jobs.cancel(job.id)).status == "canceled"
        again = await ow.echo.create(text="x")
        assert (again.id, again.status, again.gen) == (job.id, "pending", 1)
        assert await ow.jobs.find(text="x")
        assert not await ow.jobs.find(text="y")
        assert [j.id for j in await ow.jobs.list(status="pending")] == [job.id]


@pytest.mark.parametrize("bulk", [True, False])
async def test_jobs_list_folds_only_what_is_new(nats_server, org, bulk):
    """`jobs.list` keeps its fold between calls and reads only the events since; through the
    bulk reader, or nats-py's ordered consumer where the bulk reader cannot connect."""
    async with client(nats_server.url, org) as ow:
        bus = await ow.bus()
        bus.bulk_from = 1  # spans this short would not try the bulk reader
        if not bulk:
            bus.wire_auth = None  # the bulk reader refuses: the nats-py path
        starts: list[int] = []
        read = bus.read

        def spy(stream, filt, **kw):
            if filt == subjects.events_filter(org, "job"):  # the fold's reads, not history's
                starts.append(kw["start_seq"])
            return read(stream, filt, **kw)

        bus.read = spy
        a = await ow.echo.create(text="a")
        assert [j.id for j in await ow.jobs.list()] == [a.id]
        seen = ow.job_fold.seen
        b = await ow.echo.create(text="b")
        await ow.jobs.cancel(a.id)
        listed = {j.id: j.status for j in await ow.jobs.list()}
        assert listed == {a.id: "canceled", b.id: "pending"}
        assert starts == [1, seen + 1]
        await ow.jobs.list()
        assert len(starts) == 2  # nothing new: nothing read
        for job_id, status in listed.items():
            assert (await ow.jobs.retrieve(job_id)).status == status
    async with client(nats_server.url, org) as fresh:  # from scratch: the same jobs
        assert {j.id: j.status for j in await fresh.jobs.list()} == listed


@pytest.mark.parametrize("service", ["stuck", "behind"])
async def test_jobs_list_reads_the_log_when_the_read_service_cannot_answer(
    nats_server, org, monkeypatch, caplog, service
):
    """A read service that is there but answers nothing in time (busy, stuck) or answers
    that it is behind: `jobs.list`/`find` fold the log instead, and say so each time."""
    monkeypatch.setattr(defaults, "QUERY_TIMEOUT_S", 0.5)

    async def handle(endpoint: str, data: bytes) -> bytes:
        if service == "stuck":
            await anyio.sleep_forever()
        code, body = encode_error(ServiceBehindError("the read service is behind"))
        raise ServiceFault(code, "behind", body)

    endpoints = {q: subjects.query_subject(org, q) for q in ("job_states", "find_jobs")}
    async with client(nats_server.url, org) as ow, anyio.create_task_group() as tg:
        bus = await ow.bus()
        await tg.start(functools.partial(bus.serve, "ow-read-stand-in", endpoints, handle))
        job = await ow.echo.create(text="unserved")
        with caplog.at_level(logging.INFO, logger="ow"):
            assert [j.id for j in await ow.jobs.list()] == [job.id]
            assert [j.id for j in await ow.jobs.find(text="unserved")] == [job.id]
        assert caplog.text.count("did not answer") == 2
        tg.cancel_scope.cancel()


async def test_bad_input_is_refused_before_publishing(nats_server, org, tmp_path):
    async with client(nats_server.url, org) as ow:
        with pytest.raises(ValidationError, match="text"):
            await ow.echo.create(n=2)
        with pytest.raises(ValidationError, match="n"):
            await ow.echo.create(text="a", n="many")
        with pytest.raises(AttributeError, match="no job type 'nope'"):
            ow.nope  # noqa: B018
        with pytest.raises(NotFoundError):
            await ow.jobs.retrieve("echo-000000000000")
        with pytest.raises(NotFoundError):
            await ow.files.content("conversations:file-000000000000")

        class Missing(EchoJob):
            mount = {str(tmp_path / "nowhere.py"): "x.py"}

        with pytest.raises(ValidationError, match="nowhere.py"):
            await Missing(ow).create(text="m")
        assert await (await ow.bus()).last_seq(
            subjects.EVENTS_STREAM, subjects.events_filter(org)
        ) == 0


async def test_run_log_rejects_values_that_are_not_json(nats_server, org):
    async with AsyncOpenWeights(url=nats_server.url, org=org, run_id="run-x", env={}) as ow:
        with pytest.raises(ValidationError, match="'bad'"):
            await ow.run.log({"ok": 1, "bad": object()})
    async with AsyncOpenWeights(url=nats_server.url, org=org, env={}) as ow:
        with pytest.raises(ConfigError, match="no run yet outside a job"):
            _ = ow.run.id
        with pytest.raises(ValidationError, match="'bad'"):  # refused before a script job
            await ow.run.log({"bad": object()})
        assert await (await ow.bus()).last_seq(
            subjects.EVENTS_STREAM, subjects.events_filter(org)
        ) == 0


async def test_run_log_batches_replay_as_separate_records(nats_server, org):
    async with AsyncOpenWeights(url=nats_server.url, org=org, run_id="run-b", env={}) as ow:
        for step in range(1000):
            await ow.run.log({"step": step, "loss": 1 / (step + 1)})
        await ow.run.flush()
        records = await ow.metrics.list("run-b")
        assert [r["data"]["step"] for r in records] == list(range(1000))
        assert len({r["id"] for r in records}) == 1000
        assert await ow.events.latest("loss", run_id="run-b") == pytest.approx(1 / 1000)


async def test_metrics_subscriber_resumes_across_a_server_restart(fresh_nats, org):
    url, port, store = fresh_nats.url, fresh_nats.port, fresh_nats.store_dir
    seen: list[int] = []
    async with AsyncOpenWeights(url=url, org=org, run_id="run-r", env={}) as writer, \
            AsyncOpenWeights(url=url, org=org, env={}) as reader:
        for step in range(50):
            await writer.run.log({"step": step})
        await writer.run.flush()

        async def read() -> None:
            async for item in reader.metrics.subscribe("run-r"):
                seen.append(item["data"]["step"])
                if len(seen) == 100:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            with anyio.fail_after(10):
                while len(seen) < 50:
                    await anyio.sleep(0.02)
            fresh_nats.stop()
            restarted = NatsServer(store, port=port, name="fresh").start()
            try:
                with anyio.fail_after(30):
                    for step in range(50, 100):
                        while True:
                            try:
                                await writer.run.log({"step": step})
                                await writer.run.flush()
                                break
                            except Exception:
                                await anyio.sleep(0.1)
                    while len(seen) < 100:
                        await anyio.sleep(0.05)
            finally:
                tg.cancel_scope.cancel()
                restarted.stop()
    assert seen == list(range(100))


def test_sync_facade_is_the_async_client_through_a_portal(nats_server, org):
    with OpenWeights(url=nats_server.url, org=org, env={}) as ow:
        job = ow.echo.create(text="sync")
        assert job.refresh().status == "pending"
        assert ow.jobs.retrieve(job.id)["params"]["validated_params"]["text"] == "sync"
        canceled = job.cancel()
        assert canceled.status == "canceled"
        events = list(_take(ow.events.subscribe(job_id=job.id), 2))
        assert [type(e).__name__ for e in events] == ["JobSubmitted", "JobCancelRequested"]


def _take(it, n):
    for i, item in enumerate(it):
        yield item
        if i + 1 == n:
            break
