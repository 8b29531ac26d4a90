"""Content ids (jobs, files), time-ordered event ids and the one subject/key token encoder.

Imports: stdlib and msgspec only.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from typing import Any

import msgspec

__all__ = [
    "canonical_json",
    "decode_token",
    "encode_token",
    "file_id",
    "job_id",
    "new_id",
    "uuid7",
]

_SAFE = re.compile(r"[-_A-Za-z0-9]")
_canon = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys at every depth: equal values give equal bytes."""
    return _canon.encode(value)


def job_id(job_type: str, params: dict[str, Any], image: str, org: str) -> str:
    """Content id of a job: `<type>-` + 12 hex of sha256(canonical params + image + org)."""
    h = hashlib.sha256(canonical_json(params) + image.encode() + org.encode())
    return f"{job_type}-{h.hexdigest()[:12]}"


def file_id(purpose: str, sha256_hex: str, org: str) -> str:
    """Content id of a file from the hex sha256 of its bytes: `<purpose>:file-<12 hex>`."""
    h = hashlib.sha256(sha256_hex.encode() + org.encode())
    return f"{purpose}:file-{h.hexdigest()[:12]}"


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7) as a hex string."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value).hex


def new_id(prefix: str) -> str:
    """A fresh random id with a readable prefix (`run-…`, `worker-…`)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def encode_token(value: str) -> str:
    """Make any string a valid subject token / KV key part: `[-_=A-Za-z0-9]` only.

    Every other byte becomes `=XX` (hex), `=` included, so the mapping is reversible:
    `conversations:file-abc` -> `conversations=3Afile-abc`.
    """
    if not value:
        raise ValueError("an empty string cannot be a subject token")
    out = []
    for ch in value:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"={b:02X}" for b in ch.encode())
    return "".join(out)


def decode_token(token: str) -> str:
    """Inverse of `encode_token`."""
    raw = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "=":
            raw.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(token[i].encode())
            i += 1
    return raw.decode()
