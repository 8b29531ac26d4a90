"""A real OpenSSH server on a random local port: the stand-in for a RunPod dev pod's sshd.

It runs as the current user with a temporary host key and an authorized_keys holding one
temporary client key, so `ow ssh`'s ssh and rsync calls go through a real sshd. Missing
sshd, ssh or rsync skip the test with the reason (`make sysdeps` installs them as root).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["LocalSshd", "local_sshd"]


@dataclass(frozen=True)
class LocalSshd:
    host: str
    port: int
    user: str
    client_key: Path  # the private key; client_key.pub is authorized


def _sshd_binary() -> str:
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else "")
    missing = [t for t, p in (("sshd", found), ("ssh", shutil.which("ssh")),
                              ("rsync", shutil.which("rsync"))) if not p]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: openssh-server, rsync; "
                    "`make sysdeps` installs them as root): no local sshd to stand in for a pod")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@contextlib.contextmanager
def local_sshd(tmp: Path) -> Iterator[LocalSshd]:
    """Start sshd under `tmp`; stop it on exit."""
    sshd = _sshd_binary()
    tmp.mkdir(parents=True, exist_ok=True)
    _keygen(tmp / "host_key")
    _keygen(tmp / "client_key")
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    port = _free_port()
    (tmp / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {tmp / 'host_key'}",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}", f"PidFile {tmp / 'sshd.pid'}",
        "UsePAM no", "StrictModes no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation dir
    log = open(tmp / "sshd.log", "wb")  # noqa: SIM115 - closed below, after sshd exits
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(tmp / "sshd_config")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):  # readiness: the port accepts (sshd has no ready signal)
            if _listening(port) or proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"sshd did not start: {(tmp / 'sshd.log').read_text()}")
        yield LocalSshd("127.0.0.1", port, getpass.getuser(), tmp / "client_key")
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
