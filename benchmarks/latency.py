"""Streaming speed: pre-processing, ingest, memory update, time to first token, decode, stream vs recompute.

    python benchmarks/latency.py [--size 4b|tiny] [--json out.json] [--frames 64] [--decode-tokens 64] [--backbone tiny]

`--size 4b` (the default on a GPU) is the VideoChat-Online-4B architecture with random weights in bf16, `tiny`
(the default on the CPU) the test model in fp32; frames are 360x640. Each figure is printed beside what plain
torch/transformers reach on the same run and, on a known GPU, the hardware limit, and the projected time of a
full OVBench streaming run follows. Nothing here is asserted; docs/speed.md's table is made from its output.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from videochat_online.chat import ChatEngine
from videochat_online.conversation import IMG_CONTEXT
from videochat_online.data.image import frames_to_pixel_values, frames_to_pixel_values_on
from videochat_online.data.video import VideoFrame
from videochat_online.model import VideoChatOnlineModel
from videochat_online.memory import MemorySettings
from videochat_online.streaming import StreamingSession
from videochat_online.tools.make_tiny import published_4b_config, tiny_config
from videochat_online.model.tiny_tokenizer import train_tokenizer

# Dense bf16 tensor throughput and memory bandwidth of known GPUs (vendor figures).
GPUS = {"H100": (989e12, 3.35e12), "H200": (989e12, 4.8e12), "A100": (312e12, 2.0e12)}
OVBENCH_QUESTIONS = 7005
OVBENCH_STREAM_FRAMES = 60 * 3600 * 8  # ~60 h of video watched once (OVBench README), at 8 fps


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeat: int = 3) -> float:
    """Best wall time of `repeat` runs of fn(), seconds (one warm-up run first)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def build_engine(size: str, device: torch.device) -> ChatEngine:
    tokenizer = train_tokenizer()
    config = published_4b_config(tokenizer) if size == "4b" else tiny_config("phi3", tokenizer)
    config.image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = VideoChatOnlineModel(config).to(dtype)
    return ChatEngine(model, tokenizer)


def frames(n: int, seed: int = 0) -> list[VideoFrame]:
    rng = np.random.default_rng(seed)
    return [VideoFrame(i, float(i), rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)) for i in range(n)]


