"""Write the synthetic benchmark and its training sets.

    python -m videochat_online.synthetic.build OUT_DIR [--train-videos 400] [--test-videos 80] [--seed 0]
    python -m videochat_online.synthetic.build OUT_DIR --test-only --against runs/synthetic/data

The test split's questions (`ovbench/synth.json`, videos in `videos/test/`) and the training sets (`train/`,
videos in `videos/train/`), laid out as docs/synthetic.md says; the seed decides everything, so `--test-only`
writes the same test split without the training sets. `--against DIR` reports every test scene that is also in
DIR's training split (its `scenes.json`), and exits 1 if there is one.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from PIL import Image

from ..errors import InputError
from ..eval.ovbench import ANSWER_SUFFIX, format_options, format_question, question_from_entry
from .questions import clip_questions, frame_questions, moving_frame_questions, questions_for, reply, resting_times, times
from ..options import Parser, run_main
from .world import Scene, random_scene, render, write_scene_video

SUBSET = "synth"
VIDEO_FPS = 2


def scenes(seed: int, train: int, test: int, duration: int = 32) -> tuple[list[Scene], list[Scene]]:
    """Train and test scenes, drawn from their own seeded streams; a test scene equal to a train one is redrawn."""
    train_rng, test_rng = random.Random(f"{seed}/train"), random.Random(f"{seed}/test")
    train_scenes = [random_scene(train_rng, duration) for _ in range(train)]
    seen, test_scenes = set(train_scenes), []
    while len(test_scenes) < test:
        scene = random_scene(test_rng, duration)
        if scene not in seen:
            seen.add(scene)
            test_scenes.append(scene)
    return train_scenes, test_scenes


def test_video(k: int) -> str:
    return f"synth_test_{k:04d}.mp4"


def benchmark_questions(test_scenes: list[Scene], rng: random.Random) -> list[dict]:
    """The benchmark: one question of each family about each test scene (`rng` is then used for training)."""
    return [q for k, scene in enumerate(test_scenes) for q in questions_for(scene, test_video(k), rng, per_family=1)]


def options_text(question: str, candidates, suffix: str = ANSWER_SUFFIX) -> str:
    """An offline question with its options, laid out as the benchmark's prompt (no moment in it)."""
    return f"{question}\n{format_options(candidates)}{suffix}"


def online_sample(scene: Scene, video: str, rng: random.Random, per_family: int) -> dict:
    """An interleaved online dialogue over the scene: each question at its moment, half of them as the
    benchmark's prompt (time, options) answered "(B) green", half as the bare question answered "green"."""
    turns = []
    for i, entry in enumerate(questions_for(scene, video, rng, per_family)):
        if rng.random() < 0.5:
            prompt, answer = format_question(question_from_entry(entry, SUBSET, i), time=entry["end"]), reply(entry)
        else:
            prompt, answer = entry["question"], entry["answer"]
        turns += [{"from": "human", "value": prompt, "timestamps": entry["end"]}, {"from": "gpt", "value": answer}]
    return {"video": video, "clip": [0, scene.duration], "conversations": turns}


def ask_offline(question: str, candidates, answer: str, rng: random.Random) -> tuple[str, str]:
    """An offline question and its reply: with options (answered "(B) green") or bare (answered "green")."""
    if rng.random() < 0.5:
        return options_text(question, candidates), reply({"candidates": list(candidates), "answer": answer})
    return question, answer


def offline_samples(scene: Scene, video: str, image_dir: Path, name: str, rng: random.Random) -> tuple[dict, list[dict]]:
    """A whole-clip sample (VideoChat2-IT format) and one-frame samples (LLaVA format) of a scene: one
    still of the object at rest (its colour and place) and three of it moving (where it will stop, how
    long it has been moving: the finer reading, so it gets more of the stills)."""
    qa = []
    for question, candidates, answer in clip_questions(scene):
        q, a = ask_offline(question, candidates, answer, rng)
        qa.append({"i": "", "q": q, "a": a})
    images = []
    stills = [(t, frame_questions) for t in rng.sample(resting_times(scene), 1)]
    stills += [(t, moving_frame_questions) for t in rng.sample(times("moving_for", scene), 3)]
    for t, questions in sorted(stills, key=lambda still: still[0]):
        file = f"images/{name}_{t}.png"
        Image.fromarray(render(scene, t)).save(image_dir.parent / file)
        turns = []
        for k, (question, candidates, answer) in enumerate(questions(scene, t)):
            q, a = ask_offline(question, candidates, answer, rng)
            turns += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q}, {"from": "gpt", "value": a}]
        images.append({"image": file, "conversations": turns})
    return {"video": video, "QA": qa}, images


