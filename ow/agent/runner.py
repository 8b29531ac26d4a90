"""Run one claimed job: working directory, mounted files, the process, its logs, its outcome.

The entrypoint runs through `bash -c` in its own process group (led by `_reaper.py`, so it
dies with the agent), with `OW_RUN_ID`, `OW_JOB_ID` and the connection settings in its
environment. Its output goes to a log file
and, in chunks, to `OW_LOGS`. A cancel request or a timeout kills the whole group (SIGTERM,
then SIGKILL after a short grace). The result is published only under a CAS on the claim:
a run whose claim was taken away publishes nothing.

Isolation (`ow.agent.sandbox`): the job runs in a bubblewrap sandbox, as another user, or
plainly, as chosen once per agent (`isolation_for`); the log's first line says which. The
run's work dir is removed when the run ends, but for the last few failed ones.

Imports: anyio, `ow.core` and `ow.agent.policy`/`sandbox`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import Process

from ow.agent import sandbox
from ow.agent.policy import outcome
from ow.core import claims, codec, defaults, subjects
from ow.core import events as ev
from ow.core.blobs import BlobStore
from ow.core.bus import Bus
from ow.core.files import announced, fetch_file, inside
from ow.core.state import JobState, apply

__all__ = ["Execution", "child_env", "isolation_for", "job_argv"]

log = logging.getLogger(__name__)


def child_env(
    base: Mapping[str, str], *, run_id: str, job_id: str, url: str, org: str,
    secrets: Mapping[str, str] | None = None, workdir: Path | None = None,
) -> dict[str, str]:
    """The job's environment: the allow-listed part of ours (`sandbox.job_env`), the org's
    secrets and call-back token, the run's ids and the connection."""
    run = {"OW_RUN_ID": run_id, "OW_JOB_ID": job_id, "OW_URL": url, "OW_ORG": org}
    return sandbox.job_env(base, workdir=workdir or Path.cwd(), run=run, secrets=secrets,
                           python_bin=str(Path(sys.executable).parent))


def isolation_for(mode: str) -> str:
    """The isolation this machine gives jobs under OW_SANDBOX=`mode` (bwrap is tried once:
    installed is not enough where user namespaces are off)."""
    has_bwrap = os.access(sandbox.BWRAP, os.X_OK) and _bwrap_works()
    return sandbox.choose(mode, has_bwrap=has_bwrap, euid=os.geteuid(),
                          has_setpriv=os.access(sandbox.SETPRIV, os.X_OK))


@functools.cache
def _bwrap_works() -> bool:
    import subprocess

    argv = sandbox.bwrap_argv(["/bin/true"], workdir=Path("/"), read_only=[],
                              symlinks=_symlinks())
    try:
        return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def _symlinks() -> dict[str, str]:
    return {d: os.readlink(d) for d in sandbox.SYSTEM_DIRS if os.path.islink(d)}


def _python_dirs() -> list[str]:
    """What a sandboxed job needs to run our Python and import `ow`."""
    return [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(
        os.path.realpath(sys.executable)), str(Path(__file__).resolve().parents[2])]


def job_argv(
    entrypoint: str, isolation: str = "none", workdir: Path | None = None,
    env: Mapping[str, str] | None = None, hidden: tuple[Path, ...] = (),
    read_only: tuple[str, ...] = (),
) -> list[str]:
    """The job's command: `bash -c`, inside its sandbox (`isolation`), led on Linux by
    `_reaper.py`, which takes the job's process group down when this agent dies (even by
    kill -9). `hidden` are paths a sandbox must never expose (the ow home, all work dirs);
    `read_only` more dirs it may read (OW_SANDBOX_RO: the operator's model dirs)."""
    command = ["bash", "-c", entrypoint]
    if isolation == "bwrap":
        assert workdir is not None
        ro = sandbox.read_only_paths(env or {}, [*_python_dirs(), *read_only],
                                     hidden=[str(h) for h in hidden])
        command = sandbox.bwrap_argv(command, workdir=workdir, read_only=ro,
                                     symlinks=_symlinks())
    elif isolation == "user":
        command = sandbox.user_argv(command)
    if not sys.platform.startswith("linux"):
        return command
    reaper = str(Path(__file__).with_name("_reaper.py"))
    return [sys.executable, "-I", "-S", reaper, str(os.getpid()), *command]


