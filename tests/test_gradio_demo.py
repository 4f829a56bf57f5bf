"""The gradio demo, served locally and driven in a real headless browser (Debian's chromium, by playwright).

The set-up installs both (scripts/setup_env.sh); CHROMIUM names another browser binary.
"""

import os
import re
import socket
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from videochat_online.chat import ChatEngine
from videochat_online.memory import MemorySettings
from videochat_online.tools.demo_media import write_video

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import gradio_demo  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network and a root user (Chromium otherwise tries Google's hosts at every start).
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(os.environ.get("DEMO_SCREENSHOT", REPO / "runs" / "gradio_demo.png"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ticks:
    """Counts the demo's finished timer ticks (every session's), so that a test waits for ticks, never for a time."""

    def __init__(self, app):
        import functools

        fn = next(f for f in app.fns.values() if f.name == "tick")
        self.count, inner = 0, fn.fn

        @functools.wraps(inner)
        def counted(*args):
            try:
                return inner(*args)
            finally:
                self.count += 1

        fn.fn = counted

    def wait(self, n: int, timeout: float = 60.0) -> None:
        import time

        goal, deadline = self.count + n, time.monotonic() + timeout
        while self.count < goal:
            assert time.monotonic() < deadline, f"{n} ticks did not come within {timeout} s"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def served(tiny_dir, tmp_path_factory):
    """The demo on localhost with a tiny checkpoint, playing at 4 frames a second; yields its URL, media, app, its
    tick counter and its sessions."""
    media = tmp_path_factory.mktemp("demo-media")
    video = write_video(media / "ball.mp4", seconds=12, fps=8)
    (media / "notes.txt").write_text("not a video\n")
    engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")
    settings = MemorySettings(capacities=(2, 2, 4))
    sessions = gradio_demo.Sessions()
    app = gradio_demo.build_app(engine, settings, fps=4, samples=None, tick_seconds=0.25, sessions=sessions,
                                about_model="A tiny test model.")
    ticks = Ticks(app)
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", video, media / "notes.txt", app, ticks, sessions
    app.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup_env.sh, which installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        yield b
        b.close()


def stream_seconds(page) -> float:
    text = page.locator("#clock").inner_text()
    match = re.search(r"Stream time: ([0-9.]+) s", text)
    return float(match.group(1)) if match else -1.0


def upload_and_ask(page, url, video, question):
    page.goto(url)
    page.locator("#upload input[type=file]").set_input_files(str(video))
    expect(page.locator("#status")).to_contain_text("Playing", timeout=30_000)
    page.wait_for_function("() => /Stream time: ([3-9]|1[0-9])\\./.test(document.querySelector('#clock').innerText)",
                           timeout=30_000)  # 3 s or more into the 12 s video
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    reply = page.locator("#chat .message").nth(1)
    expect(reply).to_be_visible(timeout=30_000)
    return page.locator("#chat").inner_text()


def test_demo_streams_answers_mid_stream_and_shows_memory(served, browser):
    url, video, *_ = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    chat = upload_and_ask(page, url, video, "Where is the ball?")
    stamp = float(re.search(r"\[([0-9.]+) s\] Where is the ball\?", chat).group(1))
    assert 3.0 <= stamp < 12.0  # answered at its moment, before the end of the video
    frames = page.locator("#memory-view figure.memory-frame")
    expect(frames.first).to_be_visible(timeout=10_000)
    assert frames.count() >= 2
    total = page.locator("#memory-total").inner_text()
    held, cap = map(int, re.search(r"(\d+) / (\d+) visual tokens", total).groups())
    assert 0 < held <= cap == 2 * 64 + 2 * 16 + 4 * 4
    # pause holds the playhead (the page says "paused"); switching the memory changes the view, not the stream
    ticks = served[4]
    page.locator("#pause").click()
    expect(page.locator("#clock")).to_contain_text("paused", timeout=10_000)
    paused_at = stream_seconds(page)
    ticks.wait(4)
    assert stream_seconds(page) == paused_at and "paused" in page.locator("#clock").inner_text()
    page.locator("#mode").get_by_label("window").check()
    expect(page.locator("#memory-total")).to_contain_text("window memory", timeout=10_000)
    page.locator("#resume").click()
    page.wait_for_function(f"() => !document.querySelector('#clock').innerText.includes('{paused_at:.1f} s')",
                           timeout=10_000)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    page.locator("#watch textarea").fill("Is the ball here?")
    page.locator("#watch textarea").press("Enter")
    expect(page.locator("#alerts")).to_contain_text("Watching for", timeout=10_000)
    page.locator("#reset").click()
    expect(page.locator("#memory-view")).to_contain_text("Nothing watched yet", timeout=10_000)
    ticks.wait(4)  # four timer ticks: nothing drawn before the reset comes back after it
    assert "Nothing watched yet" in page.locator("#memory-view").inner_text()
    assert stream_seconds(page) == -1.0
    # the reset empties the watch box and the file box too
    assert page.locator("#watch textarea").input_value() == ""
    expect(page.locator("#upload")).not_to_contain_text("ball.mp4", timeout=10_000)
    assert "A tiny test model." in page.locator("#about").inner_text()
    page.close()


def test_the_events_that_change_or_show_the_stream_share_one_queue(served):
    """One at a time, in order: what a tick drew cannot reach the page after a later reset's empty view."""
    app = served[3]
    group = {fn.name: (fn.concurrency_id, fn.concurrency_limit) for fn in app.fns.values()}
    ordered = ["start", "play_sample", "tick", "pause", "resume", "reset", "switch", "camera_on"]
    assert {group[name] for name in ordered} == {("stream", 1)}
    assert group["ask"][0] != "stream"  # a question runs beside them: pause and reset do not wait on it
    # nothing that can take long runs in that shared queue: URLs open beside it, watches poll in their own
    assert group["watch_url"][0] == "open" and group["poll_watch"][0] == "watches"


def test_two_sessions_do_not_share_memory_or_history(served, browser):
    url, video, *_ = served
    first, second = browser.new_page(), browser.new_page()
    upload_and_ask(first, url, video, "What colour is the ball?")
    second.goto(url)
    expect(second.locator("#memory-view")).to_be_visible(timeout=30_000)
    served[4].wait(8)  # several timer ticks of both pages
    assert "What colour is the ball?" not in second.locator("#chat").inner_text()
    assert second.locator("#memory-view figure.memory-frame").count() == 0
    assert "Nothing watched yet" in second.locator("#memory-view").inner_text()
    first.close()
    second.close()


def test_a_file_that_is_not_a_video_is_one_message_and_the_next_upload_works(served, browser):
    url, video, notes, *_ = served
    page = browser.new_page()
    page.goto(url)
    page.locator("#upload input[type=file]").set_input_files(str(notes))
    # one line naming the file as the user knows it (not the server's temporary copy), no traceback
    expect(page.locator("#status")).to_have_text(re.compile(r"^\s*Error: notes\.txt: [^\n]+\s*$"), timeout=30_000)
    assert "Traceback" not in page.locator("#status").inner_text()
    page.locator("#upload button[aria-label='Clear']").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(video))
    expect(page.locator("#status")).to_contain_text("Playing", timeout=30_000)
    expect(page.locator("#memory-view figure.memory-frame").first).to_be_visible(timeout=15_000)
    page.close()


@pytest.mark.slow
def test_a_watch_raises_an_alert_in_the_page(tmp_path, browser):
    """The bundled model, a 20 s synthetic scene in which the square leaves at 16 s, "Watch for" typed as it plays:
    the page shows the alert, stamped with the stream time."""
    from videochat_online.stream_config import resolve_memory
    from videochat_online.synthetic.world import CLOCKWISE, MOVE_SECONDS, Scene, write_scene_video

    scene = Scene("square", "red", "blue", "top left", CLOCKWISE["top left"], 0, 1, 3, 3 + MOVE_SECONDS,
                  6 + MOVE_SECONDS, 10 + MOVE_SECONDS)
    write_scene_video(scene, tmp_path / "leaves.mp4", 2)
    engine = ChatEngine.from_pretrained(str(REPO / "models" / "videochat-online-synthetic-tiny"), device="cpu")
    app = gradio_demo.build_app(engine, resolve_memory({}, engine.config), fps=1, samples=None, tick_seconds=0.25)
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}")
        page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "leaves.mp4"))
        expect(page.locator("#status")).to_contain_text("Playing", timeout=30_000)
        page.locator("#watch textarea").fill("Is the square still in view?")
        page.locator("#watch textarea").press("Enter")
        expect(page.locator("#alerts")).to_contain_text("Watching for", timeout=10_000)
        expect(page.locator("#alerts")).to_contain_text("⚠", timeout=45_000)
        alert = re.search(r"⚠ ([0-9.]+) s: no", page.locator("#alerts").inner_text())
        assert alert and abs(float(alert.group(1)) - scene.leave) <= 2, page.locator("#alerts").inner_text()
        page.close()
    finally:
        app.close()


