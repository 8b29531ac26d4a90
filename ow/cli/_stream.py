"""Streaming helpers for commands that follow something live: a run's log chunks, a job
until its terminal event. Commands stay thin by calling these.

Imports: anyio and `ow.core`.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

from ow.core import subjects
from ow.core.state import TERMINAL, JobState, apply, fold_all

__all__ = ["follow_job", "write_log"]


async def write_log(bus: Any, run_id: str, follow: bool, done: anyio.Event | None = None) -> int:
    """Copy a run's log chunks (raw bytes) to stdout; with `follow`, until `done` is set
    and every chunk stored by then is written."""
    subject = subjects.log_subject(bus.org, run_id)
    last = await bus.last_seq(subjects.LOGS_STREAM, subject)
    if not follow and not last:
        return 0
    out = sys.stdout.buffer
    written, seen, end = 0, [0], [None]
    async with anyio.create_task_group() as tg:
        if follow and done is not None:
            async def stop_when_done() -> None:
                await done.wait()
                end[0] = await bus.last_seq(subjects.LOGS_STREAM, subject)
                if seen[0] >= end[0]:
                    tg.cancel_scope.cancel()

            tg.start_soon(stop_when_done)
        async for seq, _, data in bus.subscribe(
            subject, stream=subjects.LOGS_STREAM, start_seq=1,
            stop_at=None if follow else last, raw=True,
        ):
            out.write(data)
            out.flush()
            written += len(data)
            seen[0] = seq
            if end[0] is not None and seq >= end[0]:
                break
        tg.cancel_scope.cancel()
    return written


async def follow_job(bus: Any, job_id: str, on_run: Any = None) -> JobState:
    """Fold a job's subject live until it is terminal; `on_run(run_id)` for each new run."""
    subject = subjects.job_subject(bus.org, job_id)
    history, last = await bus.history(subject)
    state = fold_all(d.event for d in history)
    started = set()
    if state is not None:
        for r in state.runs:
            started.add(r.run_id)
            if on_run:  # a fast job may have finished already: its output still counts
                await on_run(r.run_id)
        if state.status in TERMINAL:
            return state
    async for d in bus.subscribe(subject, start_seq=last + 1):
        state, _ = apply(state, d.event)
        if state is None:
            continue
        for r in state.runs:
            if r.run_id not in started:
                started.add(r.run_id)
                if on_run:
                    await on_run(r.run_id)
        if state.status in TERMINAL:
            return state
    raise AssertionError("unreachable: subscriptions do not end")


async def show_logs(job_or_run: str, follow: bool) -> None:
    """`ow logs`: the live chunks of a run; the saved log file once they are gone."""
    from ow.cli import _app

    async with _app.connected(provision=False) as bus, _app.reader(bus) as reader:
        r = await reader.result("resolve_run", {"job_or_run": job_or_run})
        live = follow and r["status"] == "in_progress"
        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            if live:
                async def watch() -> None:
                    await follow_job(bus, r["job_id"])
                    done.set()

                tg.start_soon(watch)
            written = await write_log(bus, r["run_id"], live, done if live else None)
            tg.cancel_scope.cancel()
    if not written and r["log_file"]:
        async with _app.client() as c:
            sys.stdout.buffer.write(await c.files.content(r["log_file"]))
            sys.stdout.flush()


async def exec_job(command: str, mounts: list[str], vram: float) -> int:
    """`ow exec`: submit a command as a custom job, stream its output, return its exit code."""
    from pathlib import Path

    from ow.cli import _app, render
    from ow.core.ids import uuid7
    from ow.sdk import Jobs

    class Exec(Jobs):
        job_type = "exec"
        requires_vram_gb = vram
        mount = {m: Path(m).name for m in mounts}

        def get_entrypoint(self, validated_params: Any) -> str:
            return validated_params["command"]

    async with _app.client() as c:
        job = await Exec(c).create(command=command, nonce=uuid7())  # exec always runs anew
        render.console(stderr=True).print(f"[bright_black]job {job.id}[/]")
        bus = await c.bus()
        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            async def on_run(run_id: str) -> None:
                tg.start_soon(write_log, bus, run_id, True, done)

            state = await follow_job(bus, job.id, on_run)
            done.set()
    last = state.runs[-1] if state.runs else None
    if state.status == "completed":
        return last.exit_code or 0 if last else 0
    render.error(f"job {job.id} {state.status}: {state.error}")
    return (last.exit_code if last and last.exit_code else 1)


async def deploy_model(model: str) -> None:
    """`ow deploy`: keep an OpenAI-compatible API for `model` up until Ctrl-C."""
    from ow.cli import _app, render
    from ow.core.errors import OWError

    async with _app.client() as c:
        try:
            deploy = c.api.deploy
        except AttributeError as exc:
            raise OWError("`ow deploy` needs the SDK's api.deploy, which this build lacks") from exc
        async with deploy(model) as api:
            render.console().print(f"serving {model} at {getattr(api, 'base_url', api)} (Ctrl-C)")
            await anyio.sleep_forever()
