"""LiveStream: a video played as a live stream on a clock the test controls."""

import threading

import numpy as np
import pytest

from videochat_online.chat import ChatEngine
from videochat_online.data.video import open_video
from videochat_online.live import LiveStream
from videochat_online.memory import MemorySettings
from videochat_online.tools.demo_media import write_video


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("live") / "ball.mp4", seconds=10, fps=8)


def test_frames_enter_memory_when_the_playhead_passes_them_never_before(engine, video):
    clock = Clock()
    live = LiveStream(engine, MemorySettings(capacities=(2, 2, 4)), fps=2, clock=clock)
    live.open(open_video(video))
    live.tick()
    assert [f.index for f in live.sessions["pyramid"].held_frames()] == [0]  # the frame at 0 s only
    clock.now += 2.2
    live.tick()
    held = live.sessions["window"].held_frames()
    assert [f.timestamp for f in held] == [0.0, 0.5, 1.0, 1.5, 2.0] and live.playhead == pytest.approx(2.2)
    assert live.frames_encoded == 5  # each frame through the tower once, for all three memories
    live.pause()
    clock.now += 5
    live.tick()
    assert live.frames_encoded == 5 and live.playhead == pytest.approx(2.2)
    live.resume()
    clock.now += 1.0
    live.tick()
    assert live.frames_encoded == 7 and live.playhead == pytest.approx(3.2)
    clock.now += 60
    live.tick()
    assert live.finished and not live.playing and live.frames_encoded == 20 and live.playhead == 9.5


def test_pause_holds_the_playhead_at_the_moment_of_the_pause(engine, video):
    clock = Clock()
    live = LiveStream(engine, MemorySettings(), fps=2, clock=clock)
    live.open(open_video(video))
    live.tick()
    clock.now += 1.3
    live.pause()  # no tick since 0 s
    assert live.paused and live.playhead == pytest.approx(1.3)
    clock.now += 4
    assert live.tick() == pytest.approx(1.3) and live.frames_encoded == 3  # 0, 0.5 and 1 s


def test_questions_are_answered_at_the_playhead_and_kept_in_history(engine, video):
    clock = Clock()
    live = LiveStream(engine, MemorySettings(), fps=2, clock=clock, max_new_tokens=4)
    live.open(open_video(video))
    clock.now += 3.0
    replies = list(live.ask("Where is the ball?"))
    assert live.answers[-1].time == pytest.approx(3.0) and live.answers[-1].text == replies[-1]
    direct = live.sessions["pyramid"]
    assert direct.history == [("Where is the ball?", replies[-1])]
    assert live.sessions["window"].history is direct.history  # one conversation whichever memory answers
    with pytest.raises(ValueError, match="empty"):
        list(live.ask("  "))


def test_the_memory_view_groups_frames_by_level_with_tokens_and_cap(engine, video):
    clock = Clock()
    live = LiveStream(engine, MemorySettings(capacities=(1, 1, 2)), fps=2, clock=clock)
    live.open(open_video(video))
    clock.now += 9.0
    live.tick()  # 19 frames: 0..18
    view = live.memory_view()
    assert len(view.levels) == 3 and [len(level) for level in view.levels] == [1, 1, 2]  # full at (1, 1, 2)
    assert view.levels[0][0].index == 16 and view.levels[2][-1].index == 18  # the newest at each level's rule
    assert [[f.tokens for f in level] for level in view.levels] == [[64], [16], [4, 4]]
    assert view.tokens == sum(f.tokens for level in view.levels for f in level) <= view.cap == 64 + 16 + 2 * 4
    assert all(max(f.thumbnail.size) <= 96 for level in view.levels for f in level)
    live.mode = "window"
    window = live.memory_view()
    assert len(window.levels) == 1 and window.cap == 32 * 64 and len(window.levels[0]) == 19


def test_camera_frames_are_taken_at_most_fps_times_a_second(engine):
    clock = Clock()
    live = LiveStream(engine, MemorySettings(), fps=2, clock=clock)
    live.open_camera()
    frame = np.zeros((96, 160, 3), dtype=np.uint8)
    taken = []
    for _ in range(10):  # 10 frames 0.2 s apart
        taken.append(live.push_camera(frame))
        clock.now += 0.2
    assert taken == [True, False, False, True, False, False, True, False, False, True]
    assert [round(f.timestamp, 1) for f in live.sessions["window"].held_frames()] == [0.0, 0.6, 1.2, 1.8]


