"""Video sources: sampling times, both decoders, frame folders, clips, laziness and bad input."""

import types

import numpy as np
import pytest
from PIL import Image

from videochat_online.data.video import open_video, sample_times
from videochat_online.errors import InputError
from videochat_online.tools.demo_media import frame_number, write_frame_folder, write_video


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "ball.mp4", seconds=6, fps=10, faststart=True)


def test_sample_times():
    assert list(sample_times(2, 0, 2, None)) == [0, 0.5, 1.0, 1.5, 2.0]
    assert list(sample_times(2, 1, None, 2.5)) == [1.0, 1.5, 2.0]  # before the duration
    assert len(list(sample_times(3, 0, 10, None))) == 31


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_video_file_sampling(mp4, decoder):
    source = open_video(mp4, decoder=decoder)
    assert type(source).__name__ == {"decord": "DecordSource", "pyav": "PyAVSource"}[decoder]
    assert source.native_fps == 10 and source.num_frames == 60 and source.duration == 6
    frames = list(source.sample(fps=2))
    assert [f.index for f in frames] == list(range(12))
    assert [f.timestamp for f in frames] == [k / 2 for k in range(12)]
    assert all(f.image.shape == (96, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [frame_number(f.image) for f in frames] == [5 * k for k in range(12)]  # native frame floor(t * 10)
    clip = list(source.sample(fps=4, start=2.0, end=3.0))
    assert [(f.index, f.timestamp) for f in clip] == [(0, 2.0), (1, 2.25), (2, 2.5), (3, 2.75), (4, 3.0)]
    assert [frame_number(f.image) for f in clip] == [20, 22, 25, 27, 30]
    faster = list(source.sample(fps=20, end=0.3))  # above the native rate: capped at it, each frame once
    assert [frame_number(f.image) for f in faster] == [0, 1, 2, 3]
    assert [f.timestamp for f in faster] == [0.0, 0.1, 0.2, 0.3]


def test_decoders_agree(mp4):
    a = list(open_video(mp4, decoder="decord").sample(fps=3))
    b = list(open_video(mp4, decoder="pyav").sample(fps=3))
    assert [(f.index, f.timestamp) for f in a] == [(f.index, f.timestamp) for f in b]
    assert max(np.abs(x.image.astype(int) - y.image.astype(int)).mean() for x, y in zip(a, b)) < 3


def test_sampling_is_lazy(mp4, tmp_path):
    assert isinstance(open_video(mp4).sample(fps=2), types.GeneratorType)
    folder = write_frame_folder(tmp_path / "frames", 30)
    (folder / "frame0025.jpg").write_bytes(b"broken")  # only read if the clip reaches it
    early = list(open_video(folder, folder_fps=10).sample(fps=10, end=2.0))
    assert len(early) == 21
    with pytest.raises(InputError, match="frame0025.jpg: not a readable image"):
        list(open_video(folder, folder_fps=10).sample(fps=10))


def test_frame_folder_order_and_rate(tmp_path):
    folder = write_frame_folder(tmp_path / "tao", 84)  # frame0001.jpg ... at 28 fps: 3 s
    source = open_video(folder, folder_fps=28)
    assert source.duration == 3.0
    frames = list(source.sample(fps=2))
    assert [f.timestamp for f in frames] == [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [frame_number(f.image) for f in frames] == [0, 14, 28, 42, 56, 70]
    unpadded = tmp_path / "ava"
    unpadded.mkdir()
    for i in (1, 2, 10):  # name order would put 10 before 2
        Image.new("RGB", (8, 8), (0, 0, i)).save(unpadded / f"img_{i}.png")
    assert [f.image[0, 0, 2] for f in open_video(unpadded, folder_fps=1).sample(fps=1)] == [1, 2, 10]


def test_bad_inputs(tmp_path, mp4):
    def error(path, **kw):
        with pytest.raises(InputError) as err:
            list(open_video(path, **kw).sample(fps=2))
        assert "\n" not in str(err.value)
        return str(err.value)

    assert error(tmp_path / "missing.mp4") == f"{tmp_path / 'missing.mp4'}: no such video file or frame folder"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.RandomState(0).bytes(3000))
    assert error(junk).startswith(f"{junk}: not a readable video")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    assert error(truncated).startswith(f"{truncated}: ")
    empty_file = tmp_path / "empty.mp4"
    empty_file.touch()
    assert error(empty_file) == f"{empty_file}: the video file is empty"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    assert error(text).startswith(f"{text}: not a readable video")
    empty_dir = tmp_path / "frames"
    empty_dir.mkdir()
    assert error(empty_dir, folder_fps=1).startswith(f"{empty_dir}: the frame folder has no images")
    (empty_dir / "a.jpg").write_bytes(b"x")
    assert error(empty_dir).startswith(f"{empty_dir}: is a folder, not a video file; to read it as a folder of frames")
    with pytest.raises(InputError, match=r"bad clip \[3, 1\]"):
        list(open_video(mp4).sample(fps=2, start=3, end=1))


def test_file_without_video_stream(tmp_path):
    import av

    audio = tmp_path / "audio.mp4"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(InputError, match=f"{audio}: no video stream"):
        open_video(audio)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_frames_larger_than_the_model_can_use_are_decoded_downscaled(tmp_path, decoder):
    from videochat_online.data.video import write_mp4

    big = write_mp4([np.full((1200, 2400, 3), v, np.uint8) for v in (40, 200)], tmp_path / "wide.mp4", fps=2)
    frames = list(open_video(big, decoder=decoder).sample(2))
    assert [f.image.shape for f in frames] == [(960, 1920, 3)] * 2  # the longer side at 1920, the aspect kept
    assert abs(int(frames[1].image.mean()) - 200) <= 3
    small = write_mp4([np.zeros((96, 160, 3), np.uint8)], tmp_path / "small.mp4", fps=2)
    assert next(iter(open_video(small, decoder=decoder).sample(2))).image.shape == (96, 160, 3)  # as it is


def test_a_still_image_is_not_a_video(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    with pytest.raises(InputError, match="photo.png: a still image, not a video"):
        open_video(tmp_path / "photo.png")


def test_a_decoder_that_blocks_is_abandoned_with_one_line():
    """A reader hung on a file (here: one that waits for ever after its first frame) fails that video with one line
    once `stall_seconds` pass with no frame; the hung thread is left behind and the caller goes on."""
    import threading
    import time

    from videochat_online.data.video import prefetch

    release = threading.Event()

    def hung():
        yield "first frame"
        release.wait(300)
        yield "never reached in time"

    frames = prefetch(hung(), stall_seconds=0.5, what="hung.mp4")
    assert next(frames) == "first frame"
    started = time.monotonic()
    with pytest.raises(InputError, match=r"^hung\.mp4: the decoder gave no frame for 0\.5 s and was abandoned"):
        next(frames)
    assert time.monotonic() - started < 60
    release.set()


def test_pyav_jumps_to_far_frames_and_reads_the_same_images(tmp_path):
    """The window protocol's reads: native frames far ahead (or already passed) are reached by a jump to the key
    frame before them, and the images are those that decoding from the start gives."""
    from videochat_online.data.video import PyAVSource

    video = write_video(tmp_path / "long.mp4", seconds=20, fps=10)
    everything = [f.image for f in PyAVSource(video).read_native(range(200))]
    wanted = [3, 120, 121, 190, 40, 41]  # 120 and 190 are over 4 s ahead; 40 was passed
    jumped = [f for f in PyAVSource(video).read_native(wanted)]
    assert [frame_number(f.image) for f in jumped] == [frame_number(everything[j]) for j in wanted]
    assert all(np.array_equal(f.image, everything[j]) for f, j in zip(jumped, wanted))
