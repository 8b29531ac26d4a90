"""Streaming helpers for commands that follow something live: a run's log chunks, a job
until its terminal event (with the scheduler's reasons while it waits). Commands stay thin
by calling these.

Ctrl-C on `ow exec` and `ow deploy` cancels the job they started (JobCancelRequested through
the SDK, shielded), waits briefly for it to end, says "canceled job X" and exits 130.

Imports: anyio, `ow.core` and `ow.sdk` (lazily).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from ow.core import subjects
from ow.core.state import TERMINAL, JobState, apply, fold_all

if TYPE_CHECKING:  # nats, DuckDB and the SDK load when used, not at `ow <command>`
    from ow.core.bus import Bus
    from ow.sdk import AsyncOpenWeights

__all__ = ["deploy_model", "exec_job", "follow_job", "write_log"]

INTERRUPTED = 130  # the exit code of a command ended by Ctrl-C (128 + SIGINT)
_CANCEL_WAIT_S = 10.0  # how long Ctrl-C waits for the canceled job to end


async def write_log(bus: Bus, run_id: str, follow: bool, done: anyio.Event | None = None) -> int:
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


async def follow_job(
    bus: Bus, job_id: str, on_run: Any = None, on_state: Callable[[JobState], Any] | None = None
) -> JobState:
    """Fold a job's subject live until it is terminal; `on_run(run_id)` for each new run,
    `on_state(state)` after each event."""
    subject = subjects.job_subject(bus.org, job_id)
    history, last = await bus.history(subject)
    state = fold_all(d.event for d in history)
    if state is not None and on_state:
        on_state(state)
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
        if on_state:
            on_state(state)
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


def _say(console: Any) -> Callable[[Any], None]:
    from rich.markup import escape

    def say(notice: Any) -> None:
        console.print(f"[yellow]waiting: {escape(notice.message)}[/]")

    return say


async def _interrupted(
    scope: anyio.CancelScope, box: dict[str, Any], *, task_status: Any = anyio.TASK_STATUS_IGNORED
) -> None:
    """On SIGINT, note it and cancel `scope` (the command then cancels its job). Start it
    with `tg.start` before submitting: a Ctrl-C from then on is caught."""
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            box["interrupted"] = True
            scope.cancel()
            return


async def _cancel(c: AsyncOpenWeights, job_id: str, console: Any) -> int:
    """Cancel the job (shielded: Ctrl-C must not stop the cancel), wait briefly, say so."""
    from ow.core.errors import OWError

    with anyio.CancelScope(shield=True):
        try:
            await c.jobs.cancel(job_id)
            with anyio.move_on_after(_CANCEL_WAIT_S):
                await c.jobs.wait(job_id, unschedulable_after=None)
        except OWError:
            pass  # canceled (the expected JobCanceledError), or it ended otherwise
        status = (await c.jobs.retrieve(job_id)).status
    if status == "canceled":
        console.print(f"canceled job {job_id}")
    else:
        console.print(f"asked to cancel job {job_id}; it is still {status}")
    return INTERRUPTED


async def exec_job(command: str, mounts: list[str], vram: float, detach: bool = False) -> int:
    """`ow exec`: submit a command as a custom job, stream its output, return its exit code.

    While the job waits, the scheduler's reasons are printed; Ctrl-C cancels the job. With
    `detach`, print the job id and return at once (the job runs on).
    """
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

    err = render.console(stderr=True)
    async with _app.client() as c:
        if detach:
            job = await Exec(c).create(command=command, nonce=uuid7())
            print(job.id)
            return 0
        box: dict[str, Any] = {"interrupted": False}
        state, job_id = None, ""
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as outer:
                await outer.start(_interrupted, scope, box)
                job = await Exec(c).create(command=command, nonce=uuid7())  # always runs anew
                job_id = job.id
                err.print(f"[bright_black]job {job_id}[/]")
                state = await _follow(await c.bus(), job_id, err)
                outer.cancel_scope.cancel()
        if box["interrupted"] or state is None:
            return await _cancel(c, job_id, err) if job_id else INTERRUPTED
    last = state.runs[-1] if state.runs else None
    if state.status == "completed":
        return last.exit_code or 0 if last else 0
    render.error(f"job {job_id} {state.status}: {state.error}")
    return (last.exit_code if last and last.exit_code else 1)


async def _follow(bus: Bus, job_id: str, err: Any) -> JobState:
    """Follow a job to its end: its runs' output to stdout, the scheduler's reasons for a
    wait to stderr (each once)."""
    from ow.sdk import _pending

    done, folded = anyio.Event(), anyio.Event()
    box: dict[str, Any] = {"state": None}

    def on_state(s: JobState) -> None:
        box["state"] = s
        folded.set()

    async def watch() -> None:
        await folded.wait()  # notices are judged against the job's state
        await _pending.watch(bus, job_id, lambda: box["state"], _say(err))

    async with anyio.create_task_group() as logs:
        async def on_run(run_id: str) -> None:
            logs.start_soon(write_log, bus, run_id, True, done)

        async with anyio.create_task_group() as side:
            side.start_soon(watch)
            state = await follow_job(bus, job_id, on_run, on_state)
            side.cancel_scope.cancel()
        done.set()
    return state


async def deploy_model(model: str, vram: float | None = None) -> int:
    """`ow deploy`: keep an OpenAI-compatible API for `model` up until Ctrl-C, then cancel
    its job and say so (exit 130). A model that nothing here can serve fails at once with
    the scheduler's reason."""
    from ow.cli import _app, render

    out = render.console()
    async with _app.client() as c:
        api = c.api.deploy(model, requires_vram_gb=vram)
        box: dict[str, Any] = {"interrupted": False}
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                await tg.start(_interrupted, scope, box)
                async with api:
                    out.print(f"serving {model} at {api.base_url} (Ctrl-C stops it)")
                    await anyio.sleep_forever()
        if api.job_id:
            return await _cancel(c, api.job_id, out)
    return INTERRUPTED
