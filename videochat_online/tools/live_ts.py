"""A live MPEG-TS sender, for trying live sources and the server without a camera: a video's frames re-encoded
and written to a byte stream as their times come (what `ffmpeg -re -i VIDEO -f mpegts -` does), `speed` times
faster than real time when asked, looped when asked; or served over HTTP, one live stream per video of a folder.

    python -m videochat_online.tools.live_ts VIDEO [--seconds S] [--speed X] | videochat-online stream - ...
    python -m videochat_online.tools.live_ts --serve FOLDER --port 8090   # http://127.0.0.1:8090/NAME.ts
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path


def send_ts(video: str, out, seconds: float | None = None, speed: float = 1.0, loop: bool = False) -> None:
    """Write `video` as MPEG-2 in MPEG-TS to the binary file `out`, each frame at its time / `speed` after the
    first (a key frame each second of video, so that a reader joining late starts within one); `loop`: the video
    again and again, its time going on, until `seconds` (None: for ever)."""
    import av

    with av.open(out, "w", format="mpegts") as sink:
        stream, started, i = None, time.monotonic(), 0
        for _ in itertools.count() if loop else range(1):
            with av.open(video) as source:
                decoder = source.streams.video[0]
                rate = decoder.average_rate
                if stream is None:
                    stream = sink.add_stream("mpeg2video", rate=rate)
                    stream.width, stream.height, stream.pix_fmt = decoder.width, decoder.height, "yuv420p"
                    stream.codec_context.gop_size = int(rate)
                for frame in source.decode(decoder):
                    t = float(i / rate)
                    if seconds is not None and t >= seconds:
                        break
                    time.sleep(max(0.0, started + t / speed - time.monotonic()))
                    out_frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                    out_frame.pts = i
                    for packet in stream.encode(out_frame):
                        sink.mux(packet)
                    out.flush()
                    i += 1
                else:
                    continue
                break
        for packet in stream.encode():
            sink.mux(packet)


def serve_ts(folder: str | Path, port: int, seconds: float | None = None, loop: bool = False,
             host: str = "127.0.0.1"):
    """An HTTP server (not started: call its `serve_forever`) that sends `folder`/NAME.mp4 as a live MPEG-TS
    stream at /NAME.ts, to each client from its start, in real time."""
    import http.server

    videos = {f"/{p.stem}.ts": str(p) for p in Path(folder).glob("*.mp4")}

    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            video = videos.get(self.path)
            if video is None:
                self.send_error(404, f"no stream {self.path}")
                return
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            try:
                send_ts(video, self.wfile, seconds, loop=loop)
            except (BrokenPipeError, ConnectionResetError):  # the reader closed it
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, port), Live)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """`python -m videochat_online.tools.live_ts VIDEO`: the video as live MPEG-TS on standard output (or, with
    --serve FOLDER, every video of a folder over HTTP)."""
    import sys

    from ..errors import InputError
    from ..options import Parser, run_main
    from ..settings import check_positive

    parser = Parser(prog="python -m videochat_online.tools.live_ts",
                    description="Send a video as live MPEG-TS on standard output, each frame when its time comes; "
                                "or serve a folder's videos so over HTTP.")
    parser.add_argument("video", nargs="?", help="the video file to send")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this much video (default: all)")
    parser.add_argument("--speed", type=float, default=1.0, help="times faster than real time (default: 1)")
    parser.add_argument("--loop", action="store_true", help="play the video again and again")
    parser.add_argument("--serve", metavar="FOLDER", help="serve FOLDER/NAME.mp4 at http://127.0.0.1:PORT/NAME.ts")
    parser.add_argument("--port", type=int, default=8090, help="the port for --serve (default: 8090)")
    args = parser.parse_args(argv)

    def send() -> int:
        check_positive(args.speed, "--speed")
        if args.serve is not None:
            if not Path(args.serve).is_dir():
                raise InputError(f"--serve {args.serve}: no such folder")
            print(f"serving {args.serve}/*.mp4 at http://127.0.0.1:{args.port}/NAME.ts", flush=True)
            serve_ts(args.serve, args.port, args.seconds, args.loop).serve_forever()
            return 0
        if args.video is None or not Path(args.video).is_file():
            raise InputError(f"{args.video or 'VIDEO'}: no such file")
        try:
            send_ts(args.video, sys.stdout.buffer, args.seconds, args.speed, args.loop)
        except BrokenPipeError:  # the reader stopped
            pass
        return 0

    return run_main(send)


if __name__ == "__main__":
    raise SystemExit(main())
