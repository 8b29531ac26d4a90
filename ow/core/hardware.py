"""Hardware labels and the one rule that says whether a worker can serve a job.

A label names a machine configuration: `"cpu"`, or `"<count>x <GPU>"` (`"1x H200"`,
`"2x A100"`). Users, providers and `nvidia-smi` spell them differently (`"H200"`, `" 2X a100"`,
`"NVIDIA H100 80GB HBM3"`); `normalize` turns every spelling into one canonical form, so the
planner, the agent and the SDK's validation compare like with like. `known_label` says whether
a label names a GPU in `GPUS` (a label nobody knows cannot be matched by any worker, so the
SDK refuses it at submit).

`mismatch(worker, need)` is the matching rule itself (image, `allowed_hardware`, VRAM):
`""` when the worker can serve, else why not. `allowed_hardware` lists exact configurations
(openweights semantics): `["H200"]` means one H200 (`"1x H200"`), not any number of them.

Prices are not here: the scheduler's table (`ow.scheduler.hardware`) adds them.

Imports: stdlib and msgspec only (pure).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

__all__ = ["GPUS", "Need", "Offer", "known_label", "mismatch", "normalize", "unknown_labels"]

#: short GPU name -> (VRAM per GPU in GB, the name nvidia-smi and RunPod report)
GPUS: dict[str, tuple[float, str]] = {
    "A6000": (48, "NVIDIA RTX A6000"),
    "L40": (48, "NVIDIA L40"),
    "L40S": (48, "NVIDIA L40S"),
    "A100": (80, "NVIDIA A100 80GB PCIe"),
    "A100S": (80, "NVIDIA A100-SXM4-80GB"),
    "H100": (80, "NVIDIA H100 80GB HBM3"),
    "H100N": (94, "NVIDIA H100 NVL"),
    "H200": (141, "NVIDIA H200"),
}

#: every spelling of a GPU's name (upper case, without "NVIDIA ") -> its short name
_ALIASES: dict[str, str] = {
    **{short: short for short in GPUS},
    **{long.upper().removeprefix("NVIDIA ").strip(): short for short, (_, long) in GPUS.items()},
}


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker offers: its label, total VRAM and image (`"*"` serves any image)."""

    hardware: str = "cpu"
    vram_gb: float = 0.0
    image: str = ""


class Need(msgspec.Struct, frozen=True, kw_only=True):
    """What a job asks for (the matching fields of `JobSubmitted`)."""

    requires_vram_gb: float = 0.0
    allowed_hardware: tuple[str, ...] = ()
    image: str = ""


def _gpu_name(text: str) -> str:
    """The short name of a GPU (`"nvidia h100 80gb hbm3"` -> `"H100"`), else upper case."""
    upper = " ".join(text.upper().split()).removeprefix("NVIDIA ").strip()
    return _ALIASES.get(upper, upper)


def _split(label: str) -> tuple[int, str]:
    """(count, gpu) of a label; (0, "") for cpu; count -1 when the count is not a number."""
    parts = label.split()
    if not parts or (len(parts) == 1 and parts[0].lower() == "cpu"):
        return 0, ""
    head = parts[0].lower()
    if len(parts) > 1 and head.endswith("x") and head[:-1].isdigit():
        return int(head[:-1]), _gpu_name(" ".join(parts[1:]))
    if head.isdigit() and len(parts) > 2 and parts[1].lower() == "x":  # "2 x A100"
        return int(head), _gpu_name(" ".join(parts[2:]))
    return 1, _gpu_name(label)


def normalize(label: str) -> str:
    """The canonical label: `" 2X a100 "` -> `"2x A100"`, `"H200"` -> `"1x H200"`, `"cpu"`.

    An empty label stays `""`; an unknown GPU keeps its (upper-cased) name, so it is still
    compared consistently, and `known_label` can tell it apart.
    """
    if not label.strip():
        return ""
    count, gpu = _split(label)
    return "cpu" if count == 0 else f"{count}x {gpu}"


def known_label(label: str) -> bool:
    """Whether the label names `cpu` or a positive count of a GPU in `GPUS`."""
    count, gpu = _split(label)
    return (count == 0 and label.strip().lower() == "cpu") or (count > 0 and gpu in GPUS)


def unknown_labels(labels: Iterable[str]) -> list[str]:
    """The labels of `labels` that `known_label` refuses (for validation messages)."""
    return [label for label in labels if not known_label(label)]


def mismatch(worker: Offer, need: Need) -> str:
    """Why this worker cannot serve the job, or `""` when it can (image, hardware, VRAM)."""
    if worker.image != "*" and need.image and need.image != worker.image:
        return f"image {need.image!r} != worker image {worker.image!r}"
    allowed = [a for a in need.allowed_hardware if a.strip()]
    if allowed and normalize(worker.hardware) not in {normalize(a) for a in allowed}:
        return (f"hardware {normalize(worker.hardware) or '-'!r} not in allowed_hardware "
                f"{list(allowed)}")
    if need.requires_vram_gb > worker.vram_gb:
        return f"needs {need.requires_vram_gb:g} GB VRAM, worker has {worker.vram_gb:g} GB"
    return ""
