"""Video sources, decoded lazily: frames are read as they are needed, never the whole video at once.

    source = open_video("clip.mp4")                     # PyAV (FFmpeg), or decoder="decord"
    source = open_video("frames/", folder_fps=30)        # a folder of images, sorted by name
    for frame in source.sample(fps=2, start=0, end=60):  # VideoFrame(index k, timestamp start + k / fps, image)
        ...                                              # the native frame on screen then, floor(t * native_fps)
"""

from __future__ import annotations

import itertools
import math
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import InputError
from ..settings import DECODERS
from .image import load_image

T = TypeVar("T")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DECODE_STALL_SECONDS = 60.0  # a decoder that gives no frame for this long is abandoned (that video fails)
MAX_FRAME_SIDE = 1920  # frames with a longer side are decoded downscaled to it (the model sees 448 px at most)
_EPS = 1e-6


def decode_size(width: int, height: int, most: int = MAX_FRAME_SIDE) -> tuple[int, int]:
    """The size a width x height frame is decoded at: itself, or scaled (aspect kept, even sides) to fit `most`."""
    if max(width, height) <= most:
        return width, height
    scale = most / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


@dataclass
class VideoFrame:
    index: int  # place in the sampled stream, from 0
    timestamp: float  # seconds from the start of the video
    image: np.ndarray  # [H, W, 3] uint8 RGB
    arrived: float | None = None  # live sources: when the frame arrived (time.monotonic()), for latency


