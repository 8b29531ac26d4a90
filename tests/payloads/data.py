"""Small made-up datasets in the cookbook's formats, written to a directory."""

from __future__ import annotations

import json
from pathlib import Path

COLORS = ["red", "blue", "green"]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def conversations(path: Path, n: int = 16) -> Path:
    """User asks about a color, the assistant answers in a fixed pattern."""
    rows = []
    for i in range(n):
        c = COLORS[i % len(COLORS)]
        rows.append({"messages": [
            {"role": "user", "content": f"what is {c}"},
            {"role": "assistant", "content": f"{c} is one color thank you"},
        ]})
    return _write(path, rows)


def weighted(path: Path, n: int = 4) -> Path:
    """Block-formatted rows: a user block of weight 0, a -1 block and a +1 block."""
    rows = []
    for i in range(n):
        c = COLORS[i % len(COLORS)]
        rows.append({"messages": [
            {"role": "user", "content": [{"type": "text", "text": f"what is {c}", "weight": 0}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "no dogs", "weight": -1, "tag": "minimize"},
                {"type": "text", "text": f" {c} is one color", "weight": 1, "tag": "maximize"},
            ]},
        ]})
    return _write(path, rows)


def preferences(path: Path, n: int = 4) -> Path:
    rows = [
        {
            "prompt": [{"role": "user", "content": f"what is {c}"}],
            "chosen": [{"role": "assistant", "content": f"{c} is one color"}],
            "rejected": [{"role": "assistant", "content": "no dogs"}],
        }
        for c in (COLORS * n)[:n]
    ]
    return _write(path, rows)


def prompts(path: Path) -> Path:
    """Inference input: a plain question and one ending in an assistant prefix."""
    return _write(path, [
        {"messages": [{"role": "user", "content": "what is red"}]},
        {"messages": [
            {"role": "user", "content": "what is blue"},
            {"role": "assistant", "content": "blue is"},
        ]},
    ])
