"""nats-py's websocket transport (aiohttp) loads only for a `ws://` URL.

nats-py imports aiohttp at import time for it: ~150 ms that every `ow` command paid though
it connects over `nats://` (`ow.core.imports.without`). A `ws://` URL still works: `connect`
attaches aiohttp then (`ow.core.imports.attach`). Each case runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys

from ow.core.server import NatsServer, free_port

_CONNECT = """
import sys, anyio
from ow.core import bus as bus_mod
assert "aiohttp" not in sys.modules, "the bus loaded aiohttp at import"

async def main():
    bus = await bus_mod.connect(sys.argv[1], org="ws", reconnect=False)
    await bus.provision()
    seq = (await bus.publish_raw("ow.log.ws.r1", b"hello")).seq
    await bus.close()
    print(seq, "aiohttp" in sys.modules)

anyio.run(main)
"""


def _run(url: str) -> str:
    out = subprocess.run([sys.executable, "-c", _CONNECT, url], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-1]


def test_aiohttp_loads_for_a_websocket_url_only(tmp_path):
    ws_port = free_port()
    server = NatsServer(tmp_path / "nats", name="ws", extra_config=(
        f"websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  no_tls: true\n}}\n")).start()
    try:
        assert _run(server.url) == "False"
        assert _run(f"ws://127.0.0.1:{ws_port}") == "True"
    finally:
        server.stop(kill=True)
