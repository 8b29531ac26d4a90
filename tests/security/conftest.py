"""Two orgs on a real nats-server with accounts on, a token of every scope for each, and a
raw nats-py connection helper that tells a permission refusal from an answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import nats
import pytest

from ow.core import bus as bus_mod
from ow.core import tenancy as tn
from ow.core import tokens as tk
from ow.core.server import NatsServer
from tests.integration.callout import callout_service
from tests.integration.conftest import eventually, fresh_nats, org

__all__ = ["ORGS", "Probe", "Tenants", "attack_a_running_job", "eventually", "fresh_nats",
           "org"]

ORGS = ("orga", "orgb")
SCOPES = (*tn.SCOPES, "job")


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

    async def admin(self, org: str) -> bus_mod.Bus:
        b = await bus_mod.connect(self.url, org=org, token=self.control(org), actor="test")
        await b.provision()
        return b


def _job_token(state: tn.TenancyState, org: str) -> str:
    return getattr(tn, "job_token", lambda s, o: "")(state, org)


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
        for org in ORGS:
            tokens[(org, "job")] = _job_token(state, org)
    tn.write_accounts(home, tn.load(home), now)
    server = NatsServer(home / "nats", name="ow", extra_config=tn.include_line()).start()
    with callout_service(server.url, home, ORGS[0]):
        yield Tenants(home, server, tokens)
    server.stop(kill=True)


class Probe:
    """A raw nats-py connection (as a third-party client makes one) that records the
    server's permission refusals, so a publish is known refused or answered, not timed out."""

    def __init__(self, nc: nats.NATS, errors: list[str]):
        self.nc, self.errors = nc, errors

    @classmethod
    async def open(cls, url: str, token: str) -> Probe:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        opts = tn.connect_options(token, tn.DEFAULT_ORG, Path("/nonexistent"))
        nc = await nats.connect(url, allow_reconnect=False, error_cb=on_error, **opts)
        return cls(nc, errors)

    async def allowed(self, subject: str, payload: bytes = b"") -> bool:
        """Publish a request: True if it was answered, False if the server refused it.

        Every subject probed has an answerer (the JetStream API, or a stream that acks)."""
        before = len(self.errors)
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, max_msgs=1)
        await self.nc.publish(subject, payload, reply=inbox)
        with anyio.fail_after(10):
            while True:
                quoted = f'"{subject}"'.lower()
                if any("permissions" in e.lower() and quoted in e.lower()
                       for e in self.errors[before:]):
                    return False
                if sub.pending_msgs:
                    return True
                await anyio.sleep(0.01)

    async def close(self) -> None:
        await self.nc.close()


async def attack_a_running_job(t: Tenants, configs: list, tmp_path: Path, script: str):
    """Agents of `configs` run a victim job (sleep) and then `script` as a job, given the
    victim's run and job ids; return the attack's log and the victim as it stood after."""
    import shlex
    import sys

    from ow import AsyncOpenWeights
    from ow.agent import Agent, Hardware
    from ow.core.errors import JobCanceledError
    from tests.integration.agents import ShellJob  # noqa: F401 - registers `shell`

    agents = [Agent(c, Hardware(image="*"), workdir=tmp_path / f"w{i}")
              for i, c in enumerate(configs)]
    async with anyio.create_task_group() as tg:
        for agent in agents:
            await tg.start(agent.run)
        async with AsyncOpenWeights(url=t.url, org="orga", token=t.tokens[("orga", "submit")],
                                    env={}) as ow:
            victim = await ow.shell.create(command="sleep 60", tag="victim")

            async def running():
                job = await ow.jobs.retrieve(victim.id)
                return job.runs[-1].id if job.status == "in_progress" and job.runs else None

            run_id = await eventually(running, timeout=30)
            attack = await ow.shell.create(
                command=f"{sys.executable} -c {shlex.quote(script)} {run_id} {victim.id}")
            done = await ow.jobs.wait(attack.id, timeout=60)
            log = (await ow.files.content(done.runs[-1].log_file)).decode()
            still = await ow.jobs.retrieve(victim.id)
            await ow.jobs.cancel(victim.id)
            with pytest.raises(JobCanceledError):
                await ow.jobs.wait(victim.id, timeout=30)
        for agent in agents:
            agent.shutdown()
    return log, still