def test_a_long_stream_keeps_updating_through_every_memory_mode(tiny_dir, tmp_path, browser):
    """A 60 s video on a clock 4x as fast, past the point where the window memory first drops a frame (and where the
    uniform memory picks frames again): each mode shows its own frames and the page keeps updating."""
    import time

    video = write_video(tmp_path / "long.mp4", seconds=60, fps=4)
    engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")
    grid = engine.config.grid_size
    settings = gradio_demo.budget_matched(MemorySettings(capacities=(2, 2, 4)), grid, {})
    frames = (2 * 64 + 2 * 16 + 4 * 4) // grid ** 2  # the pyramid's 176 tokens in whole 8x8 frames: 2
    assert (settings.window, settings.uniform_frames) == (frames, frames) == (2, 2)
    began = time.monotonic()
    app = gradio_demo.build_app(engine, settings, fps=2, samples=None, tick_seconds=0.25,
                                clock=lambda: began + 4 * (time.monotonic() - began))
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}")
        for mode, budget in [("pyramid", "176 tokens"), ("window", "2 frames, 128 tokens"),
                             ("uniform", "2 frames, 128 tokens")]:
            expect(page.locator("#mode")).to_contain_text(f"{mode}: {budget}")
        page.locator("#upload input[type=file]").set_input_files(str(video))
        expect(page.locator("#status")).to_contain_text("Playing", timeout=30_000)
        for mode, after in [("window", 8), ("uniform", 24), ("pyramid", 42), ("window", 46), ("uniform", 50)]:
            page.wait_for_function(f"() => {{ const m = /Stream time: ([0-9.]+) s/.exec("
                                   f"document.querySelector('#clock').innerText); return m && +m[1] >= {after}; }}",
                                   timeout=60_000)
            page.locator("#mode").get_by_label(mode).check()
            expect(page.locator("#memory-total")).to_contain_text(f"{mode} memory", timeout=10_000)
            shown = page.locator("#memory-view figcaption").all_inner_texts()
            times = [float(re.search(r"· ([0-9.]+)s ·", c).group(1)) for c in shown]
            if mode == "uniform":  # its 2 frames spread over everything seen: one in each half
                assert len(times) == 2 and min(times) < after / 2 <= max(times), (mode, after, shown)
            else:  # this memory's newest frames, up to now (window: its budget of 2 frames)
                assert max(times) >= after - 2 and (mode == "pyramid" or len(times) == 2), (mode, after, shown)
            assert "Error" not in page.locator("#status").inner_text()
        moved_from = stream_seconds(page)
        page.wait_for_function(f"() => !document.querySelector('#clock').innerText.includes('{moved_from:.1f} s')",
                               timeout=10_000)  # still playing after every switch
        page.close()
    finally:
        app.close()


