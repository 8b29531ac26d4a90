"""The bus's one error mapping: nats-py exceptions into `ow.core.errors`, with what to do.

Every call into nats-py under `ow.core.bus` runs inside `mapped(what, key)`; no nats
exception crosses the package. The table it applies is pinned by
`tests/unit/core/test_bus_errors.py`.

Imports: stdlib, nats and `ow.core.errors`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import nats.errors
import nats.js.errors

from ow.core.errors import BusError, BusUnavailableError, ConflictError, NotFoundError, OWError

__all__ = ["CONFIG_MISMATCH", "mapped"]

#: JetStream error codes of a compare-and-set that lost (wrong last sequence)
WRONG_LAST_SEQ = (10071, 10164)
#: JetStream error code of `add_stream` on an existing stream with another configuration
CONFIG_MISMATCH = 10058


@contextlib.contextmanager
def mapped(what: str, key: str = "") -> Iterator[None]:
    """Map nats-py errors raised inside into `OWError`s that say what to do."""
    try:
        yield
    except OWError:
        raise
    except nats.js.errors.KeyWrongLastSequenceError as exc:
        raise ConflictError(key, None, str(exc.description or "")) from exc
    except nats.js.errors.NotFoundError as exc:
        raise NotFoundError(what, key) from exc
    except nats.js.errors.ServiceUnavailableError as exc:
        raise BusUnavailableError(f"{what}: JetStream is not available yet ({exc})") from exc
    except nats.js.errors.APIError as exc:
        if exc.err_code in WRONG_LAST_SEQ:
            raise ConflictError(key, None, str(exc.description or "")) from exc
        raise BusError(f"{what} failed: {exc.description} (code {exc.err_code})") from exc
    except (
        nats.errors.NoServersError, nats.errors.ConnectionClosedError,
        nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
        nats.errors.OutboundBufferLimitError,
    ) as exc:
        raise BusUnavailableError(f"{what}: lost the NATS connection ({exc})") from exc
    except (nats.errors.TimeoutError, TimeoutError) as exc:
        raise BusUnavailableError(f"{what}: NATS did not answer in time") from exc
