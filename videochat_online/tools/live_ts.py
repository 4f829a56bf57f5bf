"""A live MPEG-TS sender, for trying live sources and the server without a camera: a video's frames re-encoded
and written to a byte stream as their times come (what `ffmpeg -re -i VIDEO -f mpegts -` does), `speed` times
faster than real time when asked.

    python -m videochat_online.tools.live_ts VIDEO [--seconds S] [--speed X] | videochat-online stream - ...
"""

from __future__ import annotations

import time


def send_ts(video: str, out, seconds: float | None = None, speed: float = 1.0) -> None:
    """Write `video` as MPEG-2 in MPEG-TS to the binary file `out`, each frame at its time / `speed` after the
    first (a key frame each second of video, so that a reader joining late starts within one)."""
    import av

    with av.open(video) as source, av.open(out, "w", format="mpegts") as sink:
        decoder = source.streams.video[0]
        rate = decoder.average_rate
        stream = sink.add_stream("mpeg2video", rate=rate)
        stream.width, stream.height, stream.pix_fmt = decoder.width, decoder.height, "yuv420p"
        stream.codec_context.gop_size = int(rate)
        started = time.monotonic()
        for i, frame in enumerate(source.decode(decoder)):
            t = float(i / rate)
            if seconds is not None and t >= seconds:
                break
            time.sleep(max(0.0, started + t / speed - time.monotonic()))
            out_frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            out_frame.pts = i
            for packet in stream.encode(out_frame):
                sink.mux(packet)
            out.flush()
        for packet in stream.encode():
            sink.mux(packet)


def main(argv: list[str] | None = None) -> int:
    """`python -m videochat_online.tools.live_ts VIDEO`: the video as live MPEG-TS on standard output."""
    import sys
    from pathlib import Path

    from ..errors import InputError
    from ..options import Parser, run_main
    from ..settings import check_positive

    parser = Parser(prog="python -m videochat_online.tools.live_ts",
                    description="Send a video as live MPEG-TS on standard output, each frame when its time comes.")
    parser.add_argument("video", help="the video file to send")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this much video (default: all)")
    parser.add_argument("--speed", type=float, default=1.0, help="times faster than real time (default: 1)")
    args = parser.parse_args(argv)

    def send() -> int:
        check_positive(args.speed, "--speed")
        if not Path(args.video).is_file():
            raise InputError(f"{args.video}: no such file")
        try:
            send_ts(args.video, sys.stdout.buffer, args.seconds, args.speed)
        except BrokenPipeError:  # the reader stopped
            pass
        return 0

    return run_main(send)


if __name__ == "__main__":
    raise SystemExit(main())