def test_with_no_options_the_demo_takes_the_bundled_models_rate_and_memory():
    from videochat_online.options import from_args

    def load(*argv):
        return gradio_demo.load(from_args(gradio_demo.DemoOptions, gradio_demo.build_parser().parse_args(argv)).stream)

    engine, fps, settings = load()
    assert fps == engine.config.fps == 1.0  # the rate it was trained at
    recorded = engine.config.memory
    assert settings.mode == recorded["mode"] == "pyramid"
    assert list(settings.capacities) == recorded["capacities"] and list(settings.intervals) == recorded["intervals"]
    # window and uniform hold the pyramid's budget (208 tokens) in whole 8x8 frames: 3, not the 32 and 16 recorded
    assert engine.config.grid_size == 8 and settings.build(8).max_tokens == 208
    assert (settings.window, settings.uniform_frames) == (3, 3) and (recorded["window"], recorded["uniform_frames"]) == (32, 16)
    _, _, given = load("--window", "5", "--fps", "2")
    assert (given.window, given.uniform_frames) == (5, 3)


def test_a_session_is_released_when_it_ends_and_questions_have_a_length_limit(tiny_dir, tmp_path):
    import gradio as gr

    from videochat_online.data.video import open_video
    from videochat_online.live import LiveStream

    engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")
    app = gradio_demo.build_app(engine, MemorySettings(), fps=2, samples=None, idle_minutes=5, max_question_chars=10)
    state = next(b for b in app.blocks.values() if isinstance(b, gr.State))
    assert state.time_to_live == 300 and state.delete_callback.__func__ is gradio_demo.Sessions.expired  # idle
    live = LiveStream(engine, MemorySettings(), fps=2)
    live.open(open_video(write_video(tmp_path / "clip.mp4", seconds=2, fps=4)), duration=2)
    live.clock.clock = lambda: live.clock.started_at + 5  # past the end
    live.tick()
    assert live.frames_encoded == 4 and live.sessions["pyramid"].held_frames()
    ask = next(f.fn for f in app.fns.values() if f.name == "ask")
    chat, kept, status = next(ask("x" * 11, [], live))
    assert chat == [] and kept == "x" * 11 and status == \
        "**Error:** the question: 11 characters is over the limit of 10 (--max-question-chars)"
    gradio_demo.release(live)
    assert not live.sessions["pyramid"].held_frames() and not live.memories.thumbnails and live.latest is None
    assert not live.answers and not live.sessions["window"].history


