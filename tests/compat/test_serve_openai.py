"""The transformers server (payloads.serve) through the `openai` package, as openweights
users call a deployment: streaming token by token, `usage` counted, `logprobs` honoured
(or refused with a message where this server cannot), bound to loopback by default."""

import threading

import pytest

pytest.importorskip("torch", reason="needs the `train` extra")
openai = pytest.importorskip("openai")

from payloads.serve import Engine, bind_host, make_server  # noqa: E402

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "Count from one to ten, please."}]


@pytest.fixture(scope="module")
def client(tiny_model):
    server = make_server(Engine(str(tiny_model), []), "127.0.0.1", 0, None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                        api_key="EMPTY", max_retries=0)
    server.shutdown()
    server.server_close()


def test_stream_sends_the_answer_in_many_chunks_equal_to_the_whole(client, tiny_model):
    whole = client.chat.completions.create(model=str(tiny_model), messages=MESSAGES,
                                           max_tokens=12, temperature=0,
                                           extra_body={"min_tokens": 12})
    chunks = list(client.chat.completions.create(
        model=str(tiny_model), messages=MESSAGES, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"min_tokens": 12},
    ))
    pieces = [c.choices[0].delta.content for c in chunks
              if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # token by token, not one chunk
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens > 0


def test_usage_counts_prompt_and_completion_tokens(client, tiny_model):
    answer = client.chat.completions.create(model=str(tiny_model), messages=MESSAGES,
                                            max_tokens=5, temperature=0)
    usage = answer.usage
    assert usage.prompt_tokens > len(MESSAGES[0]["content"].split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_logprobs_come_back_per_generated_token(client, tiny_model):
    answer = client.chat.completions.create(model=str(tiny_model), messages=MESSAGES,
                                            max_tokens=6, temperature=0, logprobs=True,
                                            top_logprobs=3)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    for token in content:
        assert len(token.top_logprobs) == 3
        assert token.top_logprobs[0].logprob >= token.top_logprobs[-1].logprob
        assert token.logprob == pytest.approx(token.top_logprobs[0].logprob)  # greedy
    assert "".join(t.token for t in content) == answer.choices[0].message.content


def test_streaming_logprobs_is_refused_with_what_to_do(client, tiny_model):
    with pytest.raises(openai.BadRequestError, match="drop `stream`"):
        client.chat.completions.create(model=str(tiny_model), messages=MESSAGES, max_tokens=2,
                                       stream=True, logprobs=True)


def test_the_server_binds_to_loopback_unless_asked(monkeypatch):
    monkeypatch.delenv("RUNPOD_POD_ID", raising=False)
    assert bind_host(None) == "127.0.0.1"
    assert bind_host("0.0.0.0") == "0.0.0.0"
    monkeypatch.setenv("RUNPOD_POD_ID", "pod123")
    assert bind_host(None) == "0.0.0.0"  # the RunPod proxy reaches it from outside
