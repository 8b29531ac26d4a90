"""The event catalogue: every type round-trips through encode/decode; old versions upcast."""

from __future__ import annotations

import typing
from datetime import UTC
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET
from msgspec import inspect as mi

from ow.core import codec, upcast
from ow.core import events as ev

EVENT_TYPES: list[type[ev.Event]] = list(typing.get_args(ev.AnyEvent))
ENVELOPE = {"event_id", "v", "org", "ts", "actor"}

text = st.text(max_size=20)
json_scalar = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
utc_times = st.datetimes(timezones=st.just(UTC))


def strategy_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """A hypothesis strategy for a msgspec type (only the kinds the catalogue uses)."""
    match t:
        case mi.StrType():
            return text
        case mi.BoolType():
            return st.booleans()
        case mi.IntType():
            return st.integers(-(2**63), 2**63 - 1)
        case mi.FloatType():
            return st.floats(allow_nan=False, allow_infinity=False)
        case mi.DateTimeType():
            return utc_times
        case mi.NoneType():
            return st.none()
        case mi.AnyType():
            return json_value
        case mi.ListType(item_type=item):
            return st.lists(strategy_for(item), max_size=3)
        case mi.DictType(key_type=key, value_type=value):
            return st.dictionaries(strategy_for(key), strategy_for(value), max_size=3)
        case mi.UnionType(types=types):
            return st.one_of([strategy_for(x) for x in types])
    raise NotImplementedError(f"no strategy for {t!r}: extend strategy_for")


def event_strategy(cls: type[ev.Event]) -> st.SearchStrategy[ev.Event]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    defaults = {f.name: f.default for f in msgspec.structs.fields(cls)}
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in info.fields:
        if f.name == "v":
            fields["v"] = st.just(1)  # other versions go through the upcasters
            continue
        strategy = strategy_for(f.type)
        if defaults[f.name] is UNSET:
            strategy = st.just(UNSET) | strategy
        fields[f.name] = strategy
    return st.builds(cls, **fields)


any_event = st.one_of([event_strategy(cls) for cls in EVENT_TYPES])


@settings(max_examples=150, deadline=None)
@given(any_event)
def test_every_event_round_trips(event):
    assert codec.decode(codec.encode(event)) == event


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_the_tag_is_the_class_name_and_the_envelope_is_shared(cls):
    assert cls.__struct_config__.tag == cls.__name__
    assert set(cls.__struct_fields__) >= ENVELOPE


def test_decode_message_reads_an_array_of_events():
    batch = [ev.MetricLogged(run_id="run-1", data={"step": i, "loss": 1 / (i + 1)})
             for i in range(3)]
    assert codec.decode_message(msgspec.json.encode(batch)) == batch


def test_unknown_fields_are_ignored_so_old_readers_survive_new_writers():
    data = b'{"type":"JobReset","job_id":"custom-1","reason":"again","added_later":42}'
    assert codec.decode(data) == ev.JobReset(job_id="custom-1", reason="again")


def test_an_unknown_type_is_an_error():
    with pytest.raises(msgspec.ValidationError):
        codec.decode(b'{"type":"JobExploded","job_id":"custom-1"}')


# --- upcasters -------------------------------------------------------------------------

V0_SUBMITTED = (
    b'{"type":"JobSubmitted","v":0,"event_id":"e-0","org":"acme","ts":"2024-11-02T09:00:00Z",'
    b'"job_id":"sft-0123456789ab","kind":"fine-tuning","model":"unsloth/Qwen3-4B",'
    b'"params":{"epochs":1}}'
)


def test_decode_each_decodes_current_events_at_once_or_says_none():
    events = [ev.JobReset(job_id="custom-1", reason="again"),
              ev.RunStarted(run_id="r", job_id="j", gen=0, worker_id="w")]
    datas = [codec.encode(e) for e in events]
    assert codec.decode_each(datas) == events
    assert codec.decode_each([]) == []
    for odd in (V0_SUBMITTED,  # an older version: `decode` upcasts it
                b"{not json", b"", b'{"type":"JobExploded","job_id":"custom-1"}',
                datas[0] + b"," + datas[1]):  # two events in one message
        assert codec.decode_each([datas[0], odd]) is None, odd
        assert codec.decode_each([odd, datas[1]]) is None, odd


def test_a_v0_job_submitted_is_upcast_to_the_current_version():
    event = codec.decode(V0_SUBMITTED)
    assert isinstance(event, ev.JobSubmitted)
    assert (event.v, event.job_type, event.image) == (1, "fine-tuning", "")
    assert (event.job_id, event.model, event.params) == ("sft-0123456789ab", "unsloth/Qwen3-4B",
                                                         {"epochs": 1})


def test_upcast_works_on_a_copy():
    raw = msgspec.json.decode(V0_SUBMITTED)
    upcast.upcast(raw)
    assert raw["kind"] == "fine-tuning"
    assert raw["v"] == 0


def test_a_version_without_upcaster_is_an_error():
    with pytest.raises(msgspec.ValidationError, match="no upcaster for RunStarted v0"):
        codec.decode(b'{"type":"RunStarted","v":0,"run_id":"r","job_id":"j","gen":0,"worker_id":"w"}')


def test_upcasters_chain_to_the_current_version(monkeypatch):
    def v1_v2(raw):
        return {**raw, "reason": raw["reason"].upper()}

    monkeypatch.setitem(upcast.CURRENT, "JobSubmitted", 2)
    monkeypatch.setitem(upcast.CURRENT, "JobReset", 2)
    monkeypatch.setitem(upcast.UPCASTERS, ("JobReset", 1), v1_v2)
    monkeypatch.setitem(upcast.UPCASTERS, ("JobSubmitted", 1), lambda raw: raw)
    reset = codec.decode(b'{"type":"JobReset","job_id":"j","reason":"oom"}')
    assert (reset.v, reset.reason) == (2, "OOM")
    submitted = codec.decode(V0_SUBMITTED)
    assert (submitted.v, submitted.job_type) == (2, "fine-tuning")
