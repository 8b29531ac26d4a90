"""Serving payload: the OpenAI-compatible server over the tiny model (and an adapter)."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from payloads._reporter import LocalReporter
from payloads.params import TrainingParams
from payloads.serve import Engine, make_server, public_base_url
from payloads.train import run_training
from tests.payloads import data

pytestmark = pytest.mark.slow

KEY = "sk-test"


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapter")
    run_training(
        TrainingParams(model=str(tiny_model), training_file=str(data.conversations(tmp / "t.jsonl",
                       n=4)), max_steps=1, r=4, per_device_train_batch_size=4,
                       gradient_accumulation_steps=1, warmup_steps=0, save_steps=0,
                       max_seq_length=64),
        LocalReporter(tmp / "out"), tmp / "work",
    )
    return str(tmp / "work" / "final")


@pytest.fixture(scope="module")
def base_url(tiny_model, adapter):
    server = make_server(Engine(str(tiny_model), [adapter]), "127.0.0.1", 0, KEY)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield public_base_url("127.0.0.1", server.server_address[1])
    server.shutdown()
    server.server_close()


def _call(url, body=None, key=KEY):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None)
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_and_models(base_url, tiny_model, adapter):
    root = base_url.removesuffix("/v1")
    assert _call(f"{root}/health", key="wrong") == (200, {"status": "ok"})
    status, body = _call(f"{base_url}/models")
    assert status == 200
    assert [m["id"] for m in body["data"]] == [str(tiny_model), adapter]


def test_chat_completion(base_url, tiny_model):
    status, body = _call(f"{base_url}/chat/completions", {
        "model": str(tiny_model), "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "what is red"}],
    })
    assert status == 200
    assert body["object"] == "chat.completion"
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant"
    assert isinstance(msg["content"], str)
    assert body["usage"]["completion_tokens"] <= 4


def test_adapter_and_completions_endpoint(base_url, adapter):
    status, body = _call(f"{base_url}/completions",
                         {"model": adapter, "prompt": "hello", "max_tokens": 2, "n": 2})
    assert status == 200
    assert len(body["choices"]) == 2


def test_errors(base_url):
    assert _call(f"{base_url}/models", key="wrong")[0] == 401
    status, body = _call(f"{base_url}/chat/completions",
                         {"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert status == 404
    assert "not served" in body["error"]["message"]
