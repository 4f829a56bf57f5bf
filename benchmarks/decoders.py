"""The video readers on this project's own access patterns, in one run: sequential sampling at 1, 2 and 8 fps,
the sliding-window protocol's reads (a window of native frames before each of 8 asks), on a 1080p and a 4K H.264
clip, a long-GOP H.264 clip and an HEVC clip. Prints seconds per pattern and each reader's time as a ratio to
PyAV's (threaded), and `--json`.

    python benchmarks/decoders.py [--seconds 30] [--json docs/decoders_cpu.json]

Readers: `decord` (whichever distribution provides the module: decord2 or decord), `pyav` (FFmpeg's threads, a jump
to the key frame before a far frame), `pyav-1-thread`; torchcodec where it loads (its PyPI wheels are CUDA builds).
Clips are synthetic (moving gradients and noise, so that every frame differs) and written once to `--cache`.
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time
from pathlib import Path

import numpy as np

from videochat_online.data.video import DecordSource, PyAVSource, open_video
from videochat_online.eval.presets import published_window_frames

CLIPS = {  # name: (width, height, codec, key frame every N frames)
    "1080p-h264": (1920, 1080, "libx264", 30),
    "4k-h264": (3840, 2160, "libx264", 30),
    "1080p-h264-long-gop": (1920, 1080, "libx264", 600),
    "1080p-hevc": (1920, 1080, "libx265", 30),
}
FPS = 30


def write_clip(path: Path, width: int, height: int, codec: str, gop: int, seconds: float) -> None:
    import av

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 6, (height, width, 3), dtype=np.uint8)  # grain, at a bit rate like a camera's
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast", "g": str(gop), "keyint_min": str(gop)} if codec == "libx264" else \
            {"preset": "ultrafast", "x265-params": f"keyint={gop}:min-keyint={gop}:log-level=error"}
        for i in range(int(seconds * FPS)):
            base = (((xs + 8 * i) % 256) // 2 + ((ys + 3 * i) % 256) // 2).astype(np.uint8)[..., None]
            frame = np.concatenate([base, base[:, ::-1], np.roll(base, i, axis=1)], axis=2) ^ np.roll(noise, 4 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def readers() -> dict:
    found = {"pyav": lambda p: PyAVSource(p, threads=True), "pyav-1-thread": lambda p: PyAVSource(p, threads=False)}
    try:
        import decord  # noqa: F401

        found["decord"] = DecordSource
    except ImportError:
        pass
    return found


def versions() -> dict:
    out = {}
    for dist in ("av", "decord2", "decord", "torchcodec"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def patterns(duration: float, native_fps: float, num_frames: int) -> dict:
    asks = [duration * (k + 1) / 9 for k in range(8)]
    return {
        "sample 1 fps": lambda s: sum(1 for _ in s.sample(1)),
        "sample 2 fps": lambda s: sum(1 for _ in s.sample(2)),
        "sample 8 fps": lambda s: sum(1 for _ in s.sample(8)),
        "window reads, 8 asks": lambda s: sum(1 for t in asks for _ in s.read_native(
            published_window_frames(t, native_fps, num_frames, False, 1.0, 8.0, 32))),
    }


def measure(clip: Path, make) -> dict:
    probe = open_video(clip, decoder="pyav")
    seconds = {}
    for name, run in patterns(probe.duration, probe.native_fps, probe.num_frames).items():
        source = make(clip)
        begun = time.perf_counter()
        run(source)
        seconds[name] = round(time.perf_counter() - begun, 3)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each clip's length (the 4K clip: a third)")
    parser.add_argument("--cache", default="/tmp/videochat-decoder-clips")
    parser.add_argument("--json")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    found = readers()
    results = {"versions": versions(), "clips": {}}
    for name, (width, height, codec, gop) in CLIPS.items():
        clip = cache / f"{name}-{args.seconds:g}s.mp4"
        if not clip.exists():
            write_clip(clip, width, height, codec, gop, args.seconds / 3 if width > 1920 else args.seconds)
        rows = {reader: measure(clip, make) for reader, make in found.items()}
        results["clips"][name] = rows
        for pattern in rows["pyav"]:
            line = "  ".join(f"{r} {rows[r][pattern]:.2f}s ({rows[r][pattern] / rows['pyav'][pattern]:.2f}x)"
                             for r in rows)
            print(f"{name:22s} {pattern:22s} {line}", flush=True)
    print(json.dumps(results["versions"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
