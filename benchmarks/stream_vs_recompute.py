"""Streaming vs per-question recomputation on OVBench: vision-tower frame encodes and wall time.

    python benchmarks/stream_vs_recompute.py --anno-dir lmms-eval-ovbench/tasks/ovbench/questions \
        [--model PATH] [--videos-per-subset 2]

Planned encodes over the whole question set from the question times alone, then a seeded sample of videos
answered by both protocols on synthetic media as long as the questions need: frames encoded, wall time and
whether the predictions are identical.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from videochat_online.chat import ChatEngine
from videochat_online.eval.ovbench import SUBSETS, load_ovbench
from videochat_online.eval.presets import PRESETS, ProtocolConfig
from videochat_online.eval.benchmarks import BENCHMARKS
from videochat_online.eval.driver import Driver
from videochat_online.eval.protocols import protocol_of
from videochat_online.tools.demo_media import synthetic_ovbench_media
from videochat_online.tools.make_tiny import make_tiny


def planned(tasks, preset: str, fps: float | None, video_fps: float) -> None:
    stream, recompute = (protocol_of(ProtocolConfig(name=name, preset=preset, fps=fps))
                         for name in ("stream", "recompute"))
    print(f"\nplanned frame encodes, preset {preset} at {stream.config.fps:g} fps (video files at {video_fps:g} fps):")
    print(f"{'subset':<8} {'videos':>7} {'questions':>9} {'stream':>10} {'recompute':>11} {'ratio':>6}")
    totals = [0, 0, 0, 0]
    for subset in SUBSETS:
        part = [t for t in tasks if t.subset == subset]
        rate = lambda t: t.folder_fps or video_fps  # noqa: E731
        s = sum(stream.planned_encodes(t, rate(t)) for t in part)
        r = sum(recompute.planned_encodes(t, rate(t)) for t in part)
        n = sum(len(t.questions) for t in part)
        print(f"{subset:<8} {len(part):>7} {n:>9} {s:>10} {r:>11} {r / s:>6.2f}")
        totals = [a + b for a, b in zip(totals, (len(part), n, s, r))]
    print(f"{'all':<8} {totals[0]:>7} {totals[1]:>9} {totals[2]:>10} {totals[3]:>11} {totals[3] / totals[2]:>6.2f}")


def measure(engine: ChatEngine, tasks, protocol: str, preset: str, fps: float | None) -> tuple[list[dict], int, float]:
    driver = Driver(engine, protocol_of(ProtocolConfig(name=protocol, preset=preset, fps=fps, max_new_tokens=8)))
    benchmark = BENCHMARKS.get("ovbench")()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    records = [rec for task in tasks for rec in driver.answer_video(benchmark, task, task.questions)]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return records, driver.frames_encoded, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--anno-dir", required=True)
    parser.add_argument("--model", default=None, help="checkpoint (default: a tiny random one)")
    parser.add_argument("--videos-per-subset", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=1000, help="sample only videos watched at most this long")
    parser.add_argument("--preset", choices=list(PRESETS), default="published")
    parser.add_argument("--fps", type=float, default=None, help="default: the preset's")
    parser.add_argument("--video-fps", type=float, default=30.0, help="frame rate assumed for video files in the plan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: the first GPU, else the CPU")
    args = parser.parse_args()

    tasks = load_ovbench(args.anno_dir)
    planned(tasks, args.preset, args.fps, args.video_fps)

    rng = random.Random(args.seed)
    sample = []
    for subset in SUBSETS:
        pool = sorted((t for t in tasks if t.subset == subset and t.watch_seconds <= args.max_seconds),
                      key=lambda t: t.key)
        sample += rng.sample(pool, min(args.videos_per_subset, len(pool)))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(make_tiny(Path(tmp) / "tiny"))
        roots = synthetic_ovbench_media(sample, Path(tmp) / "media")
        for task in sample:
            task.path = roots[task.subset] / task.video
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        # as the evaluation runs on a GPU: every tower call exactly 8 frames, so batching changes no feature
        engine = ChatEngine.from_pretrained(model, device=device, fixed_batch=8 if device.startswith("cuda") else None)
        measure(engine, sample[:1], "stream", args.preset, args.fps)  # warm-up
        stream, stream_frames, stream_s = measure(engine, sample, "stream", args.preset, args.fps)
        again, again_frames, again_s = measure(engine, sample, "recompute", args.preset, args.fps)
    n = sum(len(t.questions) for t in sample)
    print(f"\nmeasured on {len(sample)} videos, {n} questions ({'tiny random model' if not args.model else args.model}, "
          f"{engine.device}, {torch.get_num_threads()} threads):")
    print(f"{'protocol':<10} {'frames encoded':>15} {'wall s':>8}")
    print(f"{'stream':<10} {stream_frames:>15} {stream_s:>8.2f}")
    print(f"{'recompute':<10} {again_frames:>15} {again_s:>8.2f}")
    print(f"ratio      {again_frames / stream_frames:>15.2f} {again_s / stream_s:>8.2f}")
    same = [a["reply"] for a in stream] == [b["reply"] for b in again]
    print(f"identical predictions: {same}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
