"""ow tokens `ow_<id>_<secret>`: their format, their records (which hold only a bcrypt hash of
the secret), making one, and why one is refused. Pure apart from the random secret; bcrypt is
imported lazily. Which tokens a server accepts is the tenancy state's (`ow.core.tenancy`).

Imports: stdlib, msgspec and `ow.core.errors`.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

import msgspec

from ow.core.errors import ConfigError, TokenError

__all__ = ["JOB_SCOPE", "SCOPES", "TokenRecord", "fresh", "hash_secret", "mask", "matches",
           "new_token", "parse_expires", "parse_token", "why_invalid"]

SCOPES = ("read", "submit", "worker", "admin")  # what `ow token create` gives users
JOB_SCOPE = "job"  # the org's credential for its jobs' own code: never a user's
BCRYPT_COST = 11  # ~0.1 s per check: the server checks once per connection

_TOKEN = re.compile(r"^ow_([a-z0-9]{12})_([A-Za-z0-9_-]{20,})$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TokenRecord(msgspec.Struct, kw_only=True):
    token_id: str
    org: str
    scope: str
    hash: str  # bcrypt of the secret part
    created: datetime
    expires: datetime | None = None
    name: str = ""
    revoked_at: datetime | None = None
    reason: str = ""
    control: bool = False  # the org's own control user (not listed, never expires)


def mask(token: str) -> str:
    """A token or id shortened for messages: `ow_ab…12` (never the secret part)."""
    tid = token.split("_")[1] if token.count("_") >= 2 else token.removeprefix("ow_")
    return f"ow_{tid[:2]}…{tid[-2:]}" if len(tid) >= 4 else "ow_…"


def parse_token(token: str) -> tuple[str, str]:
    """`ow_<id>_<secret>` → (id, secret); a malformed token raises `TokenError`."""
    m = _TOKEN.match(token.strip())
    if not m:
        raise TokenError(
            f"token {mask(token)} is malformed: an ow token looks like ow_<12 chars>_<secret> "
            "(check OW_TOKEN)"
        )
    return m.group(1), m.group(2)


def hash_secret(secret: str) -> str:
    import bcrypt

    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")).decode()


def matches(secret: str, hashed: str) -> bool:
    import bcrypt  # checkpw compares in constant time

    try:
        return bcrypt.checkpw(secret.encode(), hashed.encode())
    except ValueError:
        return False


def new_token(
    org: str, scope: str, now: datetime, expires: datetime | None, name: str = "",
    control: bool = False,
) -> tuple[str, TokenRecord]:
    """A fresh token and its record (which holds only the hash)."""
    if scope not in SCOPES and not (control and scope == JOB_SCOPE):
        raise ConfigError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    prefix = {"admin": "ctl", "worker": "wrk", JOB_SCOPE: "job"}[scope] if control else ""
    token, tid, secret = fresh(prefix)
    record = TokenRecord(
        token_id=tid, org=org, scope=scope, hash=hash_secret(secret), created=now,
        expires=expires, name=name, control=control,
    )
    return token, record


def fresh(prefix: str = "") -> tuple[str, str, str]:
    """A new token `ow_<id>_<secret>` and its parts: a 12-character id starting with
    `prefix`, and a random secret."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    tid = prefix + "".join(secrets.choice(alphabet) for _ in range(12 - len(prefix)))
    secret = secrets.token_urlsafe(32)
    return f"ow_{tid}_{secret}", tid, secret


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def why_invalid(record: TokenRecord | None, token: str, now: datetime) -> str:
    """Why a (well-formed) token is refused, or '' if it is valid."""
    if record is None:
        return f"token {mask(token)} is unknown (never created here, or for another server)"
    if record.revoked_at is not None:
        reason = f" ({record.reason})" if record.reason else ""
        return f"token {mask(token)} was revoked at {_fmt(record.revoked_at)}{reason}"
    if record.expires is not None and record.expires <= now:
        return f"token {mask(token)} expired at {_fmt(record.expires)}"
    return ""


def parse_expires(text: str, now: datetime) -> datetime | None:
    """`7d`, `12h`, `30m`, `90s`, `2w` → a time after `now`; `never`/'' → None."""
    text = text.strip().lower()
    if text in ("", "never", "none"):
        return None
    m = _DURATION.match(text)
    if not m:
        raise ConfigError(f"bad --expires {text!r}: use e.g. 30m, 12h, 7d, 2w or never")
    return now + timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
