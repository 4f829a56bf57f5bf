"""Live sources read in real time: MPEG-TS on a pipe, an HTTP stream, a file at its own pace with a model too slow to
keep up (frames dropped and counted), typed questions, and the one-line ends and errors."""

import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from videochat_online.chat import ChatEngine
from videochat_online.data.live import LiveSource
from videochat_online.memory import MemorySettings
from videochat_online.streaming import StreamingSession, TimedQuestion, answer_live
from videochat_online.tools.live_ts import send_ts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "samples" / "synth_test_0000.mp4"  # 32.5 s at 2 fps, 224x224
MODEL = ROOT / "models" / "videochat-online-synthetic-tiny"
CLI = [sys.executable, "-m", "videochat_online.cli"]


def sender(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "videochat_online.tools.live_ts", str(SAMPLE), "--seconds",
                             str(seconds)], stdout=subprocess.PIPE)


def test_an_mpeg_ts_pipe_is_watched_as_it_arrives_and_answered_at_stream_times():
    feed = sender(6)
    started = time.monotonic()
    out = subprocess.run([*CLI, "stream", "-", "--model", str(MODEL), "--fps", "2", "--json",
                          "--ask", "2:What color is the ball?", "--ask", "4.5:Is the ball still here?"],
                         stdin=feed.stdout, capture_output=True, text=True, timeout=180)
    feed.stdout.close()
    feed.wait(timeout=30)
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["time"] for a in answers] == [2.0, 4.5]
    # each answered from the frames up to its time: the newest at most one sample interval (0.5 s) earlier
    assert [a["seen"] for a in answers] == [2.0, 4.5] and all(a["latency"] >= 0 for a in answers)
    assert answers[0]["answer"]  # the bundled model says something
    assert time.monotonic() - started > 4.5  # the last question waited for its time in the stream


class Live(http.server.BaseHTTPRequestHandler):
    seconds = 5.0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        try:
            send_ts(str(SAMPLE), self.wfile, self.seconds)
        except (BrokenPipeError, ConnectionResetError):  # the reader had what it wanted
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def http_stream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Live)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    server.shutdown()
    server.server_close()


