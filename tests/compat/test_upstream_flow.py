"""openweights' own integration test, as a flow against a real `ow up` (tmp home, random
port): sign up (an org and its first admin token), create a token and use it through
OPENWEIGHTS_API_KEY, import a .env file as secrets and show them masked, run the cookbook's
addition job (only its import changed) on the local worker (result 14.0), list, fetch and
cancel with openweights' CLI spellings, revoke the token and see it refused."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(240)]

OW = str(Path(sys.executable).parent / "ow")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "hf_very_secret_value"


async def test_signup_tokens_secrets_addition_job_and_revocation(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OW_", "OPENWEIGHTS_"))}
    env |= {"OW_HOME": str(tmp_path / "home"), "COLUMNS": "200"}

    async def ow(*args: str, extra: dict | None = None, ok: bool = True, stdin: bytes = b""):
        proc = await anyio.run_process([OW, *args], env={**env, **(extra or {})}, check=False,
                                       input=stdin)
        out, err = proc.stdout.decode(), proc.stderr.decode()
        assert (proc.returncode == 0) == ok, (args, proc.returncode, out, err)
        return out, err

    out, _ = await ow("up", "--detach", "--port", "-1")
    env["OW_URL"] = out.split("NATS at ")[1].split()[0]
    try:
        admin, note = await ow("signup", "acme")
        admin = admin.strip()
        assert admin.startswith("ow_")
        assert admin not in note
        env["OW_ORG"] = "acme"
        token = (await ow("token", "create", "--scope", "submit", "--org", "acme"))[0].strip()

        dotenv = tmp_path / ".env"
        dotenv.write_text(f"# secrets\nexport HF_TOKEN={SECRET}\nHF_ORG='acme-hub'\n")
        out, err = await ow("env", "import", str(dotenv), "--org", "acme")
        assert "HF_TOKEN" in out
        assert SECRET not in out + err
        out, err = await ow("env", "show", "--org", "acme")
        assert f"HF_TOKEN={'*' * 8} ({len(SECRET)} chars)" in out
        assert SECRET not in out + err
        assert "acme-hub" not in out + err

        work = tmp_path / "custom_job"
        shutil.copytree(EXAMPLES / "custom_job", work)
        user = {"OPENWEIGHTS_API_KEY": token}  # openweights' variable, no OW_TOKEN
        proc = await anyio.run_process([sys.executable, str(work / "client_side.py")],
                                       env={**env, **user}, check=False, cwd=work)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        assert "{'result': 14.0}" in proc.stdout.decode()

        ids, _ = await ow("ls", "-q", extra=user)
        assert ids.split()
        assert all(i.startswith("addition-") for i in ids.split())
        module = await anyio.run_process([sys.executable, "-m", "ow.cli", "ls", "-q"],
                                         env={**env, **user}, check=False)
        assert module.stdout.decode() == ids
        data = tmp_path / "notes.txt"
        data.write_bytes(b"fourteen\n")
        file_id = (await ow("files", "upload", str(data), "--purpose", "custom",
                            extra=user))[0].strip()
        assert (await ow("fetch", file_id, "-o", "-", extra=user))[0] == "fourteen\n"
        await ow("fetch", file_id, "-o", str(tmp_path / "copy.txt"), extra=user)
        assert (tmp_path / "copy.txt").read_bytes() == b"fourteen\n"

        out, _ = await ow("cancel", "-", extra=user, stdin=ids.encode())
        assert out.split()[0] == f"{ids.split()[0]}:"

        await ow("token", "revoke", _token_id(await ow("token", "ls", "--org", "acme")))
        _, err = await ow("ls", "-q", extra=user, ok=False)
        assert "token" in err.lower() or "auth" in err.lower()
    finally:
        await ow("down")


def _token_id(listing: tuple[str, str]) -> str:
    """The id of the submit token in `ow token ls`'s table."""
    for line in listing[0].splitlines():
        if " submit " in f" {line} ":
            return line.split()[0].strip("│┃ ")
    raise AssertionError(listing)
