"""ow.agent: the worker that claims and runs jobs (`python -m ow.agent`, `ow worker`).

Imports `ow.core` only.
"""

from ow.agent.hardware import detect
from ow.agent.policy import Hardware, can_serve, claim_delay
from ow.agent.service import Agent

__all__ = ["Agent", "Hardware", "can_serve", "claim_delay", "detect", "run_agent"]


async def run_agent(config, *, worker_id=None, image=None, vram_gb=None, workdir=None):
    """Run one agent until SIGTERM/SIGINT (then requeue its job and deregister)."""
    import dataclasses
    import signal

    import anyio

    hw = detect(image or config.image)
    if vram_gb is not None:
        hw = dataclasses.replace(hw, vram_gb=vram_gb)
    agent = Agent(config, hw, worker_id=worker_id, workdir=workdir)
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    agent.shutdown()
                    return

        tg.start_soon(on_signal)
        await agent.run()
        tg.cancel_scope.cancel()
