import pytest

from ow.scheduler.hardware import GPU_TABLE, cheapest, normalize


@pytest.mark.parametrize(
    ("vram", "allowed", "want"),
    [
        (0, [], "cpu"),
        (24, [], "1x A6000"),
        (48, [], "1x A6000"),
        (60, [], "1x A100"),  # one GPU unless asked: unsloth trains on one device
        (100, [], "1x H200"),
        (60, ["1x A100", "1x H100"], "1x A100"),
        (141, ["1x H200"], "1x H200"),
        (24, ["2x A100", "1x H100"], "1x H100"),
        (24, ["2X a100"], "2x A100"),
        (200, ["1x H200"], None),
        (2000, [], None),
    ],
)
def test_cheapest(vram, allowed, want):
    hw = cheapest(vram, allowed, GPU_TABLE)
    assert (hw.name if hw else None) == want


def test_table_rows_are_consistent():
    for hw in GPU_TABLE:
        if hw.gpu:
            assert hw.count in (1, 2, 4, 8)
            assert hw.name == f"{hw.count}x {hw.gpu}"
    assert normalize("H200") == "1x H200"
    assert normalize(" cpu ") == "cpu"
