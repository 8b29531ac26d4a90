"""The embedded server across restarts: acked events survive and subscribers resume.

A server stopped (SIGTERM) or killed (SIGKILL: a process crash) is started again on the same
store and port; every event whose publish was acknowledged must still be there, and a
subscriber that was reading before the restart continues with no gap and no duplicate.
"""

from __future__ import annotations

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import defaults, subjects
from ow.core import events as ev
from ow.core.server import NatsServer

pytestmark = pytest.mark.anyio


def artifact(i: int) -> ev.ArtifactUploaded:
    return ev.ArtifactUploaded(
        event_id=f"evt-{i:05d}", job_id=f"custom-{i % 7}", run_id="run-1",
        file_id=f"result:file-{i:05d}", path=f"out-{i}.jsonl",
    )


def restart(server: NatsServer, kill: bool) -> NatsServer:
    server.stop(kill=kill)
    return NatsServer(server.store_dir, port=server.port, name=server.name).start()


async def read_all(url: str, org: str, last: int) -> list[str]:
    async with await bus_mod.connect(url, org=org) as reader:
        with anyio.fail_after(15):
            return [d.event.event_id async for d in reader.subscribe(
                subjects.events_filter(org), start_seq=1, stop_at=last)]


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_acked_events_survive_a_restart_and_a_subscriber_resumes(fresh_nats, org, kill):
    bus = await bus_mod.connect(fresh_nats.url, org=org, actor="test")
    await bus.provision()
    seen: list[tuple[int, str]] = []
    got_first_half = anyio.Event()
    server = fresh_nats
    try:
        with anyio.fail_after(45):  # the subscriber must reach all 100 events
            async with anyio.create_task_group() as tg:
                async def consume() -> None:
                    async for d in bus.subscribe(subjects.events_filter(org), start_seq=1):
                        seen.append((d.seq, d.event.event_id))
                        if len(seen) == 50:
                            got_first_half.set()
                        if len(seen) == 100:
                            return

                tg.start_soon(consume)
                acked = {artifact(i).event_id: await bus.publish(artifact(i)) for i in range(50)}
                with anyio.fail_after(10):
                    await got_first_half.wait()
                server = await anyio.to_thread.run_sync(restart, fresh_nats, kill)
                assert server.port == fresh_nats.port
                for i in range(50, 100):  # publish waits out the reconnect (same msg ids dedupe)
                    acked[artifact(i).event_id] = await bus.publish(artifact(i))
        assert [eid for _, eid in seen] == list(acked)
        assert [seq for seq, _ in seen] == sorted(acked.values())
        assert len(set(acked.values())) == 100
        assert await read_all(server.url, org, max(acked.values())) == list(acked)
    finally:
        await bus.close()
        if server is not fresh_nats:  # the fixture stops only the server it started
            server.stop()


async def test_the_embedded_sync_interval_is_a_valid_server_setting(tmp_path, org):
    server = NatsServer(tmp_path, name="sync", sync_interval=defaults.EMBEDDED_SYNC_INTERVAL)
    await anyio.to_thread.run_sync(server.start)
    try:
        assert f"sync_interval: {defaults.EMBEDDED_SYNC_INTERVAL}" in server._config()
        async with await bus_mod.connect(server.url, org=org) as bus:
            await bus.provision()
            seq = await bus.publish(artifact(0))
            assert (await bus.history(subjects.job_subject(org, "custom-0")))[1] == seq
    finally:
        server.stop()


def test_an_exited_child_not_yet_reaped_is_not_alive():
    """`ow down` in the process that ran `ow up --detach` must not wait on the zombie."""
    import os
    import subprocess
    import sys

    from ow.core.server import pid_alive

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, still unreaped
    assert not pid_alive(proc.pid)
    proc.wait()
    assert not pid_alive(proc.pid)
    assert pid_alive(os.getpid())
