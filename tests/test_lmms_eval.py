"""lmms-eval: the OVBench tasks and the videochat_online model plug-in, run end to end on CPU.

lmms-eval exits 0 even when an evaluation fails, so every run here is judged by its output files.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmms_eval_ovbench import TASKS_DIR
from lmms_eval_ovbench.check import check, newest_results
from videochat_online.eval.ovbench import load_ovbench
from videochat_online.eval.runner import main as eval_main
from videochat_online.tools.demo_media import write_video

from conftest import OVBENCH_SUBSETS as SUBSETS  # noqa: E402
LIMIT = 2  # questions per subset: the first ones of each question file


def lmms_eval(args, env_extra=None, timeout=900):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lmms_eval", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def media(ovbench_sample):
    """Synthetic videos for the first LIMIT questions of every subset, and the environment naming them."""
    anno, roots = ovbench_sample("lmms", lambda entries: entries[:LIMIT])
    env = {f"OVBENCH_{s.upper()}_ROOT": str(roots[s]) for s in SUBSETS}
    return anno.parent, anno, roots, env


@pytest.fixture(scope="module")
def ovbench_run(tiny_dir, media):
    root, _, _, env = media
    out = root / "lmms_out"
    result = lmms_eval(["--model", "videochat_online", "--model_args",
                        f"pretrained={tiny_dir()},fps=1,system_message=ovbench", "--tasks", "ovbench",
                        "--include_path", str(TASKS_DIR), "--limit", str(LIMIT), "--log_samples",
                        "--output_path", str(out)], env)
    return out, result


def samples(out, task):
    (file,) = list(out.rglob(f"*_samples_{task}.jsonl"))
    return [json.loads(line) for line in file.read_text().splitlines()]


def test_ovbench_runs_end_to_end(ovbench_run):
    out, result = ovbench_run
    log = result.stdout + result.stderr
    assert check(out, ["ovbench", "ovbench_ava", "ovbench_coin", "ovbench_hirest", "ovbench_tao"]) == [], log
    results = json.loads(newest_results(out).read_text())["results"]
    for subset in SUBSETS:
        metrics = {k.split(",")[0] for k in results[f"ovbench_{subset}"] if "stderr" not in k and "," in k}
        expected = {"ovbench_overall", "ovbench_macro", "ovbench_published_rule", "ovbench_failed",
                    "ovbench_PastMemory", "ovbench_TemporalPerception", "ovbench_FuturePrediction", "ovbench_Hallucination"}
        if subset in ("ava", "tao"):
            expected |= {"ovbench_SpatialPerception", "ovbench_SpatioTemporalPerception"}
        assert metrics == expected
        assert len(samples(out, f"ovbench_{subset}")) == LIMIT
        assert results[f"ovbench_{subset}"]["ovbench_failed,none"] == 0

def test_lmms_eval_agrees_with_the_projects_evaluation(ovbench_run, tiny_dir, media, tmp_path):
    out, _ = ovbench_run
    _, anno, roots, _ = media
    ours = tmp_path / "ours"
    args = ["--model", str(tiny_dir()), "--anno-dir", str(anno), "--output-dir", str(ours), "--fps", "1",
            "--protocol", "stream"]
    for subset, path in roots.items():
        args += ["--data-root", f"{subset}={path}"]
    assert eval_main(args) == 0
    mine = {r["id"]: r for r in map(json.loads, (ours / "predictions.jsonl").read_text().splitlines())}
    prompts = {q.qid: q for t in load_ovbench(anno) for q in t.questions}
    from videochat_online.eval.ovbench import format_question

    compared = 0
    for subset in SUBSETS:
        for sample in samples(out, f"ovbench_{subset}"):
            record = sample["ovbench_overall"]
            assert sample["input"] == format_question(prompts[record["id"]])  # the same prompt
            reply = sample["filtered_resps"]
            reply = reply[0] if isinstance(reply, list) else reply
            assert reply == mine[record["id"]]["reply"]  # the same memory, prompt and generation
            assert record["prediction"] == mine[record["id"]]["prediction"]
            assert record["correct"] == mine[record["id"]]["correct"]
            assert record["answer"] == mine[record["id"]]["answer"]
            compared += 1
    assert compared == LIMIT * len(SUBSETS)


class Request:
    """An lmms-eval generate_until request, as the model reads it."""

    def __init__(self, doc_id, task, doc_to_visual):
        self.args = ("(the task's prompt: not used for clips)", {"max_new_tokens": 128}, doc_to_visual, doc_id, task,
                     "test")


@pytest.mark.parametrize("preset, backbone", [("published", "internvl"), ("project", "internvl"),
                                              ("project", "qwen3-vl"), ("project", "qwen2.5-vl")])
def test_the_plug_in_puts_questions_as_the_cli_does(preset, backbone, tiny_dir, tiny_qwen, media, tmp_path,
                                                     monkeypatch):
    """Under both presets, and on each backbone: the same prompts (frames, text) and the same replies as
    `videochat-online eval`."""
    _, anno, roots, env = media
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    checkpoint = tiny_dir() if backbone == "internvl" else tiny_qwen(backbone)
    ours = tmp_path / "ours"
    assert eval_main(["--model", str(checkpoint), "--anno-dir", str(anno), "--output-dir", str(ours),
                      "--subsets", "coin,tao", "--data-root", f"coin={roots['coin']}", "--data-root",
                      f"tao={roots['tao']}", "--preset", preset]) == 0
    mine = {r["id"]: r for r in map(json.loads, (ours / "predictions.jsonl").read_text().splitlines())}

    from lmms_eval_ovbench.model import VideoChatOnline
    from videochat_online.conversation import compact_prompt

    model = VideoChatOnline(pretrained=str(checkpoint), preset=preset, system_message="ovbench")
    utils = load_task_utils()
    docs = {s: [{**e, "subset": s, "qid": f"{s}/{i}"} for i, e in enumerate(json.loads((anno / f"{s}.json").read_text()))]
            for s in ("coin", "tao")}
    model.task_dict = {f"ovbench_{s}": {"test": d} for s, d in docs.items()}
    prompts = []
    generate = model.engine.generate
    monkeypatch.setattr(model.engine, "generate", lambda prompt, *a, **k: prompts.append(prompt) or
                        generate(prompt, *a, **k))
    requests = [Request(i, f"ovbench_{s}", lambda doc: utils.ovbench_doc_to_visual(doc, {"visual": "clip"}))
                for s, d in docs.items() for i in range(len(d))]
    replies = model.generate_until(requests)
    ids = [doc["qid"] for d in docs.values() for doc in d]
    assert replies == [mine[i]["reply"] for i in ids]
    assert sorted(compact_prompt(p) for p in prompts) == sorted(mine[i]["prompt"] for i in ids)
    if preset == "project":  # asked at the question's end, not at the file's middle_frame_timestamp
        assert all(f"Question at {mine[i]['time']}s:" in mine[i]["prompt"] for i in ids)


def load_task_utils():
    spec = importlib.util.spec_from_file_location("ovbench_task_utils", TASKS_DIR / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_other_models_get_frames_of_the_clip_only(media, monkeypatch):
    _, anno, _, env = media
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    utils = load_task_utils()
    doc = {**json.loads((anno / "coin.json").read_text())[0], "subset": "coin", "qid": "coin/0"}
    frames = utils.ovbench_doc_to_visual(doc, {"visual": "frames", "num_frames": 4})
    assert len(frames) == 4 and all(isinstance(f, Image.Image) for f in frames)
    from videochat_online.tools.demo_media import frame_number

    shown = [frame_number(np.asarray(f)) for f in frames]
    # 4 times over [0, end], end points included (the published reader); synthetic mp4s run at 5 fps
    native = [int(doc["end"] * i / 3 * 5 + 1e-6) for i in range(4)]
    drawn = [round((3 * j) % 256 / 3) for j in native]  # the grey level each frame number is drawn with
    assert all(abs(a - b) <= 1 for a, b in zip(shown, drawn)), (shown, drawn)  # H.264 is lossy
    assert max(native) == doc["end"] * 5  # the frame at the question's moment is shown, none after it
    clip = utils.ovbench_doc_to_visual(doc, {"visual": "clip"})
    assert clip == [{"benchmark": "ovbench", "video": str(Path(env["OVBENCH_COIN_ROOT"]) / doc["video"]),
                     "start": 0.0, "end": doc["end"],
                     "folder_fps": None, "question": doc, "subset": "coin", "position": 0}]
    monkeypatch.delenv("OVBENCH_COIN_ROOT")
    with pytest.raises(Exception, match="OVBENCH_COIN_ROOT is not set"):
        utils.ovbench_doc_to_visual(doc, {"visual": "clip"})


def test_missing_video_root_is_a_clear_error(tiny_dir, media, tmp_path):
    _, _, _, env = media
    env = {k: v for k, v in env.items() if k != "OVBENCH_TAO_ROOT"}
    result = lmms_eval(["--model", "videochat_online", "--model_args", f"pretrained={tiny_dir()}", "--tasks",
                        "ovbench_tao", "--include_path", str(TASKS_DIR), "--limit", "1", "--output_path",
                        str(tmp_path / "out")], {**env, "OVBENCH_TAO_ROOT": ""})
    assert "OVBENCH_TAO_ROOT is not set: point it at the folder holding OVBench's tao videos" in result.stdout + result.stderr
    assert check(tmp_path / "out", ["ovbench_tao"]) != []  # no results: the run failed (whatever lmms-eval's exit code)


GENERIC_UTILS = '''
from PIL import Image

def doc_to_visual(doc):
    return [Image.open(doc["image"])] if doc.get("image") else [doc["video"]]

def doc_to_text(doc):
    return doc["question"]

def process_results(doc, results):
    return {"answered": float(bool(results[0].strip()))}
'''


GENERIC_TASK = """task: generic_{name}
dataset_path: json
dataset_kwargs:
  data_files:
    train: {name}.json
