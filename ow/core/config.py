"""Configuration: frozen Structs built by `from_env(env=os.environ, **overrides)`.

Precedence: argument, then `OW_*` variable, then `defaults.py`. An unknown `OW_*` variable
warns (a typo would otherwise be silently ignored); a value of the wrong type fails at start
with the variable's name. This is the only module (besides the agent's child-environment
builder) that reads `os.environ`.

Imports: stdlib, msgspec and `ow.core.defaults`/`errors`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from ow.core import defaults
from ow.core.errors import ConfigError

__all__ = ["Config", "from_env", "home_dir", "private_home"]


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a client, agent or scheduler needs to find the system."""

    url: str = defaults.DEFAULT_URL
    org: str = defaults.DEFAULT_ORG
    home: str = defaults.DEFAULT_HOME
    token: str = ""
    job_token: str = ""  # the org's job credential, handed to the jobs a worker runs
    worker_key: str = ""  # signs this worker's per-run credentials (with an owc_ OW_TOKEN)
    s3_bucket: str = ""
    s3_endpoint: str = ""
    run_id: str = ""
    job_id: str = ""
    worker_id: str = ""
    image: str = defaults.DEFAULT_IMAGE
    heartbeat_s: float = defaults.HEARTBEAT_INTERVAL_S
    max_workers: int = defaults.MAX_WORKERS_PER_ORG
    idle_timeout_s: float = defaults.IDLE_TIMEOUT_S
    lost_after_s: float = defaults.LOST_AFTER_S
    pod_ttl_s: float = defaults.POD_TTL_S
    secret_key: str = ""
    org_secret_key: str = ""  # one org's derived secrets key: what a remote worker is given
    sync_interval: str = defaults.EMBEDDED_SYNC_INTERVAL  # the embedded server (`ow up`)
    replicas: int = 1  # stream/bucket replicas when provisioning (3 on a cluster)
    sandbox: str = "auto"  # how an agent isolates its jobs: auto | bwrap | user | off
    sandbox_ro: str = ""  # more dirs sandboxed jobs may read (os.pathsep-separated): models
    keep_failed_runs: int = defaults.KEEP_FAILED_RUNS  # work dirs of failed runs kept

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()


#: OW_* variables we read, mapped to Config fields
_VARS = {f"OW_{name.upper()}": name for name in Config.__struct_fields__}
#: OW_* variables read elsewhere (the embedded server, tests); known, so no warning
_OTHER_VARS = {"OW_DEBUG", "OW_PORT", "OW_LOG_LEVEL", "OW_MODEL_ALIASES"}  # ow.core.models


def from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build a Config from arguments, then `OW_*` variables, then defaults."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if env.get("OPENWEIGHTS_API_KEY"):  # openweights' name for the token; OW_TOKEN wins
        raw["token"] = env["OPENWEIGHTS_API_KEY"]
    for var, value in env.items():
        if not var.startswith("OW_"):
            continue
        if var in _VARS:
            raw[_VARS[var]] = value
        elif var not in _OTHER_VARS:
            warnings.warn(f"unknown variable {var} is ignored", stacklevel=2)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        field = str(exc).rsplit("$.", 1)[-1].rstrip("`")
        var = f"OW_{field.upper()}"
        raise ConfigError(f"bad value for {var}: {exc}. Fix or unset {var}.") from exc


#: the variables by which rich decides colors and terminal features itself
_RICH_ENV = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def terminal_is_plain(env: Mapping[str, str] | None = None) -> bool:
    """Whether no variable changes how rich would style output (`ow.cli.render` then may
    print a table itself: rich's import and layout cost 40 ms of a 250 ms `ow ls`)."""
    env = os.environ if env is None else env
    return not any(k in env for k in _RICH_ENV) and env.get("TERM") not in ("dumb", "unknown")


def terminal_width(env: Mapping[str, str] | None = None) -> int:
    """The width rich gives its console: `COLUMNS`, else the first of stdin, stdout and
    stderr that is a terminal, else 80."""
    env = os.environ if env is None else env
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):  # not a terminal
            continue
        break
    columns = env.get("COLUMNS", "")
    return (int(columns) if columns.isdigit() else width) or 80


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """The ow home directory (`OW_HOME` or ~/.ow), created if missing, its owner's only."""
    return private_home(from_env(env).home_path, walk=False)


def private_home(path: Path, *, walk: bool = True, umask: bool = False) -> Path:
    """Make `path` (an ow home) its owner's only: the dir 0700 and, with `walk`, every dir
    in it 0700 and every file 0600 (homes made before this were 0755 with 0644 files: any
    local user could read every org's projection). `umask` also sets this process's umask
    to 077, so what it creates later is private too (`ow up` does, at start)."""
    if umask:
        os.umask(0o077)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    if walk:
        for top, dirs, files in os.walk(path):
            for name in dirs:
                _private(Path(top) / name, 0o700)
            for name in files:
                _private(Path(top) / name, 0o600)
    return path


def _private(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
        if st.st_mode & 0o077 and not path.is_symlink():
            path.chmod(mode | (st.st_mode & 0o100 if mode == 0o600 else 0))
    except OSError:  # gone meanwhile, or not ours
        pass
