"""OVBench: the real question files, prompt and scoring, and end-to-end runs on synthetic media.

The question files are the real ones in `../shared/ovbench` (beside the repository, as in CI;
OVBENCH_ANNO_DIR overrides). The end-to-end runs use a sample of real questions with small
question times, and synthetic videos and frame folders exactly as long as those questions need.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from videochat_online.eval.ovbench import (
    OVBenchError,
    Question,
    extract_option,
    format_question,
    load_ovbench,
    load_questions,
)
from videochat_online.eval.protocols import ProtocolConfig, planned_encodes, record
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
    stream = sum(planned_encodes(t, ProtocolConfig("stream")) for t in tasks)
    recompute = sum(planned_encodes(t, ProtocolConfig("recompute")) for t in tasks)
    assert 4.8 < recompute / stream < 5.1  # the ~5x of the question times (299 h vs 60 h of video)
    ava = [t for t in tasks if t.subset == "ava"]
    ratio = sum(planned_encodes(t, ProtocolConfig("recompute"), 1.0) for t in ava) / sum(
        planned_encodes(t, ProtocolConfig("stream"), 1.0) for t in ava)
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
    base = dict(qid="coin/0", subset="coin", video="v.mp4", start=0.0, end=12.0, reference_time=12.0,
                question="What is the person doing?", candidates=["cutting", "pouring", "mixing"], answer="pouring",
                answer_type="PastMemory", sub_answer_type="PastMemory-1")
    return Question(**{**base, **kw})


def test_question_prompt_is_pinned():
    assert format_question(question()) == ("Question at 12.0s: What is the person doing?\nOptions:\n(A) cutting\n"
                                           "(B) pouring\n(C) mixing\nAnswer:")


@pytest.mark.parametrize("reply, letter", [
    ("B", "B"), ("(B) pouring", "B"), ("B. pouring", "B"), ("B) pouring", "B"), ("  C: mixing", "C"),
    ("The answer is (A).", "A"), ("Answer: C", "C"), ("pouring", "B"), ("The person is mixing.", "C"),
    ("I think it's B, because the person pours water", "B"),
    ("D", None), ("(E) none", None), ("cutting or pouring", None), ("", None), ("A or B", None),
])
def test_extract_option(reply, letter):
    assert extract_option(reply, ["cutting", "pouring", "mixing"]) == letter


def test_accuracy_table_counts():
    q = question()
    records = [record(question(qid=f"coin/{i}", answer_type=t, sub_answer_type=f"{t}-1"), reply, "stream")
               for i, (t, reply) in enumerate([("PastMemory", "(B)"), ("PastMemory", "(A)"), ("Hallucination", "B")])]
    records.append(record(q, None, "stream", error="video missing"))
    table = accuracy_table(records)
    assert table["overall"] == {"correct": 2, "total": 4, "failed": 1, "accuracy": 50.0}
    assert table["answer_type"]["PastMemory"] == {"correct": 1, "total": 3, "failed": 1, "accuracy": 33.33}
    assert table["sub_answer_type"]["Hallucination-1"]["accuracy"] == 100.0
    assert table["failed"] == [{"id": "coin/0", "video": "v.mp4", "error": "video missing"}]


def test_shards_balance_duration_and_cover_every_video():
    tasks = load_ovbench(ANNO)
    parts = shard(tasks, 4, "stream")
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
    for protocol in ("stream", "recompute", "window", "uniform"):
        out = tmp_path / protocol
        assert eval_main(eval_args(tiny, anno, roots, out, protocol)) == 0
        for name in ("predictions.jsonl", "results.json", "results.csv", "results.md", "config.json",
                     "charts/answer_types.png"):
            assert (out / name).is_file(), name
        results = json.loads((out / "results.json").read_text())
        assert results["overall"]["total"] == n and results["overall"]["failed"] == 0
        assert set(results["subset"]) == set(SUBSETS)
        for answer_type in results["answer_type"]:
            assert (out / "charts" / f"{answer_type}.png").is_file()
        assert len((out / "results.csv").read_text().splitlines()) == 1 + 1 + sum(
            len(results[g]) for g in ("subset", "answer_type", "sub_answer_type"))
        records = predictions(out)
        assert [r["id"] for r in records] == sorted((r["id"] for r in records),
                                                   key=lambda i: (SUBSETS.index(i.split("/")[0]), int(i.split("/")[1])))
        assert all(r["status"] == "ok" and r["reply"] is not None and r["protocol"] == protocol for r in records)
    stream, recompute = predictions(tmp_path / "stream"), predictions(tmp_path / "recompute")
    assert [r["reply"] for r in stream] == [r["reply"] for r in recompute]
    assert table(tmp_path / "stream") == table(tmp_path / "recompute")


def test_unreadable_video_fails_its_questions_and_the_run_goes_on(tiny_dir, sample, tmp_path):
    anno, roots = sample
    task = next(t for t in load_ovbench(anno, roots) if t.subset == "coin")
    broken = tmp_path / "coin"
    broken.mkdir()
    for video in roots["coin"].iterdir():
        (broken / video.name).write_bytes(b"corrupt" if video.name == task.video else video.read_bytes())
    out = tmp_path / "out"
    assert eval_main(eval_args(tiny_dir(), anno, {**roots, "coin": broken}, out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["failed"] == len(task.questions)
    assert {f["id"] for f in results["failed"]} == {q.qid for q in task.questions}
    assert all("not a readable video" in f["error"] for f in results["failed"])
    assert sum(r["status"] == "ok" for r in predictions(out)) == results["overall"]["total"] - len(task.questions)


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
    assert (out / "results.md").read_text() == (whole / "results.md").read_text()


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
