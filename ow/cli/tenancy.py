"""`ow org`, `ow token`, `ow env`: organizations, scoped tokens and encrypted secrets.

The operator runs these on the machine that holds the ow home (the tenancy state and the
secret key). A change is written to `<home>/tenancy.json`, rendered into the server's
accounts file and applied with a reload of a running `ow up` server (its pid is in
`up.json`); events (`OrgCreated`, `TokenCreated`, `TokenRevoked`) go to the org's own log.
`Supervisor` is what `ow up` uses: accounts at start, one scheduler per org, and a sweep
that drops expired tokens and reloads.

Imports: everything (typer and rich lazily).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from ow.core import defaults, locks, tenancy
from ow.core.config import Config, from_env
from ow.core.errors import BusUnavailableError, OWError
from ow.core.server import pid_alive, reload_pid

__all__ = ["Supervisor", "apply", "flush_outbox", "register"]


def _now() -> datetime:
    return datetime.now(UTC)


def _home() -> Path:
    return from_env().home_path


# --- applying a change -----------------------------------------------------------------


async def _publish(url: str, state: tenancy.TenancyState) -> list[list[str]]:
    """Publish the outbox's events, each into its org; return the entries that went out."""
    from ow.core import bus as bus_mod
    from ow.core import codec

    sent: list[list[str]] = []
    for org in sorted({o for o, _ in state.outbox}):
        try:
            bus = await bus_mod.connect(url, org=org, actor="cli", reconnect=False,
                                        token=tenancy.control_token(state, org), name="ow-cli")
        except OWError:
            continue  # not up (or not reloaded yet): the next `ow up` tick publishes them
        async with bus:
            await bus.provision()
            for entry in [e for e in state.outbox if e[0] == org]:
                await bus.publish(codec.decode(entry[1].encode()))
                sent.append(entry)
    return sent


def flush_outbox(home: Path, url: str) -> int:
    """Publish queued tenancy events (deduplicated by event id); how many went out."""
    state = tenancy.load(home)
    if not state.outbox:
        return 0
    sent = anyio.run(_publish, url, state)
    with tenancy.update(home) as fresh:
        fresh.outbox = [e for e in fresh.outbox if e not in sent]
    return len(sent)


def _running_server(home: Path, timeout_s: float = defaults.SERVER_READY_TIMEOUT_S
                    ) -> tuple[int, str] | None:
    """The (nats pid, url) of the `ow up` running on this home, once its server runs with
    the accounts setting the home asks for; None if no `ow up` runs here.

    `ow up` restarts its server to turn accounts on (the first org), so a change made right
    after one waits out that restart instead of signalling a server that is going away.
    """
    deadline = time.monotonic() + timeout_s
    while locks.holder(home / "up.lock") is not None:
        try:
            info = json.loads((home / "up.json").read_text())
        except (FileNotFoundError, ValueError):
            info = {}  # still starting
        pid = info.get("nats_pid")
        if pid and pid_alive(pid) and info.get("accounts", False) == tenancy.accounts_on(home):
            return pid, info.get("url", "")
        if time.monotonic() > deadline:
            raise BusUnavailableError(
                f"the `ow up` running on {home} did not bring its server up with the new "
                f"accounts within {timeout_s:g}s: see {home / 'up.log'}, then run this again"
            )
        time.sleep(0.05)  # a file another process writes: polling is the only option
    return None


def apply(home: Path, url: str) -> str:
    """Render the accounts file; reload a running server; publish queued events."""
    was_on = tenancy.accounts_on(home)
    changed = tenancy.write_accounts(home, tenancy.load(home), _now())
    running = _running_server(home)
    if running is None:
        return "not running: `ow up` applies it when it starts"
    if changed and was_on:  # (turning accounts on restarted the server with the new file)
        reload_pid(running[0], home / "nats" / "ow.log")
    flush_outbox(home, running[1] or url)
    return "applied to the running server"


# --- `ow up` -----------------------------------------------------------------------------


