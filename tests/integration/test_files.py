"""Files on a real nats-server: round trips, streaming, idempotence, validation, not-found."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tracemalloc

import anyio
import pytest

from ow.core import events as ev
from ow.core import ids, subjects
from ow.core.blobs import NatsObjectStore
from ow.core.errors import NotFoundError, OWError, ValidationError
from ow.sdk import AsyncOpenWeights, OpenWeights

pytestmark = pytest.mark.anyio

ROWS = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "weight": 0}]}]},
]


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
async def client(nats_server, org):
    async with AsyncOpenWeights(url=nats_server.url, org=org) as c:
        yield c


def write_big(path, mib: int) -> str:
    """Write `mib` MiB (half random, half repetitive) and return its sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(mib):
            chunk = os.urandom(1 << 20) if i % 2 else bytes([i]) * (1 << 20)
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def sha_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def file_events(client, file_id):
    bus = await client.bus()
    history, _ = await bus.history(subjects.aggregate_subject(client.org, "file", file_id))
    return [d.event for d in history]


async def test_upload_content_download_retrieve_round_trip(client, tmp_path):
    data = jsonl(ROWS)
    src = tmp_path / "train.jsonl"
    src.write_bytes(data)
    obj = await client.files.upload(src, "conversations")
    sha = hashlib.sha256(data).hexdigest()
    assert obj.id == obj["id"] == ids.file_id("conversations", sha, client.org)
    assert obj.id.startswith("conversations:file-")
    assert (obj.purpose, obj.filename, obj.size_bytes, obj.sha256) == (
        "conversations", "train.jsonl", len(data), sha,
    )
    assert obj.store == "nats"
    assert obj.key == subjects.file_key(client.org, obj.id)
    assert obj.created_at is not None
    assert set(dict(obj)) == {
        "id", "purpose", "filename", "size_bytes", "sha256", "store", "key", "created_at",
    }
    assert await client.files.content(obj.id) == data
    assert (await client.files.download(obj.id, tmp_path / "out" / "x.jsonl")).read_bytes() == data
    into_dir = await client.files.download(obj.id, tmp_path / "out")
    assert into_dir == tmp_path / "out" / "train.jsonl"
    assert into_dir.read_bytes() == data
    assert dict(await client.files.retrieve(obj.id)) == dict(obj)


