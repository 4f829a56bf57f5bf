"""OVO-Bench and StreamingBench in the streaming harness: official prompts and scorers (fixtures written from the
published schemas and scoring code's rules, not from this project's writer), every real row loading, a sample of
real rows played end to end, and no ask shown a frame after its time."""

import json
import shutil
from pathlib import Path

import pytest

from videochat_online.eval import ovo_bench, streamingbench
from videochat_online.eval.driver import Ask, Driver
from videochat_online.eval.presets import ProtocolConfig
from videochat_online.eval.protocols import protocol_of
from videochat_online.eval.runner import main as eval_main
from videochat_online.tools import fetch_benchmarks
from videochat_online.tools.demo_media import write_video

# Rows as the published schemas describe them (OVO-Bench `c34093f`, StreamingBench `8929923`: the fetched commits).
OVO_MC = {"id": 3, "task": "EPM", "video": "Ego4D/clips/x.mp4", "realtime": 12.5, "question": "What did I hold?",
          "answer": "a cup", "options": ["a cup", "a pen", "a phone", "a key"], "gt": 0}
OVO_REC = {"id": 1558, "task": "REC", "video": "perception_test/v.mp4", "activity": "clap", "start_times": [2],
           "end_times": [4], "test_info": [{"realtime": 5, "count": 1}, {"realtime": 9.0, "count": 3}]}
OVO_SSR = {"id": 1516, "task": "SSR", "video": "COIN/a.mp4", "tutorial": "T", "all_steps": ["cut it", "glue it"],
           "start_time": [1, 6], "end_time": [5, 9], "test_info": [{"realtime": 3, "step": "cut it", "type": 1},
                                                                   {"realtime": 7, "step": "cut it", "type": 0}]}
OVO_CRR = {"id": 1468, "task": "CRR", "video": "MovieNet/m.mp4", "question": "What does she do to the car?",
           "answer": "walks past", "ask_time": 2, "clue_time": 6,
           "test_info": [{"realtime": 2, "type": 0}, {"realtime": 7, "type": 1}]}
