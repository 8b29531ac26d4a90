"""The dashboard's own errors, each with the HTTP status `ow.web.app` answers it with.

Imports: stdlib only.
"""

from __future__ import annotations

__all__ = ["AuthError", "BadParameter"]


class AuthError(Exception):
    """No valid token (401) or no token for the org asked (403); the message says what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class BadParameter(ValueError):
    """A malformed query parameter or header (400); the message names it."""
