"""The synthetic world: scenes drawn as their timelines say, questions answered by the families' rules,
splits deterministic and disjoint, the benchmark in OVBench's format, and a tiny model that learns it."""

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from videochat_online.eval.ovbench import load_questions
from videochat_online.synthetic.build import benchmark_questions, build, scenes
from videochat_online.synthetic.questions import FAMILIES, ask, moving_frame_questions, questions_for, times
from videochat_online.synthetic.world import Scene, random_scene, render

REPO = Path(__file__).resolve().parents[1]
RED, BLUE, BACKGROUND, GREY = (220, 40, 40), (50, 90, 235), (28, 28, 32), (128, 128, 128)

# Written from the world's rules (world.py docstring), not from the generator: a red square at the top
# left from 1 s, blue from 5 s, sliding to the top right from 8 s to 18 s, leaving at 22 s, 32 s long.
SCENE = Scene(shape="square", first_colour="red", second_colour="blue", start_place="top left",
              end_place="top right", appear=1, recolour=5, move_start=8, move_end=18, leave=22, duration=32)


def pixel(frame, x, y):
    return tuple(int(v) for v in frame[int(y * 224), int(x * 224)])


def test_a_scene_is_drawn_as_its_timeline_says():
    assert pixel(render(SCENE, 0.5), 0.25, 0.25) == BACKGROUND  # not there yet
    assert pixel(render(SCENE, 2), 0.25, 0.25) == RED
    assert pixel(render(SCENE, 2), 0.75, 0.25) == BACKGROUND
    assert pixel(render(SCENE, 6), 0.25, 0.25) == BLUE
    assert pixel(render(SCENE, 13), 0.5, 0.25) == BLUE  # half-way: every move is 10 s long
    assert pixel(render(SCENE, 20), 0.75, 0.25) == BLUE and pixel(render(SCENE, 20), 0.25, 0.25) == BACKGROUND
    assert set(map(tuple, render(SCENE, 23).reshape(-1, 3))) == {BACKGROUND}  # left at 22 s


def test_a_moving_shape_leaves_a_grey_track_as_long_as_its_slide():
    # The square (0.45 of the frame wide) slides half the frame's width in 10 s: 0.05 of the frame a second.
    # Its track runs from where its left side started (x 0.025) to where its left side is now.
    for seconds in (1, 3, 5, 9):
        row = render(SCENE, 8 + seconds)[int(0.25 * 224)]
        grey = [x for x in range(224) if tuple(int(v) for v in row[x]) == GREY]
        assert grey and abs(len(grey) - 0.05 * seconds * 224) <= 2, (seconds, len(grey))
        assert abs(grey[0] - 0.025 * 224) <= 1 and abs(grey[-1] + 1 - (0.025 + 0.05 * seconds) * 224) <= 1
        assert pixel(render(SCENE, 8 + seconds), 0.25 + 0.05 * seconds, 0.25) == BLUE  # its centre, ahead of the track
    column = render(SCENE, 13)[:, int(0.1 * 224)]  # as tall as the square, nothing above or below it
    assert abs(sum(tuple(int(v) for v in p) == GREY for p in column) - 0.45 * 224) <= 2
    for still in (7, 18, 20):  # before the move and once it has stopped: no track
        assert GREY not in set(map(tuple, render(SCENE, still).reshape(-1, 3).tolist()))


def test_every_move_is_clockwise_at_one_speed():
    clockwise = {("top left", "top right"), ("top right", "bottom right"), ("bottom right", "bottom left"),
                 ("bottom left", "top left")}
    rng = random.Random(2)
    drawn = [random_scene(rng) for _ in range(200)]
    assert {(s.start_place, s.end_place) for s in drawn} == clockwise
    assert {s.move_end - s.move_start for s in drawn} == {10}


@pytest.mark.parametrize("family, t, answer", [
    ("past_colour", 12, "red"),  # after the change to blue at 5 s
    ("place_now", 3, "top left"),
    ("place_now", 19, "top right"),
    ("moving_for", 9, "1-2s"), ("moving_for", 11, "3-4s"), ("moving_for", 13, "5-6s"), ("moving_for", 16, "7-8s"),
    ("destination", 10, "top right"),
    ("still_there", 20, "Yes"), ("still_there", 23, "No"),
])
def test_each_family_answers_by_its_rule(family, t, answer):
    q = ask(family, SCENE, "v.mp4", t)
    assert q["answer"] == answer and q["answer"] in q["candidates"]
    assert (q["answer_type"], q["sub_answer_type"]) == FAMILIES[family]
    assert q["start"] == 0 and q["end"] == q["middle_frame_timestamp"] == t


