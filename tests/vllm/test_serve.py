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
from contextlib import contextmanager
from pathlib import Path

import pytest

from payloads.params import ApiParams
from tests.vllm.taught import adapter_answer, answer, question

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


@contextmanager
def _serving(params: ApiParams, tmp_path: Path, vllm: bool = True):
    """Run the serve payload (vLLM backend) as a subprocess; yield its ready line; SIGTERM it
    and check that no child outlives it. `vllm`: vLLM itself is expected to serve."""
    import psutil

    env = {**os.environ, "PAYLOADS_INFERENCE_BACKEND": "vllm", "PYTHONPATH": str(ROOT)}
    env.pop("OW_RUN_ID", None)  # a LocalReporter, echoing its logs to stdout
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "payloads.serve", params.model_dump_json()],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    children = []
    try:
        ready = _ready(proc, log, timeout=480)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("vllm" in " ".join(c.cmdline()) for c in children) == vllm
        yield ready
    finally:
        proc.send_signal(signal.SIGTERM)  # what canceling the api job does
        try:
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"vLLM processes outlived the payload: {alive}"


def _chat(base: str, model: str, color: str) -> str:
    status, body = _call(f"{base}/chat/completions", {
        "model": model, "messages": question(color), "max_tokens": 12, "temperature": 0,
    })
    assert status == 200, body
    return body["choices"][0]["message"]["content"]


@pytest.mark.timeout(600)
def test_vllm_openai_server(taught_model, tmp_path):
    params = ApiParams(model=str(taught_model), host="127.0.0.1", port=0, max_model_len=256,
                       max_num_seqs=4, api_key=KEY)
    with _serving(params, tmp_path) as ready:
        base = ready["base_url"]
        assert ready["port"] != 0
        assert base == f"http://127.0.0.1:{ready['port']}/v1"
        assert ready["models"] == [str(taught_model)]

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


@pytest.mark.timeout(600)
def test_vllm_serves_lora_adapters_beside_their_base(taught_model, taught_adapter, tmp_path):
    """multi_deploy's shape: one vLLM server, the base and its adapters each by name."""
    model, adapter = str(taught_model), str(taught_adapter)
    params = ApiParams(model=model, lora_adapters=[adapter], host="127.0.0.1", port=0,
                       max_model_len=256, max_num_seqs=4)
    with _serving(params, tmp_path) as ready:
        base = ready["base_url"]
        assert ready["models"] == [model, adapter]
        status, body = _call(f"{base}/models", key=None)
        assert status == 200
        assert {m["id"] for m in body["data"]} == {model, adapter}
        assert _chat(base, model, "red") == answer("red")
        assert _chat(base, adapter, "red") == adapter_answer("red")
        assert _chat(base, adapter, "blue") == adapter_answer("blue")


@pytest.mark.timeout(600)
def test_vllm_serves_an_adapter_as_the_model(taught_adapter, tmp_path):
    adapter = str(taught_adapter)
    params = ApiParams(model=adapter, host="127.0.0.1", port=0, max_model_len=256,
                       max_num_seqs=4)
    with _serving(params, tmp_path) as ready:
        assert ready["models"] == [adapter]
        assert _chat(ready["base_url"], adapter, "green") == adapter_answer("green")


@pytest.mark.timeout(300)
def test_a_bnb_checkpoint_is_served_by_transformers_where_vllm_cannot(taught_bnb, tmp_path):
    from payloads._models import vllm_quantizes_4bit

    if vllm_quantizes_4bit():
        pytest.skip("this vLLM still quantizes with bitsandbytes")
    model = str(taught_bnb)
    params = ApiParams(model=model, host="127.0.0.1", port=0, max_model_len=256)
    with _serving(params, tmp_path, vllm=False) as ready:
        assert ready["models"] == [model]
        assert _chat(ready["base_url"], model, "blue") == answer("blue")
    assert "serving with transformers instead" in (tmp_path / "serve.log").read_text()
