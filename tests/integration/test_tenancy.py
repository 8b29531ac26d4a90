"""Tenancy against a real nats-server with real credentials: isolation, scopes, revoke,
expiry, secrets that never reach the log."""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import nats
import pytest

from ow import AsyncOpenWeights
from ow.agent import Agent, Hardware
from ow.core import bus as bus_mod
from ow.core import events as ev
from ow.core import secrets as sec
from ow.core import subjects
from ow.core import tenancy as tn
from ow.core import tokens as tk
from ow.core.config import from_env
from ow.core.errors import PermissionDeniedError
from ow.core.server import NatsServer

from .agents import ShellJob  # noqa: F401 - registers `shell`
from .callout import callout_service
from .conftest import eventually

pytestmark = pytest.mark.anyio

ORGS = ("orga", "orgb")


@dataclass
class Tenants:
    home: Path
    server: NatsServer
    tokens: dict[tuple[str, str], str]

    @property
    def url(self) -> str:
        return self.server.url

    def control(self, org: str) -> str:
        return tn.control_token(tn.load(self.home), org)

    def change(self, fn, *args) -> object:
        """Change the state and apply it as `ow` does: render, reload."""
        with tn.update(self.home) as state:
            result = fn(state, *args)
        if tn.write_accounts(self.home, tn.load(self.home), datetime.now(UTC)):
            self.server.reload()
        return result


@pytest.fixture
def tenants(tmp_path, monkeypatch):
    monkeypatch.setattr(tk, "BCRYPT_COST", 4)  # the server checks once per connection
    home = tmp_path / "home"
    monkeypatch.setenv("OW_HOME", str(home))
    now = datetime.now(UTC)
    with tn.update(home) as state:
        for org in ORGS:
            tn.create_org(state, org, now)
        tokens = {(org, scope): tn.create_token(state, org, scope, now, None)[0]
                  for org in ORGS for scope in tn.SCOPES}
    tn.write_accounts(home, tn.load(home), now)
    server = NatsServer(home / "nats", name="ow", extra_config=tn.include_line()).start()
    with callout_service(server.url, home, ORGS[0]):
        yield Tenants(home, server, tokens)
    server.stop(kill=True)


async def admin_bus(t: Tenants, org: str) -> bus_mod.Bus:
    b = await bus_mod.connect(t.url, org=org, token=t.control(org), actor="test")
    await b.provision()
    return b


async def raw(url: str, token: str, **kw):
    """A plain nats-py connection with a token, as a third-party client would make it."""
    tid, secret = tn.parse_token(token)
    return await nats.connect(url, user=tid, password=secret, allow_reconnect=False,
                              inbox_prefix=tn.inbox_prefix(tid), **kw)


async def refused_publish(js, subject: str) -> bool:
    try:
        await js.publish(subject, b"{}", timeout=1.0)
    except Exception:  # a permission violation leaves the request unanswered  # noqa: BLE001
        return True
    return False


async def test_zero_config_server_needs_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("OW_HOME", str(tmp_path / "home"))
    with tn.update(tmp_path / "home") as state:
        tn.ensure_default(state, datetime.now(UTC))  # what `ow up` does: no org created
    tn.write_accounts(tmp_path / "home", tn.load(tmp_path / "home"), datetime.now(UTC))
    with NatsServer(tmp_path / "home" / "nats", extra_config=tn.include_line()) as server:
        nc = await nats.connect(server.url, allow_reconnect=False)  # anonymous, as before
        await nc.close()
        b = await bus_mod.connect(server.url, token="")  # the local control user: accepted
        await b.provision()
        await b.close()


