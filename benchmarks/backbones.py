"""Each backbone's streaming speed through the one interface the streaming core calls: ingest, time to first token
with a full memory, decode, and stream against per-question recomputation.

    python benchmarks/backbones.py [--model PATH_OR_HUB_ID ...] [--frames 64] [--every 8] [--json out.json]

Without `--model` it builds the tiny random checkpoint of each family (InternVL-style, Qwen3-VL, Qwen2.5-VL) and
runs them in fp32 on the CPU, so the stream/recompute ratios can be read side by side; on a GPU give real
checkpoints (bf16). Memory is the pyramid (the default) in every case. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from videochat_online.backbones import load_engine
from videochat_online.data.video import VideoFrame
from videochat_online.memory import MemorySettings
from videochat_online.streaming import StreamingSession
from videochat_online.tools.make_tiny import make_tiny
from videochat_online.backbones.tiny import make_tiny_qwen

QUESTION = "What is the person doing now?"


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def clock(fn) -> tuple[float, object]:
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out


def video(n: int) -> list[VideoFrame]:
    rng = np.random.default_rng(0)
    return [VideoFrame(i, i / 2, rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)) for i in range(n)]


def measure(engine, frames: list[VideoFrame], every: int) -> dict:
    settings = MemorySettings()
    session = StreamingSession(engine, engine.new_memory(settings))
    session.push(frames[:8])  # warm-up
    session.reset()
    ingest, _ = clock(lambda: session.push_all(frames, 8))
    session.ask(QUESTION, max_new_tokens=1)  # memory full, its prefix cached
    ttft = min(clock(lambda: session.ask(QUESTION + " ?" * k, max_new_tokens=1))[0] for k in range(1, 6))
    cold = StreamingSession(engine, engine.new_memory(settings), reuse_kv=False)
    cold.push_all(frames, 8)
    ttft_cold = min(clock(lambda: cold.ask(QUESTION, max_new_tokens=1))[0] for _ in range(5))
    long_time, reply = clock(lambda: cold.ask(QUESTION, max_new_tokens=33))
    decoded = max(1, len(reply.token_ids) - 1)

    def stream_run():
        s = StreamingSession(engine, engine.new_memory(settings))
        for end in range(every, len(frames) + 1, every):
            s.push(frames[end - every:end])
            s.ask(QUESTION, max_new_tokens=1)

    def recompute_run():
        for end in range(every, len(frames) + 1, every):
            s = StreamingSession(engine, engine.new_memory(settings), reuse_kv=False)
            s.push_all(frames[:end], 8)
            s.ask(QUESTION, max_new_tokens=1)

    stream, _ = clock(stream_run)
    recompute, _ = clock(recompute_run)
    return {"ingest_frames_per_s": len(frames) / ingest, "ttft_full_memory_ms": 1000 * ttft,
            "ttft_no_cache_ms": 1000 * ttft_cold, "decode_ms_per_token": 1000 * max(0.0, long_time - ttft_cold) / decoded,
            "memory_tokens": sum(f.num_tokens for f in session.shown()), "stream_s": stream, "recompute_s": recompute,
            "recompute_over_stream": recompute / stream}


def tiny_models(folder: Path) -> list[str]:
    """The tiny random checkpoint of each family, written under `folder`."""
    return [str(make_tiny(folder / "internvl")), str(make_tiny_qwen(folder / "q3", "qwen3-vl")),
            str(make_tiny_qwen(folder / "q25", "qwen2.5-vl"))]


def measure_all(models: list[str], frames: list[VideoFrame], every: int) -> dict:
    rows = {}
    for model in models:
        engine = load_engine(model)
        rows[f"{engine.name} ({Path(model).name})"] = measure(engine, frames, every)
    return rows


def show(rows: dict) -> None:
    print(f"{'backbone':<34} {'ingest f/s':>10} {'TTFT ms':>8} {'no cache':>9} {'decode ms':>10} {'tokens':>7} "
          f"{'recompute/stream':>17}")
    for name, r in rows.items():
        print(f"{name:<34} {r['ingest_frames_per_s']:>10.1f} {r['ttft_full_memory_ms']:>8.1f} "
              f"{r['ttft_no_cache_ms']:>9.1f} {r['decode_ms_per_token']:>10.2f} {r['memory_tokens']:>7} "
              f"{r['recompute_over_stream']:>16.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="a checkpoint or hub id (repeat; default: the tiny ones)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--every", type=int, default=8, help="frames between questions")
    parser.add_argument("--json", help="write the figures to this file too")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure_all(args.model or tiny_models(Path(tmp)), video(args.frames), args.every)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.frames} frames of 360x640, a question every {args.every}; {device}")
    show(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "frames": args.frames, "every": args.every,
                                               "backbones": rows}, indent=2))


if __name__ == "__main__":
    main()
