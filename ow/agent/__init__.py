"""ow.agent: the worker that claims and runs jobs (`python -m ow.agent`, `ow worker`).

Imports `ow.core` only.
"""

from ow.agent.hardware import detect
from ow.agent.policy import Hardware, can_serve, claim_delay
from ow.agent.service import Agent

__all__ = ["Agent", "Hardware", "can_serve", "claim_delay", "detect", "run_agent"]


async def run_agent(config, *, worker_id=None, image=None, vram_gb=None, workdir=None):
    """Run one agent until SIGTERM/SIGINT (then requeue its job and deregister); returns
    why it was terminated if someone else terminated it ("" otherwise)."""
    import dataclasses

    from ow.core.lifecycle import run_until_signalled

    hw = detect(image or config.image)
    if vram_gb is not None:
        hw = dataclasses.replace(hw, vram_gb=vram_gb)
    agent = Agent(config, hw, worker_id=worker_id, workdir=workdir)
    await run_until_signalled(agent)
    return agent.terminated