def test_questions_are_asked_only_when_they_have_one_answer():
    assert times("past_colour", SCENE) == list(range(9, 22))  # 4 to 16 s after the change
    assert times("place_now", SCENE) == [2, 3, 4, 5, 6, 7, 19, 20, 21]  # resting, a second after arriving
    assert times("moving_for", SCENE) == list(range(9, 17))
    assert times("destination", SCENE) == list(range(9, 18))
    assert times("still_there", SCENE) == list(range(23, 33))  # a second after leaving


def test_a_still_of_the_move_is_asked_where_it_will_stop_and_how_long_it_has_moved():
    # 13 s is 5 s into the 10-s move from the top left to the top right
    assert moving_frame_questions(SCENE, 13) == [
        ("Where will the square stop?", ("top left", "top right", "bottom left", "bottom right"), "top right"),
        ("How long has the square been moving?", ("1-2s", "3-4s", "5-6s", "7-8s"), "5-6s")]


def test_answers_are_balanced_within_each_family():
    rng = random.Random(1)
    counts: dict[str, Counter] = {}
    for k in range(300):
        for q in questions_for(random_scene(rng), f"{k}.mp4", rng):
            counts.setdefault(q["answer_type"], Counter())[q["answer"]] += 1
    for answer_type, counter in counts.items():
        share = max(counter.values()) / sum(counter.values())
        assert len(counter) == (2 if answer_type == "Hallucination" else 4), counter
        assert share < (0.6 if answer_type == "Hallucination" else 0.35), (answer_type, counter)


def test_splits_are_deterministic_and_disjoint():
    train, test = scenes(seed=3, train=200, test=40)
    assert (train, test) == scenes(seed=3, train=200, test=40)
    assert not set(train) & set(test)
    assert scenes(seed=4, train=200, test=40)[1] != test


def test_the_committed_benchmark_is_the_generators():
    """lmms-eval's ovbench_synth questions are the recipe's test split (shell/synthetic/tiny.yaml, seed 0)."""
    data = yaml.safe_load((REPO / "shell/synthetic/tiny.yaml").read_text())["data"]
    _, test = scenes(data["seed"], data["train_videos"], data["test_videos"])
    expected = benchmark_questions(test, random.Random(f"{data['seed']}/questions"))
    committed = REPO / "lmms-eval-ovbench/tasks/ovbench/questions/synth.json"
    assert json.loads(committed.read_text()) == expected
    questions = load_questions(committed, "synth")  # OVBench's format, checked by the OVBench loader
    assert len(questions) == 5 * data["test_videos"]


def test_build_writes_videos_questions_and_training_sets(tmp_path):
    out = build(tmp_path / "synth", train_videos=3, test_videos=2, seed=0)
    questions = load_questions(out / "ovbench/synth.json", "synth")
    assert len(questions) == 10 and {q.video for q in questions} == {"synth_test_0000.mp4", "synth_test_0001.mp4"}
    assert sorted(p.name for p in (out / "videos/test").iterdir()) == ["synth_test_0000.mp4", "synth_test_0001.mp4"]
    online = [json.loads(line) for line in (out / "train/online.jsonl").read_text().splitlines()]
    assert len(online) == 3
    turns = online[0]["conversations"]
    times_asked = [t["timestamps"] for t in turns[::2]]
    assert times_asked == sorted(times_asked) and len(turns) == 2 * 2 * len(FAMILIES)
    stage2 = json.loads((out / "train/stage2.json").read_text())
    assert stage2["synth_online"]["sampling"] == "stream"  # a turn at T is shown the frame at T, as in the evaluation
    frames = json.loads((out / "train/frames.json").read_text())
    assert len(frames) == 3 * 4  # per scene one still at rest and three of the move
    questions_asked = Counter(turn["value"].removeprefix("<image>\n").split("\n")[0].split(" the ")[0]
                              for f in frames for turn in f["conversations"][::2])
    assert questions_asked == {"What colour is": 3, "Where is": 3, "Where will": 9, "How long has": 9}
    from videochat_online.data.video import open_video

    source = open_video(out / "videos/test/synth_test_0000.mp4")
    assert source.native_fps == 2 and np.asarray(next(iter(source.sample(1.0))).image).shape == (224, 224, 3)


