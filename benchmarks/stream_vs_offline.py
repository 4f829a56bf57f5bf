"""OVO-Bench and StreamingBench: the vision work of watching each video once (`stream`, `window`) against the
published way (`offline`: every query and probe answered alone from its own clip).

    python benchmarks/stream_vs_offline.py --anno-dir data/benchmarks [--model PATH] [--videos 4] [--fps 1]

1. Planned, from the annotation files alone: video-seconds and frames (at --fps) each protocol decodes and
   encodes over the whole benchmark (proactive polls counted up to ground truth + 4 s, their upper bound).
2. Measured: a seeded sample of videos with all their queries, on synthetic media as long as those queries
   need, answered under each protocol by the model (a tiny random one unless --model is given): frames encoded
   and wall time, and their ratios to `stream`.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import torch

from videochat_online.chat import ChatEngine
from videochat_online.eval.benchmarks import BENCHMARKS
from videochat_online.eval.driver import Driver, union
from videochat_online.eval.presets import ProtocolConfig
from videochat_online.eval.protocols import protocol_of
from videochat_online.tools.demo_media import write_video
from videochat_online.tools.make_tiny import make_tiny

WINDOW = 60.0  # StreamingBench's leaderboard window; the same for OVO-Bench here


def asks(q) -> list[float]:
    """Every time a query may be asked: once, or each poll of a proactive question."""
    if q.first == q.end:
        return [q.end]
    return [q.first + k for k in range(int(math.floor(q.end - q.first + 1e-6)) + 1)]


def plan(tasks, fps: float) -> dict[str, tuple[float, int]]:
    """(video-seconds, frames) each protocol reads over the whole benchmark."""
    frames = lambda a, b: max(0, math.floor(b * fps + 1e-6) - math.ceil(max(0.0, a) * fps - 1e-6) + 1)  # noqa: E731
    out = {"stream": [0.0, 0], "window": [0.0, 0], "offline": [0.0, 0], f"offline {WINDOW:g} s": [0.0, 0]}
    for task in tasks:
        end = max(q.end for q in task.questions)
        out["stream"][0] += end
        out["stream"][1] += frames(0, end)
        for a, b in union([(q.first - WINDOW, q.end) for q in task.questions]):
            out["window"][0] += b - a
            out["window"][1] += frames(a, b)
        for t in (t for q in task.questions for t in asks(q)):
            out["offline"][0] += t
            out["offline"][1] += frames(0, t)
            out[f"offline {WINDOW:g} s"][0] += min(t, WINDOW)
            out[f"offline {WINDOW:g} s"][1] += frames(t - WINDOW, t)
    return {k: (round(v[0]), v[1]) for k, v in out.items()}


def measure(engine, benchmark, tasks, protocol: str, fps: float, window: float | None) -> tuple[int, float, int]:
    driver = Driver(engine, protocol_of(ProtocolConfig(protocol, "streaming", fps, window_seconds=window,
                                                       max_new_tokens=4)))
    start, lines = time.perf_counter(), 0
    for task in tasks:
        lines += sum(1 for _ in driver.answer_video(benchmark, task, task.questions))
    return driver.frames_encoded, time.perf_counter() - start, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--anno-dir", required=True, help="a folder with ovo-bench/ and streamingbench/")
    parser.add_argument("--model", default=None, help="checkpoint (default: a tiny random one)")
    parser.add_argument("--videos", type=int, default=4, help="videos measured per benchmark")
    parser.add_argument("--max-seconds", type=float, default=120, help="sample only videos watched at most this long")
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        engine = ChatEngine.from_pretrained(args.model or str(make_tiny(Path(tmp) / "tiny")))
        for name, folder, subsets in (("ovo-bench", "ovo-bench", None), ("streamingbench", "streamingbench",
                                                                          ("real", "sqa", "proactive_50"))):
            benchmark = BENCHMARKS.get(name)()
            tasks = benchmark.load(Path(args.anno_dir) / folder, {}, subsets or benchmark.subsets)
            print(f"\n{benchmark.title}: {len(tasks)} videos, {sum(len(t.questions) for t in tasks)} queries; "
                  f"planned at {args.fps:g} fps")
            print(f"{'protocol':<14} {'video-seconds':>14} {'frames':>10} {'x stream':>9}")
            planned = plan(tasks, args.fps)
            for protocol, (seconds, frames) in planned.items():
                print(f"{protocol:<14} {seconds:>14} {frames:>10} {frames / planned['stream'][1]:>9.2f}")
            pool = sorted((t for t in tasks if max(q.end for q in t.questions) <= args.max_seconds), key=lambda t: t.video)
            sample = rng.sample(pool, min(args.videos, len(pool)))
            for k, task in enumerate(sample):
                task.path = Path(tmp) / name / f"{k}.mp4"
                task.path.parent.mkdir(parents=True, exist_ok=True)
                write_video(task.path, max(q.end for q in task.questions) + 2, fps=4, width=64, height=48)
            queries = sum(len(t.questions) for t in sample)
            print(f"measured on {len(sample)} videos, {queries} queries ({args.model or 'tiny random model'}, "
                  f"{engine.device}, {torch.get_num_threads()} threads):")
            print(f"{'protocol':<14} {'frames encoded':>15} {'wall s':>8} {'x stream':>9}")
            base = None
            for protocol, window in (("stream", None), ("window", WINDOW), ("offline", None)):
                encoded, wall, _ = measure(engine, benchmark, sample, protocol, args.fps, window)
                base = base or (encoded, wall)
                print(f"{protocol:<14} {encoded:>15} {wall:>8.2f} {encoded / base[0]:>5.2f} / {wall / base[1]:.2f}")


if __name__ == "__main__":
    main()
