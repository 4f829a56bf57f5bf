"""The `published` preset reproduces the published OVBench evaluation's frame selection and prompt.

Real questions of every subset (from the question files), generated media of a chosen frame rate
and length, and the frames and prompt each question must get, worked out here from the published
rules (as the issue and `protocols.py` state them), not from the code under test:

- stream: native frame step `max(1, round(fps / 8))` for video files, `max(1, int(fps) // 8)` for
  frame folders; frames numbered by their place in the sampled stream, stamped with their own time
  j / fps; a question asked at `end` sees the frames with time <= end; `Question at
  {middle_frame_timestamp}s`, "\\nAnswer:".
- window: from the frame at the question's time back over 32 s by `max(1, round(fps / 2))`, numbered
  1..N within the window; "\\nOnly give the best option.".
With a memory too large to evict anything, every such frame is held, at 64/16/4 tokens by its number
(the tiny model's 8x8 grid pooled to 8/4/2 by intervals 8, 4, 1).
"""

import json
import math

import numpy as np
import pytest

from videochat_online.eval.presets import published_window_frames
from videochat_online.eval.runner import main as eval_main
from videochat_online.tools.demo_media import write_frame_folder, write_video

from conftest import OVBENCH_ANNO as ANNO  # noqa: E402

SYSTEM = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and movement of "
          "objects, and the action and pose of persons. Based on your observations, select the best option that "
          "accurately addresses the question.\n")
# subset -> (latest question time kept, native frame rate of the generated media; None: the file's `fps`)
PICK = {"ava": (15.0, None), "coin": (15.0, 30), "hirest": (20.0, 25), "tao": (10.0, None)}
TAO_FIRST_NUMBER = 211  # TAO folders' file numbers need not start at 1: time maps to the place in the listing


