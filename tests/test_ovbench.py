"""OVBench: the real question files, prompt and scoring, and end-to-end runs on synthetic media.

The question files are the real ones the lmms-eval tasks ship (`lmms-eval-ovbench/tasks/ovbench/questions`;
OVBENCH_ANNO_DIR overrides). The end-to-end runs use a sample of real questions with small
question times, and synthetic videos and frame folders exactly as long as those questions need.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from videochat_online.chat import Reply
from videochat_online.options import ModelOptions
from videochat_online.eval.ovbench import (
    WINDOW_SUFFIX,
    OVBenchError,
    Question,
    format_question,
    load_ovbench,
    load_questions,
)
from videochat_online.eval.driver import Answer
from videochat_online.eval.presets import ProtocolConfig
from videochat_online.eval.benchmarks import BENCHMARKS
from videochat_online.eval.protocols import protocol_of
from videochat_online.eval.scoring import extract_option, published_choice, self_contradicting
from videochat_online.eval.results import accuracy_table
from videochat_online.eval.runner import main as eval_main
from videochat_online.eval.runner import shard

from conftest import OVBENCH_ANNO as ANNO  # noqa: E402
from conftest import OVBENCH_SUBSETS as SUBSETS  # noqa: E402


def test_real_question_files():
    tasks = load_ovbench(ANNO)
    assert sum(len(t.questions) for t in tasks) == 7005
    assert len(tasks) == 1441
    counts = {s: sum(len(t.questions) for t in tasks if t.subset == s) for s in SUBSETS}
    assert counts == {"ava": 1396, "coin": 1948, "hirest": 1714, "tao": 1947}
    for task in tasks:
        assert [q.end for q in task.questions] == sorted(q.end for q in task.questions)
        assert (task.folder_fps is not None) == (task.subset in ("ava", "tao"))
    ava = [q for t in tasks if t.subset == "ava" for q in t.questions]
    assert all(q.reference_time == q.end - 5 for q in ava)  # the 900 s AVA offset removed
    coin = [q for t in tasks if t.subset == "coin" for q in t.questions]
    assert all(q.reference_time == q.end for q in coin)


def test_planned_encode_ratio_on_the_full_question_set():
    tasks = load_ovbench(ANNO)
    stream, recompute = (protocol_of(ProtocolConfig(name=name, preset="project")) for name in ("stream", "recompute"))
    ratio = sum(recompute.planned_encodes(t) for t in tasks) / sum(stream.planned_encodes(t) for t in tasks)
    assert 4.8 < ratio < 5.1  # the ~5x of the question times (299 h vs 60 h of video)
    ava = [t for t in tasks if t.subset == "ava"]
    ratio = sum(recompute.planned_encodes(t, 1.0) for t in ava) / sum(stream.planned_encodes(t, 1.0) for t in ava)
    assert 10.5 < ratio < 11.5  # AVA: 11x


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.pop("answer"), "entry 1 (video v1): missing 'answer'"),
    (lambda e: e.update(answer="maybe"), "entry 1 (video v1): 'answer' 'maybe' is not one of the candidates"),
    (lambda e: e.update(candidates=["only"], answer="only"), "entry 1 (video v1): 'candidates' must be 2 to 5 strings"),
    (lambda e: e.pop("fps"), "entry 1 (video v1): a frame-folder subset needs a positive 'fps'"),
    (lambda e: e.update(end="soon"), "entry 1 (video v1): 'end' has the wrong type (str)"),
    (lambda e: e.update(start=9.0), "entry 1 (video v1): needs 0 <= start <= end"),
])
def test_malformed_entries_are_named(tmp_path, mutate, message):
    good = {"video": "v0", "start": 0.0, "end": 5.0, "middle_frame_timestamp": 900.0, "question": "Q?",
            "candidates": ["Yes", "No"], "answer": "No", "answer_type": "Hallucination",
            "sub_answer_type": "Hallucination-1", "fps": 1}
    bad = dict(good, video="v1")
    mutate(bad)
    file = tmp_path / "ava.json"
    file.write_text(json.dumps([good, bad]))
    with pytest.raises(OVBenchError) as err:
        load_questions(file, "ava")
    assert str(err.value) == f"{file}: {message}" or str(err.value).startswith(f"{file}: {message}")


def test_unreadable_question_files(tmp_path):
    with pytest.raises(OVBenchError, match="no such question file"):
        load_ovbench(tmp_path)
    (tmp_path / "coin.json").write_text("[{")
    with pytest.raises(OVBenchError, match=r"coin.json: not valid JSON"):
        load_ovbench(tmp_path, subsets=("coin",))


def question(**kw):
    base = dict(qid="coin/0", subset="coin", video="v.mp4", start=0.0, end=12.0, reference_time=12.0, asked_time=12.0,
                question="What is the person doing?", candidates=["cutting", "pouring", "mixing"], answer="pouring",
                answer_type="PastMemory", sub_answer_type="PastMemory-1")
    return Question(**{**base, **kw})


def test_question_prompt_is_pinned():
    assert format_question(question()) == ("Question at 12.0s: What is the person doing?\nOptions:\n(A) cutting\n"
                                           "(B) pouring\n(C) mixing\nAnswer:")
    ava = question(subset="ava", end=50.0, reference_time=45.0, asked_time=945.0)  # as ava.json's first entry
    assert format_question(ava).startswith("Question at 945.0s: ")  # published: middle_frame_timestamp as written
    assert format_question(ava, time=ava.end).startswith("Question at 50.0s: ")  # project preset
    assert format_question(ava, suffix=WINDOW_SUFFIX).endswith("(C) mixing\nOnly give the best option.")


@pytest.mark.parametrize("reply, letter", [
    ("B", "B"), ("(B) pouring", "B"), ("B. pouring", "B"), ("B) pouring", "B"), ("  C: mixing", "C"),
    ("The answer is (A).", "A"), ("Answer: C", "C"), ("pouring", "B"), ("The person is mixing.", "C"),
    ("I think it's B, because the person pours water", "B"),
    ("D", None), ("(E) none", None), ("cutting or pouring", None), ("", None), ("A or B", None),
])
def test_extract_option(reply, letter):
    assert extract_option(reply, ["cutting", "pouring", "mixing"]) == letter


def reply(text):
    return Reply(text=text, token_ids=[], prompt="<|user|>\n" + "<IMG_CONTEXT>" * 3 + "\nQ<|end|><|assistant|>\n")


def test_accuracy_table_counts():
    q = question()
    cases = [("PastMemory-1", "(B)"), ("PastMemory-1", "(A)"), ("PastMemory-2", "pouring"),
             ("Hallucination-1", "B"), ("Hallucination-1", "a pouring motion")]
    def record(q, said, protocol, error=None):
        return BENCHMARKS.get("ovbench")().record(q, None if said is None else Answer(said, [], q.end), protocol, error)

    records = [record(question(qid=f"coin/{i + 1}", answer_type=sub.split("-")[0], sub_answer_type=sub), reply(text),
                      "stream") for i, (sub, text) in enumerate(cases)]
    records.append(record(q, None, "stream", error="video missing"))  # a PastMemory-1 question
    table = accuracy_table(records)
    # strict: B, A, B, B, B ("pouring" as whole words) -> 4 right; published rule: B, A, pouring, B, A -> 2 right
    assert table["overall"] == {"accuracy": 66.67, "accuracy_published_rule": 33.33, "correct": 4,
                                "correct_published_rule": 2, "total": 6, "failed": 1, "self_contradicting": 0}
    assert table["answer_type"]["PastMemory"]["accuracy"] == 50.0  # 2 of 4
    # "(A) pouring": the letter says cutting, the text pouring (the answer); both rules follow the letter
    torn = accuracy_table([record(q, reply("(A) pouring"), "stream"), record(q, reply("(B) pouring"), "stream")])
    assert torn["overall"]["self_contradicting"] == 1 and torn["overall"]["correct"] == 1
    # macro: cells PastMemory-1 (1/3), PastMemory-2 (1/1), Hallucination-1 (2/2) -> (33.33 + 100 + 100) / 3
    assert table["headline"] == {"macro": 77.78, "macro_published_rule": round((100 / 3 + 0 + 50) / 3, 2), "cells": 3}
    assert table["subset_x_answer_type"]["coin/PastMemory"]["total"] == 4
    assert table["failed"] == [{"id": "coin/0", "video": "v.mp4", "error": "video missing"}]


# Replies and the option each rule chooses, worked out by hand from the rules (scoring.py's docstring):
# candidates ["Yes", "No"] (1582 of the 7005 questions) and ["cutting", "pouring", "mixing"].
YES_NO, ACTIONS = ["Yes", "No"], ["cutting", "pouring", "mixing"]
SCORING_TABLE = [
    # reply,                               candidates, strict, published rule (letter or normalised text)
    ("A", YES_NO, "A", "A"),
    ("B.", YES_NO, "B", "B"),
    ("(B) No", YES_NO, "B", "B"),
    ("No", YES_NO, "B", "no"),
    ("No.", YES_NO, "B", "no"),
    ("Yes, it is still there.", YES_NO, "A", "yes it is still there"),
    ("I don't know.", YES_NO, None, "i don't know"),
    ("Not sure", YES_NO, None, "not sure"),
    ("Cannot tell", YES_NO, None, "cannot tell"),
    ("Yesterday", YES_NO, None, "yesterday"),
    ("Nothing moved", YES_NO, None, "nothing moved"),
    ("a", YES_NO, None, "A"),
    ("The answer is (A).", YES_NO, "A", "A"),
    ("b", ACTIONS, None, "B"),
    ("c. mixing", ACTIONS, "C", "C"),
    ("pouring", ACTIONS, "B", "pouring"),
    ("The person is mixing.", ACTIONS, "C", "the person is mixing"),
    ("a person is pouring water", ACTIONS, "B", "A"),
    ("A person is pouring water", ACTIONS, "B", "A"),
    ("cutting or pouring", ACTIONS, None, "cutting or pouring"),
    ("premixing", ACTIONS, None, "premixing"),
    ("D", ACTIONS, None, "D"),
    ("I think it's B, because the person pours water", ACTIONS, "B", "B"),
    ("", ACTIONS, None, ""),
]


@pytest.mark.parametrize("text, candidates, strict, published", SCORING_TABLE)
def test_scoring_rules_table(text, candidates, strict, published):
    assert extract_option(text, candidates) == strict
    assert published_choice(text) == published


def test_candidate_text_counts_only_when_no_other_candidate_shares_it():
    assert extract_option("the red ball", ["ball", "red ball"]) == "B"  # "ball" lies inside the other match
    assert extract_option("a ball", ["ball", "red ball"]) == "A"
    assert extract_option("the ball is red", ["blue ball", "red ball"]) is None  # neither text stands whole


@pytest.mark.parametrize("reply, candidates, contradicts", [
    ("(B) Yes", ["Yes", "No"], True),  # B is "No": the letter says no, the text yes
    ("(C) Yes", ["Yes", "No"], True),  # a letter the question does not have, beside a text it does
    ("(A) Yes", ["Yes", "No"], False),
    ("(B) No.", ["Yes", "No"], False),
    ("B", ["Yes", "No"], False),  # a letter alone says one thing
    ("Yes", ["Yes", "No"], False),  # a text alone too
    ("(A) top right", ["top left", "top right", "bottom left", "bottom right"], True),
    ("(D) bottom right", ["top left", "top right", "bottom left", "bottom right"], False),
    ("(B) the red ball", ["ball", "red ball"], False),  # "ball" lies inside the option it names
    ("(A) 3-4s", ["1-2s", "3-4s", "5-6s", "7-8s"], True),
])
def test_a_reply_whose_letter_and_text_disagree_is_self_contradicting(reply, candidates, contradicts):
    assert self_contradicting(reply, candidates) is contradicts


def test_shards_balance_duration_and_cover_every_video():
    tasks = load_ovbench(ANNO)
    parts = shard(tasks, 4, protocol_of(ProtocolConfig(name="stream", preset="project", fps=1.0)))
    assert sorted(t.key for p in parts for t in p) == sorted(t.key for t in tasks)
    loads = [sum(t.watch_seconds for t in p) for p in parts]
    assert max(loads) - min(loads) <= max(t.watch_seconds for t in tasks)


# --------------------------------------------------------------------------------------------------
# End to end, on synthetic media
# --------------------------------------------------------------------------------------------------
def _small_questions(entries):
    """Questions asked by 30 s: the 2 videos with most of them, up to 3 questions each."""
    by_video = {}
    for e in entries:
        if e["end"] <= 30:
            by_video.setdefault(e["video"], []).append(e)
    videos = sorted(by_video, key=lambda v: (-len(by_video[v]), v))[:2]
    return [e for v in videos for e in by_video[v][:3]]


@pytest.fixture(scope="module")
def sample(ovbench_sample):
    return ovbench_sample("ovbench", _small_questions)


def eval_args(tiny, anno, roots, out, protocol="stream", extra=()):
    args = ["--model", str(tiny), "--anno-dir", str(anno), "--protocol", protocol, "--output-dir", str(out),
            "--fps", "1", "--max-new-tokens", "6", *extra]
    for subset, path in roots.items():
        args += ["--data-root", f"{subset}={path}"]
    return args


def predictions(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def table(out):
    results = json.loads((out / "results.json").read_text())
    results.pop("meta")
    return results


def test_all_protocols_end_to_end(tiny_dir, sample, tmp_path):
    anno, roots = sample
    tiny = tiny_dir("native", "phi3")
    n = sum(len(t.questions) for t in load_ovbench(anno))
    assert n >= 18
    runs = [(protocol, preset) for preset in ("published", "project")
            for protocol in ("stream", "recompute", "window", "uniform")]
    for protocol, preset in runs:
        out = tmp_path / f"{protocol}-{preset}"
        assert eval_main(eval_args(tiny, anno, roots, out, protocol, extra=("--preset", preset))) == 0
        for name in ("predictions.jsonl", "results.json", "results.csv", "results.md", "config.json",
                     "charts/answer_types.png"):
            assert (out / name).is_file(), name
        results = json.loads((out / "results.json").read_text())
        assert results["overall"]["total"] == n and results["overall"]["failed"] == 0
        assert set(results["subset"]) == set(SUBSETS)
        for answer_type in results["answer_type"]:
            assert (out / "charts" / f"{answer_type}.png").is_file()
        assert len((out / "results.csv").read_text().splitlines()) == 1 + 2 + sum(
            len(results[g]) for g in ("subset", "answer_type", "sub_answer_type", "subset_x_answer_type"))
        assert results["headline"]["cells"] == len(results["sub_answer_type"])
        assert "Macro average" in (out / "results.md").read_text()
        records = predictions(out)
        assert [r["id"] for r in records] == sorted((r["id"] for r in records),
                                                   key=lambda i: (SUBSETS.index(i.split("/")[0]), int(i.split("/")[1])))
        assert all(r["status"] == "ok" and r["reply"] is not None and r["protocol"] == protocol for r in records)
        for r in records:  # what the model saw: the frames held and the exact prompt, one line per frame
            assert r["frames"] and all(t <= r["time"] for _, t, _ in r["frames"])
            assert r["prompt"].count("<img>") == len(r["frames"])
            assert [int(n) for n in re.findall(r"<IMG_CONTEXT>\*(\d+)", r["prompt"])] == [n for _, _, n in r["frames"]]
    for preset in ("published", "project"):
        stream, recompute = predictions(tmp_path / f"stream-{preset}"), predictions(tmp_path / f"recompute-{preset}")
        assert [r["reply"] for r in stream] == [r["reply"] for r in recompute]
        assert [r["frames"] for r in stream] == [r["frames"] for r in recompute]
        assert table(tmp_path / f"stream-{preset}") == table(tmp_path / f"recompute-{preset}")
    # the presets differ in what they show: the published window holds every frame of the last 32 s
    published, project = predictions(tmp_path / "window-published"), predictions(tmp_path / "window-project")
    assert [r["frames"] for r in published] != [r["frames"] for r in project]


def error_lines(capsys) -> list[str]:
    """The lines of the command's own messages on stderr (libraries may log warnings there too)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error:", "warning:"))]