def handler(app, name):
    return next(f.fn for f in app.fns.values() if f.name == name)


class Request:  # what gradio hands a handler about its browser session
    def __init__(self, session_hash):
        self.session_hash = session_hash


@pytest.mark.parametrize("url, allowed, line", [
    ("file:///etc/hostname", True, "file:///etc/hostname: give a stream URL"),
    ("/etc/hostname", True, "/etc/hostname: give a stream URL"),
    ("concat:a.mp4|b.mp4", True, "concat:a.mp4|b.mp4: give a stream URL"),
    ("http://127.0.0.1:9/live.ts", False, "http://127.0.0.1:9/live.ts: 127.0.0.1 is this machine or its private "
                                          "network (127.0.0.1)"),
    ("rtsp://localhost:9/cam", False, "localhost is this machine or its private network"),
    ("http://10.1.2.3/x.ts", False, "10.1.2.3 is this machine or its private network"),
    ("http://[::1]:9/x.ts", False, "::1 is this machine or its private network"),
])
def test_the_url_tab_opens_no_files_and_no_private_hosts_unless_allowed(tiny_dir, url, allowed, line):
    engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")
    app = gradio_demo.build_app(engine, MemorySettings(), fps=2, samples=None, allow_private_urls=allowed)
    live, status, *_ = handler(app, "watch_url")(url, None, Request("s"))
    assert status.startswith("**Error:**") and line in status, status
    assert live.source is None  # nothing was opened


def test_the_start_handler_opens_only_uploads_and_samples(tiny_dir, tmp_path):
    """gradio hands the handler a path: one not under gradio's upload folder (or the samples) is refused."""
    from gradio.utils import get_upload_folder

    engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")
    samples = tmp_path / "samples"
    write_video(samples / "s.mp4", seconds=2, fps=2)
    outside = write_video(tmp_path / "elsewhere.mp4", seconds=2, fps=2)
    app = gradio_demo.build_app(engine, MemorySettings(), fps=2, samples=samples)
    start = handler(app, "start")
    for path in ("/etc/hostname", str(outside), str(samples / ".." / "elsewhere.mp4")):
        live, status, *_ = start(path, None, Request("s"))
        assert "not a file uploaded here or a sample" in status and not live.playing, status
    upload = Path(get_upload_folder()) / "test-upload" / "u.mp4"
    write_video(upload, seconds=2, fps=2)
    live, _, chat, watch_box = start(str(upload), None, Request("s"))
    assert live.playing and chat == [] and watch_box == ""  # a new video: its conversation and watch start empty
    assert handler(app, "play_sample")("s.mp4", None, Request("s"))[0].playing


