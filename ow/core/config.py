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

__all__ = ["Config", "from_env", "home_dir"]


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a client, agent or scheduler needs to find the system."""

    url: str = defaults.DEFAULT_URL
    org: str = defaults.DEFAULT_ORG
    home: str = defaults.DEFAULT_HOME
    token: str = ""
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

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()


#: OW_* variables we read, mapped to Config fields
_VARS = {f"OW_{name.upper()}": name for name in Config.__struct_fields__}
#: OW_* variables read elsewhere (the embedded server, tests); known, so no warning
_OTHER_VARS = {"OW_DEBUG", "OW_PORT", "OW_LOG_LEVEL"}


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


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """The ow home directory (`OW_HOME` or ~/.ow), created if missing."""
    path = from_env(env).home_path
    path.mkdir(parents=True, exist_ok=True)
    return path
