"""The serving payload's vLLM path: vLLM's OpenAI server as a child, announced, then stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from payloads.params import ApiParams
from tests.vllm.taught import answer, question

pytestmark = pytest.mark.slow

KEY = "sk-vllm"
ROOT = Path(__file__).resolve().parents[2]


def _call(url: str, body: dict | None = None, key: str | None = KEY) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _ready(proc: subprocess.Popen, log: Path, timeout: float) -> dict:
    """The payload's {"status": "ready", ...} line (LocalReporter echoes its logs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith('{"status": "ready"'):
                return json.loads(line)
        if proc.poll() is not None:
            raise AssertionError(f"serve exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        time.sleep(1)
    raise AssertionError(f"not ready after {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.mark.timeout(600)
def test_vllm_openai_server(taught_model, tmp_path):
    import psutil

    params = ApiParams(model=str(taught_model), host="127.0.0.1", port=0, max_model_len=256,
                       max_num_seqs=4, api_key=KEY)
    env = {**os.environ, "PAYLOADS_INFERENCE_BACKEND": "vllm", "PYTHONPATH": str(ROOT)}
    env.pop("OW_RUN_ID", None)  # a LocalReporter, echoing its logs to stdout
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "payloads.serve", params.model_dump_json()],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        ready = _ready(proc, log, timeout=480)
        base = ready["base_url"]
        assert ready["port"] != 0
        assert base == f"http://127.0.0.1:{ready['port']}/v1"
        assert ready["models"] == [str(taught_model)]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("vllm" in " ".join(c.cmdline()) for c in children)

        assert _call(f"{base}/models", key=None)[0] == 401
        status, body = _call(f"{base}/models")
        assert status == 200
        assert [m["id"] for m in body["data"]] == [str(taught_model)]

        status, body = _call(f"{base}/chat/completions", {
            "model": str(taught_model), "messages": question("red"), "max_tokens": 12,
            "temperature": 0,
        })
        assert status == 200, body
        assert body["choices"][0]["message"]["content"] == answer("red")
        assert body["choices"][0]["finish_reason"] == "stop"

        prefix = "<|im_start|>user\nwhat is green<|im_end|>\n<|im_start|>assistant\ngreen is"
        status, body = _call(f"{base}/completions", {
            "model": str(taught_model), "prompt": prefix, "max_tokens": 12, "temperature": 0,
        })
        assert status == 200, body
        assert body["choices"][0]["text"] == " one color thank you"
    finally:
        proc.send_signal(signal.SIGTERM)  # what canceling the api job does
        try:
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"vLLM processes outlived the payload: {alive}"
