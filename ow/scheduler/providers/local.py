"""The local provider: agents as processes on this machine (the embedded default of `ow up`).

Each worker is `python -m ow.agent --worker-id <id>` in its own process group, with OW_URL,
OW_ORG (and OW_IMAGE) in its environment; its pod id is `local-<pid>`. Only pids recorded
here are ever signalled: a pid replayed from an earlier scheduler (`record`) is signalled only
while /proc shows it still runs that worker, since pids are reused.

Imports: stdlib, anyio, `ow.core.server` and `ow.scheduler`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from ow.core.server import pid_alive
from ow.scheduler.hardware import Hardware
from ow.scheduler.providers._base import PodNotRecordedError, PodStatus, ProviderError

__all__ = ["LOCAL_OFFERS", "LocalProvider"]

log = logging.getLogger(__name__)

#: what this machine offers by default: one CPU worker at no cost
LOCAL_OFFERS = (Hardware(name="cpu", price_per_hour=0.0),)
_TERM_GRACE_S = 15.0  # the agent takes up to LEAVE_TIMEOUT_S to requeue and say goodbye


def _pid(pod_id: str) -> int:
    return int(pod_id.removeprefix("local-"))


def _orphaned(pid: int) -> bool:
    """Whether the process's starter is gone (it was handed to init, or its parent died)."""
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return ppid == 1 or not pid_alive(ppid)


async def _poll(interval_s: float) -> AsyncIterator[None]:
    """Tick every `interval_s` (waiting on a process we did not start has no event)."""
    while True:
        yield
        await anyio.sleep(interval_s)


class LocalProvider:
    """Starts and stops agent processes; `name = "local"`."""

    name = "local"

    def __init__(
        self,
        *,
        offers: tuple[Hardware, ...] = LOCAL_OFFERS,
        base_env: Mapping[str, str] | None = None,
        log_dir: str | Path | None = None,
        term_grace_s: float = _TERM_GRACE_S,
        argv: list[str] | None = None,
    ):
        self._offers = offers
        # the child needs PATH, HOME, ...: like the agent's child_env, it starts from ours
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._log_dir = Path(log_dir) if log_dir else None
        self._grace = term_grace_s
        self._argv = argv or [sys.executable, "-m", "ow.agent"]
        self._pods: dict[str, str] = {}  # pod_id -> worker_id
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def offers(self) -> tuple[Hardware, ...]:
        return self._offers

    def record(self, pod_id: str, worker_id: str) -> None:
        if pod_id.startswith("local-"):
            self._pods.setdefault(pod_id, worker_id)

    async def provision(
        self, worker_id: str, hardware: Hardware, image: str, env: Mapping[str, str]
    ) -> tuple[str, float]:
        child_env = {**self._base_env, **env}
        if image:
            child_env["OW_IMAGE"] = image
        try:
            proc = await anyio.to_thread.run_sync(self._spawn, worker_id, child_env)
        except OSError as exc:
            raise ProviderError(self.name, f"could not start an agent process: {exc}") from exc
        pod_id = f"local-{proc.pid}"
        self._pods[pod_id] = worker_id
        self._procs[pod_id] = proc
        log.info("started worker_id=%s pid=%s", worker_id, proc.pid)
        return pod_id, hardware.price_per_hour

    def _spawn(self, worker_id: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self._log_dir / f"{worker_id}.log", "ab")  # noqa: SIM115
        try:
            return subprocess.Popen(
                [*self._argv, "--worker-id", worker_id], env=env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # the child holds its own copy

    async def _gone_within(self, pod_id: str, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the process to exit; whether it did."""
        with anyio.move_on_after(timeout_s):
            async for _ in _poll(0.05):
                if not self._alive(pod_id):
                    return True
        return not self._alive(pod_id)

    def _alive(self, pod_id: str) -> bool:
        """Whether the recorded process still runs (and, if adopted, still is that worker)."""
        proc = self._procs.get(pod_id)
        if proc is not None:
            return proc.poll() is None  # a child is not reaped before poll(): no pid reuse
        pid = _pid(pod_id)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if not cmdline:  # exiting (its memory already released) until it is a zombie
            return pid_alive(pid)
        return self._pods[pod_id].encode() in cmdline.split(b"\0")

    async def terminate(self, pod_id: str) -> None:
        if pod_id not in self._pods:
            raise PodNotRecordedError(self.name, pod_id)
        if not self._alive(pod_id):
            return
        pid = _pid(pod_id)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        if await self._gone_within(pod_id, self._grace):
            return
        log.warning("pod_id=%s ignored SIGTERM for %ss; killing its group", pod_id, self._grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        await self._gone_within(pod_id, 5)

    async def status(self, pod_id: str) -> PodStatus:
        if pod_id not in self._pods:
            return "unknown"
        return "running" if self._alive(pod_id) else "exited"

    async def aclose(self) -> None:
        """Stop the agents this process started, and the orphans among those it adopted
        (started by an earlier scheduler of this stack that died, killed say): they would
        outlive `ow up` otherwise. An adopted agent whose starter still runs is that
        starter's to stop."""
        pods = [p for p in self._pods
                if self._alive(p) and (p in self._procs or _orphaned(_pid(p)))]
        async with anyio.create_task_group() as tg:
            for pod_id in pods:
                tg.start_soon(self.terminate, pod_id)
