"""Every default number and name in one place. Each can be overridden (see config.py).

Imports: nothing.
"""

DEFAULT_PORT = 4222
DEFAULT_URL = f"nats://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_ORG = "default"
DEFAULT_HOME = "~/.ow"
DEFAULT_IMAGE = "ow-default"

MIN_SERVER_VERSION = (2, 12, 3)

# fsync every JetStream write before its ack on the embedded (single-node) server.
# Measured by bench/bench_publish.py (2 cores, ext4, events/s, default 2m vs always):
# sequential publish 3,003 vs 1,544 (1.9x); publish_batch(1000) 22,964 vs 3,607 (6.4x);
# ordered consumer 26,199 vs 26,931 (1.0x). The control plane publishes a few events per
# job and run.log packs up to RUN_LOG_BATCH records per message, so 1.5k acked events/s is
# far above need; one node has no replica to recover from, so an acked event must be on disk.
EMBEDDED_SYNC_INTERVAL = "always"

DUPLICATE_WINDOW_S = 120.0
LOGS_MAX_MSGS_PER_SUBJECT = 10_000
HEARTBEATS_MAX_MSGS_PER_SUBJECT = 20
CLAIMS_HISTORY = 5
LEASE_TTL_S = 30.0

CONNECT_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 5.0
RETRY_S = 30.0  # how long idempotent operations wait out an unavailable server
CAS_ATTEMPTS = 10  # read-decide-publish rounds of a job command before it gives up (commands.cas)

HEARTBEAT_INTERVAL_S = 5.0
MAX_WORKERS_PER_ORG = 8
IDLE_TIMEOUT_S = 300.0
LOST_AFTER_S = 120.0
POD_TTL_S = 24 * 3600.0
API_JOB_TIMEOUT_S = 3600.0
MAX_CONSECUTIVE_FAILURES = 5
PROVIDER_COOLDOWN_S = 60.0
PROVIDER_COOLDOWN_MAX_S = 3600.0  # the top of the per-hardware cooldown ladder
#: `job.wait()` raises UnschedulableError once "nothing here can run it" stood this long
#: (time to start a fitting worker by hand, e.g. `python -m ow.agent` on a GPU machine)
UNSCHEDULABLE_GRACE_S = 30.0
SCHEDULER_TICK_S = 5.0
SCHEDULER_DEBOUNCE_S = 0.2  # plan at most this often while events stream in
WORKER_START_TIMEOUT_S = 900.0  # a provisioned worker that never registers is terminated
PROVISION_RESERVATION_TTL_S = 600.0  # KV reservation of a job's provisioning
CLAIM_GRACE_S = 30.0  # a claim with no RunStarted for this long is repaired
POD_TTL_CHECK_S = 60.0  # the in-pod TTL watchdog checks this often
POD_STATUS_POLL_S = 2.0  # the leading scheduler asks its provider about recorded pods this often
# `ow up` supervision: restart delays double from the first to the cap; a service that ran
# this long since its last start is healthy again (its next restart waits the first delay)
RESTART_BACKOFF_FIRST_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
RESTART_HEALTHY_AFTER_S = 60.0
SUPERVISE_INTERVAL_S = 0.2  # how often `ow up` looks at its children
# `ow org create` / `ow token …` wait this long for a running `ow up` to restart its server
SERVER_READY_TIMEOUT_S = 60.0

CLAIM_DELAY_MAX_S = 0.25
DISPATCH_ACK_WAIT_S = 30.0
DISPATCH_NAK_DELAY_S = 0.5
KILL_GRACE_S = 0.5
# after a job's entrypoint exits: how long its output may still drain (a process that left
# its process group and kept the pipe open is not waited for longer)
LEFTOVER_OUTPUT_S = 5.0
RUN_CREDENTIAL_TTL_S = 24 * 3600.0  # the shortest life of a run credential of a job with a timeout
RUN_CREDENTIAL_GRACE_S = 300.0  # after the job's timeout, for its last uploads
LEAVE_TIMEOUT_S = 10.0  # an agent leaving gives up releasing its claim after this
LOG_TAIL_CHARS = 2000

RUN_LOG_BATCH = 512
RUN_LOG_FLUSH_S = 0.2

DEFAULT_REQUIRES_VRAM_GB = 24.0

# a bounded read of the log (`Bus.read` with a stop) spanning at least this many stream
# sequences goes through the bulk reader (its own connection: a few ms to set up, ~3 µs a
# message after); a shorter one through nats-py's ordered consumer (~10 µs a message)
BULK_READ_FROM_SEQS = 1000

# the read service (`ow serve`, ow/projections/service.py)
WEB_PORT = 8421  # its dashboard (0: a free port)
QUERY_TIMEOUT_S = 10.0  # a client waits this long for an answer
READ_WAIT_S = 5.0  # the service waits this long to fold up to a requested position
ORGS_TICK_S = 2.0  # how often the service looks for orgs created since it started
QUERY_CONCURRENCY = 64  # queries one org's endpoint answers at once
KEEP_FAILED_RUNS = 3  # failed runs whose work dirs an agent keeps (OW_KEEP_FAILED_RUNS)
