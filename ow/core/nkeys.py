"""NATS nkeys and JWTs, as much of them as the auth callout needs (`ow.core.callout`).

An nkey is an Ed25519 key written as base32 (RFC 4648, no padding) of a prefix byte, the 32
key bytes and a CRC-16/XMODEM of both (little-endian). A public key's prefix names its kind
(`A…` account, `U…` user, `N…` server); a seed (`SA…`) packs the seed prefix and the kind
into its first two bytes. A NATS JWT is `header.claims.signature`, each part base64url
without padding; the header is `{"typ":"JWT","alg":"ed25519-nkey"}`, the claims name their
signer in `iss` (a public nkey), and the signature is Ed25519 over `header.claims`.

Pure functions; `cryptography` (Ed25519) is imported inside them.

Imports: stdlib and `ow.core.errors`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from ow.core.errors import TokenError

__all__ = ["ACCOUNT", "SERVER", "USER", "decode_jwt", "encode_jwt", "new_seed", "public_key",
           "sign", "verify"]

SEED = 18 << 3  # 'S'
ACCOUNT = 0  # 'A'
SERVER = 13 << 3  # 'N'
USER = 20 << 3  # 'U'
_KINDS = {ACCOUNT: "account", SERVER: "server", USER: "user"}
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys use it."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _encode(prefix: bytes, raw: bytes) -> str:
    body = prefix + raw
    return base64.b32encode(body + crc16(body).to_bytes(2, "little")).decode().rstrip("=")


def _decode(text: str) -> bytes:
    """The prefix and key bytes of an nkey whose checksum holds; `TokenError` otherwise."""
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, TypeError) as exc:
        raise TokenError(f"nkey {text[:4]}… is not base32") from exc
    body, crc = raw[:-2], raw[-2:]
    if len(raw) < 4 or crc16(body).to_bytes(2, "little") != crc:
        raise TokenError(f"nkey {text[:4]}… has a bad checksum")
    return body


def encode_public(kind: int, key: bytes) -> str:
    """A public nkey of `kind` (ACCOUNT, USER, SERVER) for 32 key bytes."""
    return _encode(bytes([kind]), key)


def decode_public(text: str, kind: int | None = None) -> bytes:
    """The 32 key bytes of a public nkey (of `kind`, if given)."""
    body = _decode(text)
    if len(body) != 33 or body[0] not in _KINDS or (kind is not None and body[0] != kind):
        want = _KINDS.get(kind, "public") if kind is not None else "public"
        raise TokenError(f"nkey {text[:4]}… is not a {want} key")
    return body[1:]


def new_seed(kind: int = ACCOUNT) -> str:
    """A fresh seed (`SA…` for an account) from the OS's randomness."""
    return encode_seed(kind, secrets.token_bytes(32))


def encode_seed(kind: int, raw: bytes) -> str:
    prefix = bytes([SEED | (kind >> 5), (kind & 31) << 3])
    return _encode(prefix, raw)


def _seed(seed: str) -> tuple[int, bytes]:
    body = _decode(seed)
    if len(body) != 34 or body[0] & 0xF8 != SEED:
        raise TokenError("not an nkey seed")
    return ((body[0] & 7) << 5) | (body[1] >> 3), body[2:]


def _private(seed: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(_seed(seed)[1])


def public_key(seed: str) -> str:
    """The public nkey of a seed (`A…` for an account seed)."""
    from cryptography.hazmat.primitives import serialization

    raw = _private(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return encode_public(_seed(seed)[0], raw)


def sign(seed: str, data: bytes) -> bytes:
    return _private(seed).sign(data)


def verify(public: str, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is `public`'s over `data`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(decode_public(public)).verify(signature, data)
    except (InvalidSignature, TokenError, ValueError):
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict[str, Any], seed: str, now: int) -> str:
    """A NATS JWT of `claims` signed by `seed` (`iss`, `iat` and `jti` filled in)."""
    body = {**claims, "iss": public_key(seed), "iat": now}
    body["jti"] = base64.b32encode(hashlib.sha256(
        json.dumps(body, sort_keys=True).encode()).digest()).decode().rstrip("=")
    head = _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signed = f"{head}.{payload}"
    return f"{signed}.{_b64(sign(seed, signed.encode()))}"


def decode_jwt(token: str, issuer_kind: int | None = None) -> dict[str, Any]:
    """The claims of a NATS JWT whose signature verifies against its own `iss`
    (of `issuer_kind`, if given); `TokenError` for anything else."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise TokenError("a NATS JWT has three parts")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except ValueError as exc:
        raise TokenError(f"not a NATS JWT: {exc}") from exc
    if header.get("alg") != _HEADER["alg"] or not isinstance(claims, dict):
        raise TokenError("not an ed25519-nkey JWT")
    issuer = str(claims.get("iss", ""))
    if issuer_kind is not None:
        decode_public(issuer, issuer_kind)
    if not verify(issuer, f"{parts[0]}.{parts[1]}".encode(), signature):
        raise TokenError("the JWT's signature does not verify against its issuer")
    return claims