def test_no_sessions_work_holds_up_anothers_ticks(tiny_dir, tmp_path):
    """While the shared model is busy for one session (a long answer or watch poll), another session's tick, reset
    and watch return at once; a watch question over the limit is refused."""
    import threading

    from videochat_online.data.video import open_video
    from videochat_online.live import LiveStream

    engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")
    app = gradio_demo.build_app(engine, MemorySettings(), fps=2, samples=None, max_question_chars=50)
    assert handler(app, "watch")("why " * 100, LiveStream(engine, MemorySettings())).startswith(
        "**Error:** the watch: 399 characters is over the limit of 50")
    model = threading.Lock()
    other = LiveStream(engine, MemorySettings(), fps=2, lock=model)
    other.open(open_video(write_video(tmp_path / "v.mp4", seconds=4, fps=4)))
    other.watch("Is the ball here?")
    model.acquire()  # another session's long generation
    try:
        done = threading.Event()

        def work():
            handler(app, "tick")(other)
            handler(app, "poll_watch")(other)
            other.reset()
            done.set()

        threading.Thread(target=work, daemon=True).start()
        assert done.wait(60), "a tick, a poll or a reset waited for another session's work"
    finally:
        model.release()


def test_closed_tabs_release_their_streams(served, browser):
    """Real clients: tabs that played a video close; gradio's unload releases their streams (memories, frames)."""
    url, video, _, _, _, sessions = served
    pages = [browser.new_page() for _ in range(2)]
    streams_before = len(sessions)
    for page in pages:
        upload_and_ask(page, url, video, "Is the ball here?")
    assert len(sessions) == streams_before + 2
    held = [s for s in list(sessions._streams.values())[-2:]]
    assert all(s.frames_encoded for s in held)
    for page in pages:
        page.close()
    import time

    deadline = time.monotonic() + 90  # gradio notices a closed tab when its heartbeat fails
    while len(sessions) > streams_before:
        assert time.monotonic() < deadline, f"{len(sessions)} streams still held after their tabs closed"
        time.sleep(0.1)
    assert all(s.latest is None and not s.sessions["pyramid"].held_frames() for s in held)


def test_the_page_says_when_the_model_is_the_bundled_one():
    assert "trained only on its synthetic world" in gradio_demo.about_model(str(gradio_demo.DEFAULT_MODEL))
    assert gradio_demo.about_model("OpenGVLab/VideoChat-Online-4B") is None


@pytest.mark.parametrize("backbone", ["qwen3-vl", "qwen2.5-vl"])
def test_the_demo_plays_a_qwen_checkpoint_and_answers_from_every_memory(tiny_qwen, backbone, tmp_path):
    """The demo's app and its live stream on a Qwen-VL checkpoint: frames in whole temporal patches, each memory
    answering from what it holds."""
    from videochat_online.backbones import load_engine
    from videochat_online.data.video import open_video
    from videochat_online.live import LiveStream

    engine = load_engine(str(tiny_qwen(backbone)), device="cpu")
    app = gradio_demo.build_app(engine, MemorySettings(), fps=2, samples=None)
    live = LiveStream(engine, MemorySettings(), fps=2)
    live.open(open_video(write_video(tmp_path / "clip.mp4", seconds=3, fps=4)), duration=3)
    live.clock.clock = lambda: live.clock.started_at + 5  # past the end: all 6 frames arrive
    live.tick()
    assert live.frames_encoded == 6
    for mode, session in live.sessions.items():
        assert [f.index for f in session.held_frames()][-1] == 4, mode  # the last patch: frames 4 and 5
    ask = handler(app, "ask")
    *_, (chat, kept, status) = ask("Where is the ball?", [], live)
    assert "Error" not in status and chat and kept == ""
