"""Finding 4 of issue 15: an artifact announced as `/abs/x.sh` or `../../x`, or a file
uploaded as `("../../X", …)`, was written there by `ow fetch` / `files.download`. Paths that
come from a job or an upload are relative and stay inside their destination: refused at
upload and again at download (absolute, `..`, NUL, symlinks out)."""

from __future__ import annotations

import os

import pytest

from ow import AsyncOpenWeights
from ow.core import events as ev
from ow.core import subjects
from ow.core.errors import JobFailedError, ValidationError
from ow.core.files import UnsafePathError, inside, relative_path
from tests.integration.agents import ShellJob, running_agents  # noqa: F401

pytestmark = pytest.mark.anyio

BAD = ["/abs/x.sh", "../../x", "a/../../x", "..", "x\0y", "", "\\\\host\\x", "C:\\x",
       "a\\..\\..\\x"]


@pytest.mark.parametrize("path", BAD)
def test_a_path_that_leaves_its_destination_is_refused(path):
    with pytest.raises(UnsafePathError, match="relative path inside"):
        relative_path(path)


@pytest.mark.parametrize(("path", "norm"), [("a/./b//c", "a/b/c"), ("x.txt", "x.txt"),
                                            ("./r/out.csv", "r/out.csv"), ("a..b", "a..b")])
def test_a_relative_path_is_normalised(path, norm):
    assert relative_path(path) == norm


def test_a_symlink_on_the_way_out_is_refused(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "out").symlink_to(tmp_path)  # dest/out -> outside dest
    (tmp_path / "dest" / "link.txt").symlink_to(tmp_path / "victim.txt")
    assert inside(tmp_path / "dest", "ok/x") == tmp_path / "dest" / "ok" / "x"
    with pytest.raises(UnsafePathError, match="through a symlink"):
        inside(tmp_path / "dest", "out/x")
    with pytest.raises(UnsafePathError, match="is a symlink"):
        inside(tmp_path / "dest", "link.txt")


@pytest.fixture
async def ow(fresh_nats, org):
    async with AsyncOpenWeights(url=fresh_nats.url, org=org, env={}) as c:
        yield c


async def test_an_upload_named_out_of_its_place_is_refused_and_publishes_nothing(ow):
    bus = await ow.bus()
    for name in ("../../X", "/etc/x", "a\0b"):
        with pytest.raises(ValidationError, match="file name"):
            await ow.files.create((name, b"data"), "result")
    assert not await bus.last_seq(subjects.EVENTS_STREAM, subjects.events_filter(bus.org))


async def _forged_file(ow, filename: str) -> str:
    """A file announced with a bad name, as an older or hostile client could publish it."""
    bus = await ow.bus()
    key = subjects.file_key(bus.org, "file-forged")
    await ow.blobs.put_bytes(key, b"#!/bin/sh\necho owned\n")
    await bus.publish(ev.FileUploaded(file_id="file-forged", purpose="result",
                                      filename=filename, key=key, store=ow.blobs.name))
    return "file-forged"


async def test_download_of_a_badly_named_file_writes_nothing_outside(ow, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    fid = await _forged_file(ow, "../../evil.sh")
    with pytest.raises(UnsafePathError, match="climbs out"):
        await ow.files.download(fid, dest)
    assert not (tmp_path.parent / "evil.sh").exists()
    assert not list(tmp_path.rglob("evil.sh"))


@pytest.mark.parametrize("path", ["ABS/abs.sh", "../../x.sh", "out/link/x"])
async def test_job_download_refuses_artifact_paths_out_of_dest(ow, tmp_path, path):
    path = path.replace("ABS", str(tmp_path))  # an absolute path, this test's own
    bus = await ow.bus()
    fid = (await ow.files.create(("x.sh", b"echo x"), "result")).id
    job = f"job-{abs(hash(path))}"
    for e in (ev.JobSubmitted(job_id=job, job_type="custom", entrypoint="true"),
              ev.RunStarted(run_id="run-1", job_id=job, gen=0, worker_id="w"),
              ev.ArtifactUploaded(run_id="run-1", job_id=job, file_id=fid, path=path),
              ev.RunFinished(run_id="run-1", job_id=job, status="completed")):
        await bus.publish(e)
    dest = tmp_path / "dest"
    (dest / "out").mkdir(parents=True)
    (dest / "out" / "link").symlink_to(tmp_path)  # a symlink already there, leading out
    with pytest.raises(UnsafePathError):
        await ow.jobs.download(job, str(dest))
    assert not (tmp_path / "abs.sh").exists()
    assert not (tmp_path / "x").exists()
    assert not (tmp_path.parent / "x.sh").exists()


async def test_a_mounted_file_out_of_the_work_dir_is_refused_on_both_sides(
    fresh_nats, org, ow, tmp_path
):
    src = tmp_path / "in.txt"
    src.write_text("data")

    class Escaping(ShellJob):
        mount = {str(src): "../../escape.txt"}  # noqa: RUF012

    with pytest.raises(ValidationError, match="mounted file"):
        await Escaping(ow).create(command="true")
    fid = (await ow.files.create(("in.txt", b"data"), "custom_job_file")).id
    bus = await ow.bus()  # a submitter that skips the SDK's check: the agent checks again
    await bus.publish(ev.JobSubmitted(job_id="job-mount", job_type="shell", entrypoint="true",
                                      mounted_files={"../../escape.txt": fid}))
    async with running_agents(fresh_nats.url, org, 1, tmp_path / "agents"):
        with pytest.raises(JobFailedError, match="mounted file"):
            await ow.jobs.wait("job-mount", timeout=30)
    assert not list(tmp_path.rglob("escape.txt"))


async def test_a_symlink_in_uploads_is_not_uploaded(fresh_nats, org, ow, tmp_path):
    secret = tmp_path / "agent-only.txt"  # readable by the agent, not by the job
    secret.write_text("agent secret")
    command = (f"mkdir -p uploads/d && ln -s {secret} uploads/leak.txt && "
               f"ln -s {tmp_path} uploads/dirlink && echo ok > uploads/d/real.txt")
    async with running_agents(fresh_nats.url, org, 1, tmp_path / "agents"):
        job = await ow.shell.create(command=command)
        done = await ow.jobs.wait(job.id, timeout=30)
    assert sorted(done.runs[-1].artifacts) == ["d/real.txt"]
    assert os.path.exists(secret)


async def test_a_mounted_file_whose_bytes_were_replaced_is_refused(fresh_nats, org, ow, tmp_path):
    """A job may write the org's object store: bytes put behind another file's event are not
    handed to the next job that mounts that file (its announced SHA-256 decides)."""
    import nats

    fid = (await ow.files.create(("in.txt", b"real data"), "custom_job_file")).id
    nc = await nats.connect(fresh_nats.url)
    try:
        store = await nc.jetstream().object_store(subjects.FILES_BUCKET)
        await store.put(subjects.file_key(org, fid), b"FORGED")
    finally:
        await nc.close()
    bus = await ow.bus()
    await bus.publish(ev.JobSubmitted(job_id="job-forged-mount", job_type="shell",
                                      entrypoint="cat in.txt", mounted_files={"in.txt": fid}))
    async with running_agents(fresh_nats.url, org, 1, tmp_path / "agents"):
        with pytest.raises(JobFailedError, match="replaced after upload"):
            await ow.jobs.wait("job-forged-mount", timeout=30)
