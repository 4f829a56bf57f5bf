"""`videochat-online serve`'s live sessions: real HTTP clients against a uvicorn server on 127.0.0.1, the bundled
model behind it. Sessions fed by pushed frames, by pushed MPEG-TS chunks and by an HTTP MPEG-TS stream; watches;
16 sessions at once; the limits and bad input as HTTP errors."""

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import _REPO as REPO
from PIL import Image
from uvicorn_server import serving

from videochat_online.chat import ChatEngine
from videochat_online.data.video import open_video
from videochat_online.serve.app import create_app
from videochat_online.serve.limits import ServeLimits, SessionLimits
from videochat_online.serve.media import MediaPolicy
from videochat_online.synthetic.build import scenes
from videochat_online.synthetic.world import write_scene_video
from videochat_online.tools.live_ts import send_ts, serve_ts

BUNDLED = REPO / "models" / "videochat-online-synthetic-tiny"
SAMPLE = REPO / "assets" / "samples" / "synth_test_0000.mp4"  # 32.5 s at 2 fps
KEY = "session-key"


@pytest.fixture(scope="module")
def engine():
    return ChatEngine.from_pretrained(str(BUNDLED), device="cpu")


@pytest.fixture(scope="module")
def server(engine):
    """Network sources allowed (this machine's too: the test streams are served on 127.0.0.1)."""
    app = create_app(engine, "tiny", MediaPolicy(None, 1 << 20, allow_urls=True, allow_private=True),
                     ServeLimits(max_question_chars=200, max_tokens=32, max_upload_bytes=1 << 20),
                     sessions=SessionLimits(max_sessions=20, max_questions=4, frame_buffer=80))
    with serving(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


def metric(client, name: str) -> float:
    (line,) = [x for x in client.get("/metrics").text.splitlines() if x.startswith(f"videochat_{name} ")]
    return float(line.split()[1])


def jpeg(image) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=95)
    return out.getvalue()


def push(client, ident: str, frames) -> None:
    for f in frames:
        r = client.post(f"/v1/sessions/{ident}/frames", files={"frame": ("f.jpg", jpeg(f.image), "image/jpeg")},
                        data={"time": str(f.timestamp)})
        assert r.status_code == 200, r.text


def in_memory(client, ident: str, until: float, bound: float = 60.0) -> dict:
    """The session's state once its memory holds the frames up to stream time `until`."""
    deadline = time.monotonic() + bound
    while (state := client.get(f"/v1/sessions/{ident}").json())["stream_time"] != until:
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return state


def events_until(client, ident: str, done, bound: float = 120.0) -> list[dict]:
    """The session's events (from its first) until `done(events)` holds; fails after `bound` seconds."""
    seen, deadline = [], time.monotonic() + bound
    with client.stream("GET", f"/v1/sessions/{ident}/events", timeout=bound) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if done(seen):
                    return seen
            assert time.monotonic() < deadline, seen
    raise AssertionError(f"the events ended first: {seen}")


