"""`ow workers` and `ow ssh` (a dev pod on RunPod, see `ow.cli._devpod`).

Imports: typer, `ow.cli` helpers (the read service through them), `ow.scheduler` lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

__all__ = ["dev_hardware", "register", "ssh_command"]

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


def dev_hardware(hardware: str | None, vram_gb: float) -> Any:
    """The dev pod's machine: the cheapest single GPU with `vram_gb`, or the one named
    (`A100`, `2x H100`, `cpu`)."""
    from ow.core.errors import ConfigError
    from ow.scheduler.hardware import GPU_TABLE, cheapest, find

    if hardware:
        found = find(hardware, GPU_TABLE)
        if found is None:
            names = ", ".join(sorted({h.gpu for h in GPU_TABLE if h.gpu}))
            raise ConfigError(f"unknown hardware {hardware!r} for --hardware: use cpu or "
                              f"[Nx] one of {names}")
        if found.vram_gb < vram_gb:
            raise ConfigError(f"{found.name} has {found.vram_gb:g} GB, less than --vram "
                              f"{vram_gb:g}: drop --hardware or pick a larger one")
        return found
    found = cheapest(vram_gb, [], [h for h in GPU_TABLE if h.count])  # a dev pod gets a GPU
    if found is None:
        raise ConfigError(f"no single GPU has {vram_gb:g} GB: pass --hardware '2x H100' or so")
    return found


def _say(text: str) -> None:
    render.console(stderr=True).print(text, style="bright_black", markup=False, highlight=False)


_KEY = Path("~/.ssh/id_ed25519")
_COMMAND_ARGUMENT = typer.Argument(
    None, help="command to run on the pod (after `--`); none: an interactive shell"
)
_KEY_OPTION = typer.Option(_KEY, "--key", help="ssh private key (KEY.pub goes into the pod)")


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
    def ssh(
        command: list[str] = _COMMAND_ARGUMENT,
        hardware: str = typer.Option(None, "--hardware", "--gpu", help="e.g. A100, '2x H100'"),
        vram: float = typer.Option(0, "--vram", "--requires-vram-gb", help="GPU memory (GB)"),
        ttl: float = typer.Option(24, "--ttl", help="hours until the pod terminates itself"),
        no_sync: bool = typer.Option(False, "--no-sync", help="do not sync the working dir"),
        keep: bool = typer.Option(False, "--keep", help="leave the pod running (until its TTL)"),
        key: Path = _KEY_OPTION,
        image: str = typer.Option(None, "--image", help="pod image (default: the worker image)"),
        remote_dir: str = typer.Option("/workspace", "--remote-dir", help="synced dir on the pod"),
        api_key: str = typer.Option("", envvar="RUNPOD_API_KEY", hidden=True),
        worker: str = typer.Option(None, "--worker", help="only print this worker's ssh command"),
    ) -> None:
        """Start a dev pod on RunPod (no worker), sync this directory into it, open a shell
        or run the command; the pod is terminated when it ends (Ctrl-C too) unless --keep."""
        if worker:
            print(ssh_command(run(_app.ask, "worker", worker_id=worker)))
            return
        from ow.cli._devpod import DevPodOptions, session
        from ow.core import defaults
        from ow.scheduler.providers import make_provider

        opts = DevPodOptions(
            hardware=dev_hardware(hardware, vram), image=image or defaults.DEFAULT_IMAGE,
            key_path=key.expanduser(), local_dir=Path.cwd(), remote_dir=remote_dir,
            command=tuple(command or ()), sync=not no_sync, keep=keep, ttl_hours=ttl,
        )
        provider = make_provider("runpod", api_key=api_key)
        raise typer.Exit(run(session, provider, opts, _say))
