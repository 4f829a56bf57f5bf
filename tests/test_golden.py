"""Evaluation outputs pinned: every protocol of OVBench (both presets), OVO-Bench and StreamingBench run on small
fixtures with the bundled model, and their predictions, scores and vision work compared with the files in
tests/data/golden, byte for byte. Those files were written before the protocol engine was merged into one; a change
that moves a frame, a prompt, a reply or an encode shows here. `GOLDEN_WRITE=1` rewrites them (only for a change
meant to alter what is evaluated).

The runs share one fresh process, always in the same order: the pyramid evicts the earlier frame of the most similar
neighbouring pair, and a demo video moving at constant speed has pairs equally similar up to the last bit, which what
a process ran before can tip.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_streaming_benchmarks import OVO_CRR, OVO_MC, OVO_REC, OVO_SSR, SB_PROACTIVE, SB_REAL, SB_SQA
from videochat_online.eval import ovo_bench, streamingbench
from videochat_online.tools.demo_media import write_video

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "videochat-online-synthetic-tiny"
GOLDEN = Path(__file__).parent / "data" / "golden"
WRITE = os.environ.get("GOLDEN_WRITE") == "1"

OVBENCH_CASES = [(protocol, preset) for preset in ("published", "project")
                 for protocol in ("stream", "window", "uniform", "recompute")]
SCRIPTED_CASES = [(benchmark, protocol) for benchmark in ("ovo-bench", "streamingbench")
                  for protocol in ("stream", "window", "offline")]


def _first_questions(entries):
    """One video per subset: the one with the earliest question, up to 2 of its questions asked by 24 s."""
    first = min(entries, key=lambda e: e["end"])
    return [e for e in entries if e["video"] == first["video"] and e["end"] <= 24][:2]


@pytest.fixture(scope="module")
def ovbench(ovbench_sample):
    return ovbench_sample("golden", _first_questions)


def _videos(tasks, root: Path) -> None:
    for task in tasks:
        path = root / Path(task.video).name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, seconds=max(q.end for q in task.questions) + 2, fps=4, width=64, height=48)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """OVO-Bench and StreamingBench excerpts written from the published schemas, with demo videos."""
    ovo = tmp_path_factory.mktemp("ovo")
    (ovo / ovo_bench.FILE).write_text(json.dumps([OVO_MC, OVO_REC, OVO_SSR, OVO_CRR]))
    sb = tmp_path_factory.mktemp("sb")
    for subset, data in {"real": [SB_REAL], "sqa": [SB_SQA], "proactive_50": [SB_PROACTIVE]}.items():
        (sb / streamingbench.FILES[subset]).write_text(json.dumps(data))
    for task in ovo_bench.load(ovo, None):
        path = ovo / "videos" / task.video
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, seconds=max(q.end for q in task.questions) + 2, fps=4, width=64, height=48)
    _videos(streamingbench.load(sb, None, ("real", "sqa", "proactive_50")), sb / "videos")
    return {"ovo-bench": (ovo, []), "streamingbench": (sb, ["--subsets", "real,sqa,sqa_own,proactive_50"])}


RUN_ALL = ("import json, sys, torch; torch.set_num_threads(2); from videochat_online.eval.runner import main; "
           "sys.exit(max(main(args) for args in json.load(open(sys.argv[1]))))")


@pytest.fixture(scope="module")
def runs(ovbench, scripted, tmp_path_factory):
    """Every case evaluated, in one process: case name -> its output folder."""
    root = tmp_path_factory.mktemp("golden-runs")
    anno, roots = ovbench
    cases = {}
    for protocol, preset in OVBENCH_CASES:
        cases[f"ovbench-{protocol}-{preset}"] = [
            "--model", str(MODEL), "--anno-dir", str(anno), "--protocol", protocol, "--preset", preset,
            "--max-new-tokens", "6", "--device", "cpu",
            *[f"--data-root={subset}={path}" for subset, path in roots.items()]]
    cases["ovbench-stream-likelihood"] = [
        "--model", str(MODEL), "--anno-dir", str(anno), "--preset", "project", "--answer-by", "likelihood",
        "--device", "cpu", "--subsets", "coin,tao", *[f"--data-root={s}={roots[s]}" for s in ("coin", "tao")]]
    for benchmark, protocol in SCRIPTED_CASES:
        folder, extra = scripted[benchmark]
        cases[f"{benchmark}-{protocol}"] = [
            "--benchmark", benchmark, "--model", str(MODEL), "--anno-dir", str(folder), "--data-root",
            f"videos={folder / 'videos'}", "--protocol", protocol, "--fps", "2", "--max-new-tokens", "6",
            "--window-seconds", "5", "--device", "cpu", *extra]
    arglists = [[*args, "--output-dir", str(root / name)] for name, args in cases.items()]
    (root / "cases.json").write_text(json.dumps(arglists))
    done = subprocess.run([sys.executable, "-c", RUN_ALL, str(root / "cases.json")], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: root / name for name in cases}


def outputs(out: Path) -> dict:
    """What must not change: every prediction line, the scores, and the work (all but its seconds)."""
    table = json.loads((out / "results.json").read_text())
    meta = table.pop("meta")
    work = {k: v for k, v in meta["work"].items() if k != "seconds"}
    return {"predictions.jsonl": (out / "predictions.jsonl").read_text(),
            "scores.json": json.dumps({"scores": table, "work": work}, indent=1, sort_keys=True) + "\n"}


def check(name: str, out: Path) -> None:
    folder = GOLDEN / name
    if WRITE:
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in outputs(out).items():
            (folder / file).write_text(text)
    for file, text in outputs(out).items():
        assert text == (folder / file).read_text(), f"{name}/{file} differs from the pinned output"


@pytest.mark.parametrize("name", [f"ovbench-{p}-{s}" for p, s in OVBENCH_CASES] + ["ovbench-stream-likelihood"]
                         + [f"{b}-{p}" for b, p in SCRIPTED_CASES])
def test_outputs_are_pinned(runs, name):
    check(name, runs[name])
