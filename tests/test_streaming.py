"""Streaming sessions: streaming equals recomputing, modes, history, constant memory over 20,000 frames."""

import gc
import os

import numpy as np
import pytest
import torch

from videochat_online.chat import ChatEngine
from videochat_online.data.video import VideoFrame, open_video
from videochat_online.model import load_pretrained
from videochat_online.memory import MemorySettings
from videochat_online.settings import SettingsError
from videochat_online.streaming import StreamingSession, TimedQuestion, answer_along
from videochat_online.tools.demo_media import write_video


@pytest.fixture(scope="module")
def engine(tiny_dir):
    model, tokenizer = load_pretrained(tiny_dir("native", "phi3"))
    return ChatEngine(model, tokenizer)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("stream") / "ball.mp4", seconds=24, fps=10)


QUESTIONS = [TimedQuestion(3.0, "What is the ball doing?"), TimedQuestion(7.5, "Where is the ball?"),
             TimedQuestion(12.0, "What happened before?"), TimedQuestion(19.5, "What happens next?")]


def snapshot(frames):
    return [(f.index, f.level, f.timestamp) for f in frames], [f.tokens for f in frames]


def test_streaming_equals_recomputing(engine, video):
    fps = 2
    session = StreamingSession(engine, MemorySettings().build(engine.config.grid_size))
    streamed = list(answer_along(session, open_video(video).sample(fps), QUESTIONS, batch_size=4,
                                 max_new_tokens=8))
    assert [a.question.time for a in streamed] == [3.0, 7.5, 12.0, 19.5]
    streaming_encodes = session.frames_encoded
    assert streaming_encodes == int(19.5 * fps) + 1  # each frame up to the last question, once

    fresh = StreamingSession(engine, MemorySettings().build(engine.config.grid_size))
    for answer in streamed:
        fresh.reset()  # rebuild memory from frame 0 for this question
        seen = [f for f in open_video(video).sample(fps) if f.timestamp <= answer.question.time]
        for start in range(0, len(seen), 8):
            fresh.push(seen[start:start + 8])
        reply = fresh.ask(answer.question.text, max_new_tokens=8)
        (meta_a, tokens_a), (meta_b, tokens_b) = snapshot(answer.memory), snapshot(fresh.held_frames())
        assert meta_a == meta_b
        assert all(torch.equal(a, b) for a, b in zip(tokens_a, tokens_b))
        assert reply.token_ids == answer.reply.token_ids
        assert reply.prompt == answer.reply.prompt
    recompute_encodes = fresh.frames_encoded
    assert recompute_encodes == sum(int(q.time * fps) + 1 for q in QUESTIONS)  # 7 + 16 + 25 + 40
    assert recompute_encodes / streaming_encodes > 2
    # The last question saw a full pyramid: 2 + 2 + 12 frames, 2*64 + 2*16 + 12*4 tokens.
    assert len(streamed[-1].memory) == 16 and sum(f.num_tokens for f in streamed[-1].memory) == 208
    assert "Frame40 at 19.5s: <img>" in streamed[-1].reply.prompt


def test_questions_only_see_the_past(engine, video):
    session = StreamingSession(engine, MemorySettings("window", window=100).build(engine.config.grid_size))
    answers = list(answer_along(session, open_video(video).sample(2), [TimedQuestion(2.2, "Now?"),
                                                                     TimedQuestion(2.5, "And now?")]))
    assert max(f.timestamp for f in answers[0].memory) == 2.0
    assert max(f.timestamp for f in answers[1].memory) == 2.5  # a frame at the question's time is seen
    late = list(answer_along(StreamingSession(engine, MemorySettings("window", window=100).build(8)),
                             open_video(video).sample(1), [TimedQuestion(99.0, "After the end?")]))
    assert max(f.timestamp for f in late[0].memory) == 23.0  # everything seen


