"""Commands that change the server's configuration wait for the running `ow up`.

Finding 8 of the robustness issue: `ow org create c && ow token create --org c --scope
submit` failed with "nats-server N did not reload within 10.0s" while `ow up` restarted its
server to turn accounts on.
"""

from __future__ import annotations

import os

import anyio
import pytest

from ow.core import bus as bus_mod

from .test_supervision import OW, ow_up

pytestmark = pytest.mark.anyio


@pytest.mark.timeout(180)  # `ow up`, a server restart and `ow down` on a loaded machine
async def test_org_create_then_token_create_back_to_back(tmp_path):
    async with ow_up(tmp_path) as (url, home):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
        env |= {"OW_HOME": str(home), "OW_URL": url}
        script = "ow org create c && ow token create --org c --scope submit"
        proc = await anyio.run_process(
            ["bash", "-c", script], env={**env, "PATH": f"{os.path.dirname(OW)}:{env['PATH']}"},
            check=False,
        )
        out, err = proc.stdout.decode(), proc.stderr.decode()
        assert proc.returncode == 0, (out, err)
        # each command returned once its change was in force (the old `ow org create` said
        # "`ow up` restarts its server within seconds" and left the next command to race it)
        assert "org c created (applied to the running server)" in out
        assert "applied to the running server" in err
        token = out.strip().splitlines()[-1]
        assert token.startswith("ow_")
        bus = await bus_mod.connect(url, org="c", token=token, reconnect=False)
        async with bus:  # the new token works at once, in its new org
            await bus.provision()
