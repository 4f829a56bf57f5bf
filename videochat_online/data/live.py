"""Live sources read in real time: a network stream (rtsp, rtmp, http(s), udp ...: any URL PyAV opens), a
stream on standard input (`-`, e.g. MPEG-TS from ffmpeg), a camera (`camera:0`), or a file played at its own
pace (`pace=True`). docs/streaming.md has the details.

    live = open_live("rtsp://cam.local/stream", fps=1)
    while (frames := live.take(8)) or not live.ended:  # the frames taken since the last call, oldest first
        ...
    live.end  # "ended", "stalled: ...", or the error that stopped it

A reader thread decodes every frame the source sends and takes one per 1/fps of the source's own timestamps:
frame k of the sampled stream is the first whose time t (seconds from the source's first frame) has
floor(t * fps) = k; its index is k, so a dropped or missing slot leaves a gap. At most `buffer` taken frames wait
for the consumer; when one more arrives the oldest waiting frame is dropped and counted (drop-oldest: an online
model should see the newest frames, and memory stays bounded however far the model falls behind).
"""

from __future__ import annotations

import collections
import io
import math
import re
import sys
import threading
import time

from ..errors import InputError
from ..settings import WAITING_FRAMES
from .video import VideoFrame, decode_size

_EPS = 1e-6
CAMERA_FORMATS = {"linux": ("v4l2", "/dev/video{n}"), "darwin": ("avfoundation", "{n}"),
                  "win32": ("dshow", "video={n}")}  # FFmpeg's camera input on each platform
OPEN_OPTIONS = {"probesize": "65536", "analyzeduration": "500000"}  # start within about half a second


def is_live(name: str) -> bool:
    """A source name `open_live` reads (a URL, `-` or a camera) rather than a file or a frame folder."""
    return name == "-" or "://" in name or name.startswith("camera") or name.startswith("/dev/video")


def _address(name: str) -> tuple[str, str | None]:
    """What PyAV opens for a source name, and the input format to force (None: probe)."""
    if name == "-":
        return "pipe:0", None
    if name.startswith("camera") or name.startswith("/dev/video"):
        number = name.partition(":")[2] if name.startswith("camera") else name.removeprefix("/dev/video")
        if not number.isdigit():
            raise InputError(f"{name}: write a camera as camera:N (e.g. camera:0)")
        import av

        fmt, device = CAMERA_FORMATS.get(sys.platform, (None, None))
        if fmt is None or fmt not in av.formats_available:
            raise InputError(f"{name}: this PyAV build has no camera input ({fmt or sys.platform}); send the camera "
                             "through ffmpeg instead, e.g. ffmpeg -f v4l2 -i /dev/video0 -f mpegts - | "
                             "videochat-online stream - ...")
        return device.format(n=number), fmt
    return name, None


STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "srt", "tcp")