class Supervisor:
    """Tenancy inside `ow up`: the accounts include, one scheduler per org, the expiry sweep."""

    def __init__(self, root: Path, config: Config, spawn: Callable[..., Any]):
        self.root, self.config, self.spawn = root, config, spawn
        self.server: Any = None
        self.started: set[str] = {config.org}
        with tenancy.update(root) as state:  # the default org's control user, from the start
            tenancy.ensure_default(state, _now())
            for org in state.orgs:  # state files older than the workers token
                tenancy.ensure_worker_token(state, org, _now())

    def server_config(self) -> str:
        """Extra config text for the server: include the rendered accounts file."""
        state = tenancy.load(self.root)
        tenancy.write_accounts(self.root, state, _now(), fresh=True)
        self.enabled = state.enabled
        if state.enabled:
            tenancy.adopt_global_store(self.root / "nats" / "js")
        return tenancy.include_line()

    def env(self, org: str, worker: bool = False) -> dict[str, str]:
        """OW_TOKEN for a process acting for `org`: its control user, or its workers user
        for an agent (whose jobs get the same token)."""
        state = tenancy.load(self.root)
        token = (tenancy.worker_token if worker else tenancy.control_token)(state, org)
        return {"OW_TOKEN": token} if token else {}

    def agent_env(self, args: list[str]) -> dict[str, str]:
        """For an agent child (`ow.agent … --worker-id W`): OW_TOKEN, its own worker
        credential, and OW_WORKER_KEY, which signs its runs' credentials; {} otherwise."""
        if args[:1] != ["ow.agent"] or "--worker-id" not in args[:-1]:
            return {}
        worker_id = args[args.index("--worker-id") + 1]
        return tenancy.worker_env(tenancy.load(self.root), self.config.org, worker_id)

    def wait_callout(self, timeout_s: float = defaults.SERVER_READY_TIMEOUT_S) -> None:
        """Return once the auth callout answers (accounts on): connect with a worker
        credential minted for the purpose, as an agent will."""
        if not self.enabled:
            return
        env = tenancy.worker_env(tenancy.load(self.root), self.config.org, "ow-up-probe")
        deadline = time.monotonic() + timeout_s
        while not _accepted(self.server.url, self.config.org, env.get("OW_TOKEN", "")):
            if time.monotonic() > deadline:
                print("warning: the auth callout did not answer: agents cannot connect yet "
                      f"(see {self.logs / 'auth-callout.log'})", file=sys.stderr)
                return
            time.sleep(0.1)  # a child process starting: polling is the only option

    def start(self, server: Any, env: dict[str, str], logs: Path) -> list[Any]:
        self.server, self.base_env, self.logs = server, env, logs
        return self.tick()

    def _restart(self, state: tenancy.TenancyState) -> None:
        """Restart the server with freshly rendered accounts (the first org turns them on;
        the callout's `auth_users` cannot be reloaded) and tell `up.json` its new pid."""
        tenancy.write_accounts(self.root, state, _now(), fresh=True)
        self.server.stop()
        tenancy.adopt_global_store(self.root / "nats" / "js")
        self.server.start()
        self.enabled = True
        up = self.root / "up.json"  # where `ow token …` finds the server to reload
        if up.exists():
            info = json.loads(up.read_text())
            locks.write_state(up, {**info, "nats_pid": self.server.proc.pid, "accounts": True})

    def tick(self) -> list[Any]:
        """Re-render (expired tokens drop out), reload if changed, start new orgs' schedulers."""
        state = tenancy.load(self.root)
        if state.enabled and not self.enabled:  # the first org: restart with accounts on
            self._restart(state)
        elif tenancy.write_accounts(self.root, state, _now()):
            try:
                self.server.reload()
            except OWError as exc:  # the server keeps its last good config
                print(f"warning: accounts not reloaded: {exc}", file=sys.stderr)
                if "AuthCallout" in str(exc):  # its users changed under it: start afresh
                    self._restart(state)
        if state.outbox:
            try:
                flush_outbox(self.root, self.server.url)
            except OWError as exc:
                print(f"warning: tenancy events not published yet: {exc}", file=sys.stderr)
        children = []
        for org in sorted(set(state.orgs) - self.started):
            self.started.add(org)
            env = {**self.base_env, "OW_ORG": org, **self.env(org)}
            children.append(self.spawn(["ow.scheduler", "--provider", "local"], env,
                                       self.logs / f"scheduler-{org}.log"))
        return children


