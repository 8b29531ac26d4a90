"""`ow audit`: check the history and the projection; exit 1 if anything is wrong.

Imports: typer, msgspec, `ow.cli` helpers, `ow.projections`.
"""

from __future__ import annotations

from typing import Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(json: bool = typer.Option(False, "--json")) -> None:
        """Report every violation of the log's rules, with the event that shows it."""
        import msgspec

        from ow.projections.audit import audit as audit_

        async def go() -> Any:
            async with _app.connected() as bus:
                return await audit_(bus, _app.settings.db)

        report = run(go)
        rows = [msgspec.to_builtins(v) for v in report.violations]
        if json:
            render.json_out({"org": report.org, "clean": report.clean,
                             "positions": report.positions, "violations": rows})
        elif report.clean:
            render.console().print(f"[green]clean[/]: {report.positions}")
        else:
            render.table(rows, ("rule", "aggregate_id", "seq", "event_type", "detail"))
            if any(v.rule == "projection-drift" for v in report.violations):
                render.console().print(
                    "projection-drift: the projection file disagrees with a fresh replay of "
                    "the log (written by an older ow, or changed by hand); "
                    "`ow projections rebuild` rebuilds it from the log")
        if not report.clean:
            raise typer.Exit(1)