def test_an_http_stream_is_read_until_it_ends_and_questions_typed_meanwhile_are_answered(http_stream):
    run = subprocess.Popen([*CLI, "stream", http_stream, "--model", str(MODEL), "--json"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = []
    while not progress or ": ended" not in progress[-1]:  # the stream (5 s) plays to its end
        progress.append(run.stderr.readline().decode())
        assert progress[-1], "the stream command stopped early: " + "".join(progress)
    time.sleep(1.0)  # the stream ended a second before the questions are typed: their latency counts from typing
    typed = b"What color is the ball?\n" + b"x" * 100_000 + b"\n" + b"Is it \xff\xfe red?\n"
    out, err = run.communicate(typed, timeout=120)
    assert run.returncode == 0, err
    err = "".join(progress) + err.decode()
    answers = [json.loads(line) for line in out.decode().splitlines()]
    # the long line refused in one line, the invalid UTF-8 read as U+FFFD: the others answered
    assert [a["question"] for a in answers] == ["What color is the ball?", "Is it \ufffd\ufffd red?"]
    assert "error: typed question: 100,000 characters is over the limit of 2,000 (--max-question-chars); not " \
           "asked" in err and "Traceback" not in err
    # asked once the stream had ended: answered at its last frame, from what was seen (1 fps: the model's)
    assert answers[0]["time"] == answers[0]["seen"] == 4.0
    assert answers[0]["latency"] < 1.0  # from when it was typed, not from the last frame a second before
    assert "(4.0 s watched; 5 frames taken at 1 fps, 0 dropped because the model fell behind)" in err


def test_the_end_summary_is_printed_when_the_last_question_comes_first():
    feed = sender(6)
    out = subprocess.run([*CLI, "stream", "-", "--model", str(MODEL), "--fps", "2", "--ask", "1:Is the ball here?"],
                         stdin=feed.stdout, capture_output=True, text=True, timeout=180)
    feed.stdout.close()
    feed.wait(timeout=30)
    assert out.returncode == 0, out.stderr
    assert "frames taken at 2 fps" in out.stderr  # the summary, though the source was still playing


def test_a_model_that_falls_behind_drops_the_oldest_waiting_frames_and_counts_them(monkeypatch):
    engine = ChatEngine.from_pretrained(str(MODEL), device="cpu")
    encode = engine.encode_frames

    def slow(images):
        time.sleep(1.0)  # a tower slower than the stream: 2 frames arrive a second, 1 fits
        return encode(images)

    monkeypatch.setattr(engine, "encode_frames", slow)
    session = StreamingSession(engine, MemorySettings(capacities=(2, 2, 4)).build(engine.config.grid_size))
    source = LiveSource(str(SAMPLE), fps=4, buffer=3, pace=True)  # the 2 fps file: each of its frames, on time
    pushed = []
    answers = list(answer_live(session, source, [TimedQuestion(t, "Is the ball here?") for t in (3.0, 6.0, 9.0)],
                               batch_size=1, on_frame=pushed.append, max_new_tokens=4))
    source.close()
    left = source.take(99)  # taken after the last question, still waiting
    assert source.dropped > 0 and source.taken == len(pushed) + source.dropped + len(left)  # every one counted
    assert source.most_waiting <= 3  # however far behind, at most `buffer` frames wait
    assert len(session.held_frames()) <= 2 + 2 + 4  # the memory is bounded too
    times = [f.timestamp for f in pushed]
    assert times == sorted(times) and all(t * 2 == int(t * 2) for t in times)  # the source's own frame times
    assert [a.question.time for a in answers] == [3.0, 6.0, 9.0]
    assert all(a.seen <= a.question.time and a.seen in times for a in answers)
    assert {f.index for f in pushed} <= {round(t * 4) for t in times}  # index: the slot of its time at 4 fps


def test_dead_sources_are_one_line(tmp_path):
    def stream(*args, stdin=subprocess.DEVNULL):
        return subprocess.run([*CLI, "stream", *args, "--model", str(MODEL), "--ask", "1:Q"], stdin=stdin,
                              capture_output=True, text=True, timeout=120)

    refused = stream("http://127.0.0.1:9/live.ts")
    assert refused.returncode == 2 and refused.stderr.splitlines() == [
        "error: http://127.0.0.1:9/live.ts: cannot open it as a video stream ([Errno 111] Connection refused)"]
    silent = subprocess.Popen(["sleep", "20"], stdout=subprocess.PIPE)
    stalled = stream("-", "--stall-seconds", "2", stdin=silent.stdout)
    silent.kill()
    assert stalled.returncode == 2 and stalled.stderr.splitlines()[-1] == (
        "error: -: no stream could be opened within 2 s (nothing arrived)")
    realtime = stream(str(tmp_path / "missing.mp4"), "--realtime")
    assert realtime.returncode == 2 and "no such video file" in realtime.stderr


def test_the_demo_stream_plays_a_live_source_as_its_frames_arrive(http_stream):
    from videochat_online.live import LiveStream

    engine = ChatEngine.from_pretrained(str(MODEL), device="cpu")
    live = LiveStream(engine, MemorySettings(), fps=2)
    live.open_live(LiveSource(http_stream, fps=2))
    deadline = time.monotonic() + 60
    while not live.finished and time.monotonic() < deadline:
        live.tick()
        time.sleep(0.1)
    # 5 s at 2 fps (the decoder may open one frame in): each frame once, stamped with its own time
    assert live.finished and live.frames_encoded in (9, 10)
    held = [f.timestamp for f in live.sessions["window"].held_frames()]
    assert held[-3:] == [live.playhead - 1.0, live.playhead - 0.5, live.playhead] and live.playhead >= 4.0
    assert "".join(live.ask("What color is the ball?"))
    live.open_live(LiveSource(http_stream, fps=2), duration=2.0)  # the demo's --max-seconds, on a live source
    deadline = time.monotonic() + 60
    while not live.finished and time.monotonic() < deadline:
        live.tick()
        time.sleep(0.1)
    assert live.finished and 2.0 <= live.playhead < 3.0 and live.source is not None and live.source.end == "closed"


@pytest.fixture
def http_files(tmp_path):
    """A plain HTTP file server on 127.0.0.1 over tmp_path (what a video file behind a URL is)."""
    import functools

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_file_behind_a_url_is_played_at_its_own_pace(http_files):
    """Not as fast as it downloads: frame k arrives k / fps after the first, so none is dropped."""
    from videochat_online.tools.demo_media import write_video

    folder, base = http_files
    write_video(folder / "clip.mp4", seconds=4, fps=2, width=64, height=48, faststart=True)
    source = LiveSource(f"{base}/clip.mp4", fps=2, buffer=2)
    frames = []
    while not source.ended:
        frames += source.take(8)
    assert source.pace and source.dropped == 0 and len(frames) == 8
    assert frames[-1].arrived - frames[0].arrived >= 3.5 - 0.05  # 3.5 s of video took at least that long


def test_a_codec_change_mid_stream_ends_in_words_and_keeps_what_was_seen(tmp_path):
    import av
    import numpy as np

    def ts(codec: str, first: int) -> bytes:
        path = tmp_path / f"{codec}.ts"
        with av.open(str(path), "w", format="mpegts") as sink:
            stream = sink.add_stream(codec, rate=2)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(6):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i % 255, np.uint8), format="rgb24")
                frame.pts = first + i
                for packet in stream.encode(frame):
                    sink.mux(packet)
            for packet in stream.encode():
                sink.mux(packet)
        return path.read_bytes()

    stream = ts("mpeg2video", 0) + ts("libx264", 6)  # MPEG-2, then H.264, on one pipe
    out = subprocess.run([*CLI, "stream", "-", "--model", str(MODEL), "--fps", "2", "--ask", "30:Is it dark?"],
                         input=stream, capture_output=True, timeout=180)
    err = out.stderr.decode()
    assert out.returncode == 0 and "Traceback" not in err and "avcodec_send_packet" not in err, err
    assert "ended: its data could not be decoded after" in err and "the codec or format changed mid-stream" in err
    assert "A: " in out.stdout.decode()  # answered from what was seen before
