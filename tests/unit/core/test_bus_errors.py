"""`ow.core.bus.mapped`, the bus's one mapping of nats-py errors, as a table."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from ow.core.bus import mapped
from ow.core.errors import (
    BusError,
    BusUnavailableError,
    ConflictError,
    NotFoundError,
    OWError,
    PermissionDeniedError,
)


def _api_error(code: int) -> nats.js.errors.APIError:
    return nats.js.errors.APIError(code=400, description="nope", err_code=code)


@pytest.mark.parametrize(("raised", "expected", "says"), [
    (nats.js.errors.KeyWrongLastSequenceError(), ConflictError, "ow.ev.acme.job.j.*"),
    (_api_error(10071), ConflictError, "ow.ev.acme.job.j.*"),
    (_api_error(10164), ConflictError, "ow.ev.acme.job.j.*"),
    (nats.js.errors.NotFoundError(), NotFoundError, "ow.ev.acme.job.j.*"),
    (nats.js.errors.KeyNotFoundError(), NotFoundError, "publish"),
    (nats.js.errors.ServiceUnavailableError(), BusUnavailableError, "not available yet"),
    (nats.errors.NoServersError(), BusUnavailableError, "lost the NATS connection"),
    (nats.errors.ConnectionClosedError(), BusUnavailableError, "lost the NATS connection"),
    (nats.errors.NoRespondersError(), BusUnavailableError, "lost the NATS connection"),
    (nats.js.errors.NoStreamResponseError(), BusUnavailableError, "lost the NATS connection"),
    (nats.errors.OutboundBufferLimitError(), BusUnavailableError, "lost the NATS connection"),
    (nats.errors.TimeoutError(), BusUnavailableError, "did not answer in time"),
    (TimeoutError(), BusUnavailableError, "did not answer in time"),
    (_api_error(10999), BusError, "code 10999"),
])
def test_nats_errors_are_mapped(raised, expected, says):
    with pytest.raises(expected) as info, mapped("publish", "ow.ev.acme.job.j.*"):
        raise raised
    assert type(info.value) is expected
    assert info.value.__cause__ is raised
    assert says in str(info.value)


@pytest.mark.parametrize("err", [ConflictError("k", 3), PermissionDeniedError("no"),
                                 NotFoundError("job", "j")])
def test_own_errors_pass_through_unchanged(err):
    with pytest.raises(OWError) as info, mapped("publish"):
        raise err
    assert info.value is err


@pytest.mark.parametrize("err", [ValueError("x"), KeyError("k"), RuntimeError("r")])
def test_other_errors_are_not_the_mappings_business(err):
    with pytest.raises(type(err)) as info, mapped("publish"):
        raise err
    assert info.value is err
