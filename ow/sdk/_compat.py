"""openweights' client arguments, translated to ow's in one place.

`OpenWeights(auth_token=…, organization_id=…, use_async=…, deploy_kwargs=…)` reads as in
openweights: the token is ow's token, the organization is ow's org, `use_async=True` makes
`ow.chat` the async client (as `ow.async_chat` always is), `deploy_kwargs` are what models
that `ow.chat` deploys on first use are deployed with. Supabase settings have no meaning in
ow (it talks to NATS) and are refused with what to set instead; anything else unknown is
refused too, rather than dropped.

Imports: `ow.core` only.
"""

from __future__ import annotations

from typing import Any

from ow.core.config import Config
from ow.core.errors import ConfigError

__all__ = ["client_kwargs"]

_RENAMED = {"auth_token": "token", "organization_id": "org"}
_REFUSED = {
    "supabase_url": "ow connects to NATS, not Supabase: pass url= or set OW_URL",
    "supabase_key": "ow authenticates with its own token: pass token= or set OW_TOKEN",
}
_CLIENT_ONLY = {"use_async", "deploy_kwargs"}


def client_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Config overrides, client options) from a client's keyword arguments."""
    overrides: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in _REFUSED:
            raise ConfigError(f"{name}= is openweights' setting; {_REFUSED[name]}")
        if name in _CLIENT_ONLY:
            options[name] = value
        elif _RENAMED.get(name, name) in Config.__struct_fields__:
            overrides[_RENAMED.get(name, name)] = value
        else:
            raise ConfigError(
                f"unknown argument {name}= for the ow client; it takes url, org, token, "
                f"{', '.join(sorted(_CLIENT_ONLY))} and the config fields "
                f"({', '.join(Config.__struct_fields__)})"
            )
    return overrides, options
