"""openweights' CLI commands that ow spells differently, and the helpers they share.

- `ow signup NAME` (operator machine): create an org and its first admin token
  (openweights' `signup` made a user, an org and an API key; ow has no users, so the org's
  first admin token is the key). The token is printed once, to stdout.
- `ow cluster`: run the scheduler in the foreground (openweights' `cluster` ran its
  cluster manager; `ow up` runs it too, with NATS, an agent and the read service).
- `ow manage ...`: openweights' `manage` enabled/disabled managed clusters per org; ow's
  equivalents are `ow org` and `ow token` (printed by `ow manage`).
- `.env` parsing for `ow env import FILE`, and masking for `ow env show` (values are never
  printed: a mask that says only how long a value is).
- Reading job ids for `ow cancel` from arguments or, with `-` or none, from stdin.

Imports: stdlib, typer; `ow.cli` and `ow.core` inside functions.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

import typer

__all__ = ["ids_from", "mask", "parse_dotenv", "register"]

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """NAME=value pairs of a .env file (`export`, quotes and # comments as shells write
    them); a malformed line is an error naming the file and line, never showing its value."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            from ow.core.errors import ValidationError

            raise ValidationError(
                f"{source}:{n}: not a NAME=value line; fix it or comment it out with #"
            )
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[name] = value
    return out


def mask(value: str) -> str:
    """A stand-in for a secret value: how long it is, nothing of what it is."""
    return f"{'*' * min(len(value), 8)} ({len(value)} chars)" if value else "(empty)"


def ids_from(args: Iterable[str], stdin: Any = None) -> list[str]:
    """Job ids from arguments; `-` or no argument reads them from stdin (one or more a line)."""
    given = list(args)
    if given and given != ["-"]:
        return given
    stream = sys.stdin if stdin is None else stdin
    return [word for line in stream for word in line.split()]


def register(app: Any) -> None:
    """Add `signup`, `cluster` and `manage`."""

    @app.command()
    def signup(
        name: str = typer.Argument(..., help="the new org's name"),
        expires: str = typer.Option("never", "--expires", help="e.g. 30d, never"),
    ) -> None:
        """Create an org and its first admin token (on the machine that runs `ow up`)."""
        from ow.cli import _app
        from ow.cli.tenancy import _home, _now, apply
        from ow.core import tenancy

        now = _now()
        with tenancy.update(_home()) as state:
            tenancy.create_org(state, name, now)
            token, record = tenancy.create_token(
                state, name, "admin", now, tenancy.parse_expires(expires, now), "signup")
        note = apply(_home(), _app.settings.config.url)
        print(token)
        print(f"org {name} created with admin token {record.token_id} ({note}); export "
              f"OW_TOKEN=<the token above> OW_ORG={name}. It is shown only this once.",
              file=sys.stderr)

    @app.command()
    def cluster() -> None:
        """Run the scheduler in the foreground (what `ow up` runs beside NATS and an agent)."""
        from ow.scheduler.__main__ import main as scheduler_main

        sys.argv = ["ow-scheduler"]
        scheduler_main()

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def manage(ctx: typer.Context) -> None:
        """openweights' `manage` (per-org cluster switches): in ow see `ow org` / `ow token`."""
        print("ow has no per-org cluster switch: every org is served by the scheduler of "
              "`ow up` (or `ow cluster`). Manage orgs with `ow org create|ls` and access with "
              "`ow token create|ls|revoke`.", file=sys.stderr)
        raise typer.Exit(2 if ctx.args else 0)
