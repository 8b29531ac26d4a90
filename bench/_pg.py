"""A throwaway local PostgreSQL for side-by-side benchmarks (Debian's server binaries).

`with postgres() as pg:` initdb's a cluster in a temp dir (as the `postgres` user when run as
root), starts it on a free port and yields a `Pg` whose `dsn` connects to it; `dsn` is None
and `why` says what is missing when no server can start here, or when psycopg (the `bench`
extra) is not installed: the bench then prints its PostgreSQL row as unavailable, it never
fails. `make bench` installs both when it can (the extra; Debian's `postgresql` as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Pg:
    dsn: str | None
    why: str = ""

    def row(self) -> str:
        """What a bench prints in place of the PostgreSQL figures."""
        return f"unavailable ({self.why})"


def _bindir() -> str | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return dirs[-1] if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres() -> Iterator[Pg]:
    try:
        import psycopg  # noqa: F401 - the benches' client: the `bench` extra
    except ImportError:
        yield Pg(None, "no psycopg: pip install -e '.[bench]'")
        return
    bindir = _bindir()
    if bindir is None:
        yield Pg(None, "no PostgreSQL server: apt-get install postgresql")
        return
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            yield Pg(None, "running as root and no postgres user to run the server as")
            return
        as_user = ["runuser", "-u", "postgres", "--"]
    tmp = tempfile.mkdtemp(prefix="ow-bench-pg-")
    data = os.path.join(tmp, "data")
    if as_user:
        shutil.chown(tmp, "postgres")
    port = _free_port()
    run = lambda *a: subprocess.run([*as_user, *a], check=True, capture_output=True)  # noqa: E731
    try:
        run(f"{bindir}/initdb", "-D", data, "-U", "bench", "--auth=trust")
        run(f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(tmp, "log"), "-o",
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c max_connections=64", "start")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        yield Pg(None, f"the server did not start: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        yield Pg(f"host=127.0.0.1 port={port} user=bench dbname=postgres")
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
