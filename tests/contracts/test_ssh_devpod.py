"""`ow ssh` against the RunPod stand-in, with a real local sshd standing in for the pod's.

The stand-in account reports the local sshd as the dev pod's public ssh port; everything
after that is real: ssh, rsync over ssh, the remote command, the live sync, and the pod
terminated by its id at the end (another pod in the account survives).
"""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest

from ow.cli._devpod import DevPodOptions, session, snapshot
from ow.cli.workers import dev_hardware
from ow.core.errors import ConfigError, DevPodError, PodNotRecordedError
from ow.scheduler.providers import FakeRunPod, FakeRunPodAPI
from tests.contracts.sshd import local_sshd
from tests.integration.conftest import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def sshd(tmp_path):
    with local_sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def dirs(tmp_path):
    local, remote = tmp_path / "project", tmp_path / "pod" / "workspace"
    local.mkdir()
    (local / "somefile").write_text("hello from the laptop\n")
    (local / ".env").write_text("SECRET=never-synced\n")
    return local, remote


def _options(sshd, dirs, **kw) -> DevPodOptions:
    local, remote = dirs
    base = dict(hardware=dev_hardware(None, 0), image="ow-default", key_path=sshd.client_key,
                local_dir=local, remote_dir=str(remote), user=sshd.user, poll_s=0.05,
                sync_interval_s=0.1)
    return DevPodOptions(**{**base, **kw})


def _pod(api: FakeRunPodAPI) -> dict:
    (pod,) = api.pods.values()
    return pod


async def test_command_sees_the_synced_dir_and_the_pod_is_terminated(sshd, dirs, capfd):
    api = FakeRunPodAPI()
    api.public_ssh = (sshd.host, sshd.port)
    said: list[str] = []
    opts = _options(sshd, dirs, command=("cat", "somefile", "&&", "ls", "-a"))
    code = await session(FakeRunPod(api), opts, said.append, signals=False)
    out = capfd.readouterr().out
    assert code == 0, said
    assert "hello from the laptop" in out
    assert ".env" not in out  # secrets stay on this machine
    pod = _pod(api)
    assert pod["desiredStatus"] == "TERMINATED"
    assert pod["env"]["OW_DEV"] == "true"  # no agent: the entrypoint starts sshd instead
    assert pod["env"]["TTL_HOURS"] == "24"  # the in-pod watchdog is on
    assert pod["env"]["PUBLIC_KEY"] == (sshd.client_key.with_suffix(".pub")).read_text().strip()
    assert [p["desiredStatus"] for p in api.foreign.values()] == ["RUNNING", "RUNNING"]
    assert "get_pods" not in api.calls
    text = "\n".join(said)
    for step in ("starting pod (1x A6000", "waiting for sshd", "syncing", "terminating pod"):
        assert step in text


async def test_a_local_change_is_synced_while_the_command_runs(sshd, dirs, capfd):
    local, remote = dirs
    api = FakeRunPodAPI()
    api.public_ssh = (sshd.host, sshd.port)
    wait_for_it = "for i in $(seq 400); do [ -f new.txt ] && cat new.txt && exit 0; " \
                  "sleep 0.05; done; exit 3"
    opts = _options(sshd, dirs, command=(wait_for_it,))
    said: list[str] = []
    result: list[int] = []
    async with anyio.create_task_group() as tg:
        async def run() -> None:
            result.append(await session(FakeRunPod(api), opts, said.append, signals=False))

        tg.start_soon(run)
        await eventually(lambda: any(s.startswith("running") for s in said), timeout=30)
        (local / "new.txt").write_text("written after the start\n")
    assert result == [0], said
    assert "written after the start" in capfd.readouterr().out
    assert (remote / "new.txt").exists()
    assert _pod(api)["desiredStatus"] == "TERMINATED"


async def test_an_interrupted_session_terminates_its_pod(sshd, dirs):
    api = FakeRunPodAPI()
    api.public_ssh = (sshd.host, sshd.port)
    said: list[str] = []
    opts = _options(sshd, dirs, command=("sleep", "60"))
    with anyio.move_on_after(30):  # Ctrl-C cancels the session the same way
        async with anyio.create_task_group() as tg:
            tg.start_soon(session, FakeRunPod(api), opts, said.append)
            await eventually(lambda: any(s.startswith("running") for s in said), timeout=30)
            tg.cancel_scope.cancel()
    assert _pod(api)["desiredStatus"] == "TERMINATED"
    assert [p["desiredStatus"] for p in api.foreign.values()] == ["RUNNING", "RUNNING"]


async def test_keep_leaves_the_pod_and_no_sync_copies_nothing(sshd, dirs):
    _, remote = dirs
    api = FakeRunPodAPI()
    api.public_ssh = (sshd.host, sshd.port)
    said: list[str] = []
    opts = _options(sshd, dirs, command=("true",), keep=True, sync=False, ttl_hours=2)
    assert await session(FakeRunPod(api), opts, said.append, signals=False) == 0
    assert _pod(api)["desiredStatus"] == "RUNNING"
    assert _pod(api)["env"]["TTL_HOURS"] == "2"
    assert any("kept" in s for s in said)
    assert remote.is_dir()
    assert not (remote / "somefile").exists()


def test_cli_without_a_runpod_key_says_what_to_set():
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "ow.cli", "ssh", "--", "true"], env=env,
                          capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "RUNPOD_API_KEY" in done.stderr


async def test_no_sshd_is_an_error_after_the_timeout_and_the_pod_goes(sshd, dirs):
    api = FakeRunPodAPI()  # RunPod never reports a public ssh port
    opts = _options(sshd, dirs, command=("true",), sshd_timeout_s=0.5)
    with pytest.raises(DevPodError, match="no sshd after 0.5s"):
        await session(FakeRunPod(api), opts, lambda _: None, signals=False)
    assert _pod(api)["desiredStatus"] == "TERMINATED"


async def test_missing_public_key_is_a_config_error_before_any_pod(sshd, dirs, tmp_path):
    api = FakeRunPodAPI()
    opts = _options(sshd, dirs, key_path=tmp_path / "nokey")
    with pytest.raises(ConfigError, match="ssh-keygen"):
        await session(FakeRunPod(api), opts, lambda _: None, signals=False)
    assert api.pods == {}


async def test_ssh_address_only_for_recorded_pods():
    provider = FakeRunPod()
    with pytest.raises(PodNotRecordedError):
        await provider.ssh_address("other-1")


def test_dev_hardware_choice():
    assert dev_hardware(None, 0).name == "1x A6000"  # a dev pod gets the cheapest GPU
    assert dev_hardware(None, 70).name == "1x A100"
    assert dev_hardware("a100", 0).name == "1x A100"
    assert dev_hardware("2x H100", 0).name == "2x H100"
    with pytest.raises(ConfigError, match="unknown hardware"):
        dev_hardware("TPU", 0)


def test_snapshot_skips_excluded_dirs(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    (tmp_path / "a.py").write_text("x")
    assert {p for p, _, _ in snapshot(tmp_path)} == {"a.py"}
