"""The bus's pure parts: the server version gate and the nats error mapping."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from ow.core import bus
from ow.core.errors import BusUnavailableError, ConflictError, NotFoundError, OWError

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


def _api_error(code: int) -> nats.js.errors.APIError:
    err = nats.js.errors.APIError(code=400, description="nope", err_code=code)
    return err


@pytest.mark.parametrize(("raised", "expected"), [
    (nats.js.errors.KeyWrongLastSequenceError(), ConflictError),
    (_api_error(10071), ConflictError),
    (nats.js.errors.NotFoundError(), NotFoundError),
    (nats.js.errors.ServiceUnavailableError(), BusUnavailableError),
    (nats.errors.NoServersError(), BusUnavailableError),
    (nats.errors.ConnectionClosedError(), BusUnavailableError),
    (nats.errors.NoRespondersError(), BusUnavailableError),
    (nats.errors.TimeoutError(), BusUnavailableError),
    (TimeoutError(), BusUnavailableError),
    (_api_error(10999), OWError),
])
def test_nats_errors_are_mapped(raised, expected):
    with pytest.raises(expected) as info, bus.mapped("publish", "ow.ev.acme.job.j.*"):
        raise raised
    assert info.value.__cause__ is raised


def test_own_errors_pass_through_unchanged():
    err = ConflictError("k", 3)
    with pytest.raises(ConflictError) as info, bus.mapped("publish"):
        raise err
    assert info.value is err