@dataclass
class Execution:
    """One run of a job on this worker, from download to the fenced result."""

    bus: Bus
    blobs: BlobStore
    state: JobState
    last_seq: int
    run_id: str
    claim: claims.Claim
    claim_rev: int
    workdir: Path
    env: dict[str, str]
    isolation: str = "none"  # sandbox.choose: bwrap | user | none
    hidden: tuple[Path, ...] = ()  # never inside a sandbox: the ow home, all work dirs
    read_only: tuple[str, ...] = ()  # more dirs a sandboxed job may read (OW_SANDBOX_RO)
    open_server: bool = False  # no auth: the submitter is the operator (shared_model_dir)
    keep_failed: int = defaults.KEEP_FAILED_RUNS
    canceled: bool = False
    status: str = ""
    timed_out: bool = False
    deadline: datetime | None = None
    proc: Process | None = None
    tail: bytearray = field(default_factory=bytearray)
    _log_futures: list[Any] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return self.state.job_id

    async def run(self) -> str:
        """Execute the job; returns the published status ('' if fenced out)."""
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.workdir / "uploads").mkdir(exist_ok=True)
        log_path = self.workdir.parent / f"{self.run_id}.log"
        try:
            try:
                await self._download()
            except Exception as exc:  # a missing mounted file fails the job, not the agent
                return await self._publish(
                    "failed", None, f"could not fetch mounted files: {exc}", "")
            return await self._run(log_path)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(self._clean_up, log_path)

    async def _run(self, log_path: Path) -> str:
        if self.isolation == "user":
            _give(self.workdir, sandbox.NOBODY)  # the job runs as nobody: its dir is its own
            # and it can reach it by its absolute path (HOME), without listing its siblings
            self.workdir.parent.chmod(self.workdir.parent.stat().st_mode | 0o111)
        spec = self.state.spec
        if spec.timeout_s:
            self.deadline = ev.now() + _seconds(spec.timeout_s)
        if self.state.timeout_until is not None:  # extended before this run started
            self.deadline = max(self.deadline or self.state.timeout_until, self.state.timeout_until)
        exit_code: int | None = None
        with open(log_path, "wb") as logf:  # noqa: ASYNC230 - local appends, chunk by chunk
            first = sandbox.describe(self.isolation).encode()
            logf.write(first)  # which isolation this job got, before anything it prints
            self._log_futures.append(await self.bus.publish_raw(
                subjects.log_subject(self.bus.org, self.run_id), first, wait=False))
            shared = sandbox.shared_model_dir(spec.model, open_server=self.open_server)
            log.info("run_id=%s isolation=%s extra read-only=%s", self.run_id, self.isolation,
                     [*self.read_only, *shared])
            argv = job_argv(spec.entrypoint, self.isolation, self.workdir, self.env,
                            self.hidden, (*self.read_only, *shared))
            try:
                self.proc = proc = await anyio.open_process(
                    argv, cwd=self.workdir, env=self.env, stdout=-1, stderr=-2,
                    start_new_session=True,
                )
            except OSError as exc:
                return await self._publish("failed", None, f"could not start: {exc}", "")
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_control, proc)
                pumped = anyio.Event()
                tg.start_soon(self._pump, proc, logf, pumped)
                exit_code = await proc.wait()
                # a job ends with its entrypoint: what it left running in the background dies
                # (and so lets go of the output pipe); one that escaped the group is not waited for
                _kill_leftovers(proc.pid)
                with anyio.move_on_after(defaults.LEFTOVER_OUTPUT_S):
                    await pumped.wait()
                tg.cancel_scope.cancel()
            with contextlib.suppress(OSError):
                await proc.aclose()  # its pipe and transport (the process has exited)
        await self._settle_logs()
        await self._upload_artifacts()
        log_file = await self._upload_log(log_path)
        status = outcome(exit_code, self.canceled, self.timed_out)
        error = ""
        if status == "failed":
            error = f"exit code {exit_code}; last output:\n{self._tail_text()}"
        elif self.timed_out:
            error = "timed out"
        elif self.canceled:
            error = "canceled"
        return await self._publish(status, exit_code, error, log_file)

    async def _download(self) -> None:
        for dest, file_id in self.state.spec.mounted_files.items():
            target = inside(self.workdir, dest, "mounted file")  # the submitter's path
            target.parent.mkdir(parents=True, exist_ok=True)
            event = await announced(self.bus, file_id)  # its digest, when it was announced
            await fetch_file(self.blobs, subjects.file_key(self.bus.org, file_id), target,
                             file_id=file_id, announced_sha=event.sha256 if event else "")

    async def _pump(self, proc: Process, logf: Any, done: anyio.Event) -> None:
        """Copy output to the log file and to OW_LOGS (chunks, not waiting for acks)."""
        assert proc.stdout is not None
        subject = subjects.log_subject(self.bus.org, self.run_id)
        async for chunk in proc.stdout:
            logf.write(chunk)
            logf.flush()
            self.tail.extend(chunk)
            del self.tail[: -defaults.LOG_TAIL_CHARS]
            self._log_futures.append(await self.bus.publish_raw(subject, chunk, wait=False))
        done.set()

    async def _settle_logs(self) -> None:
        """Wait for the log chunks' acks, each for a while: the ack of a chunk sent before a
        server restart never comes (its future would wait forever), and a lost log chunk
        must not lose the result (the whole log is uploaded as a file anyway)."""
        for fut in self._log_futures:
            try:
                with anyio.fail_after(defaults.REQUEST_TIMEOUT_S):
                    await fut
            except Exception as exc:
                log.warning("log chunk of run_id=%s not stored: %r", self.run_id, exc)
        self._log_futures.clear()

    def _tail_text(self) -> str:
        return self.tail.decode(errors="replace")[-defaults.LOG_TAIL_CHARS :]

    async def _watch_control(self, proc: Process) -> None:
        """Kill the process group on a cancel request or when the deadline passes."""
        subject = subjects.job_subject(self.bus.org, self.job_id)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_deadline, proc)
            state = self.state
            async for d in self.bus.subscribe(subject, start_seq=self.last_seq + 1):
                state, _ = apply(state, d.event)
                if isinstance(d.event, ev.JobTimeoutExtended):
                    self.deadline = d.event.until
                if state.cancel_requested or state.status == "canceled":
                    self.canceled = True
                    await kill_group(proc)
                    return

    async def _watch_deadline(self, proc: Process) -> None:
        while True:
            if self.deadline is not None and ev.now() >= self.deadline:
                self.timed_out = True
                await kill_group(proc)
                return
            await anyio.sleep(0.2)

    async def _upload_artifacts(self) -> None:
        root = self.workdir / "uploads"
        for path in _regular_files(root):
            rel = str(path.relative_to(root))
            try:
                fid = await self._upload(path, "result")
            except Exception as exc:
                log.warning("artifact %s of run_id=%s not uploaded: %s", rel, self.run_id, exc)
                continue
            await self.bus.publish(
                ev.ArtifactUploaded(run_id=self.run_id, job_id=self.job_id, file_id=fid, path=rel)
            )

    async def _upload_log(self, log_path: Path) -> str:
        try:
            return await self._upload(log_path, "log")
        except Exception as exc:
            log.warning("log of run_id=%s not uploaded: %s", self.run_id, exc)
            return ""

    async def _upload(self, path: Path, purpose: str) -> str:
        """Store a file's bytes and publish FileUploaded (content-addressed, idempotent)."""
        from ow.core.files import store_file

        return await store_file(self.bus, self.blobs, path, purpose)

    async def _outputs(self) -> dict[str, Any]:
        """The run's outputs: the data of its last `ow.run.log` record (openweights' rule)."""
        raw = await self.bus.last_raw(
            subjects.METRICS_STREAM, subjects.metric_subject(self.bus.org, self.run_id)
        )
        if not raw:
            return {}
        try:
            records = codec.decode_message(raw)
        except msgspec.MsgspecError:
            return {}
        last = records[-1] if records else None
        return dict(last.data) if isinstance(last, ev.MetricLogged) else {}

    async def _publish(
        self, status: str, exit_code: int | None, error: str, log_file: str
    ) -> str:
        """Publish the result under a CAS on the claim; nothing if the claim was taken away."""
        self.status = status
        outputs = await self._outputs() if status == "completed" else {}
        if await claims.finish(self.bus, self.job_id, self.claim, self.claim_rev) is None:
            log.warning(
                "run_id=%s lost its claim on job_id=%s: result not published", self.run_id,
                self.job_id,
            )
            return ""
        await self.bus.publish(
            ev.RunFinished(
                run_id=self.run_id, job_id=self.job_id, status=status, exit_code=exit_code,
                error=error, log_file=log_file, outputs=outputs,
            )
        )
        return status


    def _clean_up(self, log_path: Path) -> None:
        """Remove the run's work dir and log file once it ended (the log is uploaded); keep
        the last `keep_failed` failed ones (renamed `failed-<run id>`) for a look."""
        import shutil

        if self.status == "failed" and self.keep_failed > 0:
            self.workdir.rename(self.workdir.with_name(f"failed-{self.workdir.name}"))
            kept = sorted(self.workdir.parent.glob("failed-*"), key=lambda p: p.stat().st_mtime)
            for old in kept[: -self.keep_failed]:
                shutil.rmtree(old, ignore_errors=True)
                old.with_name(f"{old.name.removeprefix('failed-')}.log").unlink(missing_ok=True)
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
        log_path.unlink(missing_ok=True)


def _regular_files(root: Path) -> list[Path]:
    """The regular files under `root`, never through a symlink: a job's `uploads/x -> /home/..`
    would otherwise have the agent upload a file the job itself cannot read."""
    found = []
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(top) / name
            if path.is_symlink() or not path.is_file():
                log.warning("artifact %s is not a regular file (a symlink?): not uploaded", path)
                continue
            found.append(path)
        dirs.sort()
    return sorted(found)


def _give(root: Path, uid: int) -> None:
    """Make `root` and everything in it `uid`'s (its group too)."""
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, uid)


def _kill_leftovers(pgid: int) -> None:
    """SIGKILL what is left of an exited job's process group (nothing, usually)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def kill_group(proc: Process) -> None:
    """SIGTERM the process group, SIGKILL it after a short grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        with anyio.move_on_after(defaults.KILL_GRACE_S):
            await proc.wait()
            return


def _seconds(s: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=s)