async def test_org_a_token_cannot_touch_org_b(tenants):
    t = tenants
    b = await admin_bus(t, "orgb")
    seq = await b.publish(ev.JobSubmitted(job_id="jb", job_type="shell"))
    claim_rev = await b.kv_create("ow_claims", "orgb.jb", b"claim-of-b")
    store = await b.js.object_store("ow_files")
    await store.put("orgb/file-b", b"B-DATA")
    await (await admin_bus(t, "orga")).close()  # org A's own streams exist too

    for scope in ("read", "admin"):  # the weakest token of A, and the strongest
        nc = await raw(t.url, t.tokens[("orga", scope)])
        js = nc.jetstream(timeout=1.0)
        with pytest.raises(nats.js.errors.NotFoundError):  # read B's job: not in A's world
            await js.get_last_msg("OW_EVENTS", "ow.ev.orgb.job.jb.JobSubmitted")
        spy = await nc.subscribe("ow.ev.orgb.>")  # subscribe to B's subjects
        seen_by_b = await b.nc.subscribe("ow.ev.orgb.>")
        await b.publish(ev.JobCancelRequested(job_id="jb"))
        await seen_by_b.next_msg(timeout=5)
        await nc.flush()
        assert spy.pending_msgs == 0
        await spy.unsubscribe()
        await seen_by_b.unsubscribe()
        await refused_publish(js, "ow.ev.orgb.job.jb.JobCancelRequested")  # publish into B
        kv = await js.key_value("ow_claims")  # claim B's job
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("orgb.jb")
        if scope == "read":
            with pytest.raises(Exception):  # noqa: B017,PT011 - the write is denied
                await kv.create("orgb.jb", b"stolen")
        else:  # lands in A's own bucket; B's claim is unchanged (checked below)
            await kv.create("orgb.jb", b"stolen")
        obj = await js.object_store("ow_files")  # fetch B's file
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await obj.get("orgb/file-b")
        await nc.close()

    history, last = await b.history("ow.ev.orgb.job.jb.*")  # B's log holds only B's writes
    assert [type(d.event).__name__ for d in history] == ["JobSubmitted", "JobCancelRequested",
                                                         "JobCancelRequested"]
    assert history[0].seq == seq
    assert (await b.kv_get("ow_claims", "orgb.jb")).revision == claim_rev
    assert await (await b.js.object_store("ow_files")).get("orgb/file-b")
    await b.close()


async def test_scopes_read_cannot_submit_or_cancel_worker_cannot_submit(tenants):
    t = tenants
    a = await admin_bus(t, "orga")
    sub, cancel = "ow.ev.orga.job.j1.JobSubmitted", "ow.ev.orga.job.j1.JobCancelRequested"
    cases = [("read", sub, False), ("read", cancel, False), ("read", "ow.mx.orga.r1", False),
             ("worker", sub, False), ("worker", cancel, False),
             ("worker", "ow.ev.orga.job.j1.RunStarted", True), ("submit", sub, True)]
    for scope, subject, allowed in cases:
        nc = await raw(t.url, t.tokens[("orga", scope)])
        before = await a.last_seq("OW_EVENTS" if ".ev." in subject else "OW_METRICS", subject)
        refused = await refused_publish(nc.jetstream(), subject)
        after = await a.last_seq("OW_EVENTS" if ".ev." in subject else "OW_METRICS", subject)
        assert (refused, after != before) == (not allowed, allowed), (scope, subject)
        await nc.close()
    nc = await raw(t.url, t.tokens[("orga", "read")])
    kv = await nc.jetstream(timeout=1.0).key_value("ow_claims")
    with pytest.raises(Exception):  # noqa: B017,PT011 - a read token claims nothing
        await kv.create("orga.j1", b"claim")
    await nc.close()
    await a.close()


async def test_sdk_connects_with_a_token_and_refuses_bad_ones(tenants):
    t = tenants
    async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "submit")],
                                env={}) as ow:
        assert (await ow.bus()).nc.is_connected
    for bad, match in [("ow_nope", "malformed"), ("ow_abcdefghijkl_" + "x" * 40, "unknown")]:
        with pytest.raises(tn.TokenError, match=match):
            await AsyncOpenWeights(url=t.url, org="orga", token=bad, env={}).bus()
    with pytest.raises(tn.TokenError, match="requires a token"):
        await bus_mod.connect(t.url, org="nosuchorg")


async def test_read_and_submit_tokens_leave_streams_and_dispatch_alone(tenants):
    t = tenants
    a = await admin_bus(t, "orga")
    await a.dispatch_subscription("orga")  # the agents' consumer exists, with a job on it
    await a.publish(ev.JobSubmitted(job_id="j-dispatch", requires_vram_gb=0, image="x"))
    dispatch = subjects.dispatch_consumer("orga")
    for scope in ("read", "submit"):
        nc = await raw(t.url, t.tokens[("orga", scope)])
        js = nc.jetstream(timeout=1.0)
        with pytest.raises(Exception):  # noqa: B017,PT011 - refused: unanswered
            await js.add_stream(name="MINE", subjects=["mine.>"])
        with pytest.raises(Exception):  # noqa: B017,PT011
            await js.delete_consumer("OW_EVENTS", dispatch)
        sub = await js.pull_subscribe("", durable=dispatch, stream="OW_EVENTS")
        with pytest.raises(nats.errors.TimeoutError):  # a job is there: denied, not empty
            await sub.fetch(1, timeout=1)
        await nc.close()
        b = await bus_mod.connect(t.url, org="orga", token=t.tokens[("orga", scope)])
        await b.provision()  # every connect provisions: still allowed
        await b.close()
    info = await a.js.consumer_info("OW_EVENTS", dispatch)
    assert (info.num_pending, info.num_ack_pending) == (1, 0)  # nobody took the job
    assert "MINE" not in [s.config.name for s in await a.js.streams_info()]
    await a.close()


