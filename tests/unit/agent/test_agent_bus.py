"""The agent's bus and blob store: there from `run` on, a clear error before (no asserts)."""

from __future__ import annotations

import pytest

from ow.agent.policy import Hardware
from ow.agent.service import Agent
from ow.core.config import from_env
from ow.core.errors import BusError, NotConnectedError


@pytest.mark.parametrize("attribute", ["bus", "blobs"])
def test_before_run_the_agents_bus_is_a_clear_error(tmp_path, attribute):
    agent = Agent(from_env({}), Hardware(name="cpu"), worker_id="worker-x", workdir=tmp_path)
    with pytest.raises(NotConnectedError, match="worker-x") as info:
        getattr(agent, attribute)
    assert "run" in str(info.value)
    assert isinstance(info.value, BusError)  # the CLI renders it as one line
