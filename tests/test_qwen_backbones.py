"""Qwen3-VL and Qwen2.5-VL as streaming backbones, checked against transformers itself on tiny random models.

The reference side is built from what the published code does, not by this project's writer: the video
processor's own call lays out the pixels, the prompt is the published processor's expansion of the chat template's
`<|vision_start|><|video_pad|><|vision_end|>` (Qwen3-VL: the whole block replaced by `<{t:.1f} seconds>` + one
vision block per temporal patch, t the mean of the patch's frame times; Qwen2.5-VL: the pad repeated for the whole
video), and the logits come from the model's own forward over pixel values, which computes its own 3-D positions.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from videochat_online.backbones import load_engine
from videochat_online.data.video import VideoFrame
from videochat_online.memory import MemorySettings
from videochat_online.streaming import StreamingSession

FPS = 2.0
QUESTION = "what is the person doing?"
# fp32 throughout; the two sides differ only in the order of equivalent operations (normalising as
# x/255 - mean over std against transformers' fused (x - 255 mean) / (255 std); each patch through the tower
# on its own against the whole video). Here they agree to within 1e-7; 1e-5 leaves room for other CPU kernels,
# and is far below what a wrong position id or patch layout moves (1e-4 and more: one temporal id off by one).
ATOL = 1e-5


def frames(n: int, seed: int = 0) -> list[VideoFrame]:
    rng = np.random.default_rng(seed)
    return [VideoFrame(i, i / FPS, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for i in range(n)]


def reference_logits(engine, video: list[VideoFrame], history=(), system=None) -> tuple[str, torch.Tensor]:
    """The prompt and next-token logits transformers' own video path gives for these frames."""
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    model, tokenizer = engine.model, engine.tokenizer
    settings = json.loads((Path(model.config._name_or_path) / "video_preprocessor_config.json").read_text())
    mean, std = (torch.tensor(settings[k]).view(1, 3, 1, 1) for k in ("image_mean", "image_std"))
    pixels = torch.stack([torch.from_numpy(f.image).permute(2, 0, 1) for f in video]).float()  # [T, 3, H, W]
    pixels = (pixels - mean * 255) / (std * 255)  # the processors' fused rescale and normalise
    # Qwen2VLVideoProcessor (Qwen2.5-VL's) imports torchvision, absent here; its patch layout is the same code.
    processor = Qwen3VLVideoProcessor(patch_size=8, temporal_patch_size=2, merge_size=2)
    out = processor(videos=[pixels], do_resize=False, do_rescale=False, do_normalize=False, do_convert_rgb=False,
                    do_sample_frames=False, cap_pixels_per_frame=False, return_tensors="pt")
    grid = out["video_grid_thw"]  # [[T/2, 8, 8]]
    per_patch = int(grid[0, 1] * grid[0, 2]) // 4
    patches = int(grid[0, 0])
    if engine.name == "qwen3-vl":
        times = [i / FPS for i in range(len(video))] + [(len(video) - 1) / FPS] * (len(video) % 2)
        stamps = [(times[2 * k] + times[2 * k + 1]) / 2 for k in range(patches)]
        expanded = "".join(f"<{t:.1f} seconds><|vision_start|>{'<|video_pad|>' * per_patch}<|vision_end|>"
                           for t in stamps)
        extra = {}
    else:
        expanded = "<|vision_start|>" + "<|video_pad|>" * (per_patch * patches) + "<|vision_end|>"
        extra = {"second_per_grid_ts": torch.tensor([2 / FPS])}
    messages = ([{"role": "system", "content": system}] if system else []) + [
        m for q, a in history for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    messages.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    text = text.replace("<|vision_start|><|video_pad|><|vision_end|>", expanded)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    types = (ids == tokenizer.convert_tokens_to_ids("<|video_pad|>")).int() * 2
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values_videos=out["pixel_values_videos"], video_grid_thw=grid,
                       mm_token_type_ids=types, **extra).logits[0, -1]
    return text, logits


def streamed_logits(session: StreamingSession) -> tuple[str, torch.Tensor]:
    prompt, visual = session.prompt_for(QUESTION)
    return prompt, session.engine.next_token_logits(prompt, visual, session.prefix_cache)


@pytest.mark.parametrize("backbone", ["qwen3-vl", "qwen2.5-vl"])
def test_qwen_streamed_logits_equal_transformers_own_forward(tiny_qwen, backbone):
    engine = load_engine(str(tiny_qwen(backbone)))
    video = frames(8)
    session = StreamingSession(engine, engine.new_memory(MemorySettings(mode="window", window=32)))
    for k in range(0, 8, 3):  # frames arrive in uneven batches: patches are encoded when their second frame comes
        session.push(video[k:k + 3])
    assert session.frames_encoded == 8 and len(session.memory.frames()) == 4 and not session.unpaired
    prompt, logits = streamed_logits(session)
    ref_prompt, ref = reference_logits(engine, video)
    assert prompt == ref_prompt
    assert torch.allclose(logits, ref, atol=ATOL), float((logits - ref).abs().max())


@pytest.mark.parametrize("backbone", ["qwen3-vl", "qwen2.5-vl"])
def test_qwen_logits_after_a_prior_question_reuse_the_prefix_and_still_equal(tiny_qwen, backbone):
    engine = load_engine(str(tiny_qwen(backbone)))
    video = frames(9, seed=1)
    session = StreamingSession(engine, engine.new_memory(MemorySettings(mode="window", window=32)))
    session.push(video[:4])
    first = session.ask("is anyone there?", remember=True, max_new_tokens=4)
    session.push(video[4:])  # 9 frames: the last waits for its pair, shown as the processor pads it
    assert len(session.unpaired) == 1
    prompt, logits = streamed_logits(session)
    assert session.prefix_cache.reused > 0  # the system message and the earlier turn were not recomputed
    ref_prompt, ref = reference_logits(engine, video, history=[("is anyone there?", first.text)])
    assert prompt == ref_prompt
    assert torch.allclose(logits, ref, atol=ATOL), float((logits - ref).abs().max())


@pytest.mark.parametrize("backbone", ["qwen3-vl", "qwen2.5-vl"])
@pytest.mark.parametrize("mode", ["pyramid", "window", "uniform", "recent"])
def test_qwen_stream_and_recompute_give_the_same_replies_under_every_policy(tiny_qwen, backbone, mode):
    engine = load_engine(str(tiny_qwen(backbone)))
    settings = MemorySettings(mode=mode, window=4, uniform_frames=3, recent_frames=4, capacities=(1, 1, 2),
                              intervals=(4, 2, 1))
    cached = StreamingSession(engine, engine.new_memory(settings))
    fresh = StreamingSession(engine, engine.new_memory(settings), reuse_kv=False)
    video = frames(15, seed=2)
    for k in range(0, 15, 5):
        for session in (cached, fresh):
            session.push(video[k:k + 5])
        generated = [s.ask(QUESTION, max_new_tokens=6) for s in (cached, fresh)]
        chosen = [s.ask(QUESTION, choices=["yes", "no", "a dog"]) for s in (cached, fresh)]
        assert generated[0].token_ids == generated[1].token_ids
        assert chosen[0].text == chosen[1].text
    held = cached.memory.frames()
    assert held and all(f.grid.shape[0] == engine.model.config.text_config.hidden_size * (
        2 if backbone == "qwen3-vl" else 1) for f in held)  # Qwen3-VL: DeepStack channels ride along
    if mode == "recent":
        assert [f.index for f in held] == [10, 12]  # the last 4 frames: two patches