def test_answer_by_likelihood_replies_with_one_of_the_options(tiny_dir, sample, tmp_path, capsys):
    anno, roots = sample
    tiny = tiny_dir("native", "phi3")
    out = tmp_path / "likelihood"
    assert eval_main(eval_args(tiny, anno, roots, out, "stream", extra=("--answer-by", "likelihood"))) == 0
    records = predictions(out)
    questions = {f"{t.subset}/{q.qid.split('/')[1]}": q for t in load_ovbench(anno) for q in t.questions}
    for r in records:  # "(A) text", ... in the options block's form: letter and text always agree
        q = questions[r["id"]]
        assert r["reply"] in [f"({'ABCDE'[i]}) {c}" for i, c in enumerate(q.candidates)]
        assert r["prediction"] == r["published_choice"] == r["reply"][1] and not r["self_contradicting"]
    assert json.loads((out / "run_settings.json").read_text())["answer_by"] == "likelihood"
    # a resume made the other way is refused
    assert eval_main(eval_args(tiny, anno, roots, out, "stream")) == 2
    assert "answer_by='likelihood', this run has answer_by='generate'" in capsys.readouterr().err


def test_the_recency_baseline_runs_under_the_stream_protocol(tiny_dir, sample, tmp_path):
    """`--memory recent`: every question answered from the last 2 frames at full resolution, and the run's
    settings say so (a resume with the pyramid is another run)."""
    anno, roots = sample
    tiny = tiny_dir("native", "phi3")
    out = tmp_path / "recent"
    assert eval_main(eval_args(tiny, anno, roots, out, "stream",
                               extra=("--memory", "recent", "--recent-frames", "2"))) == 0
    records = predictions(out)
    assert records and all(r["frames"] for r in records) and max(len(r["frames"]) for r in records) == 2
    assert all(tokens == 64 for r in records for _, _, tokens in r["frames"])  # the tiny grid, 8x8, unpooled
    settings = json.loads((out / "run_settings.json").read_text())
    assert (settings["mode"], settings["recent_frames"]) == ("recent", 2)


