"""Payload tests: need the `train` extra (torch, transformers, peft, trl); skipped without it."""

import pytest

pytest.importorskip("torch", reason="payload tests need the `train` extra")

from tests.payloads.tiny_model import tiny_model  # noqa: E402, F401  (a fixture)
