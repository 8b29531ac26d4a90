"""How a payload talks back: a `Reporter` with log / upload / checkpoint / fetch.

Inside a job (`OW_RUN_ID` set) `OWReporter` goes through `ow.run` and `ow.files`. Elsewhere
(tests, a script run by hand) `LocalReporter` records everything in memory, copies uploads
into a local directory and treats file references as paths. Payload cores take a reporter,
so they run the same with or without a server.

Imports: stdlib; `ow` inside `OWReporter` only.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = [
    "LocalReporter", "OWReporter", "Reporter", "fail", "make_reporter", "pack", "read_params",
    "unpack",
]


class Reporter:
    """Interface of the run API a payload uses."""

    def log(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def upload(self, path: str | Path) -> str:
        raise NotImplementedError

    def checkpoint(self, step: int, path: str | Path) -> str:
        raise NotImplementedError

    def last_checkpoint(self) -> tuple[int, str] | None:
        return None

    def fetch(self, ref: str, dest: str | Path) -> Path:
        """A local copy of a file reference (file id, or a path) at `dest`."""
        raise NotImplementedError


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    """Floats that JSON cannot carry (NaN, inf) become strings."""
    out = {}
    for k, v in data.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[k] = v
    return out


class LocalReporter(Reporter):
    """Records logs, uploads and checkpoints in memory and under `root` (tests, manual runs)."""

    def __init__(self, root: str | Path | None = None, echo: bool = False):
        self.root = Path(root or tempfile.mkdtemp(prefix="ow-local-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.logs: list[dict[str, Any]] = []
        self.uploads: dict[str, Path] = {}
        self.checkpoints: list[tuple[int, str]] = []

    def log(self, data: dict[str, Any]) -> None:
        data = _clean(data)
        json.dumps(data)  # the same rule as ow.run.log: JSON-serializable values only
        self.logs.append(data)
        if self.echo:
            print(json.dumps(data), flush=True)

    def upload(self, path: str | Path) -> str:
        src = Path(path)
        dest = self.root / "uploads" / f"{len(self.uploads)}-{src.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
        self.uploads[str(dest)] = dest
        return str(dest)

    def checkpoint(self, step: int, path: str | Path) -> str:
        packed = pack(path, self.root / "checkpoints" / f"checkpoint-{step}.tar")
        self.checkpoints.append((step, str(packed)))
        return str(packed)

    def last_checkpoint(self) -> tuple[int, str] | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def fetch(self, ref: str, dest: str | Path) -> Path:
        src = Path(ref).expanduser()
        if not src.exists():
            raise FileNotFoundError(f"{ref!r} is neither a local path nor reachable without ow")
        return src


class OWReporter(Reporter):
    """`ow.run` / `ow.files` of the current job (the agent set OW_RUN_ID)."""

    def __init__(self) -> None:
        from ow import OpenWeights

        self.ow = OpenWeights()

    def log(self, data: dict[str, Any]) -> None:
        self.ow.run.log(_clean(data))

    def upload(self, path: str | Path) -> str:
        return self.ow.run.upload(str(path))

    def checkpoint(self, step: int, path: str | Path) -> str:
        return self.ow.run.checkpoint(step, str(path))

    def last_checkpoint(self) -> tuple[int, str] | None:
        found = self.ow.run.last_checkpoint()
        return (int(found[0]), str(found[1])) if found else None

    def fetch(self, ref: str, dest: str | Path) -> Path:
        local = Path(ref).expanduser()
        if local.exists():
            return local
        return Path(self.ow.files.download(ref, str(dest)))

    def close(self) -> None:
        self.ow.run.flush()
        self.ow.close()


def make_reporter() -> Reporter:
    """The job's reporter inside a job, else a local one that echoes to stdout."""
    if os.environ.get("OW_RUN_ID"):
        return OWReporter()
    return LocalReporter(Path.cwd() / "uploads", echo=True)


def pack(path: str | Path, dest: str | Path) -> Path:
    """A directory (or file) as an uncompressed tar at `dest`."""
    src, dest = Path(path), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w") as tar:
        tar.add(src, arcname="." if src.is_dir() else src.name)
    return dest


def unpack(archive: str | Path, dest: str | Path) -> Path:
    """Extract a tar or zip archive into `dest`; a plain directory is returned as is."""
    archive, dest = Path(archive), Path(dest)
    if archive.is_dir():
        return archive
    dest.mkdir(parents=True, exist_ok=True)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        raise ValueError(f"{archive} is neither a directory, a tar nor a zip archive")
    return dest


def fail(message: str, code: int = 1) -> None:
    """Print the cause of a crash on stderr and exit non-zero (the run is marked failed)."""
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def read_params(args: list[str], prog: str) -> dict[str, Any]:
    """The job's params from `'<json>'` or `@params.json` (a `validated_params` wrapper is ok)."""
    if len(args) != 1:
        raise SystemExit(f"usage: python -m {prog} '<params json>' | @params.json")
    raw = args[0]
    data = json.loads(Path(raw[1:]).read_text() if raw.startswith("@") else raw)
    return data.get("validated_params", data)
