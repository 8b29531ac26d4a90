"""The one hardware-matching rule: labels normalised once, then image, hardware and VRAM."""

import pytest

from ow.core.hardware import Need, Offer, known_label, mismatch, normalize, unknown_labels


@pytest.mark.parametrize(("label", "canonical"), [
    ("H200", "1x H200"),
    ("1x H200", "1x H200"),
    (" 1X h200 ", "1x H200"),
    ("2x A100", "2x A100"),
    ("2X a100", "2x A100"),
    ("2 x A100", "2x A100"),
    ("8x H100", "8x H100"),
    ("NVIDIA H100 80GB HBM3", "1x H100"),  # what nvidia-smi reports
    ("2x NVIDIA A100-SXM4-80GB", "2x A100S"),
    ("1x H100 80GB HBM3", "1x H100"),
    ("cpu", "cpu"),
    (" CPU ", "cpu"),
    ("", ""),
    ("1x NOPE", "1x NOPE"),  # unknown, but still canonical
])
def test_labels_normalise_to_one_form(label, canonical):
    assert normalize(label) == canonical


@pytest.mark.parametrize(("label", "known"), [
    ("H200", True), ("1x H200", True), ("4x L40S", True), ("cpu", True),
    ("NVIDIA RTX A6000", True), ("1x NOPE", False), ("H201", False), ("", False),
    ("0x H200", False), ("ax H200", False), ("2x", False),
])
def test_unknown_labels_are_detectable(label, known):
    assert known_label(label) is known


def test_unknown_labels_lists_the_ones_refused():
    assert unknown_labels(["H200", "1x NOPE", "cpu", "TPU"]) == ["1x NOPE", "TPU"]


W = Offer  # worker
N = Need  # job


@pytest.mark.parametrize(("worker", "need", "why"), [
    # finding 3: the agent refused `1x H200` for allowed ["H200"]; the planner accepted it
    (W(hardware="1x H200", vram_gb=141), N(allowed_hardware=("H200",)), ""),
    (W(hardware="H200", vram_gb=141), N(allowed_hardware=("1x H200",)), ""),
    (W(hardware="2x A100", vram_gb=160), N(allowed_hardware=("2X a100", "1x H100")), ""),
    (W(hardware="2x A100", vram_gb=160), N(allowed_hardware=("A100",)), "not in allowed"),
    (W(hardware="1x A100", vram_gb=80), N(allowed_hardware=("2x A100",)), "not in allowed"),
    (W(hardware="cpu"), N(allowed_hardware=("H200",)), "not in allowed"),
    (W(hardware="cpu"), N(allowed_hardware=("CPU",)), ""),
    (W(hardware="cpu"), N(allowed_hardware=("", " ")), ""),  # blank entries allow anything
    (W(hardware="1x H200", vram_gb=141), N(allowed_hardware=("1x NOPE",)), "not in allowed"),
    (W(hardware="1x NOPE", vram_gb=10), N(allowed_hardware=("1x nope",)), ""),
    # VRAM: totals over all GPUs
    (W(hardware="2x A6000", vram_gb=96), N(requires_vram_gb=90), ""),
    (W(hardware="1x A6000", vram_gb=48), N(requires_vram_gb=90), "needs 90 GB VRAM"),
    (W(hardware="cpu"), N(requires_vram_gb=0), ""),
    (W(hardware="cpu"), N(requires_vram_gb=0.5), "needs 0.5 GB VRAM, worker has 0 GB"),
    # image
    (W(image="*"), N(image="custom"), ""),
    (W(image="a"), N(image="a"), ""),
    (W(image="a"), N(image="b"), "image 'b' != worker image 'a'"),
    (W(image="a"), N(image=""), ""),
])
def test_mismatch_table(worker, need, why):
    got = mismatch(worker, need)
    assert (got == "") if not why else (why in got)
