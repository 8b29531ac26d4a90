"""Shared test configuration: the anyio backend and DEBUG logs only for failures."""

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
