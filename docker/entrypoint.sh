#!/usr/bin/env bash
# The worker image's entrypoint on a RunPod pod: the TTL watchdog next to one agent.
# The provider passes OW_URL, OW_ORG, OW_TOKEN, OW_WORKER_ID and TTL_HOURS; RunPod sets
# RUNPOD_POD_ID. When the agent stops (drained, SIGTERM) the pod has nothing left to do.
set -euo pipefail
python -m ow.scheduler.ttl_watchdog &
exec python -m ow.agent --worker-id "${OW_WORKER_ID:?}"
