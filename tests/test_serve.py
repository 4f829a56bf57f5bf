"""`videochat-online serve`: a real uvicorn server on 127.0.0.1 and the official `openai` client against it."""

import base64
import io
import json

import httpx
import pytest
from PIL import Image

from videochat_online.cli import main
from videochat_online.serve.app import create_app
from videochat_online.serve.limits import ServeLimits
from videochat_online.serve.media import MediaPolicy
from videochat_online.chat import ChatEngine

from conftest import _REPO as REPO  # noqa: E402
from uvicorn_server import serving

BUNDLED = REPO / "models" / "videochat-online-synthetic-tiny"
SAMPLE = REPO / "assets" / "samples" / "synth_test_0000.mp4"
KEY = "test-key"


@pytest.fixture(scope="module")
def server():
    """The bundled model served on a free port, with the samples folder as media root and an API key."""
    engine = ChatEngine.from_pretrained(str(BUNDLED), device="cpu")
    app = create_app(engine, "videochat-online-synthetic-tiny", MediaPolicy(SAMPLE.parent, 1 << 20),
                     ServeLimits(max_question_chars=200, max_tokens=64), api_key=KEY)
    with serving(app) as url:
        yield url


def client(url, key=KEY):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def video_message(question, time_s):
    return [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": SAMPLE.as_uri(), "time": time_s}},
        {"type": "text", "text": question}]}]


def test_the_openai_client_gets_the_reply_stream_gives_for_a_video(server, capsys):
    question, at = "Where will the square stop?", 11.0
    assert main(["stream", str(SAMPLE), "--model", str(BUNDLED), "--ask", f"{at:g}:{question}", "--json",
                 "--max-new-tokens", "16"]) == 0
    (expected,) = [json.loads(line)["answer"] for line in capsys.readouterr().out.splitlines() if line.startswith('{"')]
    openai = client(server)
    assert [m.id for m in openai.models.list().data] == ["videochat-online-synthetic-tiny"]
    reply = openai.chat.completions.create(model="videochat-online-synthetic-tiny", max_tokens=16,
                                           messages=video_message(question, at))
    assert reply.choices[0].message.content == expected and reply.choices[0].finish_reason == "stop"
    pieces = openai.chat.completions.create(model="videochat-online-synthetic-tiny", max_tokens=16, stream=True,
                                            messages=video_message(question, at))
    assert "".join(c.choices[0].delta.content or "" for c in pieces) == expected


def test_an_image_as_a_data_url_streams_the_same_text_as_without_streaming(server):
    buffer = io.BytesIO()
    Image.open(REPO / "assets" / "samples" / "square.png").convert("RGB").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": "What colour is the square?"}]}]
    openai = client(server)
    whole = openai.chat.completions.create(model="m", max_tokens=12, messages=messages).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in openai.chat.completions.create(
        model="m", max_tokens=12, messages=messages, stream=True))
    assert whole and streamed == whole


@pytest.mark.parametrize("body, status, message", [
    ("{not json", 400, "not JSON"),
    ({"messages": []}, 400, "messages: a non-empty list"),
    ({"messages": [{"role": "user", "content": [{"type": "audio_url", "audio_url": {"url": "x"}}]}]}, 400,
     "type 'audio_url' is not one of text, image_url, video_url"),
    ({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "file:///etc/passwd"}},
                                                {"type": "text", "text": "q"}]}]}, 400, "outside the media root"),
    ({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "rtsp://cam/x"}},
                                                {"type": "text", "text": "q"}]}]}, 400, "scheme 'rtsp' is not served"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                                                {"type": "text", "text": "q"}]}]}, 400, "--allow-urls"),
    ({"messages": [{"role": "user", "content": "x" * 201}]}, 400, "over the limit of 200"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}, 400, "max_tokens: an integer from 1 to 64"),
])
def test_bad_requests_are_openai_errors_and_the_server_goes_on(server, body, status, message):
    raw = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(f"{server}/v1/chat/completions", content=raw, timeout=60,
                          headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error", error
    assert httpx.get(f"{server}/health", timeout=10).json()["status"] == "ok"


def test_a_non_video_file_and_an_image_bomb_are_one_line_errors(server, tmp_path):
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, format="PNG")  # a few KB that decode to 900M pixels
    for url, message in [("data:image/png;base64," + base64.b64encode(bomb.getvalue()).decode(),
                          "data-url-1.png: refused as a decompression bomb"),
                         ("data:video/mp4;base64," + base64.b64encode(b"not a video at all").decode(),
                          "data-url-1.mp4: not a")]:
        kind = "image_url" if url.startswith("data:image") else "video_url"
        response = httpx.post(f"{server}/v1/chat/completions", timeout=60, headers={"Authorization": f"Bearer {KEY}"},
                              json={"messages": [{"role": "user", "content": [{"type": kind, kind: {"url": url}},
                                                                              {"type": "text", "text": "q"}]}]})
        assert response.status_code == 400 and message in response.json()["error"]["message"], response.text


def test_the_api_key_is_required_except_for_health(server):
    assert httpx.get(f"{server}/health", timeout=10).status_code == 200
    for key in (None, "wrong"):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        response = httpx.get(f"{server}/v1/models", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_listening_beyond_loopback_needs_a_key(capsys):
    assert main(["serve", "--model", str(BUNDLED), "--host", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --host 0.0.0.0: listening beyond this machine needs --api-key KEY"
