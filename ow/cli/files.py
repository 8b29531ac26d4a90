"""`ow files upload` and `ow fetch`.

Imports: typer, `ow.cli` helpers, `ow.sdk`.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    files = typer.Typer(help="Files: upload.", no_args_is_help=True)
    app.add_typer(files, name="files")

    @files.command()
    def upload(
        path: str,
        purpose: str = typer.Option(..., "--purpose", help="conversations, preference, custom…"),
        json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Upload a file (validated for its purpose first); prints its id."""
        async def go() -> Any:
            async with _app.client() as c:
                return dict(await c.files.upload(path, purpose))

        obj = run(go)
        render.json_out(obj) if json else render.console().print(obj["id"])

    @app.command()
    def fetch(
        file_or_job: str, dest: str = typer.Argument(".", help="where to write; - for stdout"),
        output: str = typer.Option(None, "--output", "-o", help="write the file here (- stdout)"),
    ) -> None:
        """Download a file by id, or a job's artifacts and log (its last run)."""
        dest = output or dest
        if dest == "-":  # openweights' default: the file's bytes on stdout
            async def content() -> bytes:
                async with _app.client() as c:
                    return await c.files.content(file_or_job)

            sys.stdout.buffer.write(run(content))
            sys.stdout.buffer.flush()
            return

        async def go() -> Any:
            async with _app.client() as c:
                if ":file-" in file_or_job:
                    return await c.files.download(file_or_job, _file_dest(file_or_job, dest))
                return await c.jobs.download(file_or_job, dest)

        render.console().print(str(run(go)))


def _file_dest(file_id: str, dest: str) -> str:
    from pathlib import Path

    path = Path(dest)
    return str(path / file_id.replace(":", "_")) if path.is_dir() else dest