def sample_times(fps: float, start: float, end: float | None, duration: float | None) -> Iterator[float]:
    """t_k = start + k / fps, up to `end` and before `duration` (either may be unknown)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    k = 0
    while True:
        t = start + k / fps
        if (end is not None and t > end + _EPS) or (duration is not None and t >= duration - _EPS):
            return
        yield t
        k += 1


def native_index(t: float, native_fps: float) -> int:
    return int(math.floor(t * native_fps + _EPS))


class VideoSource:
    """A video: `sample()` yields its frames lazily at a chosen rate."""

    path: Path
    native_fps: float
    num_frames: int | None
    is_folder: bool = False  # a folder of frames (the published reader steps through these otherwise)

    @property
    def duration(self) -> float | None:
        return None if self.num_frames is None else self.num_frames / self.native_fps

    def sample(self, fps: float, start: float = 0.0, end: float | None = None) -> Iterator[VideoFrame]:
        """Frames at `fps` over [start, end] (the whole video by default); a rate above the video's own is capped at
        it, so that every frame is taken once, never twice."""
        if start < 0 or (end is not None and end < start):
            raise InputError(f"{self.path}: bad clip [{start}, {end}]")
        fps = min(fps, self.native_fps)
        wanted = ((k, t, native_index(t, self.native_fps))
                  for k, t in enumerate(sample_times(fps, start, end, self.duration)))
        yield from self._read(wanted)

    def sample_every(self, step: int, start: float = 0.0, end: float | None = None) -> Iterator[VideoFrame]:
        """Every `step`-th native frame, from the first at or after `start` to the last at or before `end`: sample
        `k` is native frame `j = first + k * step` at its own time `j / native_fps` (the published reader's way)."""
        if step < 1 or start < 0 or (end is not None and end < start):
            raise InputError(f"{self.path}: bad frame step {step} or clip [{start}, {end}]")
        first = math.ceil(start * self.native_fps - _EPS)
        last = None if end is None else native_index(end, self.native_fps)
        if self.num_frames is not None:
            last = self.num_frames - 1 if last is None else min(last, self.num_frames - 1)
        js = itertools.count(first, step) if last is None else range(first, last + 1, step)
        yield from self.read_native(js)

    def read_native(self, indices: Iterable[int]) -> Iterator[VideoFrame]:
        """Native frames by number (ascending), indexed 0, 1, ... in that order, stamped `j / native_fps`."""
        yield from self._read((k, j / self.native_fps, j) for k, j in enumerate(indices))

    def frames_at(self, times: list[float]) -> Iterator[VideoFrame]:
        """The frames on screen at the given times (ascending), indexed 0, 1, ... in that order."""
        if any(b < a for a, b in zip(times, times[1:])) or (times and times[0] < 0):
            raise ValueError(f"frame times must be ascending and >= 0, got {times}")
        last = None if self.num_frames is None else self.num_frames - 1
        yield from self._read((k, t, native_index(t, self.native_fps) if last is None
                               else min(native_index(t, self.native_fps), last)) for k, t in enumerate(times))

    def _read(self, wanted: Iterator[tuple[int, float, int]]) -> Iterator[VideoFrame]:
        """Decode the native frames `wanted` names, (sample index, time, native index), in order."""
        raise NotImplementedError


class Timeline(VideoSource):
    """A video of a known rate and length (None: unbounded) that decodes nothing: its frames' images are None.
    What a selection of frames would read, counted without the video (an evaluation's planned work)."""

    def __init__(self, native_fps: float, num_frames: int | None = None, is_folder: bool = False):
        self.path, self.native_fps, self.num_frames, self.is_folder = Path("<timeline>"), native_fps, num_frames, is_folder

    def _read(self, wanted):
        return (VideoFrame(k, t, None) for k, t, _ in wanted)


class FrameFolderSource(VideoSource):
    """A folder of images, one per native frame, ordered by name (digits compared as numbers)."""

    is_folder = True

    def __init__(self, path: Path, fps: float):
        if fps is None or fps <= 0:
            raise InputError(f"{path}: is a folder, not a video file; to read it as a folder of frames, give "
                             f"its frame rate (--folder-fps)" + ("" if fps is None else f", not {fps}"))
        files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputError(f"{path}: the frame folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.path, self.native_fps = path, float(fps)
        self.files = sorted(files, key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
        self.num_frames = len(self.files)

    def _read(self, wanted):
        for k, t, j in wanted:
            image = load_image(self.files[j])
            if max(image.size) > MAX_FRAME_SIDE:
                image = image.resize(decode_size(*image.size))
            yield VideoFrame(k, t, np.asarray(image))


class DecordSource(VideoSource):
    """A video file read with decord (random access by frame number)."""

    def __init__(self, path: Path):
        import decord

        self.path = path
        self.errors = (RuntimeError, decord.DECORDError)  # what decord raises on a bad file
        self._reader = decord.VideoReader(str(path), num_threads=1)
        height, width = self._reader[0].shape[:2] if len(self._reader) else (0, 0)
        if max(width, height) > MAX_FRAME_SIDE:  # decoded at the size the model can use, never at full size
            width, height = decode_size(width, height)
            self._reader = decord.VideoReader(str(path), num_threads=1, width=width, height=height)
        self.num_frames = len(self._reader)
        self.native_fps = float(self._reader.get_avg_fps())
        if self.num_frames == 0 or self.native_fps <= 0:
            raise InputError(f"{path}: no decodable video frame")

    def _read(self, wanted, batch: int = 16):
        pending = []
        for item in wanted:
            pending.append(item)
            if len(pending) == batch:
                yield from self._decode(pending)
                pending = []
        yield from self._decode(pending)

    def _decode(self, items):
        if not items:
            return
        try:
            images = self._reader.get_batch([j for _, _, j in items]).asnumpy()  # [n, H, W, 3]
        except self.errors as err:
            raise InputError(f"{self.path}: cannot decode video ({str(err).splitlines()[0]})") from None
        for (k, t, _), image in zip(items, images):
            yield VideoFrame(k, t, image)


class PyAVSource(VideoSource):
    """A video file decoded with PyAV (FFmpeg): in order, with FFmpeg's own threads when `threads` is on, and a
    jump to the key frame before a wanted frame more than `SEEK_SECONDS` ahead or one already passed (the window
    protocol's asks);
    frames after a jump are numbered by their time."""

    SEEK_SECONDS = 4.0

    def __init__(self, path: Path, threads: bool = True):
        import av

        self.path, self.threads = path, threads
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise InputError(f"{path}: no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                self.native_fps = float(rate) if rate else 0.0
                self.num_frames = stream.frames or None
                first = next(container.decode(video=0), None)
        except av.FFmpegError as err:
            raise InputError(f"{path}: not a readable video ({err})") from None
        if first is None or self.native_fps <= 0:
            raise InputError(f"{path}: no decodable video frame")
        self.first_time = first.time  # seconds of the first frame (None: the file gives no times; no jumps)

    def _read(self, wanted):
        import av

        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                if self.threads:
                    stream.thread_type = "AUTO"
                decoded = enumerate(container.decode(stream))
                j, frame = -1, None
                for k, t, target in wanted:
                    if self.first_time is not None and not 0 <= target - j <= self.SEEK_SECONDS * self.native_fps:
                        decoded, j, frame = self._jump(container, stream, target)
                    while j < target:
                        try:
                            j, frame = next(decoded)
                        except StopIteration:
                            if frame is None:
                                raise InputError(f"{self.path}: no decodable video frame") from None
                            return  # the container promised more frames than it holds
                    width, height = decode_size(frame.width, frame.height)
                    yield VideoFrame(k, t, frame.to_ndarray(format="rgb24", width=width, height=height))
        except av.FFmpegError as err:
            raise InputError(f"{self.path}: cannot decode video ({err})") from None

    def _jump(self, container, stream, target: int):
        """Decoding from the key frame at or before native frame `target`: (numbered frames, index, frame) with
        the last frame before `target`'s place not yet read (index -1 until one is)."""
        at = self.first_time + target / self.native_fps
        container.seek(int(at / stream.time_base), stream=stream, backward=True, any_frame=False)

        def numbered():
            for frame in container.decode(stream):
                if frame.time is not None:
                    yield round((frame.time - self.first_time) * self.native_fps), frame

        return numbered(), -1, None


def open_video(path: str | Path, folder_fps: float | None = None, decoder: str = DECODERS[0]) -> VideoSource:
    """A video file or a frame folder, decoded with `decoder`: pyav (FFmpeg's threads, jumps for far frames) or
    decord (the `decord` module: the maintained decord2 fork, or decord itself), each an InputError in one line
    when it cannot read the file."""
    path = Path(path)
    if path.is_dir():
        return FrameFolderSource(path, folder_fps)
    if not path.is_file():
        raise InputError(f"{path}: no such video file or frame folder")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the video file is empty")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"{path}: a still image, not a video (a folder of frames is read with its frame rate)")
    if decoder not in DECODERS:
        raise InputError(f"unknown decoder {decoder!r}; use {' or '.join(DECODERS)}")
    probe = PyAVSource(path)  # a quiet check that the file holds a decodable video stream
    if decoder == "pyav":
        return probe
    try:
        import decord
    except ImportError:
        raise InputError(f"{path}: the decord decoder is not installed (pip install decord2)") from None
    try:
        return DecordSource(path)
    except (RuntimeError, decord.DECORDError) as err:
        raise InputError(f"{path}: decord cannot read the video ({str(err).splitlines()[0]})") from None


def prefetch(items: Iterable[T], depth: int = 8, stall_seconds: float | None = DECODE_STALL_SECONDS,
             what: str = "the video") -> Iterator[T]:
    """Iterate `items` (e.g. decoded frames) from a reader thread that keeps up to `depth` ready, so that
    decoding overlaps the consumer's work (the vision tower). An error in the reader is raised here,
    at the item where it happened; stopping early stops the reader. A reader that gives nothing for
    `stall_seconds` (a decoder hung on a file) is abandoned: an InputError in one line names `what`."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read():
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as err:  # handed to the consumer
            put((done, err))

    reader = threading.Thread(target=read, daemon=True, name="frame-reader")
    reader.start()
    try:
        while True:
            try:
                item, err = ready.get(timeout=stall_seconds)
            except queue.Empty:
                raise InputError(f"{what}: the decoder gave no frame for {stall_seconds:g} s and was abandoned "
                                 "(a file that stalls it)") from None
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        reader.join(timeout=1.0)  # a hung reader is left behind (a daemon thread): the run goes on


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, fps: int, options: dict | None = None) -> Path:
    """RGB frames [H, W, 3] uint8 as an H.264 mp4 (yuv420p) at `fps`; `options`: the muxer's (e.g. crf, movflags)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={k: v for k, v in (options or {}).items() if k == "movflags"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt, stream.options = "yuv420p", {k: v for k, v in (options or {}).items() if k != "movflags"}
        for i, frame in enumerate(frames):
            if i == 0:
                stream.height, stream.width = frame.shape[:2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path