def _accepted(url: str, org: str, token: str) -> bool:
    """Whether the server lets `token` connect to `org` (a refusal or no server: False)."""
    from ow.core import bus as bus_mod

    async def attempt() -> bool:
        try:
            bus = await bus_mod.connect(url, org=org, token=token, reconnect=False,
                                        name="ow-up-probe")
        except OWError:
            return False
        await bus.close()
        return True
    return bool(token) and anyio.run(attempt)


# --- commands ----------------------------------------------------------------------------


def _when(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "never"


def _status(record: tenancy.TokenRecord, now: datetime) -> str:
    if record.revoked_at:
        return f"revoked {_when(record.revoked_at)}"
    if record.expires and record.expires <= now:
        return "expired"
    return "active"


def register(app: Any) -> None:
    """Add the `org`, `token` and `env` command groups."""
    import typer

    from ow.cli import _app, render

    org_app = typer.Typer(help="Organizations: one NATS account (own streams) each.")
    token_app = typer.Typer(help="Scoped ow_ tokens (read, submit, worker, admin).")
    env_app = typer.Typer(help="Encrypted secrets given to an org's jobs as env variables.")
    app.add_typer(org_app, name="org")
    app.add_typer(token_app, name="token")
    app.add_typer(env_app, name="env")

    def _org(org: str | None) -> str:
        return org or _app.settings.config.org

    @org_app.command("create")
    def org_create(name: str) -> None:
        """Create an org (a NATS account with its own JetStream)."""
        with tenancy.update(_home()) as state:
            tenancy.create_org(state, name, _now())
        note = apply(_home(), _app.settings.config.url)
        print(f"org {name} created ({note}); hand out tokens with "
              f"`ow token create --org {name} --scope submit`")

    @org_app.command("ls")
    def org_ls(as_json: bool = typer.Option(False, "--json")) -> None:
        """List orgs."""
        state, now = tenancy.load(_home()), _now()
        rows = [{"org": o.name, "created": o.created, "tokens": sum(
            1 for t in tenancy.active(state, now) if t.org == o.name and not t.control)}
            for o in state.orgs.values()]
        render.json_out(rows) if as_json else render.table(rows, ["org", "created", "tokens"])

    @token_app.command("create")
    def token_create(
        org: str = typer.Option(None, "--org", help="the token's org (default: OW_ORG)"),
        scope: str = typer.Option("submit", "--scope", help="read | submit | worker | admin"),
        expires: str = typer.Option("never", "--expires", help="e.g. 30m, 12h, 7d, never"),
        name: str = typer.Option("", "--name", help="a note for `ow token ls`"),
    ) -> None:
        """Create a token; it is printed once (only its hash is kept)."""
        now = _now()
        with tenancy.update(_home()) as state:
            token, record = tenancy.create_token(
                state, _org(org), scope, now, tenancy.parse_expires(expires, now), name)
        note = apply(_home(), _app.settings.config.url)
        print(token)
        print(f"token {record.token_id} ({scope} in org {record.org}, expires "
              f"{_when(record.expires)}; {note}). It is shown only this once.", file=sys.stderr)

    @token_app.command("worker")
    def token_worker(
        worker_id: str = typer.Option(..., "--worker-id", help="the agent's worker id"),
        org: str = typer.Option(None, "--org", help="the worker's org (default: OW_ORG)"),
    ) -> None:
        """Print OW_TOKEN and OW_WORKER_KEY for an agent you start by hand (`ow worker
        --worker-id W`): its results count only as W's, its jobs get per-run credentials."""
        state = tenancy.load(_home())
        env = tenancy.worker_env(state, _org(org), worker_id)
        if not env:
            raise typer.BadParameter(f"no org {_org(org)!r} with credential keys here: create "
                                     f"it with `ow org create`, on the machine of `ow up`")
        for key, value in env.items():
            print(f"{key}={value}")

    @token_app.command("ls")
    def token_ls(
        org: str = typer.Option(None, "--org", help="only this org"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List tokens (ids, scopes, expiry and status; never secrets)."""
        state, now = tenancy.load(_home()), _now()
        rows = [{"id": t.token_id, "org": t.org, "scope": t.scope, "name": t.name,
                 "created": t.created, "expires": t.expires, "status": _status(t, now)}
                for t in state.tokens.values() if not t.control and (not org or t.org == org)]
        cols = ["id", "org", "scope", "name", "created", "expires", "status"]
        render.json_out(rows) if as_json else render.table(rows, cols)

    @token_app.command("revoke")
    def token_revoke(token_id: str, reason: str = typer.Option("", "--reason")) -> None:
        """Revoke a token: its user is removed and its connections closed."""
        with tenancy.update(_home()) as state:
            record = tenancy.revoke_token(state, token_id, _now(), reason)
        note = apply(_home(), _app.settings.config.url)
        print(f"token {record.token_id} revoked ({note})")

    @token_app.command("check")
    def token_check(token: str = typer.Argument(None, help="default: OW_TOKEN")) -> None:
        """Say whether a token is valid here, and for which org and scope."""
        record = tenancy.check_token(
            tenancy.load(_home()), token or from_env().token, _now())
        print(f"valid: {record.scope} token {record.token_id} of org {record.org}, "
              f"expires {_when(record.expires)}")

    @env_app.command("set")
    def env_set(name: str, org: str = typer.Option(None, "--org")) -> None:
        """Set a secret; the value is read from stdin (or a hidden prompt)."""
        from ow.core import secrets

        value = sys.stdin.read().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(
            f"value of {name}", hide_input=True)
        key = secrets.ensure_key(from_env())

        async def go() -> None:
            async with _app.connected(_org(org)) as bus:
                await secrets.set_secret(bus, key, name, value)

        _app.run(go)
        print(f"secret {name} set for org {_org(org)}")

    @env_app.command("ls")
    def env_ls(org: str = typer.Option(None, "--org"), as_json: bool = typer.Option(
            False, "--json")) -> None:
        """List secret names (never values)."""
        from ow.core import secrets

        async def go() -> list[str]:
            async with _app.connected(_org(org)) as bus:
                return await secrets.names(bus)

        found = _app.run(go)
        render.json_out(found) if as_json else print("\n".join(found) or "(no secrets)")

    @env_app.command("import")
    def env_import(path: str, org: str = typer.Option(None, "--org")) -> None:
        """Set every NAME=value of a .env file as a secret (names printed, never values)."""
        from ow.cli.compat import parse_dotenv
        from ow.core import secrets

        pairs = parse_dotenv(Path(path).read_text(encoding="utf-8"), path)
        key = secrets.ensure_key(from_env())

        async def go() -> None:
            async with _app.connected(_org(org)) as bus:
                for name, value in pairs.items():
                    await secrets.set_secret(bus, key, name, value)

        _app.run(go)
        print(f"{len(pairs)} secrets set for org {_org(org)}: {', '.join(pairs) or '-'}")

    @env_app.command("show")
    def env_show(org: str = typer.Option(None, "--org"), as_json: bool = typer.Option(
            False, "--json")) -> None:
        """Secret names with masked values (their length only; never the values)."""
        from ow.cli.compat import mask
        from ow.core import secrets

        key = secrets.org_key(from_env(), _org(org))

        async def go() -> dict[str, str]:
            async with _app.connected(_org(org)) as bus:
                if key is None:
                    return {name: "(cannot decrypt here)" for name in await secrets.names(bus)}
                return {k: mask(v) for k, v in (await secrets.load(bus, key)).items()}

        shown = _app.run(go)
        if as_json:
            return render.json_out(shown)
        print("\n".join(f"{k}={v}" for k, v in shown.items()) or "(no secrets)")

    @env_app.command("rm")
    def env_rm(name: str, org: str = typer.Option(None, "--org")) -> None:
        """Remove a secret."""
        from ow.core import secrets

        async def go() -> bool:
            async with _app.connected(_org(org)) as bus:
                return await secrets.remove(bus, name)

        gone = _app.run(go)
        print(f"secret {name} removed" if gone else f"no secret {name} in org {_org(org)}")
        if not gone:
            raise typer.Exit(1)