async def test_large_file_is_streamed_and_its_hash_checked(client, tmp_path):
    src = tmp_path / "big.bin"
    digest = write_big(src, 20)
    await client.bus()  # connect outside the measurement
    tracemalloc.start()
    try:
        obj = await client.files.upload(src, "custom_job_file")
        out = await client.files.download(obj.id, tmp_path / "back.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert obj.size_bytes == 20 << 20
    assert obj.sha256 == digest
    assert sha_of(out) == digest
    assert peak < 8 << 20, f"peak Python memory {peak / 2**20:.1f} MiB for a 20 MiB file"


async def test_reupload_is_a_noop_with_one_event(client, tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_bytes(jsonl(ROWS))
    first = await client.files.upload(src, "conversations")
    again = await client.files.upload(src, "conversations")
    created = await client.files.create(io.BytesIO(src.read_bytes()), "conversations")
    assert first.id == again.id == created.id
    assert again.created_at == first.created_at
    events = await file_events(client, first.id)
    assert len(events) == 1
    assert isinstance(events[0], ev.FileUploaded)
    other = await client.files.upload(src, "custom_job_file")
    assert other.id != first.id
    assert other.id.startswith("custom_job_file:file-")


async def test_concurrent_uploads_of_the_same_bytes_publish_once(nats_server, org, tmp_path):
    src = tmp_path / "same.jsonl"
    src.write_bytes(jsonl(ROWS * 50))
    results: list[str] = []

    async def one() -> None:
        async with AsyncOpenWeights(url=nats_server.url, org=org) as c:
            results.append((await c.files.upload(src, "conversations")).id)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert len(results) == 8
    assert len(set(results)) == 1
    async with AsyncOpenWeights(url=nats_server.url, org=org) as c:
        assert len(await file_events(c, results[0])) == 1
        assert await c.files.content(results[0]) == src.read_bytes()


async def test_invalid_dataset_uploads_and_publishes_nothing(client, tmp_path):
    bad = [ROWS[0], {"messages": [{"role": "bot", "content": "x"}]}, "not json", ROWS[1]]
    data = b"".join(
        (r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in bad
    ) + b"{}\n"
    src = tmp_path / "bad.jsonl"
    src.write_bytes(data)
    with pytest.raises(ValidationError) as err:
        await client.files.upload(src, "conversations")
    assert [(p.line, p.file) for p in err.value.problems] == [
        (2, str(src)), (3, str(src)), (5, str(src)),
    ]
    assert "message 1 has role 'bot'" in str(err.value)
    file_id = ids.file_id("conversations", hashlib.sha256(data).hexdigest(), client.org)
    assert await file_events(client, file_id) == []
    assert not await client.blobs.exists(subjects.file_key(client.org, file_id))
    with pytest.raises(ValidationError, match="no rows"):
        await client.files.create(io.BytesIO(b"\n\n"), "preference")


async def test_unknown_ids_and_paths_are_not_found(client, tmp_path):
    missing = "conversations:file-000000000000"
    with pytest.raises(NotFoundError, match="file 'conversations:file-000000000000' not found"):
        await client.files.retrieve(missing)
    with pytest.raises(NotFoundError):
        await client.files.content(missing)
    with pytest.raises(NotFoundError):
        await client.files.download(missing, tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(NotFoundError, match="no-such.jsonl"):
        await client.files.upload(tmp_path / "no-such.jsonl", "conversations")
    with pytest.raises(OWError, match="not a regular file"):
        await client.files.upload(tmp_path, "custom_job_file")


async def test_create_from_file_objects_and_empty_files(client, tmp_path):
    src = tmp_path / "job.py"
    src.write_bytes(b"print('hi')\n")
    with open(src, "rb") as f:  # noqa: ASYNC230 (a test: the point is a real file object)
        real = await client.files.create(f, "custom_job_file")
    same = await client.files.create(("other.py", io.BytesIO(src.read_bytes())), "custom_job_file")
    named = await client.files.create(("named.py", io.BytesIO(b"x = 1\n")), "custom_job_file")
    raw = await client.files.create(b"", "result")
    assert real.filename == "job.py"
    assert same.id == real.id  # same bytes: the same file, as first uploaded
    assert same.filename == "job.py"
    assert named.filename == "named.py"
    assert await client.files.content(named.id) == b"x = 1\n"
    assert raw.size_bytes == 0
    assert await client.files.content(raw.id) == b""
    assert (await client.files.download(raw.id, tmp_path / "empty")).read_bytes() == b""


async def test_client_reads_again_after_close(client, tmp_path):
    src = tmp_path / "r.txt"
    src.write_bytes(b"again")
    obj = await client.files.upload(src, "result")
    await client.close()  # the blob store must follow the client onto its new connection
    assert await client.files.content(obj.id) == b"again"


async def test_nats_blob_store_contract(bus, tmp_path):
    async def bus_getter():
        return bus

    store = NatsObjectStore(bus_getter)
    key = subjects.file_key(bus.org, "x:file-1")
    assert not await store.exists(key)
    with pytest.raises(NotFoundError, match="blob"):
        await store.get_bytes(key)
    with pytest.raises(NotFoundError):
        await store.get_file(key, tmp_path / "d" / "f")
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").iterdir())
    await store.put_bytes(key, b"abc")
    assert await store.exists(key)
    assert await store.get_bytes(key) == b"abc"
    assert (await store.get_file(key, tmp_path / "d" / "f")).read_bytes() == b"abc"
    nuid = await store.nuid(key)
    await store.put_bytes(key, b"abc")  # content-addressed: a complete object is kept as is
    assert await store.nuid(key) == nuid


def test_sync_facade_uploads_and_reads(nats_server, org, tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_bytes(jsonl(ROWS))
    with OpenWeights(url=nats_server.url, org=org) as ow:
        obj = ow.files.upload(str(src), "conversations")
        with open(src, "rb") as f:
            assert ow.files.create(file=f, purpose="conversations")["id"] == obj["id"]
        assert ow.files.content(obj["id"]) == src.read_bytes()


async def test_bytes_replaced_behind_the_event_are_refused(client, nats_server, tmp_path):
    """Issue 15: the object store can be written by any holder of a file-writing credential
    (a job, say): bytes that are not the announced file's are refused at content/download."""
    import nats

    src = tmp_path / "train.jsonl"
    src.write_bytes(jsonl(ROWS))
    obj = await client.files.upload(src, "conversations")
    nc = await nats.connect(nats_server.url)
    try:
        store = await nc.jetstream().object_store(subjects.FILES_BUCKET)
        await store.put(obj.key, b"FORGED\n")
    finally:
        await nc.close()
    with pytest.raises(OWError, match="replaced after upload"):
        await client.files.content(obj.id)
    out = tmp_path / "out.jsonl"
    with pytest.raises(OWError, match="replaced after upload"):
        await client.files.download(obj.id, out)
    assert not out.exists()