# --------------------------------------------------------------------------------------------------
# A test-sized training run: the project's training lowers the loss and lifts accuracy above chance
# --------------------------------------------------------------------------------------------------
def test_training_from_scratch_learns_the_world(tmp_path):
    from videochat_online.chat import ChatEngine
    from videochat_online.eval.ovbench import SYSTEM_MESSAGE
    from videochat_online.synthetic.questions import COLOUR_NAMES
    from videochat_online.synthetic.recipe import corpus
    from videochat_online.synthetic.world import COLOURS
    from videochat_online.tools.make_tiny import make_tiny
    from videochat_online.train.sft import main as sft_main
    from PIL import Image

    data = build(tmp_path / "world", train_videos=120, test_videos=1, seed=5)
    # the one-frame questions about the shape at rest, its colour and place (the quickest to learn from)
    frames = json.loads((data / "train/frames.json").read_text())
    at_rest = [f for f in frames if "What colour is the" in f["conversations"][0]["value"]]
    assert len(at_rest) == 120  # one per scene
    (data / "train/frames_at_rest.json").write_text(json.dumps(at_rest))
    meta = data / "train/frames_only.json"
    meta.write_text(json.dumps({"frames": {"annotation": "frames_at_rest.json", "data_root": ""}}))
    init = make_tiny(tmp_path / "init", seed=0, extra_corpus=corpus(), perturb=False, max_dynamic_patch=1,
                     system_message=SYSTEM_MESSAGE)
    out = tmp_path / "trained"
    assert sft_main(["--model_name_or_path", str(init), "--meta_path", str(meta),
                     "--output_dir", str(out), "--max_steps", "150", "--per_device_train_batch_size", "8",
                     "--learning_rate", "2e-3", "--warmup_steps", "10", "--lr_scheduler_type", "cosine",
                     "--freeze_vision", "False", "--drop_path_rate", "0", "--logging_steps", "10",
                     "--save_strategy", "no", "--report_to", "none", "--seed", "0"]) == 0
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2]), losses

    # held-out frames: scenes of another seed, one frame each while the object rests
    engine = ChatEngine.from_pretrained(str(out), device="cpu")
    rng = random.Random(99)
    correct, total = 0, 40
    for _ in range(total):
        scene = random_scene(rng)
        t = rng.choice([t for t in range(scene.appear + 1, scene.recolour)])
        reply = engine.ask_images([Image.fromarray(render(scene, t))], f"What colour is the {scene.shape}?",
                                  max_new_tokens=6).text
        correct += reply.strip() == scene.colour(t)
    assert set(COLOUR_NAMES) == set(COLOURS)
    assert correct / total >= 0.6, f"{correct}/{total} colours right after training (chance: 1/4)"


# --------------------------------------------------------------------------------------------------
# The bundled model (models/, trained by shell/synthetic/train_tiny.sh) on the benchmark's first videos,
# through `videochat-online eval` and lmms-eval, unchanged
# --------------------------------------------------------------------------------------------------
BUNDLED = REPO / "models" / "videochat-online-synthetic-tiny"
BUNDLED_QWEN = REPO / "models" / "videochat-online-synthetic-qwen3-vl-tiny"
FIRST_VIDEOS = 12


@pytest.fixture(scope="module")
def first_videos(tmp_path_factory):
    """The committed benchmark's questions on its first FIRST_VIDEOS videos, and those videos, regenerated."""
    from videochat_online.synthetic.build import VIDEO_FPS, test_video
    from videochat_online.synthetic.world import write_scene_video

    data = yaml.safe_load((REPO / "shell/synthetic/tiny.yaml").read_text())["data"]
    _, test = scenes(data["seed"], data["train_videos"], data["test_videos"])
    root = tmp_path_factory.mktemp("synth-first")
    (root / "anno").mkdir()
    (root / "videos").mkdir()
    for k in range(FIRST_VIDEOS):
        write_scene_video(test[k], root / "videos" / test_video(k), VIDEO_FPS)
    wanted = {test_video(k) for k in range(FIRST_VIDEOS)}
    committed = json.loads((REPO / "lmms-eval-ovbench/tasks/ovbench/questions/synth.json").read_text())
    (root / "anno/synth.json").write_text(json.dumps([q for q in committed if q["video"] in wanted]))
    return root