def build(out_dir: str | Path, train_videos: int = 400, test_videos: int = 80, seed: int = 0,
          per_family: int = 2, test_only: bool = False) -> Path:
    """Write everything (see the module docstring), or the test split alone; returns OUT_DIR."""
    out = Path(out_dir)
    for folder in ("videos/test", "ovbench") if test_only else ("videos/train", "videos/test", "ovbench", "train/images"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    train_scenes, test_scenes = scenes(seed, train_videos, test_videos)  # the test scenes depend on the train ones
    rng = random.Random(f"{seed}/questions")
    test_questions = benchmark_questions(test_scenes, rng)
    for k, scene in enumerate(test_scenes):
        write_scene_video(scene, out / "videos/test" / test_video(k), VIDEO_FPS)
    (out / "ovbench" / f"{SUBSET}.json").write_text(json.dumps(test_questions, indent=1))
    if test_only:
        (out / "scenes.json").write_text(json.dumps({"test": [s.to_dict() for s in test_scenes]}, indent=1))
        return out
    online, clips, frames = [], [], []
    for k, scene in enumerate(train_scenes):
        name = f"synth_train_{k:04d}"
        write_scene_video(scene, out / "videos/train" / f"{name}.mp4", VIDEO_FPS)
        online.append(online_sample(scene, f"{name}.mp4", rng, per_family))
        clip, images = offline_samples(scene, f"{name}.mp4", out / "train/images", name, rng)
        clips.append(clip)
        frames += images
    train = out / "train"
    (train / "online.jsonl").write_text("".join(json.dumps(e) + "\n" for e in online))
    (train / "clips.json").write_text(json.dumps(clips, indent=1))
    (train / "frames.json").write_text(json.dumps(frames, indent=1))
    videos = "../videos/train"
    (train / "stage1.json").write_text(json.dumps({
        "synth_frames": {"annotation": "frames.json", "data_root": "", "repeat_time": 1},
        "synth_clips": {"annotation": "clips.json", "data_root": videos, "repeat_time": 1, "num_frames": 8},
    }, indent=2))
    (train / "stage2.json").write_text(json.dumps({  # online dialogues, with some of the offline data kept
        # sampled as the evaluation streams a video, so that a turn at T is shown the frame at T
        "synth_online": {"annotation": "online.jsonl", "data_root": videos, "repeat_time": 3, "sampling": "stream"},
        "synth_frames": {"annotation": "frames.json", "data_root": "", "repeat_time": 0.25},
        "synth_clips": {"annotation": "clips.json", "data_root": videos, "repeat_time": 0.25, "num_frames": 8},
    }, indent=2))
    (out / "scenes.json").write_text(json.dumps({"train": [s.to_dict() for s in train_scenes],
                                                 "test": [s.to_dict() for s in test_scenes]}, indent=1))
    return out


def read_scenes(root: Path, split: str) -> list[Scene]:
    """A split's scenes from a built folder's scenes.json (one-line InputError if it has none)."""
    file = root / "scenes.json"
    try:
        return [Scene(**entry) for entry in json.loads(file.read_text())[split]]
    except OSError as err:
        raise InputError(f"{file}: cannot read it ({err.strerror}); give a folder this builder wrote") from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{file}: no readable {split} split ({type(err).__name__}: {err})") from None


def shared_scenes(test: list[Scene], train: list[Scene]) -> list[int]:
    """The test scenes (by number) that are also training scenes."""
    seen = set(train)
    return [k for k, scene in enumerate(test) if scene in seen]


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m videochat_online.synthetic.build", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train-videos", type=int, default=400)
    parser.add_argument("--test-videos", type=int, default=80)
    parser.add_argument("--per-family", type=int, default=2, help="questions of each family per training video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-only", action="store_true", help="write the test split alone (the same as in a full "
                                                                   "build of this seed and these counts)")
    parser.add_argument("--against", metavar="DIR", default=None,
                        help="a folder built before (a training split): report the test scenes it also trains on")
    args = parser.parse_args(argv)

    def run() -> int:
        train = None if args.against is None else read_scenes(Path(args.against), "train")
        out = build(args.out_dir, args.train_videos, args.test_videos, args.seed, args.per_family, args.test_only)
        print(f"wrote the synthetic benchmark{'' if args.test_only else ' and training sets'} to {out}")
        if train is None:
            return 0
        shared = shared_scenes(read_scenes(out, "test"), train)
        print(f"{len(shared)} of the {args.test_videos} test scenes are also in {args.against}'s training split"
              + (": " + ", ".join(test_video(k) for k in shared) if shared else ""))
        return 1 if shared else 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
