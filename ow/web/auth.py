"""Who is looking: the orgs and scopes of the `ow_` tokens a browser logged in with.

A local stack without auth (no org besides `default` in `<home>/tenancy.json`) needs no
login: the viewer is admin of `default`. Otherwise every request carries tokens, in the
HttpOnly session cookie (set by the login form, one token per org) or an
`Authorization: Bearer ow_...` header, each checked with `ow.core.tenancy.check_token`
against the current state file: a token revoked or expired since login stops working at once.
bcrypt runs once per token (in a worker thread); later requests compare a SHA-256 of it.

Imports: stdlib, anyio, `ow.core` and `ow.web.errors`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio

from ow.core import tenancy as tn
from ow.web.errors import AuthError

__all__ = ["COOKIE", "HINT", "Auth", "Viewer", "cookie_tokens", "cookie_value"]

COOKIE = "ow_session"
HINT = "log in with an ow_ token: `ow token create --org ORG --scope read` prints one"


@dataclass(frozen=True)
class Viewer:
    """The orgs a request may see, each with its scope, and the tokens that gave them."""

    orgs: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)  # org -> token
    open: bool = False  # the unauthenticated local stack

    def scope(self, org: str) -> str:
        """The scope on `org`; `AuthError(403)` without naming anything of that org."""
        if org not in self.orgs:
            raise AuthError(
                403, f"none of your tokens is for org {org!r}: log in with a token of that org "
                f"(`ow token create --org {org} --scope read`)",
            )
        return self.orgs[org]


class Auth:
    """Checks tokens against `<home>/tenancy.json` (re-read when it changes)."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self._state: tn.TenancyState | None = None
        self._mtime = -1
        self._checked: dict[str, str] = {}  # sha256(token) -> token_id, bcrypt passed

    def state(self) -> tn.TenancyState:
        path = tn.state_path(self.home)
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        if self._state is None or mtime != self._mtime:
            self._state, self._mtime = tn.load(self.home), mtime
        return self._state

    async def check(self, token: str) -> tn.TokenRecord:
        """The record of a valid token, or `AuthError(401)` saying why and how to get one."""
        state, now = self.state(), datetime.now(UTC)
        key = hashlib.sha256(token.encode()).hexdigest()
        try:
            tid = self._checked.get(key)
            if tid is not None:
                record = state.tokens.get(tid)
                if why := tn.why_invalid(record, token, now):
                    raise tn.TokenError(why)
                assert record is not None
            else:
                record = await anyio.to_thread.run_sync(tn.check_token, state, token, now)
                self._checked[key] = record.token_id
        except tn.TokenError as exc:
            raise AuthError(401, f"{exc}; {HINT}") from None
        if record.org not in state.orgs:
            raise AuthError(401, f"token {tn.mask(token)} is of an unknown org; {HINT}")
        return record

    async def viewer(self, tokens: list[str]) -> Viewer:
        """The viewer of a request's tokens (cookie and header); `AuthError(401)` if none."""
        state = self.state()
        if not state.enabled:
            return Viewer(orgs={tn.DEFAULT_ORG: "admin"}, open=True)
        if not tokens:
            raise AuthError(401, f"not logged in: {HINT}")
        orgs: dict[str, str] = {}
        by_org: dict[str, str] = {}
        for token in tokens:
            record = await self.check(token)
            orgs[record.org], by_org[record.org] = record.scope, token
        return Viewer(orgs=dict(sorted(orgs.items())), tokens=by_org)


def cookie_tokens(value: str | None) -> list[str]:
    """The tokens kept in the session cookie (space-separated; ow tokens hold no spaces)."""
    return [t for t in (value or "").split() if t]


def cookie_value(tokens: dict[str, str]) -> str:
    return " ".join(tokens[org] for org in sorted(tokens))
