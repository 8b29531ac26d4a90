"""`ow ls`, `ow show`, `ow logs`, `ow cancel`, `ow restart`, `ow exec`, `ow deploy`.

Imports: typer, `ow.cli` helpers, `ow.projections`, `ow.sdk`.
"""

from __future__ import annotations

from typing import Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

__all__ = ["register"]

_LS_COLUMNS = ("job_id", "type", "status", "model", "runs", "worker_id", "created_at")


def _job_dict(job: Any) -> dict[str, Any]:
    return {"job_id": job.id, "type": job.type, "status": job.status, "gen": job.gen,
            "runs": [r.id for r in job.runs], "error": job.error, "outputs": job.outputs}


_MOUNT_OPTION = typer.Option([], "--mount", help="file or directory to mount (repeatable)")
_IDS_ARGUMENT = typer.Argument(None, help="job ids; `-` or none: read them from stdin")


def register(app: typer.Typer) -> None:
    @app.command("ls")
    def ls(
        status: str = typer.Option(None, help="pending | in_progress | completed | failed | …"),
        type: str = typer.Option(None, "--type", help="job type"),
        prefix: str = typer.Option(None, "--prefix", help="job ids starting with this"),
        limit: int = typer.Option(100, help="at most this many"),
        offset: int = typer.Option(0, help="skip this many (paging)"),
        json: bool = typer.Option(False, "--json", help="print JSON"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="bare job ids, one a line"),
    ) -> None:
        """List jobs, newest first (from the read service, or a private fold without one)."""
        rows = run(_app.ask, "list_jobs", status=status, type=type, prefix=prefix,
                   limit=limit, offset=offset)
        if quiet:  # openweights' `ls` output, for piping into `ow cancel -`
            print("\n".join(r["job_id"] for r in rows))
            return
        render.json_out(rows) if json else render.table(rows, _LS_COLUMNS)

    @app.command()
    def show(
        job_id: str, json: bool = typer.Option(False, "--json", help="print JSON")
    ) -> None:
        """A job, its runs and its last events."""
        async def go() -> dict[str, Any]:
            async with _app.reader() as r:  # one connection for both reads
                detail = await r.result("job_detail", {"job_id": job_id})
                if detail["status"] == "pending":  # why it waits: the scheduler's notice
                    from ow.sdk._pending import reason_of  # the SDK: ~40 ms, only if it waits

                    detail["pending_reason"] = await reason_of(r.bus, detail["job_id"])
            return detail

        job = run(go)
        if json:
            return render.json_out(job)
        render.console().print(
            f"[bold]{job['job_id']}[/] {job['type']} [bold]{job['status']}[/] gen {job['gen']}"
            f" model={job['model'] or '-'} image={job['image'] or '-'}"
            + (f"\n[red]{job['error']}[/]" if job["error"] else "")
            + (f"\n[yellow]waiting: {job['pending_reason']}[/]"
               if job.get("pending_reason") else "")
        )
        render.table(job["runs_detail"], ("run_id", "gen", "status", "worker_id", "exit_code",
                                          "started_at", "finished_at"), title="runs")
        render.table(job["events"], ("seq", "ts", "type", "actor"), title="last events")

    @app.command()
    def logs(
        job_or_run: str, follow: bool = typer.Option(False, "--follow", "-f", help="follow live"),
        run_id: str = typer.Option(None, "--run-id", help="this run of the job (default: last)"),
    ) -> None:
        """A run's output (a job's latest run), from the log stream or the saved log file."""
        from ow.cli._stream import show_logs

        run(show_logs, run_id or job_or_run, follow)

    @app.command()
    def cancel(
        job_ids: list[str] = _IDS_ARGUMENT,
        json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Cancel jobs (running ones are killed): `ow cancel ID…` or `ow ls -q | ow cancel -`."""
        from ow.cli.compat import ids_from

        ids = ids_from(job_ids or [])

        async def go() -> Any:
            async with _app.client() as c:
                return [_job_dict(await c.jobs.cancel(job_id)) for job_id in ids]

        jobs = run(go)
        if json:
            return render.json_out(jobs[0] if len(jobs) == 1 else jobs)
        for job_id, job in zip(ids, jobs, strict=True):
            render.console().print(f"{job_id}: {job['status']}")

    @app.command()
    def restart(job_id: str, json: bool = typer.Option(False, "--json")) -> None:
        """Run a finished job again (a new generation)."""
        async def go() -> Any:
            async with _app.client() as c:
                return _job_dict(await c.jobs.restart(job_id))

        job = run(go)
        render.json_out(job) if json else render.console().print(f"{job_id}: {job['status']}")

    @app.command("exec")
    def exec_(
        command: str,
        mount: list[str] = _MOUNT_OPTION,
        vram: float = typer.Option(0, "--vram", "--requires-vram-gb", help="GPU memory (GB)"),
        detach: bool = typer.Option(False, "--detach", "-d", help="print the job id and return"),
        wait: bool = typer.Option(True, "--wait", hidden=True,
                                  help="openweights' flag: ow exec always waits and streams"),
    ) -> None:
        """Run a shell command as a custom job, stream its output, exit with its exit code.

        Ctrl-C cancels the job (exit 130); with --detach it runs on."""
        from ow.cli._stream import exec_job

        raise typer.Exit(run(exec_job, command, mount, vram, detach))

    @app.command()
    def deploy(
        model: str,
        vram: float = typer.Option(None, "--vram", "--requires-vram-gb",
                                   help="GPU memory (GB); 0 runs on a CPU"),
    ) -> None:
        """Serve a model behind an OpenAI-compatible API until Ctrl-C (which cancels its job)."""
        from ow.cli._stream import deploy_model

        raise typer.Exit(run(deploy_model, model, vram))
