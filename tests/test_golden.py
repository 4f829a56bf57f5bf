"""Evaluation outputs pinned: every protocol of OVBench (both presets), OVO-Bench and StreamingBench run on small
fixtures with the bundled model, and their predictions, scores and vision work compared with the files in
tests/data/golden, byte for byte. Those files were written before the protocol engine was merged into one; a change
that moves a frame, a prompt, a reply or an encode shows here. `GOLDEN_WRITE=1` rewrites them (only for a change
meant to alter what is evaluated).
"""

import json
import os
from pathlib import Path

import pytest

from test_streaming_benchmarks import OVO_CRR, OVO_MC, OVO_REC, OVO_SSR, SB_PROACTIVE, SB_REAL, SB_SQA
from videochat_online.eval import ovo_bench, streamingbench
from videochat_online.eval.runner import main as eval_main
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


@pytest.mark.parametrize("protocol, preset", OVBENCH_CASES)
def test_ovbench_outputs_are_pinned(ovbench, tmp_path, protocol, preset):
    anno, roots = ovbench
    args = ["--model", str(MODEL), "--anno-dir", str(anno), "--protocol", protocol, "--preset", preset,
            "--output-dir", str(tmp_path), "--max-new-tokens", "6", "--device", "cpu"]
    for subset, path in roots.items():
        args += ["--data-root", f"{subset}={path}"]
    assert eval_main(args) == 0
    check(f"ovbench-{protocol}-{preset}", tmp_path)


def test_ovbench_likelihood_is_pinned(ovbench, tmp_path):
    anno, roots = ovbench
    args = ["--model", str(MODEL), "--anno-dir", str(anno), "--preset", "project", "--answer-by", "likelihood",
            "--output-dir", str(tmp_path), "--device", "cpu", "--subsets", "coin,tao"]
    for subset in ("coin", "tao"):
        args += ["--data-root", f"{subset}={roots[subset]}"]
    assert eval_main(args) == 0
    check("ovbench-stream-likelihood", tmp_path)


@pytest.mark.parametrize("benchmark, protocol", SCRIPTED_CASES)
def test_scripted_outputs_are_pinned(scripted, tmp_path, benchmark, protocol):
    anno, extra = scripted[benchmark]
    args = ["--benchmark", benchmark, "--model", str(MODEL), "--anno-dir", str(anno), "--data-root",
            f"videos={anno / 'videos'}", "--protocol", protocol, "--output-dir", str(tmp_path), "--fps", "2",
            "--max-new-tokens", "6", "--window-seconds", "5", "--device", "cpu", *extra]
    assert eval_main(args) == 0
    check(f"{benchmark}-{protocol}", tmp_path)
