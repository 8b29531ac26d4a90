"""The leader of a job's process group: when the agent dies, the job's processes die too.

    python -I -S _reaper.py <agent pid> <command...>

The agent starts this (by path, so nothing of `ow` is imported) in a new session; it asks
Linux to send it a signal (SIGRTMIN+3, which no job uses) when its parent dies
(PR_SET_PDEATHSIG), runs the command as its child in the same process group, and exits as
the child exited (the same code, or the same signal). On that signal it kills its whole
group with SIGKILL: without it, a kill -9'd agent
left its job running, orphaned. Cancel and timeouts are unchanged: the agent signals the
group, which includes this process and the job.

Imports: stdlib only (it runs before anything else is importable).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
_AGENT_GONE = signal.SIGRTMIN + 3


def _ignore(*_: object) -> None:
    pass


def _kill_group(*_: object) -> None:
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    agent_pid, command = int(argv[0]), argv[1:]
    signal.signal(_AGENT_GONE, _kill_group)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, _AGENT_GONE)
    if os.getppid() != agent_pid:  # the agent died before the request took effect
        _kill_group()
    # the group's signal reaches the job too; this process outlives it to report the exit.
    # A handler, not SIG_IGN: an ignored signal stays ignored across exec, so the job (and
    # its children) would never see SIGTERM; a handler is reset to the default there.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _ignore)
    code = subprocess.call(command)
    if code < 0:  # killed by a signal: end the same way, so the agent sees it
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
