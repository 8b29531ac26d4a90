"""`python -m ow.scheduler.ttl_watchdog`: the pod's TTL watchdog, and its manager commands.

In a pod (started by docker/entrypoint.sh next to the agent): watch `~/shutdown.txt` and
terminate this pod (RUNPOD_POD_ID, through the RunPod API with RUNPOD_API_KEY) when its time
has passed. By hand: `--check`, `--extend HOURS`, `--set HOURS` (the seed's ttl_manager).
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import anyio

from ow.scheduler.ttl import DEFAULT_FILE, TTLWatchdog, extend, read_deadline, set_ttl


async def _terminate(pod_id: str) -> None:
    import runpod  # only inside a pod

    runpod.api_key = os.environ["RUNPOD_API_KEY"]
    await anyio.to_thread.run_sync(runpod.terminate_pod, pod_id)


def main() -> None:
    parser = argparse.ArgumentParser(prog="ow-ttl", description=__doc__)
    parser.add_argument("--file", default=str(DEFAULT_FILE))
    parser.add_argument("--check", action="store_true", help="print the shutdown time")
    parser.add_argument("--extend", type=float, metavar="HOURS")
    parser.add_argument("--set", type=float, metavar="HOURS", dest="set_hours")
    args = parser.parse_args()
    path = Path(args.file).expanduser()
    now = datetime.now(UTC)
    if args.extend is not None:
        print(f"shutdown at {extend(path, args.extend, now).isoformat()}")
    elif args.set_hours is not None:
        print(f"shutdown at {set_ttl(path, args.set_hours, now).isoformat()}")
    elif args.check:
        deadline = read_deadline(path)
        print(f"shutdown at {deadline.isoformat()}" if deadline else "no shutdown time set")
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s ttl %(message)s")
        pod_id = os.environ.get("RUNPOD_POD_ID", "")
        if not pod_id:
            raise SystemExit("RUNPOD_POD_ID is not set: the watchdog only runs inside a pod")
        hours = float(os.environ.get("TTL_HOURS", "24"))
        anyio.run(TTLWatchdog(pod_id, _terminate, path=path, ttl_hours=hours).run)


if __name__ == "__main__":
    main()
