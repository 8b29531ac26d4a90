"""The codec is the one decode path: every stored form reads through `decode_message`, a
reader that must go on skips (and logs) what it cannot read, and the catalogue decodes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import msgspec
import pytest

from ow.core import codec, upcast
from ow.core import events as ev

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RESET = ev.JobReset(job_id="custom-1", reason="again")
RECORDS = [ev.MetricLogged(ts=T0, run_id="run-1", data={"step": i}) for i in range(3)]
V0_SUBMITTED = (
    b'{"type":"JobSubmitted","v":0,"job_id":"sft-0123456789ab","kind":"fine-tuning",'
    b'"model":"m","params":{}}'
)


@pytest.mark.parametrize(("data", "types"), [
    (codec.encode(RESET), ["JobReset"]),  # one current event: the typed fast path
    (V0_SUBMITTED, ["JobSubmitted"]),  # an older version: through the upcasters
    (codec.encode_metrics(RECORDS, "m1"), ["MetricLogged"] * 3),  # a MetricBatch
    (msgspec.json.encode(RECORDS), ["MetricLogged"] * 3),  # metrics before MetricBatch
], ids=["current", "v0", "metric-batch", "array"])
def test_every_stored_form_reads_through_decode_message(data, types):
    assert [type(e).__name__ for e in codec.decode_message(data)] == types


@pytest.mark.parametrize("data", [
    b"{not json", b"", b'{"type":"JobExploded"}', b'{"type":"JobSubmitted","timeout_s":"x"}',
    b'{"type":"MetricBatch","v":2,"run_id":"r","records":[]}', b"42",
])
def test_decode_or_skip_logs_and_skips_what_it_cannot_read(data, caplog):
    with caplog.at_level(logging.WARNING, logger="ow.core.codec"):
        assert codec.decode_or_skip(data, 7, "ow.ev.acme.job.custom-1") == []
    assert "seq=7 subject=ow.ev.acme.job.custom-1" in caplog.text
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        codec.decode_message(data)


def test_decode_or_skip_reads_what_it_can():
    assert codec.decode_or_skip(codec.encode(RESET), 1, "s") == [RESET]


def test_is_metric_batch_tells_a_batch_from_an_event():
    assert codec.is_metric_batch(codec.encode_metrics(RECORDS, "m1"))
    assert codec.is_metric_batch(b'{"v":1,"type":"MetricBatch"}')  # tag not first
    assert not codec.is_metric_batch(codec.encode(RESET))
    assert not codec.is_metric_batch(b"{not json")


def test_the_catalogue_decodes_nothing_and_the_upcasters_need_no_event_class():
    for name in ("decode", "decode_each", "decode_message", "is_metric_batch", "encode",
                 "encode_metrics", "METRIC_BATCH_PREFIX"):
        assert not hasattr(ev, name), f"events.{name} is the codec's"
    assert not hasattr(upcast, "upcast_decode")
