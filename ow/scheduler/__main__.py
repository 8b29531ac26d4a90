"""`python -m ow.scheduler [--provider local|runpod|fake-runpod]`: run the org's scheduler."""

from __future__ import annotations

import argparse
import logging
import os

import anyio

from ow.core.config import from_env
from ow.scheduler import run_scheduler


def main() -> None:
    parser = argparse.ArgumentParser(prog="ow-scheduler", description=__doc__)
    parser.add_argument("--provider", default="local", help="local | runpod | fake-runpod")
    parser.add_argument("--log-dir", default=None, help="where local agents write their logs")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s scheduler %(levelname)s %(message)s"
    )
    config = from_env()
    log_dir = args.log_dir or str(config.home_path / "logs" / "workers")
    # the provider's credential is not an OW_* setting; it is read here, at the entry point
    api_key = os.environ.get("RUNPOD_API_KEY", "")
    anyio.run(lambda: run_scheduler(
        config, args.provider, api_key=api_key, log_dir=log_dir,
    ))


if __name__ == "__main__":
    main()
