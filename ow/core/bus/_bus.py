"""`Bus`: the mixins of the bus put together, with provisioning; `connect` makes one.

Imports: stdlib, anyio, nats and `ow.core`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import nats
import nats.aio.transport
import nats.js.errors
from nats.js import api

from ow.core import credentials, defaults, imports, subjects
from ow.core.bus._dispatch import DispatchMixin
from ow.core.bus._errors import CONFIG_MISMATCH, mapped
from ow.core.bus._kv import KvMixin
from ow.core.bus._objects import ObjectsMixin
from ow.core.bus._publish import PublishMixin
from ow.core.bus._read import ReadMixin
from ow.core.bus._service import ServiceMixin
from ow.core.errors import BusUnavailableError

__all__ = ["Bus", "check_version", "connect"]

log = logging.getLogger(__name__)


class Bus(PublishMixin, ObjectsMixin, ReadMixin, KvMixin, DispatchMixin, ServiceMixin):
    """A NATS connection bound to one org, with the operations `ow` needs."""

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def provision(self, replicas: int = 1) -> None:
        """Create (or bring up to date) every stream, bucket and object store. Idempotent."""
        dup = defaults.DUPLICATE_WINDOW_S
        streams = [
            api.StreamConfig(
                name=subjects.EVENTS_STREAM, subjects=["ow.ev.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
            ),
            api.StreamConfig(
                name=subjects.METRICS_STREAM, subjects=["ow.mx.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
            ),
            api.StreamConfig(
                name=subjects.LOGS_STREAM, subjects=["ow.log.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
                max_msgs_per_subject=defaults.LOGS_MAX_MSGS_PER_SUBJECT,
            ),
            api.StreamConfig(
                name=subjects.HEARTBEATS_STREAM, subjects=["ow.hb.>"], duplicate_window=dup,
                storage=api.StorageType.FILE, num_replicas=replicas, allow_direct=True,
                max_msgs_per_subject=defaults.HEARTBEATS_MAX_MSGS_PER_SUBJECT,
            ),
        ]
        with mapped("provisioning streams"):
            for cfg in streams:
                await self._ensure_stream(cfg)
            self._kv[subjects.CLAIMS_BUCKET] = await self.js.create_key_value(
                bucket=subjects.CLAIMS_BUCKET, history=defaults.CLAIMS_HISTORY,
                replicas=replicas, storage=api.StorageType.FILE,
            )
            self._kv[subjects.LEASES_BUCKET] = await self.js.create_key_value(
                bucket=subjects.LEASES_BUCKET, history=1, replicas=replicas,
                storage=api.StorageType.FILE,
            )
            await self.js.create_object_store(
                bucket=subjects.FILES_BUCKET, replicas=replicas, storage=api.StorageType.FILE
            )

    async def _ensure_stream(self, cfg: api.StreamConfig) -> None:
        try:
            await self.js.add_stream(cfg)
        except nats.js.errors.APIError as exc:
            if exc.err_code != CONFIG_MISMATCH:
                raise
            await self.js.update_stream(cfg)


def check_version(version: str, url: str) -> None:
    """Refuse a nats-server older than `defaults.MIN_SERVER_VERSION`, saying why."""
    parts = tuple(int(p) for p in version.split("-")[0].split(".")[:3])
    if parts < defaults.MIN_SERVER_VERSION:
        need = ".".join(map(str, defaults.MIN_SERVER_VERSION))
        raise BusUnavailableError(
            f"nats-server {version} at {url} is too old: ow needs ≥ {need}, because older "
            "servers lost acknowledged JetStream writes (Jepsen, 2025). Upgrade the server."
        )


async def connect(
    url: str = defaults.DEFAULT_URL,
    *,
    org: str = defaults.DEFAULT_ORG,
    actor: str = "",
    name: str = "ow",
    token: str = "",
    user_credentials: str | None = None,
    reconnect: bool = True,
) -> Bus:
    """Connect to NATS, check its version, and return a `Bus` bound to `org`."""
    if "ws://" in url or "wss://" in url:
        imports.attach(nats.aio.transport, "aiohttp")
    opts: dict[str, Any] = {
        "servers": url.split(","),
        "name": name,
        "connect_timeout": defaults.CONNECT_TIMEOUT_S,
        "allow_reconnect": reconnect,
        "max_reconnect_attempts": -1 if reconnect else 0,
        "reconnect_time_wait": 0.25,
        "error_cb": _quiet_error,
    }
    if user_credentials:
        opts["user_credentials"] = user_credentials
    else:  # an ow_ token is user <id> / password <secret> in the org's account (tenancy.py)
        from ow.core import tenancy

        opts.update(tenancy.connect_options(token, org))
    refused: list[Exception] = []
    denials: list[tuple[float, str]] = []  # (when, the server's text) of refused operations

    async def on_error(exc: Exception) -> None:  # nats-py would retry a refusal forever
        if "authorization violation" in str(exc).lower() and not refused:
            refused.append(exc)
            scope.cancel()
        elif "permissions violation" in str(exc).lower():
            denials.append((anyio.current_time(), str(exc).removeprefix("nats: ")))
            del denials[:-16]
        await _quiet_error(exc)

    opts["error_cb"] = on_error
    nc = None
    try:
        with anyio.fail_after(defaults.CONNECT_TIMEOUT_S * 2) as scope:
            nc = await nats.connect(**opts)
    except Exception as exc:  # nats raises many kinds here; all mean "not reachable"
        if refused or "authorization violation" in str(exc).lower():
            from ow.core import tenancy

            raise tenancy.refused(token, org) from exc
        raise BusUnavailableError(
            f"No NATS at {url} — run `ow up` or set OW_URL ({type(exc).__name__}: {exc})"
        ) from exc
    if nc is None:  # the server refused the credentials (on_error ended the attempt)
        from ow.core import tenancy

        raise tenancy.refused(token, org) from refused[0]
    try:
        check_version(str(nc._server_info.get("version", "0.0.0")), url)
    except BusUnavailableError:
        await nc.close()
        raise
    bus = Bus(nc, org=org, actor=actor, url=url)
    bus.denials = denials
    bus.sender = credentials.sender_of(token)  # what the server lets it publish bound events as
    bus.run = credentials.run_of(token)  # a run's credential: what it may read (blobs, files)
    if not user_credentials:
        bus.wire_auth = {k: opts[k] for k in ("user", "password", "token", "inbox_prefix")
                         if k in opts}
    return bus


async def _quiet_error(exc: Exception) -> None:
    log.debug("nats: %s", exc)