def test_a_pushed_stream_is_watched_answered_at_stream_times_and_freed_on_delete(server, tmp_path):
    scene = next(s for s in scenes(0, 0, 10)[1] if s.leave is not None)  # held out; the shape leaves
    write_scene_video(scene, tmp_path / "scene.mp4", 2)
    sessions, held = metric(server, "sessions"), metric(server, "memory_bytes")
    opened = server.post("/v1/sessions", json={"source": "push", "fps": 1})
    assert opened.status_code == 201, opened.text
    ident = opened.json()["id"]
    watch = server.post(f"/v1/sessions/{ident}/watches", json={"question": f"Is the {scene.shape} still in view?"})
    assert watch.status_code == 201 and watch.json()["every"] == 1.0
    asked = server.post(f"/v1/sessions/{ident}/questions", json={"question": "Where is the square now?", "time": 3,
                                                                 "wait": False})
    assert asked.status_code == 202
    push(server, ident, open_video(tmp_path / "scene.mp4").sample(2))  # 2 fps pushed, 1 fps taken
    events = events_until(server, ident, lambda e: any(x["type"] == "watch" and not x["settled"] for x in e))
    (answer,) = [e for e in events if e["type"] == "answer"]
    assert answer["time"] == 3.0 and answer["answer"] and answer["latency"] >= answer["time_to_first_token"] >= 0
    changes = [e for e in events if e["type"] == "watch" and not e["settled"]]
    assert [(c["answer"], abs(c["time"] - scene.leave) <= 2) for c in changes] == [("no", True)]
    state = in_memory(server, ident, scene.duration)
    now = server.post(f"/v1/sessions/{ident}/questions", json={"question": "Where is the square now?"}).json()
    assert now["time"] == float(scene.duration)  # the newest frame in memory
    assert state["frames"]["taken"] == scene.duration + 1 and state["frames"]["dropped"] == 0
    assert sum(level["tokens"] for level in state["memory_held"]["levels"]) == state["memory_held"]["tokens"] > 0
    assert metric(server, "sessions") == sessions + 1 and metric(server, "memory_bytes") > held
    assert server.delete(f"/v1/sessions/{ident}").json()["deleted"]
    gone = server.get(f"/v1/sessions/{ident}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "session_not_found"
    deadline = time.monotonic() + 60
    while metric(server, "sessions") != sessions:  # closed by the scheduler's next turn
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert metric(server, "memory_bytes") == held


def test_an_http_mpeg_ts_source_is_answered_at_its_stream_times(server, tmp_path):
    (tmp_path / "live.mp4").symlink_to(SAMPLE)
    http_server = serve_ts(tmp_path, 0, seconds=6.0)  # the sample's first 6 s, live, in real time
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{http_server.server_address[1]}/live.ts"
        opened = server.post("/v1/sessions", json={"source": url, "fps": 2})
        assert opened.status_code == 201, opened.text
        ident = opened.json()["id"]
        for at in (2, 4.5):
            asked = server.post(f"/v1/sessions/{ident}/questions",
                                json={"question": "What color is the ball?", "time": at, "wait": False})
            assert asked.status_code == 202
        events = events_until(server, ident, lambda e: any(x["type"] == "source" for x in e)
                              and sum(x["type"] == "answer" for x in e) == 2)
        assert [e["time"] for e in events if e["type"] == "answer"] == [2.0, 4.5]
        (end,) = [e for e in events if e["type"] == "source"]
        assert end["state"].startswith("ended") and end["taken"] >= 10 and end["dropped"] == 0
        assert server.delete(f"/v1/sessions/{ident}").status_code == 200
        assert server.get(f"/v1/sessions/{ident}").status_code == 404
    finally:
        http_server.shutdown()
        http_server.server_close()


def test_a_pushed_mpeg_ts_stream_in_chunks_is_answered_at_its_stream_time(server):
    stream = io.BytesIO()
    send_ts(str(SAMPLE), stream, 6.0, speed=1e6)  # the bytes at once
    data = stream.getvalue()
    ident = server.post("/v1/sessions", json={"fps": 2}).json()["id"]
    asked = server.post(f"/v1/sessions/{ident}/questions", json={"question": "Is the ball here?", "time": 3,
                                                                 "wait": False})
    for start in range(0, len(data), 32 * 1024):
        r = server.post(f"/v1/sessions/{ident}/frames", files={"chunk": ("c.ts", data[start:start + 32 * 1024])})
        assert r.status_code == 200, r.text
    events = events_until(server, ident, lambda e: any(x["type"] == "answer" for x in e))
    assert [(e["id"], e["time"]) for e in events if e["type"] == "answer"] == [(asked.json()["id"], 3.0)]
    refused = server.post(f"/v1/sessions/{ident}/frames", files={"frame": ("f.jpg", b"x")}, data={"time": "9"})
    assert refused.status_code == 409 and "MPEG-TS" in refused.json()["error"]["message"]
    server.delete(f"/v1/sessions/{ident}")


def test_sixteen_sessions_and_fifty_questions_are_all_answered_in_fair_order(server):
    frames = list(open_video(SAMPLE).sample(2, end=4.0))
    idents = [server.post("/v1/sessions", json={"fps": 2}).json()["id"] for _ in range(16)]
    for ident in idents:
        push(server, ident, frames)
    for ident in idents:
        in_memory(server, ident, frames[-1].timestamp)
    asks = [(idents[k % 16], {"question": "Where is the ball?" if k % 3 else "Describe the scene in detail.",
                              "max_tokens": 4 if k % 3 else 32}) for k in range(50)]

    def ask(item):
        ident, body = item
        r = server.post(f"/v1/sessions/{ident}/questions", json=body)
        return ident, r.status_code, r.json()

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(ask, asks))
    assert [status for _, status, _ in replies] == [200] * 50, [r for r in replies if r[1] != 200]
    answers = [(ident, reply) for ident, _, reply in replies]
    for ident, reply in answers:
        assert reply["answer"] and reply["time"] == frames[-1].timestamp
        # its turn came once its session's previous reply was done: meanwhile at most one other session's reply
        # began and ended before it began
        own = [r for i, r in answers if i == ident and r["finished_at"] <= reply["started_at"]]
        free = max([reply["asked_at"], *(r["finished_at"] for r in own)])
        behind = [r for i, r in answers if i != ident and r["started_at"] >= free and
                  r["finished_at"] <= reply["started_at"]]
        assert len(behind) <= 1, (reply, behind)
    for ident in idents:  # none dropped silently: every answer is an event of its session too
        held = server.get(f"/v1/sessions/{ident}").json()["questions"]["answered"]
        assert held == sum(i == ident for i, _ in answers)
        server.delete(f"/v1/sessions/{ident}")


