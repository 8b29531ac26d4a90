"""openweights' chat and deploy patterns against ow: `ow.chat.completions.create(model=...)`
deploys a model on first use (one server per base model, adapters beside it), the deploy
context managers yield the `openai` package's clients, deployments hold a 15-minute lease,
and OpenAI-looking model names go to the endpoint in OPENAI_BASE_URL (a stand-in here)."""

import json
import signal
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("torch", reason="needs the `train` extra")
openai = pytest.importorskip("openai")

import payloads.jobs  # noqa: E402, F401  (registers the built-in job types)
from ow import AsyncOpenWeights, OpenWeights  # noqa: E402
from ow.core import events as ev  # noqa: E402
from ow.core import subjects  # noqa: E402
from tests.integration.agents import running_agents, start_agent_process  # noqa: E402
from tests.payloads.test_deploy import _random_adapter  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.anyio
async def test_chat_deploys_on_first_use_with_adapters_beside_their_base(nats, tiny_model,
                                                                         tmp_path):
    import anyio

    url, org = nats.url, f"t{uuid.uuid4().hex[:10]}"
    model = str(tiny_model)
    adapter = _random_adapter(tiny_model, tmp_path / "adapter")
    said = {}
    # the operator shares the local model and adapter dirs with the sandboxed job
    async with running_agents(url, org, 1, tmp_path, sandbox_ro=f"{model}:{adapter}"):
        async with AsyncOpenWeights(url=url, org=org, home=str(tmp_path / "h"), env={}) as ow:
            async def ask(m):
                reply = await ow.async_chat.completions.create(
                    model=m, messages=HELLO, max_tokens=8, temperature=0)
                said[m] = reply.choices[0].message.content

            async with anyio.create_task_group() as tg:  # both arrive before either is up
                tg.start_soon(ask, model)
                tg.start_soon(ask, adapter)
            api_jobs = [j for j in await ow.jobs.list() if j.type == "api"]
            assert len(api_jobs) == 1  # one server for the base and its adapter
            assert api_jobs[0].params["validated_params"]["lora_adapters"] == [adapter]
            assert said[model] != said[adapter]
            job_id = api_jobs[0].id
        async with AsyncOpenWeights(url=url, org=org, env={}) as again:
            assert (await again.jobs.retrieve(job_id)).status == "canceled"  # closed with it


def test_sync_deploy_yields_an_openai_client_and_holds_a_lease(nats, tiny_model, tmp_path):
    org = f"t{uuid.uuid4().hex[:10]}"
    agent = start_agent_process(nats.url, org, "w-chat", tmp_path)
    try:
        with OpenWeights(url=nats.url, org=org, home=str(tmp_path / "h"), env={}) as ow:
            with ow.api.deploy(str(tiny_model)) as client:
                assert isinstance(client, openai.OpenAI)
                reply = client.chat.completions.create(model=str(tiny_model), messages=HELLO,
                                                       max_tokens=4)
                assert reply.usage.prompt_tokens > 0
                chunks = list(ow.chat.completions.create(
                    model=str(tiny_model), messages=HELLO, max_tokens=8, temperature=0,
                    stream=True))
                assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
                job_id = client.deployment.job_id
            history = [d.event for d in ow._portal.call(_history, ow._target, job_id)]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    leases = [e for e in history if isinstance(e, ev.JobTimeoutExtended)]
    assert leases
    ahead = leases[0].until - leases[0].ts
    assert timedelta(minutes=14) < ahead <= timedelta(minutes=15)


async def _history(client, job_id):
    bus = await client.bus()
    found, _ = await bus.history(subjects.job_subject(bus.org, job_id))
    return found


class _StandIn(BaseHTTPRequestHandler):
    """A stand-in for OpenAI's API: records each request, answers with a fixed completion."""

    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers.get("Authorization"), body))
        raw = json.dumps({
            "id": "chatcmpl-standin", "object": "chat.completion", "created": 0,
            "model": body["model"], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                              "total_tokens": 5},
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "from the stand-in"}}],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["gpt-4o-mini", "o3-mini", "o4-mini"])
async def test_openai_model_names_go_to_the_openai_endpoint(model, monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stand-in")
    _StandIn.seen = []
    try:
        async with AsyncOpenWeights(url="nats://127.0.0.1:1", env={},
                                    home=str(tmp_path)) as ow:  # no NATS needed
            reply = await ow.chat.completions.create(model=model, messages=HELLO)
    finally:
        server.shutdown()
        server.server_close()
    assert reply.choices[0].message.content == "from the stand-in"
    assert _StandIn.seen == [("/v1/chat/completions", "Bearer sk-stand-in",
                              {"model": model, "messages": HELLO})]
