"""A live MPEG-TS sender for the tests: a video's frames re-encoded and written to a byte stream in real time,
each frame when its own time comes (what `ffmpeg -re -i VIDEO -f mpegts -` does).

    python tests/live_media.py VIDEO [SECONDS] | videochat-online stream - ...
"""

import sys
import time

import av


def send_ts(video: str, out, seconds: float | None = None) -> None:
    """Write `video` as MPEG-2 in MPEG-TS to the binary file `out`, paced by the frames' times."""
    with av.open(video) as source, av.open(out, "w", format="mpegts") as sink:
        decoder = source.streams.video[0]
        rate = decoder.average_rate
        stream = sink.add_stream("mpeg2video", rate=rate)
        stream.width, stream.height, stream.pix_fmt = decoder.width, decoder.height, "yuv420p"
        stream.codec_context.gop_size = int(rate)  # a key frame every second: a reader can start within one
        started = time.monotonic()
        for i, frame in enumerate(source.decode(decoder)):
            t = i / rate
            if seconds is not None and t >= seconds:
                break
            time.sleep(max(0.0, started + float(t) - time.monotonic()))
            out_frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            out_frame.pts = i
            for packet in stream.encode(out_frame):
                sink.mux(packet)
            out.flush()
        for packet in stream.encode():
            sink.mux(packet)


if __name__ == "__main__":
    send_ts(sys.argv[1], sys.stdout.buffer, float(sys.argv[2]) if len(sys.argv) > 2 else None)