async def test_a_denied_submit_fails_at_once_saying_why(tenants):
    """A refused publish is never answered: it must not look like a server to wait out."""
    t = tenants
    async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "read")],
                                env={}) as ow:
        started = anyio.current_time()
        with pytest.raises(PermissionDeniedError, match="refused it to this connection"):
            await ow.shell.create(command="echo hi")
        assert anyio.current_time() - started < 10  # one request timeout, not the 30 s retry


async def test_revoke_closes_the_connection_and_refuses_the_token(tenants):
    t = tenants
    token = t.tokens[("orga", "read")]
    b = await bus_mod.connect(t.url, org="orga", token=token)
    tid = tn.parse_token(token)[0]
    t.change(tn.revoke_token, tid, datetime.now(UTC), "test")
    await eventually(lambda: not b.nc.is_connected, timeout=5)
    await b.close()
    with pytest.raises(tn.TokenError, match=r"ow_..….. was revoked at .* \(test\)"):
        await bus_mod.connect(t.url, org="orga", token=token)
    with pytest.raises(nats.errors.Error, match="Authorization"):  # the server refuses it too
        await raw(t.url, token)


async def test_expired_token_is_swept_and_cannot_connect(tenants):
    t = tenants
    soon = datetime.now(UTC) + timedelta(seconds=2)
    token, _ = t.change(tn.create_token, "orga", "read", datetime.now(UTC), soon)
    nc = await raw(t.url, token)

    def sweep() -> bool:  # what `ow up` does every second
        if tn.write_accounts(t.home, tn.load(t.home), datetime.now(UTC)):
            t.server.reload()
        return not nc.is_connected

    await eventually(sweep, timeout=10, interval=0.2)
    with pytest.raises(nats.errors.Error, match="Authorization"):
        await raw(t.url, token)
    with pytest.raises(tn.TokenError, match="expired at"):
        await bus_mod.connect(t.url, org="orga", token=token)


async def test_secret_reaches_the_job_and_nothing_else(tenants, tmp_path):
    t = tenants
    value = f"s3cr3t-{pysecrets.token_hex(16)}"
    config = from_env({}, url=t.url, org="orga", home=str(t.home))
    async with await admin_bus(t, "orga") as a:
        await sec.set_secret(a, sec.ensure_key(config), "MYSECRET", value)
        assert await sec.names(a) == ["MYSECRET"]
    worker = from_env({}, url=t.url, org="orga", home=str(t.home), heartbeat_s=1.0,
                      token=t.tokens[("orga", "worker")])
    agent = Agent(worker, Hardware(image="*"), workdir=tmp_path / "work")
    command = 'printf %s "$MYSECRET" | sha256sum; test -n "$OW_TOKEN"'
    async with anyio.create_task_group() as tg:
        await tg.start(agent.run)
        async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "submit")],
                                    env={}) as ow:
            job = await ow.shell.create(command=command)
            done = await ow.jobs.wait(job.id, timeout=30)
            log = (await ow.files.content(done.runs[-1].log_file)).decode()
        agent.shutdown()
    assert hashlib.sha256(value.encode()).hexdigest() in log  # the job had it
    needle = value.encode()
    for org in (*ORGS, "default"):
        async with await admin_bus(t, org) as b:
            for stream in await b.js.streams_info():  # every stream, KV and object bucket
                for seq in range(max(1, stream.state.first_seq), stream.state.last_seq + 1):
                    try:
                        msg = await b.js.get_msg(stream.config.name, seq)
                    except nats.js.errors.NotFoundError:
                        continue
                    assert needle not in (msg.data or b""), (org, stream.config.name, seq)
                    assert needle not in repr(msg.headers).encode()
    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert needle not in path.read_bytes(), path


