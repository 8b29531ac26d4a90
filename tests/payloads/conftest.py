"""Payload tests: need the `train` extra (torch, transformers, peft, trl); skipped without it."""

import pytest

pytest.importorskip("torch", reason="payload tests need the `train` extra")

from tests.payloads.tiny_model import tiny_model  # noqa: E402, F401  (a fixture)


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    """A private nats-server (the integration conftest's fixtures are not visible here)."""
    from ow.core.server import NatsServer

    server = NatsServer(tmp_path_factory.mktemp("nats"), name="payloads").start()
    yield server
    server.stop()
