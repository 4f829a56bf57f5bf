"""Evaluation outputs pinned: every protocol of OVBench (both presets), OVO-Bench and StreamingBench run on small
fixtures with the bundled model, and their predictions, scores and vision work compared with the files in
tests/data/golden, byte for byte. Those files were written before the protocol engine was merged into one; a change
that moves a frame, a prompt, a reply or an encode shows here. `GOLDEN_WRITE=1` rewrites them (only for a change
meant to alter what is evaluated).

The media are coarse random noise, and the runs share one fresh process in a fixed order: the pyramid evicts the
earlier frame of the most similar neighbouring pair, and a video whose pairs are equally similar (a ball moving at
constant speed) leaves that choice to the last bit of a float, which any change of the process's history can tip.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ovbench_excerpt
from test_streaming_benchmarks import OVO_CRR, OVO_MC, OVO_REC, OVO_SSR, SB_PROACTIVE, SB_REAL, SB_SQA
from videochat_online.eval import ovo_bench, streamingbench
from videochat_online.eval.ovbench import load_ovbench

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


def noise_video(path: Path, count: int, seed: int, fps: int, width: int = 64, height: int = 48) -> None:
    """A lossless H.264 mp4 of random 8x8 blocks, written from YUV planes: every pair of neighbouring frames differs
    by much more than rounding, and its frames decode to the same pixels on every run (a lossy encode, or RGB
    frames through swscale, can differ from run to run)."""
    import av

    rng = np.random.default_rng(seed)
    block = lambda side: np.kron(rng.integers(16, 236, (height // 8, width // 8)), np.ones((side, side)))  # noqa: E731
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt, stream.height, stream.width = "yuv420p", height, width
        stream.options = {"qp": "0"}  # lossless: decoded, the frames are these planes exactly, on every run
        for _ in range(count):
            planes = [block(8), block(4).reshape(-1, width), block(4).reshape(-1, width)]  # Y, then U and V
            frame = av.VideoFrame.from_ndarray(np.concatenate(planes).astype(np.uint8), format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def noise_frames(folder: Path, count: int, seed: int, width: int = 64, height: int = 48) -> None:
    """A frame folder (frame0001.jpg, ...) of random 8x8 blocks."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frame = np.kron(rng.integers(0, 256, (height // 8, width // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        Image.fromarray(frame).save(folder / f"frame{i + 1:04d}.jpg", quality=95)


def write_media(tasks, root: Path, video_fps: int = 4) -> dict[str, Path]:
    """A noise video (or frame folder, at its own fps) per task, 2 s longer than its last question."""
    roots = {}
    for seed, task in enumerate(tasks):
        folder = roots.setdefault(task.subset, root / task.subset)
        seconds = max(q.end for q in task.questions) + 2
        path = folder / task.video
        path.parent.mkdir(parents=True, exist_ok=True)
        if task.folder_fps is None:
            noise_video(path, int(seconds * video_fps), seed, video_fps)
        else:
            noise_frames(path, int(seconds * task.folder_fps), seed)
    return roots


@pytest.fixture(scope="module")
def ovbench(tmp_path_factory):
    """The first questions of the shipped question files, with noise media."""
    root = tmp_path_factory.mktemp("golden-ovbench")
    anno = ovbench_excerpt(root / "anno", _first_questions)
    return anno, write_media(load_ovbench(anno), root / "media")


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """OVO-Bench and StreamingBench excerpts written from the published schemas, with noise videos."""
    ovo = tmp_path_factory.mktemp("ovo")
    (ovo / ovo_bench.FILE).write_text(json.dumps([OVO_MC, OVO_REC, OVO_SSR, OVO_CRR]))
    sb = tmp_path_factory.mktemp("sb")
    for subset, data in {"real": [SB_REAL], "sqa": [SB_SQA], "proactive_50": [SB_PROACTIVE]}.items():
        (sb / streamingbench.FILES[subset]).write_text(json.dumps(data))
    write_media(ovo_bench.load(ovo, None), ovo)
    write_media(streamingbench.load(sb, None, ("real", "sqa", "proactive_50")), sb)
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