async def test_agents_and_their_jobs_get_the_workers_token(tenants, tmp_path):
    """`ow up` hands an org's agents its built-in workers token (worker scope), not the
    admin control token; a job's calls back (ow.run.log) work with it, submitting does not."""
    import shlex
    import sys

    from ow.cli.tenancy import Supervisor

    t = tenants
    wtoken = tn.worker_token(tn.load(t.home), "orga")
    assert wtoken.startswith("ow_wrk")
    assert tn.load(t.home).tokens[tn.parse_token(wtoken)[0]].scope == "worker"
    sup_env = Supervisor(t.home, from_env({}, home=str(t.home)), spawn=None).env
    assert sup_env("orga", worker=True) == {"OW_TOKEN": wtoken}
    assert sup_env("orga") == {"OW_TOKEN": t.control("orga")}
    from ow.scheduler._run import worker_env  # what the scheduler gives the workers it starts

    admin = from_env({}, url=t.url, org="orga", home=str(t.home), token=t.control("orga"))
    assert worker_env(admin)["OW_TOKEN"] == wtoken
    async with await admin_bus(t, "orga") as b:  # an agent with no token of its own (local)
        assert (await sec.job_env(b, from_env({}, org="orga", home=str(t.home))))[
            "OW_TOKEN"] == tn.job_token(tn.load(t.home), "orga")  # jobs: the job credential
    worker = from_env({}, url=t.url, org="orga", home=str(t.home), heartbeat_s=1.0, token=wtoken)
    agent = Agent(worker, Hardware(image="*"), workdir=tmp_path / "work")
    script = (
        "import os, nats, asyncio\n"
        "from ow import OpenWeights\n"
        "print('token', os.environ['OW_TOKEN'][:6])\n"
        "OpenWeights().run.log({'ok': 1})\n"
        "from ow.core import tenancy as tn\n"
        "opts = tn.connect_options(os.environ['OW_TOKEN'], 'orga')\n"
        "async def submit():\n"
        "    nc = await nats.connect(os.environ['OW_URL'], **opts)\n"
        "    try:\n"
        "        await nc.jetstream().publish('ow.ev.orga.job.x.JobSubmitted', b'{}', timeout=1)\n"
        "        print('submitted')\n"
        "    except Exception as exc:\n"
        "        print('refused', type(exc).__name__)\n"
        "    await nc.close()\n"
        "asyncio.run(submit())\n"
    )
    async with anyio.create_task_group() as tg:
        await tg.start(agent.run)
        async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "submit")],
                                    env={}) as ow:
            job = await ow.shell.create(  # inline: a sandboxed job cannot see tmp_path
                command=f"{sys.executable} -c {shlex.quote(script)}")
            done = await ow.jobs.wait(job.id, timeout=60)
            log = (await ow.files.content(done.runs[-1].log_file)).decode()
        agent.shutdown()
    assert "token ow_job" in log
    assert "refused" in log, log
    assert done.outputs == {"ok": 1}


async def test_a_remote_worker_opens_its_orgs_secrets_with_the_org_key_only(tenants, tmp_path):
    """A pod has no master key: the scheduler gives it OW_ORG_SECRET_KEY, which opens the
    secrets of its own org and of no other."""
    from ow.scheduler._run import worker_env

    t = tenants
    value = f"s3cr3t-{pysecrets.token_hex(16)}"
    local = from_env({}, url=t.url, org="orga", home=str(t.home), token=t.control("orga"))
    master = sec.ensure_key(local)
    async with await admin_bus(t, "orga") as a:
        await sec.set_secret(a, master, "MYSECRET", value)
    env = worker_env(local)
    assert env["OW_ORG_SECRET_KEY"].encode() == sec.derive(master, "orga")
    assert master.decode() not in env.values()
    remote_home = tmp_path / "pod"  # no secret.key here, no OW_SECRET_KEY
    pod = from_env({**env, "OW_HOME": str(remote_home)}, heartbeat_s=1.0)
    assert sec.master_key(pod) is None
    async with await admin_bus(t, "orga") as a:
        assert (await sec.job_env(a, pod))["MYSECRET"] == value
        other = from_env({"OW_HOME": str(remote_home),
                          "OW_ORG_SECRET_KEY": sec.derive(master, "orgb").decode()})
        assert "MYSECRET" not in await sec.job_env(a, other)  # another org's key: nothing
    agent = Agent(pod, Hardware(image="*"), workdir=tmp_path / "work")
    async with anyio.create_task_group() as tg:
        await tg.start(agent.run)
        async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "submit")],
                                    env={}) as ow:
            job = await ow.shell.create(command='printf %s "$MYSECRET" | sha256sum')
            done = await ow.jobs.wait(job.id, timeout=30)
            log = (await ow.files.content(done.runs[-1].log_file)).decode()
        agent.shutdown()
    assert hashlib.sha256(value.encode()).hexdigest() in log