test_split: train
output_type: generate_until
doc_to_visual: !function generic_utils.doc_to_visual
doc_to_text: !function generic_utils.doc_to_text
doc_to_target: question
process_results: !function generic_utils.process_results
generation_kwargs:
  max_new_tokens: 6
metric_list:
  - metric: answered
    aggregation: mean
    higher_is_better: true
"""


def test_generic_video_and_image_tasks(tiny_dir, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "generic_utils.py").write_text(GENERIC_UTILS)
    video = write_video(tmp_path / "clip.mp4", seconds=6, fps=5)
    Image.new("RGB", (300, 200), (200, 30, 30)).save(tmp_path / "red.png")
    (tasks / "video.json").write_text(json.dumps([{"video": str(video), "question": "What moves?"}] * 2))
    (tasks / "image.json").write_text(json.dumps([{"image": str(tmp_path / "red.png"), "question": "Color?"}]))
    for name in ("video", "image"):
        (tasks / f"generic_{name}.yaml").write_text(GENERIC_TASK.format(name=name))
    out = tmp_path / "out"
    result = lmms_eval(["--model", "videochat_online", "--model_args", f"pretrained={tiny_dir()},fps=2",
                        "--tasks", "generic_video,generic_image", "--include_path", str(tasks), "--output_path",
                        str(out)])
    assert check(out, ["generic_video", "generic_image"]) == [], result.stdout + result.stderr
    results = json.loads(newest_results(out).read_text())["results"]
    assert results["generic_video"]["answered,none"] == 1.0
    assert results["generic_image"]["answered,none"] == 1.0


# --------------------------------------------------------------------------------------------------
# Several processes, and documents that fail
# --------------------------------------------------------------------------------------------------
COIN_DOCS = 6  # the first questions of coin.json (several videos, so that both processes get work)


@pytest.fixture(scope="module")
def coin_media(ovbench_sample):
    anno, roots = ovbench_sample("lmms_coin", lambda entries: entries[:COIN_DOCS])
    return {f"OVBENCH_{s.upper()}_ROOT": str(roots[s]) for s in SUBSETS}


def coin_args(tiny, out):
    return ["--model", "videochat_online", "--model_args", f"pretrained={tiny},fps=1,system_message=ovbench",
            "--tasks", "ovbench_coin", "--include_path", str(TASKS_DIR), "--limit", str(COIN_DOCS),
            "--log_samples", "--output_path", str(out)]


def test_two_processes_give_the_same_scores_as_one(tiny_dir, coin_media, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    first = lmms_eval(coin_args(tiny_dir(), one), coin_media)
    assert check(one, ["ovbench_coin"]) == [], first.stdout + first.stderr
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **coin_media}
    second = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", "-m", "lmms_eval",
                             *coin_args(tiny_dir(), two)], capture_output=True, text=True, timeout=900, env=env)
    assert check(two, ["ovbench_coin"]) == [], second.stdout[-3000:] + second.stderr[-5000:]
    scores = [json.loads(newest_results(out).read_text())["results"]["ovbench_coin"] for out in (one, two)]
    metrics = [{k: v for k, v in s.items() if k.startswith("ovbench_")} for s in scores]
    assert metrics[0] == metrics[1] and metrics[0]["ovbench_failed,none"] == 0
    replies = [{s["doc_id"]: s["filtered_resps"] for s in samples(out, "ovbench_coin")} for out in (one, two)]
    assert len(replies[0]) == COIN_DOCS and replies[0] == replies[1]  # every document answered once, identically


def test_a_missing_video_fails_the_check(tiny_dir, coin_media, tmp_path):
    media = Path(coin_media["OVBENCH_COIN_ROOT"])
    broken = tmp_path / "coin"
    broken.mkdir()
    videos = sorted(media.iterdir())
    for video in videos[1:]:  # every video but the first
        (broken / video.name).symlink_to(video)
    out = tmp_path / "out"
    result = lmms_eval(coin_args(tiny_dir(), out), {**coin_media, "OVBENCH_COIN_ROOT": str(broken)})
    log = result.stdout + result.stderr
    assert result.returncode == 0  # lmms-eval's exit code says nothing: the check must
    docs = json.loads((coin_media_anno(coin_media) / "coin.json").read_text())
    missing = sum(d["video"] == videos[0].name for d in docs)
    assert missing >= 1
    assert f"{missing} of {COIN_DOCS} documents failed" in log
    results = json.loads(newest_results(out).read_text())["results"]["ovbench_coin"]
    assert results["ovbench_failed,none"] == missing
    problems = check(out, ["ovbench_coin"])
    assert any(f"{missing} questions failed" in p for p in problems), problems
    assert any(f"{missing} documents failed" in p and videos[0].name in p for p in problems), problems
    from lmms_eval_ovbench import FAILED_REPLY_PREFIX

    replies = [str(s["filtered_resps"]) for s in samples(out, "ovbench_coin")]
    assert len(replies) == COIN_DOCS  # the other videos' questions were still answered
    assert sum(FAILED_REPLY_PREFIX in r for r in replies) == missing


def coin_media_anno(coin_media):
    return Path(coin_media["OVBENCH_COIN_ROOT"]).parents[1] / "anno"


def test_image_count_mismatch_is_a_per_document_failure(tiny_dir, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "generic_utils.py").write_text(GENERIC_UTILS)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "red.png")
    docs = [{"image": str(tmp_path / "red.png"), "question": "<image> and <image>: which is red?"},
            {"image": str(tmp_path / "red.png"), "question": "<image> Color?"}]
    (tasks / "image.json").write_text(json.dumps(docs))
    (tasks / "generic_image.yaml").write_text(GENERIC_TASK.format(name="image"))
    out = tmp_path / "out"
    result = lmms_eval(["--model", "videochat_online", "--model_args", f"pretrained={tiny_dir()}", "--tasks",
                        "generic_image", "--include_path", str(tasks), "--log_samples", "--output_path", str(out)])
    log = result.stdout + result.stderr
    assert "generic_image/0 failed: the question has 2 <image> placeholders but 1 images were given" in log
    assert "1 of 2 documents failed" in log
    assert json.loads(newest_results(out).read_text())["results"]["generic_image"]["answered,none"] == 1.0
    (problem,) = check(out, ["generic_image"])
    assert "generic_image: 1 documents failed, first: doc 0: the question has 2 <image> placeholders" in problem


def test_ovo_bench_and_streamingbench_tasks_agree_with_the_cli(tiny_dir, tmp_path):
    """The multiple-choice tasks of OVO-Bench and StreamingBench: lmms-eval's videochat_online model gives the same
    replies as `videochat-online eval --benchmark ...` on the same rows; the task prompt is the official one."""
    import shutil

    from test_streaming_benchmarks import OVO_MC, SB_REAL, write_videos

    from lmms_eval_ovbench import STREAMING_TASKS_DIR
    from videochat_online.eval import ovo_bench, streamingbench

    tasks = tmp_path / "tasks"
    shutil.copytree(STREAMING_TASKS_DIR, tasks, ignore=shutil.ignore_patterns("data", "__pycache__"))
    ovo_rows = [OVO_MC, {**OVO_MC, "id": 4, "task": "OCR", "realtime": 7.0}]
    sb_rows = [SB_REAL]
    (tasks / "data/ovo-bench").mkdir(parents=True)
    (tasks / "data/streamingbench").mkdir(parents=True)
    (tasks / "data/ovo-bench/ovo_bench_new.json").write_text(json.dumps(ovo_rows))
    (tasks / "data/streamingbench/questions_real.json").write_text(json.dumps(sb_rows))
    write_videos(ovo_bench.load(tasks / "data/ovo-bench", None), tmp_path / "ovo")
    sb_tasks = streamingbench.load(tasks / "data/streamingbench", None, ("real",))
    for task in sb_tasks:
        task.video = Path(task.video).name
    write_videos(sb_tasks, tmp_path / "sb")
    out = tmp_path / "lmms_out"
    result = lmms_eval(["--model", "videochat_online", "--model_args", f"pretrained={tiny_dir()},fps=1",
                        "--tasks", "ovo_bench_mc,streamingbench_real", "--include_path", str(tasks), "--log_samples",
                        "--output_path", str(out)],
                       {"OVO_BENCH_ROOT": str(tmp_path / "ovo"), "STREAMINGBENCH_ROOT": str(tmp_path / "sb")})
    assert check(out, ["ovo_bench_mc", "streamingbench_real"]) == [], result.stdout + result.stderr
    for benchmark, task, anno, root in (("ovo-bench", "ovo_bench_mc", "ovo-bench", "ovo"),
                                        ("streamingbench", "streamingbench_real", "streamingbench", "sb")):
        ours = tmp_path / f"ours_{benchmark}"
        assert eval_main(["--benchmark", benchmark, "--model", str(tiny_dir()), "--anno-dir", str(tasks / "data" / anno),
                          "--data-root", f"videos={tmp_path / root}", "--output-dir", str(ours), "--fps", "1",
                          *(["--subsets", "real"] if benchmark == "streamingbench" else [])]) == 0
        mine = {r["id"]: r for r in map(json.loads, (ours / "predictions.jsonl").read_text().splitlines())}
        logged = samples(out, task)
        assert len(logged) == len(mine)
        for sample in logged:
            record = sample[f"{task.split('_mc')[0].split('_real')[0]}_published"]
            reply = sample["filtered_resps"]
            reply = reply[0] if isinstance(reply, list) else reply
            assert reply == mine[record["id"]]["reply"] and record["correct"] == mine[record["id"]]["correct"]
            assert sample["input"].split("Question: ")[1] in mine[record["id"]]["prompt"]  # the official prompt


@pytest.mark.parametrize("args, message", [
    ({"fps": "abc"}, "fps 'abc': must be a number"),
    ({"fps": "1e9"}, "fps 1000000000.0: must be at most 240"),
    ({"video_fps": "0"}, "video_fps 0.0: must be a finite number > 0"),
    ({"frame_batch": "0"}, "frame_batch 0: must be an integer >= 1"),
    ({"frame_batch": "-1"}, "frame_batch -1: must be an integer >= 1"),
    ({"max_new_tokens": "0"}, "max_new_tokens 0: must be an integer >= 1"),
    ({"dtype": "fp8"}, "dtype=fp8: use one of bf16, fp16, fp32"),
    ({"device": "tpu"}, "--device tpu: not a device; use cpu, cuda or cuda:N"),
    ({"device": "cuda:7"}, "--device cuda:7: CUDA is not available on this machine"),
    ({"attn_implementation": "magic"}, "attn_implementation=magic: use one of sdpa, flash_attention_2, eager"),
    ({"window": "abc"}, "window"),
    ({"capacites": "4-4-8"}, "unknown model_args capacites"),
    ({"preset": "fast"}, "preset=fast: use one of published, project"),
    ({"pretrained": "/nonexistent/model"}, "/nonexistent/model: no such checkpoint directory"),
])
def test_model_args_are_checked_before_the_model_loads(tiny_dir, monkeypatch, args, message):
    from videochat_online.errors import VideoChatOnlineError
    from videochat_online.options import ModelOptions

    from lmms_eval_ovbench.model import VideoChatOnline

    loads = []
    real_load = ModelOptions.load
    monkeypatch.setattr(ModelOptions, "load", lambda self, **kw: loads.append(1) or real_load(self, **kw))
    with pytest.raises(VideoChatOnlineError) as err:
        VideoChatOnline(**{"pretrained": str(tiny_dir()), **args})
    assert message in str(err.value) and "\n" not in str(err.value)
    assert loads == [] or "pretrained" in args  # a bad value never waits for the model (a missing one is found there)


BAD_MODEL_ARGS = ["capacites=2-2-12", "", "pretrained=/nonexistent/model", "pretrained={tiny},device=tpu",
                  "pretrained={tiny},dtype=fp8", "pretrained={tiny},memory=lru", "pretrained={tiny},fps=0",
                  "pretrained={tiny},frame_batch=0", "pretrained={tiny},preset=fast"]


def test_lmms_eval_ends_a_run_with_bad_model_args_in_one_line(tiny_dir, media, capsys):
    """lmms-eval swallows exceptions and exits 0; the plug-in's way in ends the run: one line, exit status 2."""
    from lmms_eval_ovbench.model import VideoChatOnline

    tiny = tiny_dir()
    capsys.readouterr()
    for arg_string in BAD_MODEL_ARGS:
        with pytest.raises(SystemExit) as exit_:
            VideoChatOnline.create_from_arg_string(arg_string.format(tiny=tiny), {"batch_size": 1})
        err = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("error: videochat_online: "), err
    # and through lmms-eval's own command line
    _, _, _, env = media
    result = lmms_eval(["--model", "videochat_online", "--model_args", f"pretrained={tiny},capacites=2-2-12",
                        "--tasks", "ovbench_coin", "--include_path", str(TASKS_DIR), "--limit", "1"], env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: videochat_online: videochat_online: unknown model_args capacites" in result.stderr