def test_unreadable_video_fails_its_questions_and_the_run_goes_on(tiny_dir, sample, tmp_path, capsys):
    anno, roots = sample
    task = next(t for t in load_ovbench(anno, roots) if t.subset == "coin")
    broken = tmp_path / "coin"
    broken.mkdir()
    for video in roots["coin"].iterdir():
        (broken / video.name).write_bytes(b"corrupt" if video.name == task.video else video.read_bytes())
    out = tmp_path / "out"
    capsys.readouterr()
    assert eval_main(eval_args(tiny_dir(), anno, {**roots, "coin": broken}, out)) == 1  # results written, run failed
    results = json.loads((out / "results.json").read_text())
    n = len(task.questions)
    assert results["overall"]["failed"] == n
    assert {f["id"] for f in results["failed"]} == {q.qid for q in task.questions}
    assert all("not a readable video" in f["error"] for f in results["failed"])
    assert sum(r["status"] == "ok" for r in predictions(out)) == results["overall"]["total"] - n
    (line,) = error_lines(capsys)
    assert line.startswith(f"error: {n} of {results['overall']['total']} questions failed") and task.video in line
    assert eval_main(eval_args(tiny_dir(), anno, {**roots, "coin": broken}, out) + ["--allow-failures"]) == 0
    # The video mended in its folder, a rerun answers only the failed questions and keeps everything computed before.
    before = (out / "predictions.rank0.jsonl").read_text().splitlines()
    (broken / task.video).write_bytes((roots["coin"] / task.video).read_bytes())
    assert eval_main(eval_args(tiny_dir(), anno, {**roots, "coin": broken}, out)) == 0
    after = (out / "predictions.rank0.jsonl").read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + n
    assert json.loads((out / "results.json").read_text())["overall"]["failed"] == 0