def bomb_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")  # 100 million pixels in a few kB
    return out.getvalue()


@pytest.mark.parametrize("method, path, body, status, message", [
    ("get", "/v1/sessions/s-nope", None, 404, "no session s-nope"),
    ("post", "/v1/sessions", b"{not json", 400, "JSON"),
    ("post", "/v1/sessions", {"source": "file:///etc/passwd"}, 400, "give a stream URL"),
    ("post", "/v1/sessions", {"memory": {"mode": "forgetful"}}, 400, "forgetful"),
    ("post", "/v1/sessions", {"fps": -1}, 400, "fps"),
])
def test_bad_session_requests_are_one_line_http_errors(server, method, path, body, status, message):
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else \
        {} if body is None else {"json": body}
    r = getattr(server, method)(path, **kwargs)
    assert r.status_code == status and message in r.json()["error"]["message"], r.text
    assert "\n" not in r.json()["error"]["message"]


def test_bad_frames_and_questions_are_refused_and_the_session_goes_on(server):
    ident = server.post("/v1/sessions", json={}).json()["id"]
    base = f"/v1/sessions/{ident}"
    cases = [
        (server.post(f"{base}/frames", files={"frame": ("bomb.png", bomb_png())}, data={"time": "0"}), 400,
         "bomb.png: 10000x10000 pixels is over the limit"),
        (server.post(f"{base}/frames", files={"frame": ("notes.txt", b"just text")}, data={"time": "0"}), 400,
         "notes.txt: not a readable image (JPEG or PNG)"),
        (server.post(f"{base}/frames", files={"frame": ("big.jpg", b"x" * (2 << 20))}, data={"time": "0"}), 413,
         "over the limit"),
        (server.post(f"{base}/frames", files={"frame": ("f.jpg", b"x")}), 400, "time"),
        (server.post(f"{base}/questions", json={"question": "why " * 100}), 400, "over the limit of 200"),
        (server.post(f"{base}/questions", json={"question": "Why?", "max_tokens": 999}), 400, "max_tokens"),
        (server.post(f"{base}/questions", json={"text": "Why?"}), 400, "question"),
    ]
    for r, status, message in cases:
        assert r.status_code == status and message in r.json()["error"]["message"], r.text
    push(server, ident, open_video(SAMPLE).sample(2, end=1.0))
    in_memory(server, ident, 1.0)
    assert server.post(f"{base}/questions", json={"question": "Where is the ball?"}).json()["time"] == 1.0
    server.delete(base)


def test_the_session_limits_the_key_and_idle_closing(engine):
    app = create_app(engine, "tiny", MediaPolicy(None, 1 << 20), api_key=KEY,
                     sessions=SessionLimits(max_sessions=1, idle_seconds=1.0))
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/health").json()["status"] == "ok"  # no key needed
        refused = client.post("/v1/sessions", json={})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        keyed = {"authorization": f"Bearer {KEY}"}
        assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
        first = client.post("/v1/sessions", json={}, headers=keyed)
        assert first.status_code == 201
        more = client.post("/v1/sessions", json={}, headers=keyed)
        assert more.status_code == 429 and "--max-sessions" in more.json()["error"]["message"]
        deadline = time.monotonic() + 60
        while "videochat_sessions 1.0" in client.get("/metrics", headers=keyed).text:  # /metrics touches no session
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.get(f"/v1/sessions/{first.json()['id']}", headers=keyed).status_code == 404  # idle: closed
        assert client.post("/v1/sessions", json={}, headers=keyed).status_code == 201


def test_the_session_api_is_in_the_openapi_schema(server):
    paths = server.get("/openapi.json").json()["paths"]
    assert {"/v1/sessions", "/v1/sessions/{ident}", "/v1/sessions/{ident}/frames", "/v1/sessions/{ident}/questions",
            "/v1/sessions/{ident}/watches", "/v1/sessions/{ident}/events"} <= set(paths)
    form = paths["/v1/sessions/{ident}/frames"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form