def check_public_url(url: str, allow_private: bool = False) -> str:
    """A stream URL a server may open for whoever asks: a network scheme (never file:// or another local
    protocol), and, unless `allow_private`, a host that is not this machine or its private network (loopback,
    private, link-local and reserved addresses are refused, however the name resolves). One InputError line."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() not in STREAM_SCHEMES:
        raise InputError(f"{url or 'the URL'}: give a stream URL ({', '.join(s + '://' for s in STREAM_SCHEMES[:6])} "
                         "...); files and other local inputs are not opened here")
    if allow_private:
        return url
    host = parts.hostname
    if not host:
        raise InputError(f"{url}: names no host (a stream this server would listen for is not opened here)")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 0, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError, ValueError):
        raise InputError(f"{url}: the host {host} cannot be resolved") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast \
                or ip.is_unspecified:
            raise InputError(f"{url}: {host} is this machine or its private network ({ip}); such streams are opened "
                             "only when allowed (--allow-private-urls; the demo also on 127.0.0.1)")
    return url


class FrameQueue:
    """Frames taken at a rate and waiting for a consumer (module docstring): slot k of the stream at `fps` is the
    first frame whose time t has floor(t * fps) = k; at most `buffer` wait, and one more drops the oldest waiting
    (counted). Frames come from a reader (`LiveSource`) or are handed over by a client (`offer`). `stall_seconds`:
    with no frame for this long the queue ends as stalled (None: never)."""

    def __init__(self, name: str, fps: float, buffer: int = WAITING_FRAMES, stall_seconds: float | None = 10.0,
                 clock=time.monotonic):
        if not fps > 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be a finite number > 0, got {fps}")
        if buffer < 1:
            raise ValueError(f"buffer must be >= 1, got {buffer}")
        self.name, self.fps, self.buffer, self.stall_seconds, self.clock = name, fps, buffer, stall_seconds, clock
        self.taken = 0  # frames taken at the rate (dropped ones included)
        self.dropped = 0  # taken, then dropped before the consumer took them
        self.most_waiting = 0  # the longest the waiting queue grew (never above `buffer`)
        self.newest: float | None = None  # stream time of the newest frame taken
        # None while live; "ended" (with the error, if one ended it), "stalled: ...", "closed"
        self.end: str | None = None
        self._waiting: collections.deque[VideoFrame] = collections.deque()
        self._changed = threading.Condition()
        self._last_slot = -1
        self._last_arrival = self.clock()

    @property
    def ended(self) -> bool:
        """The stream has ended (or stalled, or failed) and every frame taken has been handed over."""
        with self._changed:
            return self.end is not None and not self._waiting

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def slot(self, t: float) -> int | None:
        """The rate's slot for a frame at stream time `t`, or None when the last frame taken had that slot (or a
        later one): such a frame is not taken."""
        slot = math.floor(t * self.fps + _EPS)
        if slot <= self._last_slot:
            return None
        self._last_slot = slot
        return slot

    def offer(self, t: float, image) -> bool:
        """A frame at stream time `t` (an HxWx3 uint8 array), taken when it starts a new slot (False: not taken)."""
        slot = self.slot(t)
        if slot is None or self.end is not None:
            return False
        self._hand_over(VideoFrame(slot, t, image, arrived=self.clock()))
        return True

    def put(self, frame: VideoFrame) -> None:
        """A frame already at the rate (its index and time kept), handed over as it is: drop-oldest, counted."""
        if self.end is None:
            self._hand_over(VideoFrame(frame.index, frame.timestamp, frame.image, arrived=self.clock()))

    def take(self, most: int, timeout: float = 0.2) -> list[VideoFrame]:
        """Up to `most` waiting frames, oldest first; waits up to `timeout` s for the first (an empty list: none
        came, or the stream ended). A stream silent for `stall_seconds` is ended here as stalled."""
        with self._changed:
            self._changed.wait_for(lambda: self._waiting or self.end is not None, timeout)
            if not self._waiting and self.end is None and self.stall_seconds is not None \
                    and self.clock() - self._last_arrival > self.stall_seconds:
                after = "" if self.newest is None else f" after {self.newest:.1f} s"
                self._finish(f"stalled: no frame for {self.stall_seconds:g} s{after}")
            return [self._waiting.popleft() for _ in range(min(most, len(self._waiting)))]

    def close(self) -> None:
        """No more frames (what was taken stays until taken)."""
        self._finish("closed")

    def _finish(self, end: str) -> None:
        with self._changed:
            self.end = self.end or end
            self._changed.notify_all()

    def _hand_over(self, frame: VideoFrame) -> None:
        with self._changed:
            if len(self._waiting) == self.buffer:  # drop-oldest
                self._waiting.popleft()
                self.dropped += 1
            self._waiting.append(frame)
            self.taken += 1
            self.newest, self._last_arrival = frame.timestamp, frame.arrived
            self.most_waiting = max(self.most_waiting, len(self._waiting))
            self._changed.notify_all()

    def summary(self) -> str:
        """One line: how the stream ended, how far it went, what was taken and dropped."""
        seen = "no frame" if self.newest is None else f"{self.newest:.1f} s"
        return (f"{self.name}: {self.end or 'live'} ({seen} watched; {self.taken} frames taken at {self.fps:g} fps, "
                f"{self.dropped} dropped because the model fell behind)")


class LiveSource(FrameQueue):
    """A live source and the reader thread that takes its frames (module docstring). `stall_seconds`: with no frame
    for this long (or none at all within it after opening) the source counts as stalled and ends. `stream`: a
    binary file object to read instead of the name's address (e.g. a `ChunkStream`), in `format` (None: probed);
    `wait_open`: the constructor waits for the stream to open and raises when it cannot (off: a failure to open
    ends the source instead)."""

    def __init__(self, name: str, fps: float, buffer: int = WAITING_FRAMES, stall_seconds: float | None = 10.0,
                 pace: bool = False, clock=time.monotonic, stream=None, format: str | None = None,
                 wait_open: bool = True):
        super().__init__(name, fps, buffer, stall_seconds, clock)
        self.pace, self.stream = pace, stream
        self.address, self.format = (name, format) if stream is not None else _address(name)
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._open_error: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"live-reader {name}")
        self._reader.start()
        if not wait_open:
            return
        if not self._opened.wait(stall_seconds):
            self.close()
            raise InputError(f"{name}: no stream could be opened within {stall_seconds:g} s (nothing arrived)")
        if self._open_error is not None:
            raise InputError(f"{name}: cannot open it as a video stream ({self._open_error})")

    def close(self) -> None:
        """Stop reading (the reader thread ends at its next frame; what was taken stays until taken)."""
        self._stop.set()
        super().close()

    def _finish(self, end: str) -> None:
        self._stop.set()
        super()._finish(end)

    def _open(self):
        import av

        options = dict(OPEN_OPTIONS)
        if self.format in ("v4l2", "avfoundation", "dshow"):
            options["framerate"] = str(max(1, math.ceil(self.fps)))
        local = self.stream is not None or self.address == "pipe:0" or self.format
        timeout = None if local else (self.stall_seconds, self.stall_seconds)
        container = av.open(self.stream if self.stream is not None else self.address, format=self.format,
                            options=options, timeout=timeout)
        if not container.streams.video:
            container.close()
            raise InputError(f"{self.name}: no video stream")
        return container

    def _read(self) -> None:
        import av

        try:
            container = self._open()
        except (av.FFmpegError, OSError, InputError) as err:
            self._open_error = str(err).split(": '")[0]
            self._opened.set()
            self._finish(f"ended: cannot open it as a video stream ({self._open_error})")
            return
        self._opened.set()
        if not self.pace and "://" in self.address and container.duration:
            self.pace = True  # a file behind a URL (it has a length): played at its own pace, not as it downloads
        end = "ended"
        try:
            with container:
                first, started = None, self.clock()
                for frame in container.decode(video=0):
                    if self._stop.is_set():
                        return
                    t = frame.time if frame.time is not None else self.clock() - started
                    first = t if first is None else first
                    t -= first  # seconds from the first frame
                    if self.pace:  # a file: wait until its time comes, as a live source would send it
                        time.sleep(max(0.0, started + t - self.clock()))
                    slot = self.slot(t)
                    if slot is None:  # the same slot as the last frame taken (or time went backwards)
                        continue
                    width, height = decode_size(frame.width, frame.height)
                    image = frame.to_ndarray(format="rgb24", width=width, height=height)
                    self._hand_over(VideoFrame(slot, t, image, arrived=self.clock()))
        except (av.FFmpegError, OSError) as err:  # a network stream's closed connection ends this way too
            end = f"ended: {self._describe(err)}"
        finally:
            super()._finish(end)

    def _describe(self, err: Exception) -> str:
        """What stopped the stream, in words (FFmpeg's message without its error number and function name)."""
        import av

        seen = "no frame" if self.newest is None else f"{self.newest:.1f} s"
        if isinstance(err, av.InvalidDataError):
            return (f"its data could not be decoded after {seen} (the codec or format changed mid-stream, or the "
                    "data is corrupt)")
        text = re.sub(r"^\[Errno -?\d+\] ", "", str(err).split(": " + repr(self.address))[0])
        return re.sub(r": '\w+\(\)'$", "", text)


class ChunkStream(io.RawIOBase):
    """A byte stream written in chunks by one thread and read by another (a `LiveSource`'s decoder): `read` waits
    for data, `write` refuses (False) beyond `most_bytes` unread, `close_writing` ends it (reads then see EOF)."""

    def __init__(self, most_bytes: int):
        self.most_bytes = most_bytes
        self._data = bytearray()
        self._done = False
        self._changed = threading.Condition()

    def readable(self) -> bool:
        return True

    def write_chunk(self, data: bytes) -> bool:
        with self._changed:
            if self._done:
                return False
            if len(self._data) + len(data) > self.most_bytes:
                return False
            self._data += data
            self._changed.notify_all()
            return True

    def close_writing(self) -> None:
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def readinto(self, buffer) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._data or self._done)
            n = min(len(buffer), len(self._data))
            buffer[:n] = self._data[:n]
            del self._data[:n]
            return n


def open_live(name: str, fps: float, **kwargs) -> LiveSource:
    """A live source by name: a URL, `-` (standard input), `camera:N`, or a file path with `pace=True`."""
    return LiveSource(name, fps, **kwargs)