def test_a_wrong_data_root_fails_the_run(tiny_dir, sample, tmp_path, capsys, monkeypatch):
    anno, roots = sample
    out = tmp_path / "out"
    capsys.readouterr()
    # a root that does not exist, or a subset without one: refused before the model loads
    monkeypatch.setattr(ModelOptions, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    assert eval_main(eval_args(tiny_dir(), anno, {**roots, "hirest": tmp_path / "nowhere"}, out)) == 2
    assert error_lines(capsys) == [f"error: --data-root hirest={tmp_path / 'nowhere'}: no such directory"]
    assert eval_main(eval_args(tiny_dir(), anno, {k: v for k, v in roots.items() if k != "ava"}, out)) == 2
    assert error_lines(capsys) == ["error: --data-root: no folder for ava; add --data-root ava=DIR"]
    monkeypatch.undo()
    # a root without the videos: its questions fail, the others are answered and everything is written
    (tmp_path / "empty").mkdir()
    assert eval_main(eval_args(tiny_dir(), anno, {**roots, "hirest": tmp_path / "empty"}, out)) == 1
    (line,) = error_lines(capsys)
    n = sum(len(t.questions) for t in load_ovbench(anno, roots) if t.subset == "hirest")
    assert line.startswith(f"error: {n} of ") and "empty" in line
    assert (out / "results.json").exists()  # what was computed is written all the same


def test_an_anno_dir_with_only_some_subsets_says_which(tiny_dir, sample, tmp_path, capsys):
    anno, roots = sample
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("coin.json", "hirest.json"):
        shutil.copy(anno / name, partial / name)
    assert eval_main(eval_args(tiny_dir(), partial, roots, tmp_path / "out")) == 2
    assert error_lines(capsys) == [f"error: --anno-dir {partial}: has no ava.json, tao.json (subsets ava, tao); to "
                                   "evaluate the others, add --subsets coin,hirest"]


def test_resume_with_other_settings_is_refused(tiny_dir, sample, tmp_path, capsys):
    anno, roots = sample
    out = tmp_path / "out"
    args = eval_args(tiny_dir(), anno, roots, out) + ["--max-videos", "1"]
    assert eval_main(args) == 0
    kept = (out / "predictions.rank0.jsonl").read_text()
    for extra, setting in ((["--fps", "2"], "fps=1.0"), (["--protocol", "window"], "protocol='stream'"),
                           (["--capacities", "1,1,4"], "capacities=[2, 2, 12]")):
        capsys.readouterr()
        assert eval_main(args + extra) == 2
        (line,) = error_lines(capsys)
        assert line.startswith(f"error: {out}: holds predictions made with {setting}, this run has "), line
        assert (out / "predictions.rank0.jsonl").read_text() == kept  # nothing lost, nothing mixed in
    assert eval_main(args + ["--batch-size", "3"]) == 0  # batching decides no answer: resuming is fine


def run_module(args, env_extra=None, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "videochat_online.eval", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def count_lines(path):
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_kill_and_resume_gives_the_same_results(tiny_dir, sample, tmp_path):
    anno, roots = sample
    tiny = tiny_dir()
    whole = tmp_path / "whole"
    assert eval_main(eval_args(tiny, anno, roots, whole)) == 0
    total = len(predictions(whole))

    out = tmp_path / "killed"
    rank_file = out / "predictions.rank0.jsonl"
    for kill_after in (0, 4, 11):  # before any answer, then twice mid-run
        proc = run_module(eval_args(tiny, anno, roots, out))
        if kill_after == 0:
            time.sleep(1.0)
        deadline = time.time() + 300
        while kill_after and count_lines(rank_file) < kill_after and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        assert count_lines(rank_file) < total, "the run finished before it could be killed"
        if rank_file.exists():
            with open(rank_file, "a") as f:
                f.write('{"id": "ava/0", "subset": "ava", "vid')  # a line torn by the kill
    proc = run_module(eval_args(tiny, anno, roots, out))
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert predictions(out) == predictions(whole)
    assert table(out) == table(whole)
    page = lambda d: [line for line in (d / "results.md").read_text().splitlines()  # noqa: E731
                      if not line.startswith("This run: ")]  # each run's own work
    assert page(out) == page(whole)
    work = json.loads((out / "results.json").read_text())["meta"]["work"]
    assert 0 < work["questions_answered"] < len(predictions(whole))  # the resumed run made only the rest


def test_two_process_torchrun_matches_one_process(tiny_dir, sample, tmp_path):
    anno, roots = sample
    tiny = tiny_dir()
    one = tmp_path / "one"
    assert eval_main(eval_args(tiny, anno, roots, one)) == 0
    two = tmp_path / "two"
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29531", "-m",
                             "videochat_online.eval", *eval_args(tiny, anno, roots, two)],
                            capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in two.glob("predictions.rank*.jsonl")) == ["predictions.rank0.jsonl",
                                                                           "predictions.rank1.jsonl"]
    assert count_lines(two / "predictions.rank1.jsonl") > 0  # both processes did work
    assert predictions(two) == predictions(one)
    assert table(two) == table(one)
    assert json.loads((two / "results.json").read_text())["meta"]["world_size"] == 2


