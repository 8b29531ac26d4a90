"""`python -m ow.web --url URL --org ORG [--org ORG ...] [--host H] [--port P] [--home DIR]`:
the dashboard on its own, for manual use and benches. Each org gets an in-memory, live
`Projector` and a bus with the operator's control token (from `<home>/tenancy.json`); the
real host is the read service (`ow serve`), which passes its own.

Imports: stdlib, anyio, `ow.core`, `ow.projections` and `ow.web`.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import anyio

from ow.core import bus as bus_mod
from ow.core import tenancy as tn
from ow.core.config import from_env
from ow.core.errors import NotFoundError
from ow.projections import Projector
from ow.web import create_app, serve_app


async def serve(url: str, orgs: list[str], host: str, port: int, home: Path) -> None:
    state = tn.load(home)
    buses = {}
    for org in orgs:
        buses[org] = await bus_mod.connect(
            url, org=org, token=tn.control_token(state, org), actor="dashboard")
        await buses[org].provision()  # a fresh server has no streams to follow yet
    projectors: dict[str, Projector] = {}
    async with anyio.create_task_group() as tg:

        async def bus_for(org: str) -> bus_mod.Bus:
            if org not in buses:
                raise NotFoundError("org", org, f"this dashboard serves {', '.join(buses)}")
            return buses[org]

        async def projector_for(org: str) -> Projector:
            if org not in projectors:
                p = Projector(await bus_for(org), memory=True)
                await tg.start(p.run)
                projectors[org] = p
            return projectors[org]

        for org in orgs:
            await projector_for(org)
        app = create_app(projector_for=projector_for, bus_for=bus_for, home=home)
        actual = await tg.start(serve_app, app, host, port)
        print(f"dashboard: http://{host}:{actual}", flush=True)  # this module is a CLI


def main() -> None:
    config = from_env()
    ap = argparse.ArgumentParser(prog="python -m ow.web", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=config.url)
    ap.add_argument("--org", action="append", help="repeat for several orgs")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--home", type=Path, default=config.home_path)
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, args.url, args.org or [config.org], args.host, args.port, args.home)


if __name__ == "__main__":
    main()
