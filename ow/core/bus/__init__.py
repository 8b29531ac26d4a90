"""The bus: the only package that talks to NATS. One facade over its parts:

- `_bus.py`: `Bus` (the parts below put together, and `provision`) and `connect` (with the
  server version check);
- `_errors.py`: `mapped`, the one mapping of nats-py errors into `ow.core.errors`;
- `_base.py`: the connection every part shares, and waiting out an outage (`retrying`);
- `_publish.py`: `publish` (deduplicated by event id), `publish_batch`, `publish_raw`;
- `_read.py`: `read`, the one reader of the log, and `history`/`subscribe` built on it;
- `_wire.py`: the plain-socket connection the bulk reader receives through;
- `_kv.py`: KV buckets (`kv`, `kv_get`, CAS writes);
- `_objects.py`: the files' object store, through API subjects a permission can restrict;
- `_dispatch.py`: the org's dispatch consumer as typed `Offer`s;
- `_service.py`: request/reply services (`serve`, `request`).

Every nats-py exception is mapped (`mapped`) into `ow.core.errors`; none crosses this
package, and nothing outside it imports nats (an import-linter contract) or reaches for the
connection (`bus.nc`, `bus.js`). Import from here (`from ow.core.bus import Bus, connect`),
not from the private modules.

Imports: stdlib, msgspec, anyio, nats, and `ow.core`.
"""

from __future__ import annotations

from ow.core import imports

with imports.without("aiohttp"):  # nats wants it for ws:// URLs only: `connect` attaches it
    # loaded here, before the parts import them: the first import of nats decides
    import nats  # noqa: F401
    import nats.aio.transport  # noqa: F401
    import nats.errors  # noqa: F401
    import nats.js.errors  # noqa: F401
    from nats.js import api  # noqa: F401

from ow.core.bus._bus import Bus, check_version, connect
from ow.core.bus._dispatch import Dispatch, Offer
from ow.core.bus._errors import mapped
from ow.core.bus._kv import KvBucket, KvEntry
from ow.core.bus._read import Delivery, Msg
from ow.core.bus._service import Handler, Reply, ServiceFault
from ow.core.errors import WireError

__all__ = ["Bus", "Delivery", "Dispatch", "Handler", "KvBucket", "KvEntry", "Msg",
           "Offer", "Reply", "ServiceFault", "WireError", "check_version",
           "connect", "mapped"]
