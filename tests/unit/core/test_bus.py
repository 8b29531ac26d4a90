"""The bus's server version gate (the error mapping: `test_bus_errors.py`)."""

from __future__ import annotations

import pytest

from ow.core import bus
from ow.core.errors import BusUnavailableError

URL = "nats://10.0.0.7:4222"


@pytest.mark.parametrize("version", ["2.12.3", "2.12.4", "2.13.0", "3.0.0", "2.14.0-beta.1"])
def test_recent_servers_are_accepted(version):
    bus.check_version(version, URL)


@pytest.mark.parametrize("version", ["2.12.2", "2.11.9", "2.10.22", "1.4.0", "0.0.0"])
def test_servers_older_than_2_12_3_are_refused(version):
    with pytest.raises(BusUnavailableError, match="too old") as info:
        bus.check_version(version, URL)
    assert URL in str(info.value)
    assert "2.12.3" in str(info.value)
