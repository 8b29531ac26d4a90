"""`python -m ow.agent [--worker-id ID] [--image IMG] [--vram-gb N]`: run one agent."""

from __future__ import annotations

import argparse
import logging

import anyio

from ow.agent import run_agent
from ow.core.config import from_env
from ow.core.errors import OWError


def main() -> None:
    parser = argparse.ArgumentParser(prog="ow-agent", description=__doc__)
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--image", default=None, help="image served ('*' = any)")
    parser.add_argument("--vram-gb", type=float, default=None)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    config = from_env()
    try:
        terminated = anyio.run(lambda: run_agent(
            config, worker_id=args.worker_id, image=args.image, vram_gb=args.vram_gb,
            workdir=args.workdir,
        ))
    except OWError as exc:  # one line, as the `ow` command prints them
        raise SystemExit(f"error: {exc}") from None
    if terminated:  # a terminated worker never works again: exit, and say so
        raise SystemExit(f"error: this worker was terminated ({terminated}); it stopped its job "
                         "and takes no more work")


if __name__ == "__main__":
    main()