def picked(subset):
    """The questions (end <= the limit) of the video that has most of them, with their place in the file."""
    entries = json.loads((ANNO / f"{subset}.json").read_text())
    limit = PICK[subset][0]
    by_video = {}
    for i, e in enumerate(entries):
        if e["end"] <= limit:
            by_video.setdefault(e["video"], []).append((i, e))
    video = sorted(by_video, key=lambda v: (-len(by_video[v]), v))[0]
    return by_video[video]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Question files holding the picked questions (the real entries, unchanged) and media for them."""
    root = tmp_path_factory.mktemp("published")
    anno, roots, facts = root / "anno", {}, {}
    anno.mkdir()
    for subset in PICK:
        items = picked(subset)
        entries = [e for _, e in items]
        (anno / f"{subset}.json").write_text(json.dumps(entries))
        video = entries[0]["video"]
        native = PICK[subset][1] or entries[0]["fps"]
        seconds = max(e["end"] for e in entries) + 2.0
        roots[subset] = root / subset
        if subset in ("ava", "tao"):
            n = int(seconds * native)
            write_frame_folder(roots[subset] / video, n, 32, 24, first=TAO_FIRST_NUMBER if subset == "tao" else 1)
        else:
            write_video(roots[subset] / video, seconds, native, 32, 24)
            n = int(round(seconds * native))
        facts[subset] = {"native": float(native), "frames": n, "folder": subset in ("ava", "tao"),
                         "questions": [(f"{subset}/{j}", e) for j, (_, e) in enumerate(items)]}
    return anno, roots, facts


def run(media, tiny, out, protocol):
    anno, roots, _ = media
    args = ["--model", str(tiny), "--anno-dir", str(anno), "--output-dir", str(out), "--protocol", protocol,
            "--capacities", "1000,1000,1000", "--max-new-tokens", "1"]
    for subset, path in roots.items():
        args += ["--data-root", f"{subset}={path}"]
    assert eval_main(args) == 0
    return {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}


def tokens_of(k):
    return 64 if k % 8 == 0 else 16 if k % 4 == 0 else 4


def expected_prompt(frames, entry, suffix):
    lines = "\n".join(f"Frame{k + 1} at {t:.1f}s: <img><IMG_CONTEXT>*{n}</img>" for k, t, n in frames)
    options = "\n".join(f"({'ABCDE'[i]}) {c}" for i, c in enumerate(entry["candidates"]))
    question = f"Question at {entry['middle_frame_timestamp']}s: {entry['question']}\nOptions:\n{options}{suffix}"
    return f"<|system|>\n{SYSTEM}<|end|><|user|>\n{lines}\n{question}<|end|><|assistant|>\n"


def test_stream_frames_and_prompt(tiny_dir, media, tmp_path):
    records = run(media, tiny_dir(), tmp_path / "stream", "stream")
    _, _, facts = media
    for subset, f in facts.items():
        native, n = f["native"], f["frames"]
        step = max(1, int(native) // 8) if f["folder"] else max(1, round(native / 8))
        assert step == {"ava": 1, "coin": 4, "hirest": 3, "tao": 3}[subset]
        for qid, entry in f["questions"]:
            # every step-th native frame j whose time j / native is not after the question
            js = [j for j in range(0, n, step) if j / native <= entry["end"] + 1e-9]
            frames = [[k, j / native, tokens_of(k)] for k, j in enumerate(js)]
            rec = records[qid]
            assert rec["frames"] == frames, (qid, len(rec["frames"]), len(frames))
            assert rec["prompt"] == expected_prompt(frames, entry, "\nAnswer:"), qid
            assert max(t for _, t, _ in rec["frames"]) <= entry["end"]  # nothing after the question
    ava = facts["ava"]["questions"][0][1]
    assert f"Question at {ava['middle_frame_timestamp']}s" in records["ava/0"]["prompt"]  # the absolute time (9xx s)
    assert ava["middle_frame_timestamp"] > 900


def test_window_frames_and_prompt(tiny_dir, media, tmp_path):
    records = run(media, tiny_dir(), tmp_path / "window", "window")
    _, _, facts = media
    for subset, f in facts.items():
        native, n = f["native"], f["frames"]
        step = max(1, int(round(native / 2)))
        for qid, entry in f["questions"]:
            end_frame = min(n - 1, int(math.floor(entry["end"] * native + 1e-9)))
            if f["folder"]:
                first = max(0, end_frame - int(32 * native))
            else:  # the first frame that ends (at (j + 1) / native) at or after end - 32 s
                first = next(j for j in range(n) if (j + 1) / native >= entry["end"] - 32 - 1e-9)
            js = [j for j in range(first, end_frame + 1) if (end_frame - j) % step == 0]
            assert js[-1] == end_frame and len(js) <= 64
            frames = [[k, j / native, tokens_of(k)] for k, j in enumerate(js)]  # numbered within the window
            rec = records[qid]
            assert rec["frames"] == frames, qid
            assert rec["prompt"] == expected_prompt(frames, entry, "\nOnly give the best option."), qid


@pytest.mark.parametrize("end, native, folder", [(100.0, 30.0, True), (100.0, 30.0, False), (47.0, 25.0, False),
                                                 (500.0, 1.0, True)])
def test_long_windows_are_thinned_to_64(end, native, folder):
    frames = published_window_frames(end, native, None, folder, fps=2.0, seconds=32.0, max_frames=64)
    step = max(1, int(round(native / 2)))
    end_frame = int(end * native)
    first = max(0, end_frame - int(32 * native)) if folder else math.ceil((end - 32) * native - 1)
    every = [j for j in range(first, end_frame + 1) if (end_frame - j) % step == 0]
    expect = every if len(every) <= 64 else [every[i] for i in np.linspace(0, len(every) - 1, 64).astype(np.int32)]
    assert frames == expect
    assert frames[-1] == end_frame  # the frame at the question's time is always in
    assert len(frames) == min(64, len(every))