def evaluate(root, protocol, out, model=BUNDLED):
    from videochat_online.eval.runner import main as eval_main

    assert eval_main(["--model", str(model), "--anno-dir", str(root / "anno"), "--benchmark", "synth",
                      "--data-root", f"synth={root / 'videos'}", "--protocol", protocol, "--preset", "project",
                      "--fps", "1", "--window", "3", "--uniform-frames", "3", "--output-dir", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("model", [BUNDLED, BUNDLED_QWEN], ids=["internvl", "qwen3-vl"])
def test_the_bundled_model_answers_well_above_chance(first_videos, tmp_path, model):
    """Each bundled model (the InternVL-style one, and the tiny Qwen3-VL-architecture one, `make synthetic
    BACKBONE=qwen3-vl`) with the memory it records, 20 points or more above chance."""
    table = evaluate(first_videos, "stream", tmp_path / "stream", model)
    overall = table["overall"]
    assert overall["total"] == 5 * FIRST_VIDEOS and overall["failed"] == 0
    chance = 100 * (4 * 0.25 + 0.5) / 5  # 30%
    assert overall["accuracy"] >= chance + 20, table["answer_type"]


def test_lmms_eval_runs_the_benchmark_unchanged_and_agrees(first_videos, tmp_path):
    import os
    import subprocess
    import sys

    from lmms_eval_ovbench import TASKS_DIR
    from lmms_eval_ovbench.check import check

    limit = 10  # the first two videos' questions
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OVBENCH_SYNTH_ROOT": str(first_videos / "videos")}
    out = tmp_path / "lmms"
    result = subprocess.run([sys.executable, "-m", "lmms_eval", "--model", "videochat_online", "--model_args",
                             f"pretrained={BUNDLED},preset=project,fps=1,max_new_tokens=32", "--tasks",
                             "ovbench_synth", "--include_path", str(TASKS_DIR), "--limit", str(limit),
                             "--log_samples", "--output_path", str(out)], capture_output=True, text=True, env=env,
                            timeout=900)
    assert check(out, ["ovbench_synth"]) == [], result.stdout[-3000:] + result.stderr[-3000:]
    (file,) = list(out.rglob("*_samples_ovbench_synth.jsonl"))
    lmms = {s["ovbench_overall"]["id"]: s for s in map(json.loads, file.read_text().splitlines())}
    evaluate(first_videos, "stream", tmp_path / "ours")
    ours = {r["id"]: r for r in map(json.loads, (tmp_path / "ours/predictions.jsonl").read_text().splitlines())}
    assert len(lmms) == limit
    for qid, sample in lmms.items():
        reply = sample["filtered_resps"]
        reply = reply[0] if isinstance(reply, list) else reply
        assert reply == ours[qid]["reply"] and sample["ovbench_overall"]["correct"] == ours[qid]["correct"], qid


def test_the_test_split_alone_is_the_full_builds_and_shared_scenes_are_reported(tmp_path, capsys):
    from videochat_online.synthetic.build import main as build_main

    full, alone = tmp_path / "full", tmp_path / "alone"
    assert build_main([str(full), "--train-videos", "3", "--test-videos", "2", "--seed", "5"]) == 0
    assert build_main([str(alone), "--train-videos", "3", "--test-videos", "2", "--seed", "5", "--test-only",
                       "--against", str(full)]) == 0
    assert "0 of the 2 test scenes are also in" in capsys.readouterr().out
    assert (alone / "ovbench/synth.json").read_text() == (full / "ovbench/synth.json").read_text()
    assert sorted(p.name for p in (alone / "videos/test").iterdir()) == ["synth_test_0000.mp4", "synth_test_0001.mp4"]
    assert not (alone / "train").exists() and not (alone / "videos/train").exists()
    # a training split that holds the second test scene (scenes.json: {"train": [scene fields, ...]})
    test_scenes = json.loads((alone / "scenes.json").read_text())["test"]
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / "scenes.json").write_text(json.dumps({"train": [test_scenes[1]]}))
    assert build_main([str(tmp_path / "again"), "--train-videos", "3", "--test-videos", "2", "--seed", "5",
                       "--test-only", "--against", str(leaky)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"1 of the 2 test scenes are also in {leaky}'s training split: synth_test_0001.mp4")
    assert build_main([str(tmp_path / "x"), "--test-only", "--against", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none' / 'scenes.json'}: cannot read it")
