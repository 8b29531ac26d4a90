"""Blob stores: where file bytes live (events only reference them by key).

`BlobStore` is the interface; `NatsObjectStore` (the NATS object store bucket
`subjects.FILES_BUCKET`, the embedded default) and `S3Store` (any S3-compatible server, for
scale-out) implement it. Both stream: a large file is never held in memory whole. Library
errors never cross this module: a missing key is `NotFoundError("blob", key)`, refused or
missing credentials are an `OWError` that says what to set (never the secret itself).

`store_for(config, bus_getter)` picks the store from the configuration.

Imports: stdlib, anyio and `ow.core`. The NATS store asks the bus for its objects
(`Bus.object_info`, `object_chunks`, `object_put`) and maps what they raise with
`bus.mapped`, so it imports no nats module itself. boto3/botocore are imported lazily, inside
`S3Store`, so `import ow` never loads them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio

from ow.core.bus import Bus, mapped
from ow.core.errors import (
    ConfigError,
    NotFoundError,
    OWError,
    PermissionDeniedError,
    StoreError,
)

__all__ = ["BlobStore", "NatsObjectStore", "S3Store", "store_for"]

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
S3_PART_BYTES = 8 << 20  # multipart part size (S3's minimum part is 5 MiB)

_S3_MISSING = {"404", "NoSuchKey", "NotFound"}
_S3_REFUSED = {
    "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
    "ExpiredToken", "InvalidClientTokenId", "AuthorizationHeaderMalformed",
}

BusGetter = Callable[[], Awaitable[Bus]]


@runtime_checkable
class BlobStore(Protocol):
    """Where file bytes live, addressed by key (`subjects.file_key(org, file_id)`)."""

    name: str

    async def put_file(self, key: str, path: Path | str) -> None: ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def get_file(self, key: str, dest_path: Path | str) -> Path: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...


@contextlib.contextmanager
def _atomic_dest(dest_path: Path | str) -> Iterator[io.BufferedWriter]:
    """Write to a temporary file next to `dest_path`; rename it into place only on success."""
    dest = Path(dest_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- NATS object store ---------------------------------------------------------------


class NatsObjectStore:
    """Blobs in the NATS object store bucket `ow_files` (ADR-20 layout), streamed both ways.

    One read path for everyone, through API subjects that name what is read, so that the
    server can restrict it (a run's credential reads only its job's files,
    `permissions.run_permissions`): the metadata by a direct get of the last message on its
    subject, the chunks by a consumer whose filter (the object's chunk subject) is in its
    API subject, pulled one chunk at a time (memory stays at one chunk). Writes publish the
    chunks and then the metadata (a rollup of its subject), as nats-py does, without
    nats-py's stat before and purge after (a run may neither).

    Keys are content-addressed (`file_key(org, file_id)`, the id a hash of the bytes), so a
    key that already holds a complete object (its metadata is written last) is left alone:
    rewriting it would orphan the chunks a reader is streaming. A run cannot see whether it
    exists (`exists` is refused to it): it writes, and its copy is the same bytes.
    """

    name = "nats"

    def __init__(self, bus_getter: BusGetter):
        self._bus_getter = bus_getter

    @contextlib.contextmanager
    def _mapped(self, what: str, key: str) -> Iterator[None]:
        """`bus.mapped`, plus nats errors it leaves alone."""
        try:
            with mapped("blob", key):
                yield
        except OWError:
            raise
        except Exception as exc:
            if not type(exc).__module__.startswith("nats"):
                raise
            raise StoreError(f"NATS object store: {what} {key!r} failed ({exc!r})") from exc

    async def put_file(self, key: str, path: Path | str) -> None:
        f = await anyio.to_thread.run_sync(partial(open, path, "rb"))
        with f:
            await self._put(key, partial(f.read, CHUNK_BYTES))

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self._put(key, io.BytesIO(bytes(data)).read1)

    async def _put(self, key: str, read: Callable[[], bytes]) -> None:
        bus = await self._bus_getter()
        if not bus.run and await self.exists(key):
            return  # see the class docstring: never rewrite a complete object
        await bus.object_put(key, read, CHUNK_BYTES)

    async def get_file(self, key: str, dest_path: Path | str) -> Path:
        info = await self._info(key)  # fail before creating anything at dest
        with _atomic_dest(dest_path) as f:

            async def write(chunk: bytes) -> None:
                await anyio.to_thread.run_sync(f.write, chunk)

            await self._read_chunks(key, info, write)
        return Path(dest_path)

    async def get_bytes(self, key: str) -> bytes:
        info = await self._info(key)
        buf = io.BytesIO()

        async def write(chunk: bytes) -> None:
            buf.write(chunk)

        await self._read_chunks(key, info, write)
        return buf.getvalue()

    async def nuid(self, key: str) -> str:
        """The nuid of an object's chunks (what a run's credential names to read them)."""
        return str((await self._info(key))["nuid"])

    async def _info(self, key: str) -> dict[str, Any]:
        """An object's metadata; `NotFoundError` if it has none or was deleted."""
        info = await (await self._bus_getter()).object_info(key)
        if not info or info.get("deleted"):
            raise NotFoundError("blob", key)
        if (info.get("options") or {}).get("link"):
            raise StoreError(f"NATS object {key!r} is a link; ow never writes links")
        return info

    async def _read_chunks(
        self, key: str, info: dict[str, Any], write: Callable[[bytes], Awaitable[Any]]
    ) -> None:
        """Pull an object's chunks one at a time through a consumer of its chunk subject
        (named, so its filter is in the API subject) and check its size and digest."""
        bus = await self._bus_getter()
        h, size = hashlib.sha256(), 0
        async for chunk in bus.object_chunks(key, info["nuid"], int(info.get("chunks") or 0)):
            h.update(chunk)
            size += len(chunk)
            await write(chunk)
        expected = base64.urlsafe_b64decode(str(info.get("digest", "=")).split("=", 1)[1] + "==")
        if size != int(info.get("size") or 0) or h.digest() != expected:
            raise StoreError(
                f"NATS object {key!r} is corrupt: read {size} bytes, expected {info.get('size')} "
                "with its recorded SHA-256; upload it again"
            )

    async def exists(self, key: str) -> bool:
        try:
            await self._info(key)
        except NotFoundError:
            return False
        return True


