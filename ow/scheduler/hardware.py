"""The hardware table (GPU type, count, VRAM, hourly price) and the pure `cheapest` choice.

Rows are RunPod-like configurations: `1x A100`, `2x H100`, ... plus a CPU row for jobs that
need no VRAM. Prices are plausible on-demand list prices in USD per hour; a provider may bring
its own table (the local provider offers only this machine).

`cheapest` prefers one GPU: training (unsloth) and most inference run on a single device, so a
job gets several GPUs only when it asks for them (`allowed_hardware` naming `2x ...`, or
`gpus > 1`, see `requested_gpus`), never because two small GPUs are cheaper than one big one.

Labels are normalised by `ow.core.hardware.normalize` (re-exported here).

Imports: stdlib, msgspec and `ow.core.hardware` (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from ow.core.hardware import GPUS, normalize

__all__ = [
    "CPU", "GPU_TABLE", "Hardware", "cheapest", "find", "largest_single", "normalize",
    "requested_gpus",
]


class Hardware(msgspec.Struct, frozen=True, kw_only=True):
    """One machine configuration a provider can start."""

    name: str  # the label workers register with: "2x A100", "cpu"
    gpu: str = ""  # "A100"; "" for CPU
    count: int = 0
    vram_gb: float = 0  # total over all GPUs
    price_per_hour: float = 0
    provider_gpu_id: str = ""  # the provider's own GPU type id (RunPod `gpu_type_id`)


CPU = Hardware(name="cpu", price_per_hour=0.06)

#: USD per GPU-hour of each GPU of `ow.core.hardware.GPUS` (its VRAM and provider name are there)
_PRICES: dict[str, float] = {
    "A6000": 0.49, "L40": 0.99, "L40S": 0.86, "A100": 1.64, "A100S": 1.89,
    "H100": 2.69, "H100N": 2.79, "H200": 3.99,
}


def _rows() -> tuple[Hardware, ...]:
    rows = [CPU]
    for gpu, price in _PRICES.items():
        vram, gpu_id = GPUS[gpu]
        for count in (1, 2, 4, 8):
            rows.append(
                Hardware(
                    name=f"{count}x {gpu}", gpu=gpu, count=count, vram_gb=vram * count,
                    price_per_hour=round(price * count, 2), provider_gpu_id=gpu_id,
                )
            )
    return tuple(rows)


GPU_TABLE: tuple[Hardware, ...] = _rows()


def find(name: str, table: Iterable[Hardware]) -> Hardware | None:
    """The row with this label (normalized), or None."""
    want = normalize(name)
    return next((h for h in table if normalize(h.name) == want), None)


def requested_gpus(gpus: int, params: Mapping[str, Any]) -> int:
    """How many GPUs a job asks for: its `gpus` field, else a `gpus`/`num_gpus` param (0: any)."""
    if gpus:
        return gpus
    inner = params.get("validated_params")
    for source in (params, inner if isinstance(inner, Mapping) else {}):
        for key in ("gpus", "num_gpus"):
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return 0


def largest_single(table: Iterable[Hardware]) -> Hardware | None:
    """The single-GPU row with the most VRAM (the ceiling of a job that asks for one GPU)."""
    singles = [h for h in table if h.count == 1]
    return max(singles, key=lambda h: (h.vram_gb, -h.price_per_hour), default=None)


def cheapest(
    req_vram_gb: float, allowed_hardware: Sequence[str], table: Iterable[Hardware],
    gpus: int = 0,
) -> Hardware | None:
    """The cheapest row with at least `req_vram_gb` that `allowed_hardware` permits (if given).

    Without `allowed_hardware` or `gpus > 1` only CPU and single-GPU rows are candidates; with
    `gpus > 1`, rows of at least that many GPUs. Ties break on less VRAM, then the label, so
    the choice is deterministic.
    """
    allowed = {normalize(a) for a in allowed_hardware if a.strip()}

    def permitted(h: Hardware) -> bool:
        if allowed:
            return normalize(h.name) in allowed and (gpus <= 1 or h.count >= gpus)
        return h.count >= gpus if gpus > 1 else h.count <= 1

    fits = [h for h in table if h.vram_gb >= req_vram_gb and permitted(h)]
    if not fits:
        return None
    return min(fits, key=lambda h: (h.price_per_hour, h.vram_gb, h.name))
