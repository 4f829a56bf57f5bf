"""The fast paths keep the answers: pre-processing on the device, fixed vision batches, the reader thread,
streamed replies. (Speed itself is measured by benchmarks/latency.py, never asserted here.)"""

import numpy as np
import pytest
import torch

from videochat_online.chat import ChatEngine
from videochat_online.data.image import frames_to_pixel_values, frames_to_pixel_values_on
from videochat_online.data.video import VideoFrame, prefetch
from videochat_online.model.modeling import PrefixCache
from videochat_online.memory import MemorySettings
from videochat_online.streaming import StreamingSession
from videochat_online.tools.demo_media import demo_frames


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")


@pytest.mark.parametrize("shape", [(360, 640), (96, 160), (224, 224), (100, 150)])
def test_device_preprocessing_agrees_with_pil_to_one_level(shape):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(2)]
    frames += [np.asarray(f) for f in demo_frames(2, shape[1], shape[0])]
    pil = frames_to_pixel_values(frames, 224)
    ours = frames_to_pixel_values_on(frames, 224, "cpu")
    assert ours.shape == pil.shape == (4, 3, 224, 224)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    levels = ((ours - pil) * std * 255).abs()  # differences in uint8 levels
    assert levels.max() <= 1.0 + 1e-3 and levels.mean() < 1e-3


def test_a_compiled_tower_gives_the_eager_features_with_one_graph(tiny_dir):
    from torch._dynamo.utils import counters

    eager = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu")
    compiled = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu", fixed_batch=4, compile_vision="default")
    frames = [np.asarray(f) for f in demo_frames(7, 160, 96)]
    counters.clear()
    first = compiled.encode_frames(frames[:3])  # one call of 4: compiles
    second = compiled.encode_frames(frames[3:])  # one call of 4: the same graph
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    reference = eager.encode_frames(frames)
    assert torch.allclose(torch.cat([first, second]), reference, atol=1e-5, rtol=1e-4)


def test_fixed_batches_make_features_independent_of_batching(tiny_dir):
    engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu", fixed_batch=4)
    frames = [np.asarray(f) for f in demo_frames(7, 160, 96)]
    together = engine.encode_frames(frames)  # two calls of 4 (the second padded)
    one_by_one = torch.cat([engine.encode_frames([f]) for f in frames])  # seven calls of 4
    assert together.shape[0] == 7 and torch.equal(together, one_by_one)


def test_device_preprocessing_feeds_the_same_memory(tiny_dir):
    frames = [VideoFrame(i, i * 0.5, np.asarray(f)) for i, f in enumerate(demo_frames(6, 160, 96))]
    held = {}
    for preprocess in ("pil", "device"):
        engine = ChatEngine.from_pretrained(str(tiny_dir()), device="cpu", preprocess=preprocess)
        session = StreamingSession(engine, MemorySettings(capacities=(1, 1, 2)).build(engine.config.grid_size))
        session.push(frames)
        held[preprocess] = torch.cat([f.tokens for f in session.held_frames()])
    assert torch.allclose(held["pil"], held["device"], atol=0.05, rtol=0.05)


def test_prefetch_keeps_order_raises_where_the_reader_failed_and_stops_early():
    assert list(prefetch(range(50), depth=3)) == list(range(50))

    def broken():
        yield from range(5)
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch(broken(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    pulled = []

    def counting():
        for i in range(10_000):
            pulled.append(i)
            yield i

    stream = prefetch(counting(), depth=4)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert len(pulled) <= 3 + 4 + 2  # the reader stopped soon after


def test_a_streamed_reply_ends_as_the_whole_reply(engine):
    from videochat_online.conversation import build_prompt

    # the tiny random model's text is noise, but the same noise both ways
    text = build_prompt(engine.template, engine.system_message, [], [], "What is in the picture?")
    whole = engine.generate(text, None, max_new_tokens=12).text
    pieces = list(engine.generate_stream(text, None, max_new_tokens=12))
    assert len(pieces) > 1 and pieces[-1] == whole


@pytest.mark.parametrize("static_kv", [False, True])
def test_reusing_the_kv_prefix_gives_the_same_replies_and_stays_bounded(engine, static_kv):
    frames = [VideoFrame(i, float(i), np.asarray(f)) for i, f in enumerate(demo_frames(24, 160, 96))]
    settings = MemorySettings(capacities=(1, 1, 4))
    reused = StreamingSession(engine, settings.build(engine.config.grid_size), reuse_kv=True, static_kv=static_kv)
    fresh = StreamingSession(engine, settings.build(engine.config.grid_size), reuse_kv=False)
    questions = ["Where is the ball?", "What colour is the sun?", "Where is the ball?"]
    shared, longest = [], 0
    for start, stop in ((0, 10), (10, 11), (11, 24)):
        for session in (reused, fresh):
            session.push(frames[start:stop])
        for q in questions:
            a, b = reused.ask(q, max_new_tokens=6), fresh.ask(q, max_new_tokens=6)
            assert a.token_ids == b.token_ids, (q, start)
            shared.append(reused.prefix_cache.reused)
            prompt_length = reused.prefix_cache.embeds.shape[1]
            assert reused.prefix_cache.cache.get_seq_length() <= prompt_length + 6  # one prompt and reply
            if static_kv:  # preallocated to the prompt and the reply's room, in whole blocks
                assert type(reused.prefix_cache.cache).__name__ == "StaticCache"
                longest = max(longest, prompt_length + 6)
                capacity = reused.prefix_cache.capacity
                assert capacity % PrefixCache.STATIC_BLOCK == 0 and longest <= capacity < longest + PrefixCache.STATIC_BLOCK
    assert shared[0] == 0 and all(n > 0 for n in shared[1:])  # the system message at least, after the first
    assert shared[1] > shared[3]  # same memory: all but the question; after new frames: up to the first change
