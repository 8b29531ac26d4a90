"""Compat tests: openweights' code and parameters against ow (a private nats-server here)."""

import pytest


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    """A private nats-server (the integration conftest's fixtures are not visible here)."""
    from ow.core.server import NatsServer

    server = NatsServer(tmp_path_factory.mktemp("nats"), name="compat").start()
    yield server
    server.stop()


from tests.payloads.tiny_model import tiny_model  # noqa: E402, F401  (a fixture; skips
# the tests that use it when torch/transformers are missing)
