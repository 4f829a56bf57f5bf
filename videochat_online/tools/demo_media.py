"""Synthetic media, so that tests and benchmarks run with no data at hand: a red ball crossing a field left to
right, each frame's number written into its pixels, so that every frame differs from its neighbours and can
be told apart after lossy coding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.video import write_mp4


def demo_image(width: int = 640, height: int = 360, ball_x: float = 0.33) -> Image.Image:
    """A sky, a field, a sun and a red ball at `ball_x` (0 left .. 1 right)."""
    image = Image.new("RGB", (width, height), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height * 2 // 3, width, height), fill=(70, 150, 60))
    draw.ellipse((width - 110, 20, width - 30, 100), fill=(250, 220, 60))
    r = height // 10
    x = int(r + ball_x * (width - 2 * r))
    draw.ellipse((x - r, height // 2, x + r, height // 2 + 2 * r), fill=(210, 30, 30))
    return image


def demo_frames(num_frames: int, width: int = 160, height: int = 96) -> list[np.ndarray]:
    """Frames of the demo scene, the ball moving one step a frame; the top-left 16x16 block is grey level
    `(3 * i) % 256` in frame `i` (`frame_number` reads it back)."""
    frames = []
    for i in range(num_frames):
        frame = np.asarray(demo_image(width, height, ball_x=i / max(1, num_frames - 1))).copy()
        frame[:16, :16] = (3 * i) % 256
        frames.append(frame)
    return frames


def frame_number(image: np.ndarray) -> int:
    """The frame number a demo frame carries (modulo 86)."""
    return int(round(float(image[2:14, 2:14].mean()) / 3))


def write_video(path: str | Path, seconds: float = 20.0, fps: float = 10.0, width: int = 160, height: int = 96,
                faststart: bool = False) -> Path:
    """An H.264 mp4 of the demo scene (`faststart` puts the index first, as streamed files do)."""
    return write_mp4(demo_frames(int(round(seconds * fps)), width, height), path, round(fps),
                     {"movflags": "faststart"} if faststart else None)


def write_frame_folder(path: str | Path, num_frames: int, width: int = 160, height: int = 96,
                       pattern: str = "frame{:04d}.jpg", first: int = 1) -> Path:
    """A folder of numbered frames (`frame0001.jpg`, ... as in TAO)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(demo_frames(num_frames, width, height)):
        Image.fromarray(frame).save(path / pattern.format(i + first), quality=95)
    return path


def synthetic_ovbench_media(tasks, out_root: str | Path, video_fps: float = 5.0, width: int = 64,
                            height: int = 48) -> dict[str, Path]:
    """Demo videos (mp4s at `video_fps`) and frame folders (at their own fps) standing in for OVBench's, one per
    task, as long as its last question; returns the subset roots to evaluate with."""
    roots = {}
    for task in tasks:
        root = roots.setdefault(task.subset, Path(out_root) / task.subset)
        seconds = task.watch_seconds + 1.0
        if task.folder_fps is not None:
            write_frame_folder(root / task.video, int(seconds * task.folder_fps), width, height)
        else:
            write_video(root / task.video, seconds, video_fps, width, height)
    return roots


def main(argv: list[str] | None = None) -> int:
    """`python -m videochat_online.tools.demo_media OUT.mp4`: a demo video to try the commands on."""
    from ..errors import InputError
    from ..options import Parser, run_main
    from ..settings import check_positive

    parser = Parser(prog="python -m videochat_online.tools.demo_media",
                    description="Write a video of the demo scene (a red ball crossing a field), or a folder of its "
                                "frames, to try the commands on.")
    parser.add_argument("out", help="an .mp4 file to write, or a folder (with --frames)")
    parser.add_argument("--seconds", type=float, default=20.0, help="its length (default: 20)")
    parser.add_argument("--fps", type=float, default=10.0, help="its frame rate (default: 10)")
    parser.add_argument("--frames", action="store_true", help="a folder of numbered JPEG frames instead")
    args = parser.parse_args(argv)

    def write() -> int:
        check_positive(args.seconds, "--seconds", flag="--max-seconds")
        check_positive(args.fps, "--fps")
        if not Path(args.out).resolve().parent.is_dir():
            raise InputError(f"{args.out}: its folder does not exist")
        if args.frames:
            out = write_frame_folder(args.out, max(1, round(args.seconds * args.fps)))
        else:
            out = write_video(args.out, args.seconds, args.fps)
        print(f"wrote {out}")
        return 0

    return run_main(write)


if __name__ == "__main__":
    raise SystemExit(main())