def test_stream_launcher_runs_the_subsets_given_roots(tiny_dir, sample, tmp_path):
    anno, roots = sample
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "MODEL": str(tiny_dir()),
           "ANNO_DIR": str(anno), "COIN_ROOT": str(roots["coin"]), "TAO_ROOT": str(roots["tao"]), "GPUS": "1",
           "FPS": "1", "OUTPUT_DIR": str(tmp_path / "out"), "MASTER_PORT": "29541", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(repo / "shell/eval/online_bench_stream.sh"), "--max-new-tokens", "4"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["subset"]) == {"coin", "tao"} and results["meta"]["protocol"]["name"] == "stream"
    assert (tmp_path / "out" / "eval.log").is_file()


def test_resume_skips_lines_it_cannot_use(tiny_dir, sample, tmp_path, caplog):
    anno, roots = sample
    out = tmp_path / "out"
    args = eval_args(tiny_dir(), anno, roots, out) + ["--max-videos", "1"]
    assert eval_main(args) == 0
    before = predictions(out)
    with open(out / "predictions.rank0.jsonl", "a") as f:
        f.write("{}\n[1, 2]\n" + json.dumps({"id": 7, "status": "ok", "correct": True}) + "\n")
    with caplog.at_level("WARNING", logger="videochat_online.eval"):
        assert eval_main(args) == 0
    assert "skipped 3 prediction lines that cannot be used" in caplog.text
    assert predictions(out) == before


