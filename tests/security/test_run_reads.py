"""What a per-run credential may read (issue 15, item 2): its own job's events and the files
its job names (in the credential, with their objects' nuids), through API subjects the
server can restrict; not another job's file (metadata or chunks), not another run's logs or
metrics (get or subscribe), not another job's JobSubmitted, not a stream's info."""

from __future__ import annotations

import anyio
import pytest

from ow.core import bus as bus_mod
from ow.core import credentials as cr
from ow.core import events as ev
from ow.core import files, subjects
from ow.core.blobs import NatsObjectStore
from ow.core.errors import OWError
from ow.core.ids import encode_token

from .conftest import Probe
from .test_credentials import run_cred, worker

pytestmark = pytest.mark.anyio

API = "$JS.API"
OBJ = "OBJ_ow_files"


async def _two_files(t, tmp_path):
    """(admin bus, its store, {name: (file id, nuid)}) for a file of job-1 and one of job-2."""
    a = await t.admin("orga")

    async def getter():
        return a

    store, out = NatsObjectStore(getter), {}
    for name in ("mine", "theirs"):
        path = tmp_path / f"{name}.txt"
        path.write_bytes(f"the {name} bytes".encode())
        fid = await files.store_file(a, store, path, "custom")
        out[name] = (fid, await store.nuid(subjects.file_key("orga", fid)))
    return a, store, out


def _run_of_job_1(t, own: tuple[str, str]) -> str:
    token, key = worker(t, "orga", "w1")
    return cr.run_credential(key, token, "job-1", "run-1", 0, files={own[0]: own[1]})


async def test_a_run_reads_its_own_jobs_file_and_nothing_else(tenants, tmp_path):
    t = tenants
    a, _, f = await _two_files(t, tmp_path)
    await a.publish(ev.JobSubmitted(job_id="job-2", image="x", requires_vram_gb=0))
    run = await bus_mod.connect(t.url, org="orga", token=_run_of_job_1(t, f["mine"]))

    async def getter():
        return run

    mine = NatsObjectStore(getter)
    assert await mine.get_bytes(subjects.file_key("orga", f["mine"][0])) == b"the mine bytes"
    assert (await files.announced(run, f["mine"][0])).sha256
    with anyio.fail_after(30), pytest.raises(OWError, match="refused"):
        await mine.get_bytes(subjects.file_key("orga", f["theirs"][0]))
    await run.close()
    theirs, nuid = f["theirs"][0], f["theirs"][1]
    meta = subjects.object_meta_subject(subjects.file_key("orga", theirs))
    chunks = subjects.object_chunks_subject(nuid)
    refused = [
        f"{API}.DIRECT.GET.{OBJ}.{meta}",  # another job's file: its metadata
        f"{API}.CONSUMER.CREATE.{OBJ}.spy.{chunks}",  # … its chunks
        f"{API}.CONSUMER.CREATE.{OBJ}.spy.$O.ow_files.C.*",  # every chunk (a literal `*`)
        f"{API}.CONSUMER.CREATE.{OBJ}",  # a consumer whose filter is in the payload
        f"{API}.STREAM.MSG.GET.{OBJ}", f"{API}.DIRECT.GET.{OBJ}",  # payload-addressed gets
        f"{API}.STREAM.INFO.{OBJ}",  # its subjects_filter lists every object's nuid
        f"{API}.DIRECT.GET.OW_EVENTS.ow.ev.orga.file.{encode_token(theirs)}.FileUploaded",
        f"{API}.DIRECT.GET.OW_EVENTS.ow.ev.orga.job.job-2.JobSubmitted",  # another job
        f"{API}.CONSUMER.CREATE.OW_EVENTS.spy.ow.ev.orga.job.job-2.>",
        f"{API}.STREAM.MSG.GET.OW_EVENTS", f"{API}.DIRECT.GET.OW_EVENTS",
        f"{API}.CONSUMER.CREATE.OW_EVENTS", f"{API}.STREAM.INFO.OW_EVENTS",
        f"{API}.DIRECT.GET.OW_LOGS.ow.log.orga.run-2", f"{API}.STREAM.MSG.GET.OW_LOGS",
        f"{API}.DIRECT.GET.OW_METRICS.ow.mx.orga.run-2", f"{API}.CONSUMER.CREATE.OW_METRICS",
    ]
    own = f["mine"][0]
    own_meta = subjects.object_meta_subject(subjects.file_key("orga", own))
    allowed = [f"{API}.DIRECT.GET.{OBJ}.{own_meta}",
               f"{API}.DIRECT.GET.OW_EVENTS.ow.ev.orga.file.{encode_token(own)}.FileUploaded",
               f"{API}.DIRECT.GET.OW_EVENTS.ow.ev.orga.job.job-1.>"]
    p = await Probe.open(t.url, _run_of_job_1(t, f["mine"]))
    got = {s: await p.allowed(s, b"{}") for s in refused + allowed}
    await p.close()
    await a.close()
    assert [s for s in refused if got[s]] == []
    assert [s for s in allowed if not got[s]] == []


async def test_a_run_subscribes_to_its_own_run_and_inbox_only(tenants):
    t = tenants
    p = await Probe.open(t.url, run_cred(t, "w1", "job-1", "run-1"))
    for subject in ("ow.log.orga.run-2", "ow.mx.orga.run-2", "ow.>", "ow.ev.orga.>",
                    "$O.ow_files.>", "_INBOX_run-2.x", "ow.log.orga.run-1"):
        await p.nc.subscribe(subject)
    await p.nc.flush()
    await anyio.sleep(0.2)  # the server's refusals arrive after the flush's pong
    refused = " ".join(p.errors).lower()
    await p.close()
    for subject in ("ow.log.orga.run-2", "ow.mx.orga.run-2", "ow.>", "ow.ev.orga.>",
                    "$o.ow_files.>", "_inbox_run-2.x"):
        assert f'"{subject}"' in refused, (subject, refused)
    assert '"ow.log.orga.run-1"' not in refused


async def test_a_run_uploads_through_its_credential_without_looking_first(tenants, tmp_path):
    """A run may not see whether a file exists (it could learn other jobs' files): its
    upload stores and announces without the checks, at once, not after a refusal."""
    t = tenants
    a = await t.admin("orga")  # the streams exist (an agent provisioned them)
    run = await bus_mod.connect(t.url, org="orga", token=run_cred(t, "w1", "job-1", "run-1"))

    async def getter():
        return run

    path = tmp_path / "out.txt"
    path.write_bytes(b"made by the run")
    with anyio.fail_after(3):  # a refused look would wait for its timeout first
        fid = await files.store_file(run, NatsObjectStore(getter), path, "result")
        again = await files.store_file(run, NatsObjectStore(getter), path, "result")
    await run.close()
    event = await files.announced(a, fid)
    await a.close()
    assert (again, event.size_bytes) == (fid, len(b"made by the run"))
