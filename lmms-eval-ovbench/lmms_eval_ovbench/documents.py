"""What every task folder's `utils.py` shares: the video root from an environment variable, frames spread over a
question's clip for models that take frames, and a reply as the benchmark's prediction-line writers take it."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

from videochat_online.data.video import open_video
from videochat_online.eval.annotations import OVBenchError
from videochat_online.eval.driver import Answer
from videochat_online.eval.presets import uniform_times

from . import FAILED_REPLY_PREFIX


def root_of(variable: str, what: str) -> Path:
    """The folder an environment variable names, holding `what`."""
    value = os.environ.get(variable)
    if not value:
        raise OVBenchError(f"{variable} is not set: point it at the folder holding {what}")
    if not Path(value).is_dir():
        raise OVBenchError(f"{variable}={value}: no such directory")
    return Path(value)


def frames(path: Path, start: float, end: float, kwargs: dict, folder_fps: float | None = None) -> list:
    """`num_frames` (default 16) images spread over [start, end], end points included as the published readers
    take them (the frame at the question's moment is shown), never a frame after `end`."""
    source = open_video(path, folder_fps=folder_fps)
    times = uniform_times(start, end, int(kwargs.get("num_frames", 16)), source.native_fps, include_end=True)
    return [Image.fromarray(frame.image) for frame in source.frames_at(times)]


def answered(reply: str) -> tuple[Answer | None, bool]:
    """(an Answer standing for the reply, or None when the model could not answer; whether it failed)."""
    failed = reply.startswith(FAILED_REPLY_PREFIX)
    return (None if failed else Answer(SimpleNamespace(text=reply, prompt=""), [], 0.0)), failed
