"""The highest frame rate a model keeps up with: frames offered on the wall clock through the live queue (as under
`eval --protocol realtime`), a question every `--ask-every` seconds of stream, and a rate kept up with when no frame
is dropped over `--window` seconds. The rate is doubled from `--start` until a window drops frames, then bisected;
printed are each trial and the highest rate kept up with, with its time to first token (median, p95).

    python benchmarks/max_fps.py [--model PATH] [--memory pyramid] [--device cpu] [--window 10] [--json F]

Any checkpoint (`--model`, a folder or hub id; `--backbone` to choose the adapter) and memory policy (`--memory`);
on a GPU pass `--device cuda`. The frames are the video's (`--video`, default a bundled synthetic-world sample),
decoded once and cycled, so decoding costs nothing here: the figure is the model's. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

from videochat_online.backbones import load_engine
from videochat_online.data.video import VideoFrame, open_video
from videochat_online.memory import POLICIES
from videochat_online.pump import Pending
from videochat_online.quantiles import median_p95
from videochat_online.realtime import Paced
from videochat_online.settings import WAITING_FRAMES
from videochat_online.stream_config import FRAME_BATCH, resolve_memory
from videochat_online.streaming import StreamingSession

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What is happening now?"


class Ask:
    def __init__(self, time: float):
        self.time = time


def trial(engine, memory, images: list, rate: float, window: float, ask_every: float, buffer: int, batch: int,
          max_new_tokens: int) -> dict:
    """`window` seconds of frames offered at `rate`, a question every `ask_every` s: dropped frames and times."""
    session = StreamingSession(engine, engine.new_memory(memory))
    count = max(1, round(rate * window))
    frames = (VideoFrame(k, k / rate, image) for k, image in zip(range(count), itertools.cycle(images)))
    asks = [Ask(ask_every * k) for k in range(1, int(window / ask_every + 1e-9) + 1)]  # up to the window's end
    paced = Paced(rate, speed=1.0, buffer=buffer, batch=batch, duration=window, name=f"{rate:g} fps")
    waiting: list[VideoFrame] = []
    stamps = []

    def flush() -> None:
        session.push(waiting)
        waiting.clear()

    def answer(ask: Ask, before):
        flush()
        timer = paced.timer(ask.time)
        session.ask(QUESTION, max_new_tokens=max_new_tokens, streamer=timer)
        stamps.append(timer.stamp(None))
        return ()

    list(paced.play(frames, Pending(asks), waiting.append, flush, answer))
    ttft = median_p95(s["ttft"] for s in stamps)
    wall = max(s["wall"] for s in stamps) if stamps else None
    return {"offered_fps": rate, "frames": count, "dropped": paced.queue.dropped, "questions": len(stamps),
            "ttft_median_s": None if ttft is None else round(ttft[0], 4),
            "ttft_p95_s": None if ttft is None else round(ttft[1], 4),
            "sustained_fps": None if not wall else round(paced.added / wall, 2)}


def search(run, start: float, most: float, steps: int) -> tuple[dict | None, list[dict]]:
    """Double the rate from `start` until a trial drops frames (or `most`), then bisect `steps` times: the best
    trial without a drop, and every trial in order."""
    trials, best, rate, failed = [], None, start, None
    while rate <= most:
        t = run(rate)
        trials.append(t)
        if t["dropped"]:
            failed = rate
            break
        best, rate = t, rate * 2
    low = best["offered_fps"] if best else 0.0
    for _ in range(steps if failed else 0):
        rate = round((low + failed) / 2, 3)
        t = run(rate)
        trials.append(t)
        if t["dropped"]:
            failed = rate
        else:
            best, low = t, rate
    return best, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "videochat-online-synthetic-tiny"))
    parser.add_argument("--backbone", help="the adapter (default: the one the checkpoint's config names)")
    parser.add_argument("--memory", default=None, choices=POLICIES, help="default: the checkpoint's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--video", default=str(ROOT / "assets" / "samples" / "synth_test_0000.mp4"))
    parser.add_argument("--window", type=float, default=10.0, help="seconds a rate must be kept up with")
    parser.add_argument("--ask-every", type=float, default=2.0, help="stream seconds between two questions")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--buffer", type=int, default=WAITING_FRAMES, help="frames that may wait for the model")
    parser.add_argument("--batch-size", type=int, default=FRAME_BATCH)
    parser.add_argument("--start", type=float, default=1.0, help="the first rate tried (frames/s)")
    parser.add_argument("--most", type=float, default=1024.0, help="the highest rate tried")
    parser.add_argument("--steps", type=int, default=4, help="bisection steps after the first rate that drops")
    parser.add_argument("--json")
    args = parser.parse_args()
    engine = load_engine(args.model, args.backbone, device=args.device)
    memory = resolve_memory({} if args.memory is None else {"mode": args.memory}, engine.config)
    source = open_video(args.video)
    images = [f.image for f in source.sample(source.native_fps)]
    trial(engine, memory, images, 4.0, 1.0, 0.5, args.buffer, args.batch_size, args.max_new_tokens)  # warm-up

    def run(rate: float) -> dict:
        t = trial(engine, memory, images, rate, args.window, args.ask_every, args.buffer, args.batch_size,
                  args.max_new_tokens)
        print(json.dumps(t), flush=True)
        return t

    best, trials = search(run, args.start, args.most, args.steps)
    if best is None:
        print(f"kept up with no rate from {args.start:g} frames/s")
    else:
        print(f"kept up with {best['offered_fps']:g} frames/s over {args.window:g} s (memory {memory.mode}, "
              f"buffer {args.buffer}; {best['sustained_fps']:g} frames/s into memory): time to first token median "
              f"{best['ttft_median_s']:.3f} s, p95 {best['ttft_p95_s']:.3f} s")
    if args.json:
        model = Path(args.model).resolve()
        shown = str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else args.model
        Path(args.json).write_text(json.dumps({
            "model": shown, "memory": memory.mode, "device": args.device, "machine": platform.processor() or
            platform.machine(), "window_s": args.window, "ask_every_s": args.ask_every, "buffer": args.buffer,
            "max_new_tokens": args.max_new_tokens, "max_fps": None if best is None else best["offered_fps"],
            "at_max": best, "trials": trials, "measured": time.strftime("%Y-%m-%d")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