# --- S3 ------------------------------------------------------------------------------


class S3Store:
    """Blobs in an S3 bucket (created if missing); credentials from boto3's default chain.

    boto3 is blocking, so every call runs in a worker thread. Uploads are multipart for large
    files and downloads are copied in 1 MiB chunks: memory stays flat whatever the size.
    """

    name = "s3"

    def __init__(self, bucket: str, endpoint: str = "", region: str = ""):
        self.bucket = bucket
        self.endpoint = endpoint
        self.region = region
        self._client: Any = None
        self._ready = False
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint={self.endpoint or 'aws'!r})"

    @property
    def _where(self) -> str:
        at = f" at {self.endpoint}" if self.endpoint else ""
        return f"S3 bucket {self.bucket!r}{at}"

    @contextlib.contextmanager
    def _s3_errors(self, what: str, key: str = "") -> Iterator[None]:
        """Map botocore errors to `OWError`s; messages name the bucket and never a secret."""
        import botocore.exceptions as bx

        try:
            yield
        except bx.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "unknown"
            if code in _S3_MISSING and key:
                raise NotFoundError("blob", key) from None
            if code in _S3_REFUSED:
                raise PermissionDeniedError(
                    f"{self._where} refused the credentials ({code}) during {what}: check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the "
                    "permissions of that key"
                ) from None
            raise StoreError(f"{self._where}: {what} failed ({code})") from None
        except bx.NoCredentialsError:
            raise ConfigError(
                f"no credentials for {self._where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            ) from None
        except bx.EndpointConnectionError as exc:
            raise StoreError(
                f"cannot reach {self._where} ({type(exc).__name__}): check OW_S3_ENDPOINT"
            ) from None
        except bx.BotoCoreError as exc:
            raise StoreError(f"{self._where}: {what} failed ({type(exc).__name__})") from None

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        session = boto3.session.Session()
        region = self.region or session.region_name or "us-east-1"
        cfg = BotoConfig(
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if self.endpoint else {},
        )
        return session.client(
            "s3", endpoint_url=self.endpoint or None, region_name=region, config=cfg
        )

    def _ensure_bucket(self) -> None:
        import botocore.exceptions as bx

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except bx.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in {"404", "NoSuchBucket", "NotFound"}:
                raise
            log.info("creating S3 bucket %s", self.bucket)
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except bx.ClientError as exc2:
                code2 = str(exc2.response.get("Error", {}).get("Code", ""))
                if code2 not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    async def _run(self, what: str, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking boto3 call in a thread (connecting first), mapping its errors."""
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await anyio.to_thread.run_sync(self._connect)
                    self._ready = True

        def call() -> Any:
            with self._s3_errors(what, key):
                return fn(*args)

        return await anyio.to_thread.run_sync(call)

    def _connect(self) -> None:
        with self._s3_errors("connect"):
            if self._client is None:
                self._client = self._make_client()
            self._ensure_bucket()

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=S3_PART_BYTES, multipart_chunksize=S3_PART_BYTES,
            io_chunksize=CHUNK_BYTES, max_concurrency=4,
        )

    async def put_file(self, key: str, path: Path | str) -> None:
        def upload() -> None:
            self._client.upload_file(
                str(path), self.bucket, key, Config=self._transfer_config()
            )

        await self._run("upload", key, upload)

    async def put_bytes(self, key: str, data: bytes) -> None:
        def put() -> None:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))

        await self._run("upload", key, put)

    async def get_file(self, key: str, dest_path: Path | str) -> Path:
        def download() -> None:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                with _atomic_dest(dest_path) as f:
                    for chunk in body.iter_chunks(CHUNK_BYTES):
                        f.write(chunk)
            finally:
                body.close()

        await self._run("download", key, download)
        return Path(dest_path)

    async def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with contextlib.closing(body):
                return body.read()

        return await self._run("download", key, read)

    async def exists(self, key: str) -> bool:
        try:
            await self._run(
                "stat", key, partial(self._client_call, "head_object", Bucket=self.bucket, Key=key)
            )
        except NotFoundError:
            return False
        return True

    def _client_call(self, method: str, **kwargs: Any) -> Any:
        return getattr(self._client, method)(**kwargs)


def store_for(config: Any, bus_getter: BusGetter) -> BlobStore:
    """The configured blob store: S3 if `config.s3_bucket` is set, else the NATS object store."""
    if getattr(config, "s3_bucket", ""):
        return S3Store(config.s3_bucket, getattr(config, "s3_endpoint", ""))
    return NatsObjectStore(bus_getter)
