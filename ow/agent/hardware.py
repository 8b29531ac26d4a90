"""Hardware detection: GPU names, count and VRAM via nvidia-smi, else a CPU-only worker.

Imports: stdlib, `ow.core.hardware` and `ow.agent.policy`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

from ow.agent.policy import Hardware
from ow.core.hardware import normalize

__all__ = ["detect", "cached_models"]


def _nvidia_smi() -> list[tuple[str, float]]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = line.rpartition(",")
        gpus.append((name.strip().replace("NVIDIA ", ""), float(mem) / 1024))
    return gpus


def cached_models(hf_home: str | None = None) -> tuple[str, ...]:
    """Model ids in the local Hugging Face cache (`models--org--name` directories)."""
    root = Path(hf_home or Path.home() / ".cache" / "huggingface") / "hub"
    if not root.is_dir():
        return ()
    return tuple(
        p.name.removeprefix("models--").replace("--", "/")
        for p in root.iterdir() if p.name.startswith("models--")
    )


def detect(image: str) -> Hardware:
    """Describe this machine as a worker; CPU-only is valid (vram 0)."""
    gpus = _nvidia_smi()
    if not gpus:
        return Hardware(name="cpu", image=image, cached_models=cached_models())
    (name, count), = Counter(n for n, _ in gpus).most_common(1)
    return Hardware(
        name=normalize(f"{count}x {name}"), gpus=tuple(n for n, _ in gpus),
        vram_gb=round(sum(m for _, m in gpus), 1), image=image, cached_models=cached_models(),
    )
