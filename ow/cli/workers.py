"""`ow workers` and `ow ssh`.

Imports: typer, `ow.cli` helpers (the read service through them).
"""

from __future__ import annotations

from typing import Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

__all__ = ["register", "ssh_command"]

_COLUMNS = ("worker_id", "status", "provider", "hardware", "vram_gb", "isolation", "run_id",
            "last_ping")


def ssh_command(worker: dict[str, Any]) -> str:
    """The ssh command for a RunPod worker (RunPod's ssh proxy, user = the pod id)."""
    from ow.core.errors import UnsupportedError

    if worker["provider"] != "runpod" or not worker["pod_id"]:
        raise UnsupportedError(
            f"worker {worker['worker_id']} is a {worker['provider'] or 'local'} worker, not a "
            "RunPod pod: it runs on this machine (or wherever its agent was started), no ssh"
        )
    return f"ssh {worker['pod_id']}@ssh.runpod.io -i ~/.ssh/id_ed25519"


def register(app: typer.Typer) -> None:
    @app.command()
    def workers(
        all: bool = typer.Option(False, "--all", help="include terminated workers"),
        json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Workers with their status, hardware, current run and last heartbeat."""
        rows = run(_app.ask, "list_workers", include_terminated=all)
        render.json_out(rows) if json else render.table(rows, _COLUMNS)

    @app.command()
    def ssh(worker_id: str) -> None:
        """Print the ssh command for a RunPod worker's pod."""
        print(ssh_command(run(_app.ask, "worker", worker_id=worker_id)))