SB_REAL = {"time": "[0:00:00 - 0:00:10]", "video_categories": "x", "video_path": "./videos/sample_1_real.mp4",
           "questions": [{"task_type": "Counting", "question": "How many?", "time_stamp": "00:00:06", "answer": "B",
                          "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "required_ability": "x"}]}
SB_SQA = [{"time": "[0:00:00 - 0:00:10]", "video_categories": "x", "video_path": "./videos/sample_2_sqa.mp4",
           "questions": [{"task_type": "Sequential Question Answering", "question": f"Q{k}?",
                          "time_stamp": f"00:00:0{t}", "answer": "ABCD"[k], "options": ["w.", "x.", "y.", "z."],
                          "required_ability": "x"}]} for k, t in enumerate((3, 6, 8))]
SB_PROACTIVE = {"time": "[0:00:00 - 0:00:30]", "video_categories": "x", "video_path": "./videos/sample_3_proactive.mp4",
                "questions": [{"task_type": "Proactive Output", "question": 'When the ball is right, output "3".',
                               "time_stamp": "00:00:02", "ground_truth_time_stamp": "00:00:06",
                               "ground_truth_output": "3", "required_ability": "x"}]}


OVO_YES_NO = {**OVO_MC, "id": 176, "options": ["Yes", "No"], "gt": 1}


def ovo_query(row, probe=None):
    return [q for q in ovo_bench.queries(row) if q.probe == probe][0]


@pytest.mark.parametrize("row, probe, reply, official, strict", [
    (OVO_MC, None, "A", True, True),
    (OVO_MC, None, "B. A person holds it", True, False),  # the letter anywhere counts as published
    (OVO_MC, None, "a", False, False),  # case-sensitive
    (OVO_MC, None, "(A) a cup", True, True),
    (OVO_REC, 1, "3", True, True),
    (OVO_REC, 1, "It happened 3 times.", True, True),
    (OVO_REC, 1, "1, 2, 3", False, False),  # every digit joined: "123"
    (OVO_REC, 0, "one", False, False),
    (OVO_SSR, 0, "Yes", True, True),
    (OVO_SSR, 0, "Y", True, True),
    (OVO_SSR, 0, "N", False, False),
    (OVO_SSR, 1, "No", True, True),
    (OVO_SSR, 1, "No. Yes.", True, False),  # "No" is in it; the strict rule wants one of them
    (OVO_CRR, 1, "yes", False, False),  # the published rule is case-sensitive, and strict holds it too
    (OVO_CRR, 0, "Nope", True, False),
    (OVO_YES_NO, None, "No", False, False),  # the option's text, not its letter: wrong under both
    (OVO_YES_NO, None, "B", True, True),
])
def test_ovo_bench_scorers(row, probe, reply, official, strict):
    q = ovo_query(row, probe)
    assert ovo_bench.official_correct(q, reply) is official
    assert ovo_bench.strict_correct(q, reply) is strict
    assert not strict or official  # strict is never kinder than the published rule


@pytest.mark.parametrize("reply, choice", [("B", "B"), ("B. 2.", "B"), (" B", " "), ("2 of them, B", "2"),
                                           ("", None), (None, None)])
def test_streamingbench_reads_the_first_character(reply, choice):
    assert streamingbench.official_choice(reply) == choice


@pytest.mark.parametrize("last_time, reply, verdicts", [
    (6.0, "3", (True, True, True)),
    (8.0, "The score is 3", (True, True, True)),  # within 2 s
    (9.0, "3", (False, False, False)),
    (4.0, "13", (True, True, False)),  # "3" is in "13", not as a word
    (6.0, "no", (True, False, False)),
])
def test_streamingbench_proactive_verdicts(last_time, reply, verdicts):
    q = streamingbench.Query("proactive/0", "proactive", "v", SB_PROACTIVE["questions"][0], 10.0, 3.0)
    assert streamingbench.proactive_verdicts(q, last_time, reply) == verdicts


def test_official_prompts():
    q = ovo_query(OVO_MC)
    assert ovo_bench.prompt(q) == ("\nQuestion: What did I hold?\nOptions:\nA. a cup; B. a pen; C. a phone; D. a key;"
                                   "\n\nRespond only with the letter corresponding to your chosen option (e.g., A, B, "
                                   "C). \nDo not include any additional text or explanation in your response.\n")
    assert "Now, answer the following question: How many times did they clap?\n" in ovo_bench.prompt(ovo_query(OVO_REC, 0))
    assert "from the whole procedures: \ncut it\nYour task" in ovo_bench.prompt(ovo_query(OVO_SSR, 1))
    assert "end of the video.\nWhat does she do to the car?\nDecide" in ovo_bench.prompt(ovo_query(OVO_CRR, 0))
    assert streamingbench.seconds("00:03:10") == 190 and streamingbench.seconds("00:12450") == 12450
    assert streamingbench.lettered(["w.", "x.", "y.", "z."]) == ["A. w.", "B. x.", "C. y.", "D. z."]


def test_a_malformed_row_is_one_line(tmp_path, capsys):
    (tmp_path / ovo_bench.FILE).write_text(json.dumps([OVO_MC, {**OVO_REC, "test_info": [{"count": 2}]}]))
    code = eval_main(["--benchmark", "ovo-bench", "--model", "x/y", "--anno-dir", str(tmp_path), "--output-dir",
                      str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert f"{tmp_path / ovo_bench.FILE}: row 1 (REC): probe 0: 'realtime' None is not a time in seconds" in err


def write_videos(tasks, root: Path, fps: int = 2) -> None:
    for task in tasks:
        path = root / task.video
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, seconds=max(q.end for q in task.questions) + 2, fps=fps, width=64, height=48)


@pytest.fixture(scope="module")
def ovo_sample(tmp_path_factory):
    """A row of each kind, written from the published schema; demo videos as long as their asks need."""
    root = tmp_path_factory.mktemp("ovo")
    (root / ovo_bench.FILE).write_text(json.dumps([OVO_MC, OVO_REC, OVO_SSR, OVO_CRR]))
    write_videos(ovo_bench.load(root, None), root / "videos")
    return root


@pytest.fixture(scope="module")
def sb_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamingbench")
    files = {"real": [SB_REAL], "sqa": [SB_SQA], "proactive_50": [SB_PROACTIVE]}
    for subset, data in files.items():
        (root / streamingbench.FILES[subset]).write_text(json.dumps(data))
    tasks = streamingbench.load(root, None, ("real", "sqa", "proactive_50"))
    for task in tasks:
        task.video = Path(task.video).name
    write_videos(tasks, root / "videos")
    return root


def run(tiny, anno, out, benchmark, protocol, *extra):
    args = ["--benchmark", benchmark, "--model", str(tiny), "--anno-dir", str(anno), "--data-root",
            f"videos={anno / 'videos'}", "--protocol", protocol, "--output-dir", str(out), "--fps", "1",
            "--max-new-tokens", "4", *extra]
    assert eval_main(args) == 0
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("protocol", ["stream", "window", "offline"])
def test_ovo_bench_end_to_end(tiny_dir, ovo_sample, tmp_path, protocol):
    tiny = tiny_dir("native", "phi3")
    lines = run(tiny, ovo_sample, tmp_path / protocol, "ovo-bench", protocol, "--window-seconds", "6")
    queries = [q for t in ovo_bench.load(ovo_sample, None) for q in t.questions]
    assert sorted(r["id"] for r in lines) == sorted(q.qid for q in queries)
    for r in lines:
        assert r["status"] == "ok" and r["reply"] is not None and r["frames"]
        times = [t for _, t, _ in r["frames"]]
        assert max(times) <= r["time"] + 1e-6  # never a frame after the ask
        if protocol != "stream":  # window: the last 6 s; offline with --window-seconds: the same clip
            assert min(times) >= r["time"] - 6 - 1e-6
    results = json.loads((tmp_path / protocol / "results.json").read_text())
    assert set(results["categories"]) == {"backward", "forward"} | ({"realtime"} & set(results["categories"]))
    assert "| published |" in (tmp_path / protocol / "results.md").read_text()


def test_streamingbench_end_to_end(tiny_dir, sb_sample, tmp_path):
    tiny = tiny_dir("native", "phi3")
    for protocol in ("stream", "offline"):
        lines = run(tiny, sb_sample, tmp_path / protocol, "streamingbench", protocol,
                    "--subsets", "real,sqa,sqa_own,proactive_50", "--device", "cpu")
        for r in lines:
            assert r["status"] == "ok" and max(t for _, t, _ in r["frames"]) <= r["time"] + 1e-6
        proactive = [r for r in lines if r["subset"] == "proactive_50"]
        assert proactive and all(r["polls"] >= 1 for r in proactive)
        assert all("answered_at" in r for r in proactive)  # the output's stream time (None: never said)
        sqa = sorted((r for r in lines if r["subset"] == "sqa"), key=lambda r: int(r["id"].split("/")[1]))
        assert "Here are the contextual information" not in sqa[0]["prompt"]
        assert f"Answer: {SB_SQA[0]['questions'][0]['answer']}; " in sqa[1]["prompt"]  # the ground truth, as published
        own = sorted((r for r in lines if r["subset"] == "sqa_own"), key=lambda r: int(r["id"].split("/")[1]))
        assert f"Answer: {own[0]['reply']}; " in own[1]["prompt"]  # the model's own earlier answer
    md = (tmp_path / "stream" / "results.md").read_text()
    assert "## real" in md and "## proactive_50" in md


def test_driver_never_shows_a_later_frame(tiny_dir, demo_mp4):
    """Asks at uneven times, a poll that chains itself, two asks at one moment: every answer's frames are at or
    before its time (window: inside its window), and each protocol encodes what it says."""
    from videochat_online.chat import ChatEngine
    from videochat_online.data.video import open_video

    engine = ChatEngine.from_pretrained(str(tiny_dir("native", "phi3")))
    seen = []

    def script(times, chain=False):
        for t in times:
            answer = yield Ask(t, f"at {t}?")
            seen.append((answer.time, [f.timestamp for f in answer.held], None))
            if chain:  # a poll: its clip starts at the question (as StreamingBench's proactive polls)
                answer = yield Ask(t + 1.5, "again?", since=t)
                seen.append((answer.time, [f.timestamp for f in answer.held], t))
        yield {"id": str(times)}

    for protocol, window in (("stream", None), ("window", 2.0), ("offline", None), ("offline", 3.0)):
        seen.clear()
        config = ProtocolConfig(protocol, "streaming", 2.0, window_seconds=window, batch_size=3, max_new_tokens=2)
        driver = Driver(engine, protocol_of(config))
        lines = list(driver.run(open_video(demo_mp4), [script([0.4, 2.2, 5.0]), script([2.2, 3.7], chain=True)],
                                [(0.4, 5.0), (2.2, 5.2)]))
        assert [line["id"] for line in lines] == ["[0.4, 2.2, 5.0]", "[2.2, 3.7]"] and len(seen) == 7
        for t, held, since in seen:
            assert held and max(held) <= t + 1e-6
            if window:
                assert min(held) >= t - window - 1e-6
            if protocol == "offline" and since is not None:
                assert min(held) >= since - 1e-6
        if protocol == "stream":
            assert driver.frames_encoded == 11  # 0, 0.5, ..., 5.0: each frame once, none after the last ask


def test_fetch_checks_sha256(tmp_path, monkeypatch):
    served = tmp_path / "served"
    good = json.dumps([OVO_MC, OVO_REC]).encode()  # rows of the published schema
    repo, commit, folder, _ = ovo_bench.OVOBench.annotations
    (served / repo / commit / folder).mkdir(parents=True)
    (served / repo / commit / folder / "ovo_bench_new.json").write_bytes(good)
    monkeypatch.setattr(ovo_bench.OVOBench, "annotations",
                        (repo, commit, folder, {"ovo_bench_new.json": fetch_benchmarks.sha256(good)}))
    paths = fetch_benchmarks.fetch(tmp_path / "out", ["ovo-bench"], base_url=served.as_uri())
    assert paths == [tmp_path / "out" / "ovo-bench" / "ovo_bench_new.json"] and paths[0].read_bytes() == good
    line = fetch_benchmarks.counts("ovo-bench", tmp_path / "out" / "ovo-bench")  # every row read, as eval reads it
    assert line.startswith("OVO-Bench: 2 videos, 3 queries (OCR 0,") and "EPM 1" in line and "REC 2" in line
    (served / repo / commit / folder / "ovo_bench_new.json").write_bytes(b"tampered")
    assert fetch_benchmarks.fetch(tmp_path / "out", ["ovo-bench"], base_url=served.as_uri()) == paths  # kept
    shutil.rmtree(tmp_path / "out")
    with pytest.raises(fetch_benchmarks.InputError, match="sha256 .* is not the pinned"):
        fetch_benchmarks.fetch(tmp_path / "out", ["ovo-bench"], base_url=served.as_uri())
    assert not (tmp_path / "out" / "ovo-bench" / "ovo_bench_new.json").exists()


def test_a_missing_video_fails_its_queries_and_a_rerun_finishes(tiny_dir, ovo_sample, tmp_path):
    """One video missing: its queries are failed lines (exit 1), the others answered; with the video back, the
    same command answers only the failed ones."""
    tiny = tiny_dir("native", "phi3")
    videos = tmp_path / "videos"
    shutil.copytree(ovo_sample / "videos", videos)
    missing = next(p for p in sorted(videos.rglob("*.mp4")))
    missing.rename(missing.with_suffix(".away"))
    args = ["--benchmark", "ovo-bench", "--model", str(tiny), "--anno-dir", str(ovo_sample), "--data-root",
            f"videos={videos}", "--output-dir", str(tmp_path / "out"), "--fps", "1", "--max-new-tokens", "4"]
    assert eval_main(args) == 1
    lines = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    failed = {r["id"] for r in lines if r["status"] == "failed"}
    assert failed and all(r["error"] for r in lines if r["id"] in failed) and len(failed) < len(lines)
    assert "failed (scored wrong)" in (tmp_path / "out" / "results.md").read_text()
    missing.with_suffix(".away").rename(missing)
    assert eval_main(args) == 0
    again = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert {r["id"] for r in again} == {r["id"] for r in lines} and all(r["status"] == "ok" for r in again)
    assert [r for r in again if r["id"] not in failed] == [r for r in lines if r["id"] not in failed]


def test_window_defaults_and_headline_name_the_window(tmp_path, capsys):
    """Both scripted benchmarks window 60 s unless --window-seconds says otherwise, as --help says."""
    from videochat_online.eval.options import add_eval_args, check_eval_args
    from videochat_online.options import Parser

    (tmp_path / ovo_bench.FILE).write_text(json.dumps([OVO_MC]))
    (tmp_path / "videos").mkdir()
    parser = Parser()
    add_eval_args(parser)
    for benchmark in ("ovo-bench", "streamingbench"):
        args = parser.parse_args(["--benchmark", benchmark, "--model", "x/y", "--anno-dir", str(tmp_path),
                                  "--data-root", f"videos={tmp_path / 'videos'}", "--output-dir", str(tmp_path / "o"),
                                  "--protocol", "window", *(["--subsets", "real"] if benchmark != "ovo-bench" else [])])
        if benchmark == "streamingbench":
            (tmp_path / "questions_real.json").write_text(json.dumps([SB_REAL]))
        assert check_eval_args(args).protocol_config().window_seconds == 60.0
    help_text = " ".join(parser.format_help().split())
    assert "(default: the preset's: published 32, streaming 60)" in help_text


def ovo_line(task, published, strict, failed=False):
    return {"subset": task, "published_correct": published, "correct": strict,
            "status": "failed" if failed else "ok"}


def test_ovo_bench_overall_averages_unrounded_categories():
    """As the published scorer: the overall is the mean of the categories' unrounded scores. HLD 0/3, CRR 1/15,
    OCR 1/7: (0 + 6.667 + 14.286) / 3 = 6.98 (the mean of the rounded ones would be 6.99)."""
    records = [ovo_line("HLD", False, False) for _ in range(3)]
    records += [ovo_line("CRR", i == 0, False) for i in range(15)] + [ovo_line("OCR", i == 0, i == 0) for i in range(7)]
    result = ovo_bench.table(records)
    assert result["overall"]["published"] == 6.98
    assert result["categories"]["forward"]["published"] == 6.67 and result["tasks"]["OCR"]["published"] == 14.29


def test_streamingbench_proactive_counts_as_published_and_over_all():
    """A failed proactive question has no reply: the published count skips it (1/6), the strict one keeps it."""
    tasks = streamingbench.load(_files(proactive_50=[SB_PROACTIVE] * 7), None, ("proactive_50",))
    qs = [q for t in tasks for q in t.questions]
    lines = [streamingbench.failed_line(qs[0], "stream", "video unreadable")]
    for i, q in enumerate(qs[1:]):
        lines.append({**streamingbench.failed_line(q, "stream", None), "status": "ok", "answered": True,
                      "time_correct": i == 0, "published_correct": i == 0, "correct": i == 0})
    cell = streamingbench.table(lines)["subsets"]["proactive_50"]["all"]
    assert (cell["published"], cell["published_time"], cell["published_all"], cell["strict"]) == \
        (16.67, 16.67, 14.29, 14.29)
    assert cell["answered"] == 6 and cell["total"] == 7


_FILES_ROOT: list[Path] = []


def _files(**subsets) -> Path:
    import tempfile

    root = Path(tempfile.mkdtemp())
    _FILES_ROOT.append(root)
    for subset, data in subsets.items():
        (root / streamingbench.FILES[subset]).write_text(json.dumps(data))
    return root


def test_paths_times_and_replaced_videos(tiny_dir, tmp_path, caplog):
    """Paths that leave the root are failed questions and never read; an ask after the video's end is answered at
    its end and counted; the work is in results.json, .md and .csv, with charts; a video replaced in place is
    answered again on resume, the others kept."""
    tiny = tiny_dir("native", "phi3")
    videos, outside = tmp_path / "videos", tmp_path / "outside"
    for folder in (videos, outside):
        folder.mkdir()
    write_video(videos / "a.mp4", seconds=6, fps=2, width=64, height=48)
    write_video(videos / "b.mp4", seconds=6, fps=2, width=64, height=48)
    write_video(outside / "x.mp4", seconds=6, fps=2, width=64, height=48)
    rows = [{**OVO_MC, "id": 1, "video": "a.mp4", "realtime": 3.0}, {**OVO_MC, "id": 2, "video": "b.mp4", "realtime": 100},
            {**OVO_MC, "id": 3, "video": "../outside/x.mp4"}, {**OVO_MC, "id": 4, "video": str(outside / "x.mp4")}]
    (tmp_path / ovo_bench.FILE).write_text(json.dumps(rows))
    args = ["--benchmark", "ovo-bench", "--model", str(tiny), "--anno-dir", str(tmp_path), "--data-root",
            f"videos={videos}", "--output-dir", str(tmp_path / "out"), "--fps", "1", "--max-new-tokens", "2",
            "--allow-failures"]
    assert eval_main(args) == 0
    out = tmp_path / "out"
    lines = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert lines["EPM/3"]["status"] == "failed" and "'../outside/x.mp4' leaves its root" in lines["EPM/3"]["error"]
    assert lines["EPM/4"]["status"] == "failed" and "is absolute" in lines["EPM/4"]["error"]
    assert lines["EPM/2"]["status"] == "ok" and max(t for _, t, _ in lines["EPM/2"]["frames"]) == 5.0
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["work"]["late_asks"] == 1 and results["meta"]["work"]["frames_encoded"] == 10
    assert "1 asks after their video's end, answered at its end" in (out / "results.md").read_text()
    assert (out / "results.md").read_text().splitlines()[2] == "Stream at 1 fps, preset streaming, memory pyramid."
    assert (out / "results.csv").read_text().startswith("group,name,published,strict,total,failed\n")
    assert (out / "charts" / "tasks.png").stat().st_size > 0
    write_video(videos / "a.mp4", seconds=5, fps=2, width=64, height=48)  # replaced in place
    caplog.clear()
    assert eval_main(args) == 0
    assert "a.mp4: the video changed since 1 of its questions were answered; answering them again" in caplog.text
    again = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert again["EPM/2"] == lines["EPM/2"] and json.loads((out / "results.json").read_text())["meta"]["work"][
        "questions_answered"] == 3  # a.mp4's question and the two refused ones


def test_proactive_polls_stop_at_the_videos_end(tiny_dir, tmp_path):
    """A ground-truth time far past the video: the polls stop at its end instead of running to truth + 4 s."""
    far = {**SB_PROACTIVE, "questions": [{**SB_PROACTIVE["questions"][0], "ground_truth_time_stamp": "05:00:00"}]}
    root = _files(proactive=[far])
    videos = root / "videos"
    write_video(videos / "sample_3_proactive.mp4", seconds=8, fps=2, width=64, height=48)
    args = ["--benchmark", "streamingbench", "--model", str(tiny_dir("native", "phi3")), "--anno-dir", str(root),
            "--data-root", f"videos={videos}", "--output-dir", str(tmp_path / "out"), "--fps", "1",
            "--max-new-tokens", "2", "--subsets", "proactive"]
    assert eval_main(args) == 0
    (line,) = map(json.loads, (tmp_path / "out" / "predictions.jsonl").read_text().splitlines())
    assert line["polls"] <= 7  # from 3 s to the end at 8 s, at most one more


@pytest.mark.parametrize("backbone", ["qwen3-vl", "qwen2.5-vl"])
def test_qwen_backbones_run_ovo_bench_and_streamingbench_with_the_recency_baseline(tiny_qwen, ovo_sample, sb_sample,
                                                                                  tmp_path, backbone):
    """Both scripted benchmarks on a Qwen-VL checkpoint, the recency baseline as memory: every query answered from
    at most its last 4 frames (2 patches, and a frame waiting for its pair), none after the ask."""
    model = tiny_qwen(backbone)
    for benchmark, anno, extra in (("ovo-bench", ovo_sample, ()), ("streamingbench", sb_sample,
                                                                    ("--subsets", "real,proactive_50"))):
        lines = run(model, anno, tmp_path / benchmark, benchmark, "stream", "--memory", "recent", *extra)
        assert lines and all(r["status"] == "ok" and r["frames"] for r in lines)
        assert all(max(t for _, t, _ in r["frames"]) <= r["time"] + 1e-6 and len(r["frames"]) <= 3 for r in lines)
        assert (tmp_path / benchmark / "results.md").is_file()


BUNDLED = Path(__file__).resolve().parents[1] / "models" / "videochat-online-synthetic-tiny"


@pytest.mark.parametrize("benchmark, subsets", [("ovo-bench", ()),
                                                ("streamingbench", ("--subsets", "real,sqa,proactive_50"))])
def test_realtime_keeps_pace_at_a_low_speed_and_counts_drops_at_a_high_one(ovo_sample, sb_sample, tmp_path,
                                                                            benchmark, subsets):
    """Played at 8x real time with 16 frames of room, the tiny model keeps up: nothing dropped and every reply the
    stream protocol's. At 2000x with one frame of room it falls behind: frames dropped and counted in each line,
    in the work line and in the results' real-time table; no answer sees a frame after its ask. The bundled model."""
    tiny = BUNDLED
    anno = ovo_sample if benchmark == "ovo-bench" else sb_sample
    stream = run(tiny, anno, tmp_path / "stream", benchmark, "stream", *subsets)
    slow = run(tiny, anno, tmp_path / "slow", benchmark, "realtime", "--speed", "8", "--compare",
               str(tmp_path / "stream"), *subsets)
    assert [r["reply"] for r in slow] == [r["reply"] for r in stream]
    assert [r["frames"] for r in slow] == [r["frames"] for r in stream]
    for r in slow:
        pace = r["pace"]
        assert pace["dropped"] == 0 and pace["encoded"] == pace["offered"]
        assert 0 < pace["ttft"] <= pace["latency"] and pace["answered_at"] >= r["time"] - 1e-6
    table = json.loads((tmp_path / "slow" / "results.json").read_text())["pace"]
    assert table["dropped"] == 0 and table["offered_fps"] == 8 and table["ttft"]["median"] > 0
    md = (tmp_path / "slow" / "results.md").read_text()
    assert "## Real time" in md and f"({tmp_path / 'stream'})" in md and "played 8x real time" in md

    fast = run(tiny, anno, tmp_path / "fast", benchmark, "realtime", "--speed", "2000", "--buffer", "1", *subsets)
    assert any(r["pace"]["dropped"] > 0 for r in fast)
    for r in fast:
        assert r["pace"]["encoded"] + r["pace"]["dropped"] <= r["pace"]["offered"]
        assert all(t <= r["time"] + 1e-6 for _, t, _ in r["frames"])  # (none at all: the first frames came late)
    results = json.loads((tmp_path / "fast" / "results.json").read_text())
    assert 0 < results["pace"]["dropped"] <= results["meta"]["work"]["frames_dropped"]  # by the last answers; the
    # work line counts the whole pass (frames dropped while the last answer was made too)
    assert "frames dropped (the model fell behind)" in (tmp_path / "fast" / "results.md").read_text()
