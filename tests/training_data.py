"""A small training set in all four annotation formats, with its media and a meta file, written from the
formats as docs/training.md states them. Answers are tied to what the media show (the ball's side, the frame
colour), so that a model trained on them has something learnable."""

from __future__ import annotations

import json
import random
from pathlib import Path


from videochat_online.tools.demo_media import demo_image, write_frame_folder, write_video


def write_demo_training_data(out_dir: str | Path, samples: int = 8, seed: int = 0) -> Path:
    """Media, one annotation file per format, and `meta.json` naming them; returns the meta file."""
    out = Path(out_dir)
    rng = random.Random(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "videos").mkdir(exist_ok=True)
    llava, videochat2, online, tracking, online_frames = [], [], [], [], []
    for k in range(samples):
        side = rng.random()
        image = f"images/ball{k}.png"
        demo_image(160, 96, ball_x=side).save(out / image)
        where = "left" if side < 0.5 else "right"
        llava.append({"image": image, "conversations": [
            {"from": "human", "value": "<image>\nWhere is the ball?"}, {"from": "gpt", "value": f"On the {where}."},
            {"from": "human", "value": "What colour is it?"}, {"from": "gpt", "value": "Red."}]})
        video = f"videos/clip{k}.mp4"
        write_video(out / video, seconds=4 + k % 3, fps=4)
        videochat2.append({"video": video, "QA": [
            {"i": "Watch the video.", "q": "Which way does the ball move?", "a": "From left to right."},
            {"i": "", "q": "Is there a sun?", "a": "Yes."}]})
        online.append({"video": video, "clip": [0, 4], "conversations": [
            {"from": "human", "value": "Where is the ball now?", "timestamps": 1.0},
            {"from": "gpt", "value": "On the left."},
            {"from": "human", "value": "And now?", "timestamps": 3.5},
            {"from": "gpt", "value": "On the right."}]})
        # tracking, laid out as the published GOT-10k / LaSOT annotations: image files relative to the
        # sample's own folder (`video`, under the set's data_root), a query template with a <bbox> slot
        folder = write_frame_folder(out / "frames" / f"track{k}", 6, 160, 96)
        files = sorted(p.name for p in folder.iterdir())
        tracking.append({"video": f"track{k}", "all_image_files": files,
                         "query_template": {"from": "human", "value": "<video>\nTrack the ball at <bbox> in the frames."},
                         "image_bboxes": [{"timestamp": t * 0.5, "bbox": [round(0.1 + 0.15 * t, 2), 0.5,
                                                                          round(0.3 + 0.15 * t, 2), 0.7]}
                                          for t in range(len(files))]})
        # an online sample over a frame folder (2 frames a second), its rate from the meta file's folder_fps
        online_frames.append({"video": f"track{k}", "clip": [0, 2.5], "conversations": [
            {"from": "human", "value": "Where is the ball?", "timestamps": 1.0}, {"from": "gpt", "value": "Left."},
            {"from": "human", "value": "And now?", "timestamps": 2.5}, {"from": "gpt", "value": "Right."}]})
    for name, entries in (("llava", llava), ("videochat2", videochat2), ("tracking", tracking)):
        (out / f"{name}.json").write_text(json.dumps(entries, indent=1))
    (out / "online.jsonl").write_text("".join(json.dumps(e) + "\n" for e in online))
    (out / "online_frames.jsonl").write_text("".join(json.dumps(e) + "\n" for e in online_frames))
    meta = {
        "demo_llava": {"annotation": "llava.json", "data_root": "", "repeat_time": 1},
        "demo_videochat2": {"annotation": "videochat2.json", "data_root": "", "repeat_time": 1, "max_frames": 8},
        "demo_online": {"annotation": "online.jsonl", "data_root": "", "repeat_time": 1, "data_augment": True},
        "demo_tracking": {"annotation": "tracking.json", "data_root": "frames", "repeat_time": 0.5},
        "demo_online_frames": {"annotation": "online_frames.jsonl", "data_root": "frames", "repeat_time": 0.5,
                               "folder_fps": 2},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out / "meta.json"