def vision_flops(engine: ChatEngine) -> float:
    """FLOPs of one frame through the vision tower: 2 x parameters x tokens + attention."""
    v = engine.config.vision_config
    tokens = (v.image_size // v.patch_size) ** 2 + 1
    params = sum(p.numel() for p in engine.model.vision_model.parameters())
    return 2 * params * tokens + 4 * v.num_hidden_layers * tokens ** 2 * v.hidden_size


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["4b", "tiny"], default="4b" if cuda else "tiny")
    parser.add_argument("--frames", type=int, default=64, help="frames pushed in the ingest figures")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--compile", default="reduce-overhead" if cuda else None,
                        help="also time ingest with the tower under torch.compile in this mode (default on a GPU: "
                             "reduce-overhead, i.e. CUDA graphs; 'none' skips it)")
    parser.add_argument("--backbone", action="append", default=[], metavar="PATH_OR_HUB_ID",
                        help="also measure this checkpoint of any backbone (Qwen3-VL, Qwen2.5-VL, ...) through the "
                             "streaming interface, as benchmarks/backbones.py does; 'tiny' for the tiny ones of each "
                             "family (repeatable)")
    args = parser.parse_args()
    args.compile = None if args.compile in (None, "none") else args.compile
    device = torch.device("cuda" if cuda else "cpu")
    engine = build_engine(args.size, device)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    limits = next((v for k, v in GPUS.items() if k in name), None)
    results: dict[str, dict] = {}

    def report(key: str, value: float, unit: str, plain: float | None = None, limit: float | None = None):
        results[key] = {"value": value, "unit": unit, "plain": plain, "limit": limit}
        show = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
        print(f"{key:<52} {show(value):>9} {unit:<9} plain {show(plain):>8}   limit {show(limit):>8}")

    print(f"{args.size} model, {engine.model.dtype}, {name}")
    settings = MemorySettings()
    video = frames(args.frames)
    images = [f.image for f in video[:16]]
    size = engine.config.tile_size
    pil = timed(lambda: frames_to_pixel_values(images, size)) / len(images)
    on_device = timed(lambda: frames_to_pixel_values_on(images, size, device)) / len(images)
    report("pre-processing, PIL on the CPU (ms/frame)", pil * 1e3, "ms")
    report(f"pre-processing, on {device.type} (ms/frame)", on_device * 1e3, "ms")

    pixels = engine.pixel_values(images)  # [16, 3, S, S]
    with torch.inference_mode():
        tower_1 = timed(lambda: [engine.model.encode_frames(pixels[i:i + 1]) for i in range(16)]) / 16
        tower_16 = timed(lambda: engine.model.encode_frames(pixels)) / 16
    limit_fps = limits[0] / vision_flops(engine) if limits else None

    def ingest(batch: int, through: ChatEngine = engine) -> float:
        session = StreamingSession(through, settings.build(engine.config.grid_size))
        sync()
        start = time.perf_counter()
        for i in range(0, len(video), batch):
            session.push(video[i:i + batch])
        sync()
        return len(video) / (time.perf_counter() - start)

    ingest(16)  # warm-up
    report("ingest, frame by frame (frames/s)", ingest(1), "frames/s", 1 / tower_1, limit_fps)
    report("ingest, batches of 16 (frames/s)", ingest(16), "frames/s", 1 / tower_16, limit_fps)
    if args.compile:  # the tower under torch.compile, every call exactly 16 frames (one graph)
        compiled = ChatEngine(engine.model, engine.tokenizer, fixed_batch=16, compile_vision=args.compile)
        ingest(16, compiled)  # compiles
        report(f"ingest, batches of 16, tower compiled ({args.compile}) (frames/s)", ingest(16, compiled),
               "frames/s", 1 / tower_16, limit_fps)

    memory = settings.build(engine.config.grid_size)
    grids = engine.encode_frames(images)
    start = time.perf_counter()
    for i in range(256):
        memory.add(grids[i % len(grids)], i, float(i))
    sync()
    report("memory-bank update (ms/frame)", (time.perf_counter() - start) / 256 * 1e3, "ms")

    session = StreamingSession(engine, settings.build(engine.config.grid_size))
    for i in range(0, 32, 16):
        session.push(video[i:i + 16])  # 32 frames: every level full
    question = "Describe what happened in the video so far, step by step, and what will happen next. " * 5
    prompt, tokens = session.prompt_for(question)
    held = tokens.shape[0]
    text_tokens = len(engine.tokenizer(prompt).input_ids) - held
    ttft = timed(lambda: engine.generate(prompt, tokens, max_new_tokens=1))
    ids = engine.tokenizer(prompt, return_tensors="pt").input_ids.to(device)
    with torch.inference_mode():
        embeds = engine.model.embed_prompt(ids, tokens)
        plain_ttft = timed(lambda: engine.model.language_model(inputs_embeds=embeds).logits[:, -1].argmax(-1))
    report(f"time to first token ({held} visual + {text_tokens} text) (ms)", ttft * 1e3, "ms", plain_ttft * 1e3)
    again = StreamingSession(engine, settings.build(engine.config.grid_size))
    again.push(video[:32])
    again.ask(question, max_new_tokens=1)
    reused = timed(lambda: again.ask("And what happens next?", max_new_tokens=1))
    report("time to first token, next question, KV prefix reused (ms)", reused * 1e3, "ms", plain_ttft * 1e3)
    n = args.decode_tokens
    eos_free = dict(min_new_tokens=n, max_new_tokens=n)
    dynamic = (timed(lambda: engine.generate(prompt, tokens, **eos_free), repeat=2) - ttft) / (n - 1)
    weights = sum(p.numel() * p.element_size() for p in engine.model.language_model.parameters())
    try:
        static = (timed(lambda: engine.generate(prompt, tokens, cache_implementation="static", **eos_free),
                        repeat=2) - ttft) / (n - 1)
    except (RuntimeError, ValueError, TypeError) as err:  # a transformers build without it for this model
        print(f"static cache unavailable: {str(err).splitlines()[0]}")
        static = None
    limit_ms = weights / limits[1] * 1e3 if limits else None
    report("decode, dynamic cache (ms/token)", dynamic * 1e3, "ms", None, limit_ms)
    if static is not None:
        report("decode, static cache (ms/token)", static * 1e3, "ms", None, limit_ms)
    # the project's path: a session whose KV prefix lives in a static cache (decoding compiled on a GPU)
    held_static = StreamingSession(engine, settings.build(engine.config.grid_size), static_kv=True)
    held_static.push(video[:32])
    held_static.ask(question, max_new_tokens=1)
    first = timed(lambda: held_static.ask("And what happens next?", max_new_tokens=1))
    report("time to first token, next question, static KV prefix (ms)", first * 1e3, "ms", plain_ttft * 1e3)
    whole = timed(lambda: held_static.ask("And what happens next?", **eos_free), repeat=2)
    session_static = (whole - first) / (n - 1)
    report("decode, session with static KV prefix (ms/token)", session_static * 1e3, "ms",
           static * 1e3 if static is not None else None, limit_ms)

    ingest_fps = results["ingest, batches of 16 (frames/s)"]["value"]
    answer_s = min(reused, first) + 8 * min(dynamic, session_static)
    projected = OVBENCH_STREAM_FRAMES / ingest_fps + OVBENCH_QUESTIONS * answer_s
    report("projected OVBench streaming run (h per device)", projected / 3600, "h")
    per_backbone = backbone_figures(args.backbone, args.frames) if args.backbone else {}
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "size": args.size, "dtype": str(engine.model.dtype),
                                               "date": time.strftime("%Y-%m-%d"), "figures": results,
                                               "backbones": per_backbone}, indent=2))


def backbone_figures(models: list[str], frames: int) -> dict:
    """benchmarks/backbones.py's figures for each model ('tiny': the tiny checkpoint of every family), printed."""
    import backbones  # benchmarks/backbones.py, beside this file

    with tempfile.TemporaryDirectory() as tmp:
        paths = [p for m in models for p in (backbones.tiny_models(Path(tmp)) if m == "tiny" else [m])]
        rows = backbones.measure_all(paths, backbones.video(frames), every=8)
    backbones.show(rows)
    return rows


if __name__ == "__main__":
    main()
