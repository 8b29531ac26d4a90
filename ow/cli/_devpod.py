"""`ow ssh`: a dev pod on RunPod with the working directory synced into it.

The steps, each announced on stderr: start a dev pod (`RunPodProvider.provision_dev`: no
agent, sshd for the user's public key, the in-pod TTL watchdog on), wait for its sshd
(RunPod's public port 22, then an `ssh … true` that succeeds), push the working directory
with rsync over ssh, keep pushing what changes while the shell or command runs, and
terminate that pod when it ends, on Ctrl-C too. The pod is terminated by the id this session
recorded, never by listing the account. With `keep`, it is left running until its TTL.

The sync is one-way (this machine → the pod): what the pod writes stays on the pod.

Imports: stdlib, anyio, `ow.core` (errors, ids), `ow.scheduler` (hardware, providers).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from ow.core.errors import ConfigError, DevPodError, OWError
from ow.core.ids import uuid7
from ow.scheduler.hardware import Hardware

__all__ = ["DevPodOptions", "push", "session", "snapshot", "ssh_argv", "wait_for_sshd"]

INTERRUPTED = 130
Address = tuple[str, int]
Say = Callable[[str], Any]
# never synced: version control, caches, virtualenvs, and `.env` files (secrets stay here)
EXCLUDES = (".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".env")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DevPodOptions:
    """What `ow ssh` was asked for (the CLI's options, with their defaults)."""

    hardware: Hardware
    image: str
    key_path: Path  # the private key; its `.pub` goes into the pod
    local_dir: Path
    remote_dir: str = "/workspace"
    user: str = "root"  # RunPod pods log in as root
    command: tuple[str, ...] = ()  # empty: an interactive shell
    sync: bool = True
    keep: bool = False
    ttl_hours: float = 24.0
    sshd_timeout_s: float = 900.0  # a GPU pod can take minutes to pull its image
    poll_s: float = 2.0  # how often the sshd wait asks again
    sync_interval_s: float = 1.0  # how often live sync looks for changed files


def ssh_argv(addr: Address, opts: DevPodOptions, *, tty: bool = False) -> list[str]:
    """`ssh` to the pod. A fresh pod's host key cannot be known beforehand (as openweights
    does, it is not checked, and not stored in known_hosts either)."""
    host, port = addr
    return [
        "ssh", "-p", str(port), "-i", str(opts.key_path), "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", *(["-t"] if tty else []),
        f"{opts.user}@{host}",
    ]


def _public_key(opts: DevPodOptions) -> str:
    pub = Path(f"{opts.key_path}.pub").expanduser()
    try:
        return pub.read_text().strip()
    except OSError:
        raise ConfigError(
            f"no ssh public key at {pub}: create a key pair with `ssh-keygen -t ed25519 -f "
            f"{opts.key_path}` or pass --key PATH (the private key; PATH.pub goes into the pod)"
        ) from None


def _require_tools(opts: DevPodOptions) -> None:
    for tool in ("ssh", *(["rsync"] if opts.sync else [])):
        if shutil.which(tool) is None:
            raise ConfigError(
                f"`ow ssh` needs {tool} on this machine (Debian: apt-get install "
                f"{'openssh-client' if tool == 'ssh' else 'rsync'}), or pass --no-sync"
            )


async def wait_for_sshd(provider: Any, pod_id: str, opts: DevPodOptions) -> Address:
    """The pod's ssh address once `ssh … true` succeeds there; `DevPodError` if the pod
    exits first or `sshd_timeout_s` passes (with the last ssh error)."""
    last = "RunPod reports no public ssh port for it yet"
    with anyio.move_on_after(opts.sshd_timeout_s):
        while True:
            if await provider.status(pod_id) == "exited":
                raise DevPodError(f"pod {pod_id} exited before its sshd came up")
            addr = await provider.ssh_address(pod_id)
            if addr is not None:
                done = await _quiet([*ssh_argv(addr, opts), "true"])
                if done.returncode == 0:
                    return addr
                err = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
                last = f"ssh to {addr[0]}:{addr[1]}: {err}; is {opts.key_path}.pub the key?"
            await anyio.sleep(opts.poll_s)
    raise DevPodError(f"pod {pod_id}: no sshd after {opts.sshd_timeout_s:g}s ({last})")


async def _quiet(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a helper command (ssh, rsync) away from the terminal: no stdin, output kept."""
    return await anyio.run_process(argv, check=False, stdin=subprocess.DEVNULL)


async def _remote(addr: Address, opts: DevPodOptions, script: str) -> None:
    done = await _quiet([*ssh_argv(addr, opts), script])
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise DevPodError(f"on the pod, `{script}` failed (exit {done.returncode}): {err}")


async def push(addr: Address, opts: DevPodOptions) -> None:
    """rsync the local directory into the pod's (changed files only; nothing deleted there)."""
    rsh = shlex.join(ssh_argv(addr, opts)[:-1])
    excludes = [f"--exclude={e}" for e in EXCLUDES]
    target = f"{opts.user}@{addr[0]}:{opts.remote_dir.rstrip('/')}/"
    argv = ["rsync", "-az", *excludes, "-e", rsh, f"{opts.local_dir}/", target]
    done = await _quiet(argv)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise DevPodError(f"rsync to the pod failed (exit {done.returncode}): {err}")


def snapshot(root: Path) -> frozenset[tuple[str, int, int]]:
    """(path, mtime_ns, size) of every synced file under `root`: what live sync compares."""
    seen = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDES]
        for name in filenames:
            if name in EXCLUDES:
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:  # removed between the walk and the stat
                continue
            seen.append((os.path.relpath(path, root), st.st_mtime_ns, st.st_size))
    return frozenset(seen)


async def _live_sync(
    addr: Address, opts: DevPodOptions, say: Say, last: frozenset[tuple[str, int, int]]
) -> None:
    """Push again whenever a file changed since `last` (the files as they were before the
    first push: a change made while that push runs is pushed next); a failed push is
    reported and tried again."""
    while True:
        await anyio.sleep(opts.sync_interval_s)
        now = await anyio.to_thread.run_sync(snapshot, opts.local_dir)
        if now == last:
            continue
        try:
            await push(addr, opts)
        except DevPodError as exc:
            say(f"live sync: {exc}; trying again")
            continue
        last = now


async def _run(addr: Address, opts: DevPodOptions, say: Say) -> int:
    """The command (or a login shell) in the pod's working directory; its exit code."""
    cd = f"cd {shlex.quote(opts.remote_dir)}"
    if opts.command:
        say(f"running {' '.join(opts.command)} …")
        script = f"{cd} && {' '.join(opts.command)}"  # joined as ssh joins its arguments
    else:
        say("opening a shell (exit or Ctrl-D leaves) …")
        script = f'{cd} && exec "${{SHELL:-/bin/sh}}" -l'
    argv = [*ssh_argv(addr, opts, tty=not opts.command), script]
    done = await anyio.run_process(argv, check=False, stdin=None, stdout=None, stderr=None)
    return done.returncode


async def _work(provider: Any, pod_id: str, opts: DevPodOptions, say: Say) -> int:
    say(f"pod {pod_id}: waiting for sshd …")
    addr = await wait_for_sshd(provider, pod_id, opts)
    say(f"sshd up at {addr[0]}:{addr[1]}")
    await _remote(addr, opts, f"mkdir -p {shlex.quote(opts.remote_dir)}")
    async with anyio.create_task_group() as tg:
        if opts.sync:
            say(f"syncing {opts.local_dir} → {opts.remote_dir} …")
            pushed = await anyio.to_thread.run_sync(snapshot, opts.local_dir)
            await push(addr, opts)
            tg.start_soon(_live_sync, addr, opts, say, pushed)
        code = await _run(addr, opts, say)
        tg.cancel_scope.cancel()
    return code


async def _on_signal(scope: anyio.CancelScope, box: dict[str, Any], *,
                     task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            box["interrupted"] = True
            scope.cancel()
            return


async def session(provider: Any, opts: DevPodOptions, say: Say, *,
                  signals: bool = True) -> int:
    """`ow ssh` from start to end: the command's exit code (130 after Ctrl-C or SIGTERM)."""
    _require_tools(opts)
    public_key = _public_key(opts)
    hw = opts.hardware
    box: dict[str, Any] = {"interrupted": False, "pod_id": ""}
    code = INTERRUPTED
    try:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                if signals:
                    await tg.start(_on_signal, scope, box)
                say(f"starting pod ({hw.name}, ${hw.price_per_hour:g}/h, "
                    f"TTL {opts.ttl_hours:g}h) …")
                with anyio.CancelScope(shield=True):  # Ctrl-C now: learn the id, then end it
                    box["pod_id"], _ = await provider.provision_dev(
                        uuid7()[-8:], hw, opts.image, public_key=public_key,
                        ttl_hours=opts.ttl_hours,
                    )
                try:  # raised below, outside the task group (not as an ExceptionGroup)
                    code = await _work(provider, box["pod_id"], opts, say)
                except OWError as exc:
                    box["error"] = exc
                tg.cancel_scope.cancel()
        if box.get("error") is not None:
            raise box["error"]
    finally:
        if box["pod_id"]:
            with anyio.CancelScope(shield=True):
                await _leave(provider, box["pod_id"], opts, say)
    return INTERRUPTED if box["interrupted"] else code


async def _leave(provider: Any, pod_id: str, opts: DevPodOptions, say: Say) -> None:
    if opts.keep:
        say(f"pod {pod_id} kept: its TTL ends it in {opts.ttl_hours:g}h "
            "(`ow ssh` did not terminate it)")
        return
    say(f"terminating pod {pod_id} …")
    await provider.terminate(pod_id)