class SlowEncoder:
    """The engine, with encoding held until the test lets it go (a tick caught in the middle)."""

    def __init__(self, engine):
        self.engine, self.config, self.template = engine, engine.config, engine.template
        self.started, self.go = threading.Event(), threading.Event()

    def encode_frames(self, images):
        self.started.set()
        assert self.go.wait(30)
        return self.engine.encode_frames(images)

    def __getattr__(self, name):
        return getattr(self.engine, name)


def test_a_reset_during_a_tick_waits_for_it_and_leaves_nothing_behind(engine, video):
    clock, slow = Clock(), SlowEncoder(engine)
    live = LiveStream(slow, MemorySettings(capacities=(2, 2, 4)), fps=2, clock=clock)
    live.open(open_video(video))
    clock.now += 2.2
    ticking = threading.Thread(target=live.tick)
    ticking.start()
    assert slow.started.wait(30)  # the tick is encoding frames 0..4
    resetting = threading.Thread(target=live.reset)
    resetting.start()
    resetting.join(0.3)
    assert resetting.is_alive()  # the reset waits for the tick to end
    slow.go.set()
    ticking.join(30)
    resetting.join(30)
    assert live.frames_encoded == 0 and not live.playing and live.latest is None
    assert all(not s.held_frames() for s in live.sessions.values())  # no frame of the tick came back after it


def test_a_tick_that_does_not_wait_for_a_busy_model_keeps_the_frames_it_passed(engine, video):
    clock = Clock()
    live = LiveStream(engine, MemorySettings(), fps=2, clock=clock)
    live.open(open_video(video))
    clock.now += 1.2
    with live.lock:  # the model is answering a question
        assert live.tick(wait=False) == pytest.approx(1.2)  # the playhead moves ...
        assert live.frames_encoded == 0  # ... but nothing is encoded
        clock.now += 0.5
        live.tick(wait=False)
    live.tick()
    assert [f.timestamp for f in live.sessions["window"].held_frames()] == [0.0, 0.5, 1.0, 1.5]
    assert live.frames_encoded == 4 and live.playhead == pytest.approx(1.7)


def test_a_watch_alerts_when_the_shape_leaves(tmp_path):
    """The bundled model watching a held-out synthetic scene on a clock the test moves: the standing question is
    polled once a second of stream time, and its one alert is the shape leaving (within 2 s of the record)."""
    from pathlib import Path

    from videochat_online.stream_config import resolve_memory
    from videochat_online.synthetic.build import scenes
    from videochat_online.synthetic.world import write_scene_video

    scene = next(s for s in scenes(0, 0, 10)[1] if s.leave is not None)
    write_scene_video(scene, tmp_path / "scene.mp4", 2)
    engine = ChatEngine.from_pretrained(str(Path(__file__).resolve().parents[1] / "models" /
                                            "videochat-online-synthetic-tiny"), device="cpu")
    clock = Clock()
    live = LiveStream(engine, resolve_memory({}, engine.config), fps=1, clock=clock)
    live.open(open_video(tmp_path / "scene.mp4"))
    live.watch(f"Is the {scene.shape} still in view?")
    polls = []
    while not live.finished:
        clock.now += 0.5
        live.tick()
        polls.append(live.watching.polled)
    assert sorted({p for p in polls if p is not None}) == [float(t) for t in range(1, scene.duration + 1)]
    assert live.watching.answer is False
    assert [(e.answer, abs(e.time - scene.leave) <= 2) for e in live.alerts] == [(False, True)]


def test_every_memory_view_works_after_the_window_drops_frames(engine, video):
    """Past the point where the window memory first drops a frame, the uniform memory can pick a frame again that
    no other memory holds: its thumbnail is still there, so every mode's view draws (a KeyError froze the demo)."""
    clock = Clock()
    live = LiveStream(engine, MemorySettings(window=3, uniform_frames=4, capacities=(1, 1, 2)), fps=2, clock=clock)
    live.open(open_video(video))
    views = []
    while not live.finished:
        clock.now += 0.5
        live.tick()
        views.append({mode: live.memory_view(mode) for mode in ("pyramid", "window", "uniform")})
    assert len(views) > 10 and live.frames_encoded == 20
    uniform = [f.index for level in views[-1]["uniform"].levels for f in level]
    window = [f.index for level in views[-1]["window"].levels for f in level]
    assert uniform[0] not in window and all(f.thumbnail is not None for v in views for m in v.values()
                                            for level in m.levels for f in level)