def test_realtime_keeps_pace_at_a_low_speed_and_counts_drops_at_a_high_one(sample, tmp_path):
    """OVBench under the real-time protocol (published preset, 1 fps): at 16x real time the bundled model keeps up,
    so every reply and frame held is the stream protocol's and nothing is dropped; at 2000x with one frame of room
    frames are dropped and counted; every line carries when and how fast it was answered."""
    anno, roots = sample
    tiny = Path(__file__).resolve().parents[1] / "models" / "videochat-online-synthetic-tiny"
    few = ("--max-videos", "4")
    assert eval_main(eval_args(tiny, anno, roots, tmp_path / "stream", extra=few)) == 0
    assert eval_main(eval_args(tiny, anno, roots, tmp_path / "slow", "realtime", extra=("--speed", "16", *few))) == 0
    stream, slow = predictions(tmp_path / "stream"), predictions(tmp_path / "slow")
    assert [r["reply"] for r in slow] == [r["reply"] for r in stream]
    assert [r["frames"] for r in slow] == [r["frames"] for r in stream]
    assert all(r["pace"]["dropped"] == 0 and r["pace"]["answered_at"] >= r["time"] - 1e-6 for r in slow)
    paced = table(tmp_path / "slow")
    assert paced.pop("pace")["encoded"] > 0 and paced == table(tmp_path / "stream")
    assert eval_main(eval_args(tiny, anno, roots, tmp_path / "fast", "realtime",
                               extra=("--speed", "2000", "--buffer", "1", *few))) == 0
    fast = predictions(tmp_path / "fast")
    assert sum(r["pace"]["dropped"] for r in fast) > 0
    assert all(t <= r["time"] for r in fast for _, t, _ in r["frames"])
    assert set(json.loads((tmp_path / "fast" / "results.json").read_text())["pace"]) >= {
        "dropped", "ttft", "latency", "sustained_fps", "offered_fps"}
