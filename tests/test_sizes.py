"""STYLE's size rule: past about 600 lines a module becomes a package; test files stay under
600 lines. A file that grows past it fails here, naming itself, instead of in review."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 600


def _over(*dirs: str) -> list[str]:
    return [
        f"{p.relative_to(ROOT)}: {n} lines"
        for d in dirs for p in sorted((ROOT / d).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > LIMIT
    ]


def test_no_module_is_past_the_split_size():
    assert _over("ow", "payloads", "bench") == []


def test_no_test_file_is_past_the_split_size():
    assert _over("tests") == []
