#!/usr/bin/env bash
# The worker image's entrypoint on a RunPod pod: the TTL watchdog next to one agent.
# The provider passes OW_URL, OW_ORG, OW_TOKEN, OW_WORKER_ID and TTL_HOURS; RunPod sets
# RUNPOD_POD_ID. When the agent stops (drained, SIGTERM) the pod has nothing left to do.
# A dev pod (`ow ssh`: OW_DEV=true) runs sshd for PUBLIC_KEY instead of an agent; its TTL
# watchdog is what ends it if `ow ssh` cannot (`--keep`, a lost laptop).
set -euo pipefail
python -m ow.scheduler.ttl_watchdog &
if [ "${OW_DEV:-}" = "true" ]; then
    mkdir -p ~/.ssh /run/sshd
    chmod 700 ~/.ssh
    printf '%s\n' "${PUBLIC_KEY:?}" >> ~/.ssh/authorized_keys
    chmod 600 ~/.ssh/authorized_keys
    ssh-keygen -A >/dev/null
    exec /usr/sbin/sshd -D -e
fi
exec python -m ow.agent --worker-id "${OW_WORKER_ID:?}"
