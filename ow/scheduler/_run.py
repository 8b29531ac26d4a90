"""`run_scheduler(config, provider_name)`: connect, build the provider, run until a signal.

Imports: stdlib, anyio, `ow.core` and `ow.scheduler`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from ow.core import bus as bus_mod
from ow.core import secrets
from ow.core.config import Config
from ow.core.lifecycle import run_until_signalled
from ow.scheduler.providers import Provider, make_provider
from ow.scheduler.service import Scheduler, limits_from

__all__ = ["run_scheduler"]

log = logging.getLogger(__name__)


def worker_env(config: Config) -> dict[str, str]:
    """What a worker needs to connect back and run its org's jobs: OW_URL, OW_ORG, OW_HOME
    and, if any, OW_TOKEN (the org's workers token) and OW_ORG_SECRET_KEY."""
    env = {"OW_URL": config.url, "OW_ORG": config.org, "OW_HOME": config.home}
    if token := _workers_token(config) or config.token:
        env["OW_TOKEN"] = token
    if job_token := _workers_token(config, job=True):  # for workers without a credential
        env["OW_JOB_TOKEN"] = job_token
    if key := secrets.org_key(config, config.org):  # this org's secrets only, never the master
        env["OW_ORG_SECRET_KEY"] = key.decode()
    if config.s3_bucket:
        env["OW_S3_BUCKET"] = config.s3_bucket
        env["OW_S3_ENDPOINT"] = config.s3_endpoint
    return env


def worker_credentials(config: Config) -> Callable[[str], dict[str, str]]:
    """A worker's own credential and key by worker id (`tenancy.worker_env`): what each
    worker this scheduler starts gets instead of the shared workers token, so its results
    count only as its own (`ow.core.credentials`)."""
    from ow.core import tenancy

    home = Path(config.home_path)

    def mint(worker_id: str) -> dict[str, str]:
        if not tenancy.state_path(home).exists():
            return {}
        return tenancy.worker_env(tenancy.load(home), config.org, worker_id)
    return mint


def _workers_token(config: Config, job: bool = False) -> str:
    """The org's workers token (worker scope) when this machine's tenancy state has one: the
    workers this scheduler starts, and their jobs, never hold its own admin token."""
    from ow.core import tenancy

    home = Path(config.home_path)
    get = tenancy.job_token if job else tenancy.worker_token
    return get(tenancy.load(home), config.org) if tenancy.state_path(home).exists() else ""


async def run_scheduler(
    config: Config,
    provider_name: str = "local",
    *,
    provider: Provider | None = None,
    api_key: str = "",
    log_dir: str | None = None,
    task_status: Any = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run one scheduler for `config.org` until SIGTERM/SIGINT.

    `ow up` runs `python -m ow.scheduler --provider local`; `ow scheduler --provider runpod`
    needs RUNPOD_API_KEY.
    """
    provider = provider or make_provider(provider_name, api_key=api_key, log_dir=log_dir)
    bus = await bus_mod.connect(
        config.url, org=config.org, actor="scheduler", token=config.token,
        name=f"ow-scheduler-{config.org}",
    )
    try:
        await bus.provision(config.replicas)
        scheduler = Scheduler(bus, provider, limits_from(config), worker_env=worker_env(config),
                              worker_credentials=worker_credentials(config))
        await run_until_signalled(scheduler, task_status=task_status)
    finally:
        await bus.close()
