"""Job types: a registry owns its table, the built-ins are found through it, and no class-level
mutable default is shared between `Jobs` subclasses; the projector's GC pause owns its count."""

from __future__ import annotations

import gc

import pytest

from ow.projections import runner
from ow.sdk import Jobs
from ow.sdk._registry import REGISTRY, Registry


def test_a_registry_owns_its_table():
    a, b = Registry(), Registry()

    @a.register("only_in_a")
    class OnlyInA(Jobs):
        pass

    assert a.get("only_in_a") is OnlyInA
    assert OnlyInA.job_type == "only_in_a"
    assert b.get("only_in_a") is None
    assert REGISTRY.get("only_in_a") is None


def test_a_bad_name_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="must be a Python identifier"):
        Registry().register("fine-tuning")


def test_the_builtins_are_found_through_the_registry():
    for name in ("fine_tuning", "weighted_sft", "inference", "api", "inspect_ai"):
        assert REGISTRY.get(name).__module__ == "payloads.jobs"
    assert REGISTRY.builtins_loaded


def test_each_jobs_subclass_has_its_own_mount():
    class A(Jobs):
        pass

    class B(Jobs):
        mount = {"src": "dest"}  # noqa: RUF012 - how users write it

    class C(B):
        pass

    A.mount["leak"] = "x"
    C.mount["more"] = "y"
    assert Jobs.mount == {}
    assert "leak" not in B.mount
    assert B.mount == {"src": "dest"}
    assert C.mount == {"src": "dest", "more": "y"}
    assert len({id(k.mount) for k in (Jobs, A, B, C)}) == 4


def test_overlapping_gc_pauses_turn_the_collector_on_once_the_last_ends():
    pause = runner._GcPause()
    assert gc.isenabled()
    with pause():
        with pause():
            assert pause.depth == 2
        assert not gc.isenabled()
    assert gc.isenabled()
    assert pause.depth == 0


def test_a_gc_pause_leaves_a_collector_someone_else_disabled_alone():
    pause = runner._GcPause()
    gc.disable()
    try:
        with pause():
            assert pause.depth == 0
        assert not gc.isenabled()
    finally:
        gc.enable()