def test_memory_modes_shape_the_prompt(engine, video):
    frames = list(open_video(video).sample(2, end=9.5))  # 20 frames
    g = engine.config.grid_size
    for mode, kwargs, expected in [("window", dict(window=5), list(range(15, 20))),
                                   ("uniform", dict(uniform_frames=4), [2, 7, 12, 17])]:
        session = StreamingSession(engine, MemorySettings(mode, **kwargs).build(g))
        session.push(frames)
        assert [f.index for f in session.held_frames()] == expected
        prompt, tokens = session.prompt_for("Q?")
        assert prompt.count("<IMG_CONTEXT>") == tokens.shape[0] == len(expected) * g * g
    with pytest.raises(SettingsError, match="--memory all: use one of pyramid, window, recent, uniform"):
        MemorySettings("all")


def test_multi_turn_history_and_reset(engine, video):
    session = StreamingSession(engine, MemorySettings().build(engine.config.grid_size), system_message="S.")
    session.push(list(open_video(video).sample(1, end=3)))
    first = session.ask("First?", remember=True, max_new_tokens=4)
    second = session.ask("Second?", remember=True, max_new_tokens=4)
    assert second.prompt.startswith(f"<|system|>\nS.<|end|><|user|>\nFirst?<|end|><|assistant|>\n{first.text}<|end|>")
    assert second.prompt.endswith("Second?<|end|><|assistant|>\n")
    with pytest.raises(ValueError, match="frame 2 arrived after frame 3"):
        session.push([VideoFrame(2, 2.0, np.zeros((32, 32, 3), np.uint8))])
    session.reset()
    assert session.held_frames() == [] and session.history == []
    assert session.ask("Empty?", max_new_tokens=2).prompt.endswith("<|user|>\nEmpty?<|end|><|assistant|>\n")


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_constant_memory_over_20000_frames(engine):
    g = engine.config.grid_size
    bank = MemorySettings().build(g)
    session = StreamingSession(engine, MemorySettings().build(g))
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(16)]
    held_tokens, rss = [], []
    for start in range(0, 20000, 16):
        batch = [VideoFrame(i, i / 2, images[i % 16]) for i in range(start, start + 16)]
        session.push(batch)
        for i in range(start, start + 16):
            bank.add(torch.randn(engine.config.feature_dim, g, g), i)
        if start % 2000 == 0 and start > 0:
            held_tokens.append((bank.num_tokens, sum(f.num_tokens for f in session.held_frames())))
            gc.collect()
            rss.append(rss_mb())
    assert session.frames_encoded == 20000
    assert set(held_tokens) == {(bank.max_tokens, bank.max_tokens)} and bank.max_tokens == 208
    assert len(session.held_frames()) == 16
    assert rss[-1] - rss[0] < 20, f"resident memory grew from {rss[0]:.0f} MB to {rss[-1]:.0f} MB"
    reply = session.ask("What happened?", max_new_tokens=3)
    assert "Frame20000 at 9999.5s" in reply.prompt


@pytest.mark.parametrize("backbone", ["internvl", "qwen3-vl"])
def test_frames_of_several_sessions_encoded_together_equal_each_pushed_alone(engine, tiny_qwen, backbone):
    """`push_together` (the server's batched encoding): three sessions' frames through the tower as one batch give
    each memory what pushing its frames alone gives, the frames waiting for a temporal patch's second one too."""
    from videochat_online.backbones import load_engine
    from videochat_online.streaming import push_together

    chosen = engine if backbone == "internvl" else load_engine(str(tiny_qwen(backbone)), device="cpu")
    rng = np.random.default_rng(1)
    frames = [[VideoFrame(i, i / 2, rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)) for i in range(n)]
              for n in (5, 2, 7)]
    settings = MemorySettings(mode="window", window=8)
    together = [StreamingSession(chosen, chosen.new_memory(settings)) for _ in frames]
    alone = [StreamingSession(chosen, chosen.new_memory(settings)) for _ in frames]
    for cut in ((0, 3), (3, 7)):  # two arrivals
        push_together([(s, f[cut[0]:cut[1]]) for s, f in zip(together, frames)])
        for s, f in zip(alone, frames):
            s.push(f[cut[0]:cut[1]])
    for a, b in zip(together, alone):
        (index_a, tokens_a), (index_b, tokens_b) = snapshot(a.memory.frames()), snapshot(b.memory.frames())
        assert index_a == index_b and index_a
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(tokens_a, tokens_b))
        assert [f.index for f in a.unpaired] == [f.index for f in b.unpaired]
        assert a.frames_encoded == b.frames_encoded and a.last_frame == b.last_frame
